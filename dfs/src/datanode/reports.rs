//! Reports waiting to go to the NameNode: replicas received and deleted (the incremental
//! block report) and corrupt replicas. Producers (transfer handlers, the scanner, command
//! execution) push from any thread; the NameNode link drains and sends them promptly.

use crate::protocol::{BlockId, ExtendedBlock};
use std::sync::{Mutex, MutexGuard};
use tokio::sync::Notify;

/// What is waiting to be reported.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PendingReports {
    /// Replicas finalized since the last incremental report.
    pub received: Vec<ExtendedBlock>,
    /// Replicas deleted since the last incremental report.
    pub deleted: Vec<BlockId>,
    /// Replicas found corrupt (by a read or the scanner).
    pub corrupt: Vec<ExtendedBlock>,
}

impl PendingReports {
    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.received.is_empty() && self.deleted.is_empty() && self.corrupt.is_empty()
    }
}

/// The shared queue of [`PendingReports`] with a wake-up for the sender.
#[derive(Debug, Default)]
pub struct ReportQueue {
    pending: Mutex<PendingReports>,
    notify: Notify,
}

impl ReportQueue {
    fn lock(&self) -> MutexGuard<'_, PendingReports> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A replica was finalized.
    pub fn received(&self, block: ExtendedBlock) {
        self.lock().received.push(block);
        self.notify.notify_one();
    }

    /// A replica was deleted.
    pub fn deleted(&self, id: BlockId) {
        self.lock().deleted.push(id);
        self.notify.notify_one();
    }

    /// A replica failed its checksum.
    pub fn corrupt(&self, block: ExtendedBlock) {
        let mut p = self.lock();
        if !p.corrupt.contains(&block) {
            p.corrupt.push(block);
        }
        drop(p);
        self.notify.notify_one();
    }

    /// Takes everything waiting.
    pub fn take(&self) -> PendingReports {
        std::mem::take(&mut *self.lock())
    }

    /// Puts back reports that could not be delivered (they go first next time).
    pub fn restore(&self, mut failed: PendingReports) {
        let mut p = self.lock();
        failed.received.append(&mut p.received);
        failed.deleted.append(&mut p.deleted);
        for c in p.corrupt.drain(..) {
            if !failed.corrupt.contains(&c) {
                failed.corrupt.push(c);
            }
        }
        *p = failed;
    }

    /// A copy of what waits (tests and diagnostics).
    pub fn snapshot(&self) -> PendingReports {
        self.lock().clone()
    }

    /// Resolves when something was queued since the last call.
    pub async fn wait(&self) {
        self.notify.notified().await
    }
}
