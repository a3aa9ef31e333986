//! The block scanner: a background thread that re-reads every finalized replica against its
//! meta file once per `scan-interval-ms` (a new replica soon after it appears), throttled so
//! that a full scan is spread over the interval (never slower than [`MIN_SCAN_RATE`]), and
//! reports corrupt replicas. A read failure elsewhere can ask for one replica to be scanned
//! at once.

use super::block_store::{BlockStore, StoreError};
use super::reports::ReportQueue;
use crate::protocol::{BlockId, ExtendedBlock};
use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Lowest scan rate, bytes per second (Hadoop's default volume scan rate is 1 MiB/s).
pub const MIN_SCAN_RATE: u64 = 1 << 20;
/// Bytes verified between throttle checks.
const SCAN_PIECE: usize = 1 << 20;

enum ScanMsg {
    Block(BlockId),
    Stop,
}

/// Asks the scanner thread for work; stops it when shut down.
pub struct ScannerHandle {
    tx: mpsc::Sender<ScanMsg>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl ScannerHandle {
    /// Starts the scanner over `store`, reporting corruption to `reports`.
    pub fn start(
        store: BlockStore,
        reports: Arc<ReportQueue>,
        interval: Duration,
    ) -> std::io::Result<ScannerHandle> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("block-scanner".into())
            .spawn(move || {
                Scanner {
                    store,
                    reports,
                    interval,
                    rx,
                    reported: HashSet::new(),
                    last_scan: HashMap::new(),
                }
                .run()
            })?;
        Ok(ScannerHandle {
            tx,
            thread: std::sync::Mutex::new(Some(thread)),
        })
    }

    /// Scans one replica as soon as possible (after a failed read).
    pub fn scan_now(&self, id: BlockId) {
        let _ = self.tx.send(ScanMsg::Block(id));
    }

    /// Stops the thread and waits for it.
    pub fn stop(&self) {
        let _ = self.tx.send(ScanMsg::Stop);
        let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl Drop for ScannerHandle {
    fn drop(&mut self) {
        let _ = self.tx.send(ScanMsg::Stop);
    }
}

struct Scanner {
    store: BlockStore,
    reports: Arc<ReportQueue>,
    interval: Duration,
    rx: mpsc::Receiver<ScanMsg>,
    /// Replicas already reported corrupt (reported once, not every pass).
    reported: HashSet<(BlockId, u64)>,
    /// When each replica was last verified.
    last_scan: HashMap<BlockId, Instant>,
}

/// The scanner should stop.
struct Stopped;

impl Scanner {
    fn run(mut self) {
        // Idle wake-ups look for replicas that became due (new ones are due at once).
        let tick = self
            .interval
            .clamp(Duration::from_millis(10), Duration::from_secs(1));
        loop {
            if self.pass().is_err() {
                return;
            }
            match self.rx.recv_timeout(tick) {
                Ok(ScanMsg::Block(id)) => {
                    if self.scan_block(id, None).is_err() {
                        return;
                    }
                }
                Ok(ScanMsg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// Handles messages that arrived while scanning.
    fn poll(&mut self) -> Result<(), Stopped> {
        loop {
            match self.rx.try_recv() {
                Ok(ScanMsg::Block(id)) => self.scan_block(id, None)?,
                Ok(ScanMsg::Stop) | Err(mpsc::TryRecvError::Disconnected) => return Err(Stopped),
                Err(mpsc::TryRecvError::Empty) => return Ok(()),
            }
        }
    }

    /// Scans every finalized replica not scanned within the interval, at a rate that
    /// spreads a full scan of the data dir over the interval.
    fn pass(&mut self) -> Result<(), Stopped> {
        let blocks = self.store.finalized();
        let live: HashSet<BlockId> = blocks.iter().map(|b| b.id).collect();
        self.last_scan.retain(|id, _| live.contains(id));
        self.reported.retain(|(id, _)| live.contains(id));
        let now = Instant::now();
        let due: Vec<ExtendedBlock> = blocks
            .iter()
            .filter(|b| {
                self.last_scan
                    .get(&b.id)
                    .is_none_or(|t| now.duration_since(*t) >= self.interval)
            })
            .copied()
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        let total: u64 = blocks.iter().map(|b| b.len).sum();
        let secs = self.interval.as_secs_f64().max(0.001);
        let rate = ((total as f64 / secs) as u64).max(MIN_SCAN_RATE);
        let mut throttle = Throttle {
            rate,
            began: Instant::now(),
            bytes: 0,
        };
        for b in due {
            self.poll()?;
            self.scan_block(b.id, Some(&mut throttle))?;
        }
        Ok(())
    }

    /// Verifies one replica; only a stop request interrupts it.
    fn scan_block(
        &mut self,
        id: BlockId,
        mut throttle: Option<&mut Throttle>,
    ) -> Result<(), Stopped> {
        let reader = match self.store.open_reader(id, 0) {
            Ok(r) => r,
            Err(StoreError::NotFound(_)) => return Ok(()), // deleted meanwhile
            Err(e) => {
                if let Some(info) = self.store.replica(id) {
                    self.found_corrupt(info.block, &e);
                }
                return Ok(());
            }
        };
        let block = reader.block();
        self.last_scan.insert(id, Instant::now());
        let (mut buf, mut crcs) = (Vec::new(), Vec::new());
        let mut pos = 0u64;
        while pos < block.len {
            let n = (block.len - pos).min(SCAN_PIECE as u64) as usize;
            match reader.read_verified(pos, n, &mut buf, &mut crcs) {
                Ok(()) => {}
                Err(e @ StoreError::Corrupt { .. }) => {
                    self.found_corrupt(block, &e);
                    return Ok(());
                }
                Err(e) => {
                    tracing::debug!(block = id, error = %e, "scan skipped");
                    return Ok(());
                }
            }
            pos += n as u64;
            if let Some(t) = throttle.as_deref_mut() {
                t.bytes += n as u64;
                let due = Duration::from_secs_f64(t.bytes as f64 / t.rate as f64);
                if let Some(wait) = due.checked_sub(t.began.elapsed()) {
                    match self.rx.recv_timeout(wait) {
                        Ok(ScanMsg::Stop) | Err(RecvTimeoutError::Disconnected) => {
                            return Err(Stopped)
                        }
                        Ok(ScanMsg::Block(other)) => self.scan_block(other, None)?,
                        Err(RecvTimeoutError::Timeout) => {}
                    }
                }
            }
        }
        Ok(())
    }

    fn found_corrupt(&mut self, block: ExtendedBlock, e: &StoreError) {
        if self.reported.insert((block.id, block.gen)) {
            tracing::warn!(block = block.id, error = %e, "block scanner found a corrupt replica");
            self.reports.corrupt(block);
        }
    }
}

struct Throttle {
    rate: u64,
    began: Instant,
    bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::WriteStage;
    use sheaf_rpc::packet::chunk_checksums;

    #[test]
    fn scanner_reports_a_flipped_byte_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlockStore::open(dir.path(), 0, 0).unwrap();
        for id in [1u64, 2] {
            let mut w = store
                .create_writer(ExtendedBlock { id, gen: 1, len: 0 }, WriteStage::Create, 0)
                .unwrap();
            let bytes = vec![id as u8; 100_000];
            w.append(0, &bytes, &chunk_checksums(&bytes)).unwrap();
            w.finalize().unwrap();
        }
        let path = dir.path().join("current/blk_2");
        let mut on_disk = std::fs::read(&path).unwrap();
        on_disk[70_000] ^= 1;
        std::fs::write(&path, on_disk).unwrap();
        let reports = Arc::new(ReportQueue::default());
        let scanner =
            ScannerHandle::start(store.clone(), reports.clone(), Duration::from_millis(50))
                .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while reports.snapshot().corrupt.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        // Several passes later it is still reported once.
        std::thread::sleep(Duration::from_millis(200));
        scanner.scan_now(2);
        std::thread::sleep(Duration::from_millis(50));
        scanner.stop();
        assert_eq!(
            reports.snapshot().corrupt,
            vec![ExtendedBlock {
                id: 2,
                gen: 1,
                len: 100_000
            }]
        );
    }
}
