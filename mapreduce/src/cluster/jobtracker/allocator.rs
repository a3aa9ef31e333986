//! RM calls off the driver's task: the asks, cancellations and releases the driver queues go
//! to the ResourceManager in back-to-back allocate calls, whose answers come back as commands.

use super::driver::Command;
use sheaf_yarn::master::MasterClient;
use sheaf_yarn::protocol::{ContainerAsk, ContainerId};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long one allocate call may wait for news: short, so new asks and releases reach the RM
/// promptly (asks queue while a call is in flight).
const ALLOCATE_WAIT_MS: u64 = 150;

/// Asks, cancellations and releases waiting for the next allocate call.
#[derive(Default)]
pub(super) struct AllocBatch {
    pub(super) asks: Vec<ContainerAsk>,
    pub(super) cancel: Vec<u64>,
    pub(super) release: Vec<ContainerId>,
}

impl AllocBatch {
    /// True when there is nothing to send.
    pub(super) fn is_empty(&self) -> bool {
        self.asks.is_empty() && self.cancel.is_empty() && self.release.is_empty()
    }

    /// Queues `other` after what is queued.
    pub(super) fn append(&mut self, mut other: AllocBatch) {
        self.asks.append(&mut other.asks);
        self.cancel.append(&mut other.cancel);
        self.release.append(&mut other.release);
    }
}

/// Runs allocate calls back to back (each a short long-poll), sending what comes back.
pub(super) async fn allocator(
    am: Arc<MasterClient>,
    mut batches: mpsc::UnboundedReceiver<AllocBatch>,
    commands: mpsc::Sender<Command>,
) {
    let mut pending = AllocBatch::default();
    let mut failures = 0u32;
    loop {
        loop {
            match batches.try_recv() {
                Ok(b) => pending.append(b),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return,
            }
        }
        let batch = std::mem::take(&mut pending);
        let result = am
            .allocate(
                batch.asks.clone(),
                batch.cancel.clone(),
                batch.release.clone(),
                ALLOCATE_WAIT_MS,
            )
            .await;
        let sent = match result {
            Ok(a) => {
                failures = 0;
                commands.send(Command::Allocation(a)).await
            }
            Err(e) => {
                failures += 1;
                // Not applied (or not known to be): send it again with the next call.
                let mut retry = batch;
                retry.append(std::mem::take(&mut pending));
                pending = retry;
                let sent = commands.send(Command::AllocateFailed(e, failures)).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
                sent
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_batches_append_in_order() {
        let mut a = AllocBatch::default();
        assert!(a.is_empty());
        a.append(AllocBatch {
            asks: vec![],
            cancel: vec![1, 2],
            release: vec![],
        });
        a.append(AllocBatch {
            asks: vec![],
            cancel: vec![3],
            release: vec![],
        });
        assert_eq!(a.cancel, vec![1, 2, 3]);
        assert!(!a.is_empty());
    }
}
