//! The NameNode's write-ahead edit log with group commit.
//!
//! Why a log of our own next to sled: `sled::Db::flush()` only calls `sync_file_range`
//! (PERF-NOTES), which survives a killed process but not a power cut (no metadata sync, no
//! disk-cache flush). Every namespace mutation is therefore appended here as one checksummed
//! record and made durable with `fdatasync` before it is acknowledged; sled holds the
//! materialized state and is only trusted up to its last checkpoint (see `store`).
//!
//! Group commit: callers append records under the namespace lock (so records are in sequence
//! order) and then wait, outside the lock, until a single committer thread has written and
//! synced the batch containing their record. Mutations arriving while a sync is in flight, or
//! within `group-commit-window-us` of the first one, share the next sync.
//!
//! Record format: `u32 len (BE) | u32 crc32 of payload (BE) | payload`. Each synced batch ends
//! with a marker record ([`BATCH_END`] and the batch's last sequence number).
//!
//! Torn tail or damage: a power cut mid-write can leave any part of the last batch unwritten,
//! and nothing of it was acknowledged, so a bad record there ends the log at the last intact
//! one. The committer writes a batch only after the previous one's fsync returned, so a bad
//! record followed by an intact end marker and then an intact record (of a later batch) was
//! synced and acknowledged: the log is damaged, not torn, and reading it fails with the offset
//! instead of silently dropping every acknowledged record after it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::watch;

/// How far the log is durable, or why it stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Durability {
    /// Every record up to this sequence number is on stable storage.
    Synced(u64),
    /// A write or sync failed: nothing after the last synced record can be acknowledged.
    Failed(String),
}

struct LogState {
    /// Encoded records not yet handed to the committer.
    buf: Vec<u8>,
    /// Sequence number of the last record in `buf` (or handed to the committer).
    last_appended: u64,
    /// Last sequence number known durable.
    synced: u64,
    /// Set when a write/sync failed.
    failed: Option<String>,
    /// True while the committer writes a batch (checkpoints wait for it).
    writing: bool,
    stop: bool,
}

struct LogShared {
    state: Mutex<LogState>,
    /// Wakes the committer (new records, stop) and the waiters (progress).
    changed: Condvar,
    file: Mutex<File>,
    durability: watch::Sender<Durability>,
    window: Duration,
    /// Number of fsyncs done (group-commit effectiveness, tests and logs).
    syncs: AtomicU64,
}

/// The append side of the edit log; dropping it stops the committer thread after a final sync.
pub struct EditLog {
    shared: Arc<LogShared>,
    committer: Option<JoinHandle<()>>,
    path: PathBuf,
}

/// Errors of the edit log.
#[derive(Debug, thiserror::Error)]
pub enum EditLogError {
    /// The log file could not be opened, read, written or synced.
    #[error("edit log {path}: {source}")]
    Io {
        /// The log file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An earlier write or sync failed; the log accepts nothing more.
    #[error("edit log failed earlier: {0}")]
    Failed(String),
    /// A record before acknowledged ones does not verify: the log is damaged, not torn.
    #[error("edit log {path}: the record at offset {offset} is damaged and acknowledged records follow it (from offset {intact_after}); refusing to start rather than drop them: restore the NameNode's data dir from a backup, or move the log aside to start from the last checkpoint")]
    Damaged {
        /// The log file.
        path: PathBuf,
        /// Where the damaged record starts.
        offset: u64,
        /// Where the first intact batch after it starts.
        intact_after: u64,
    },
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind: keep going with it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// First bytes of a batch-end marker's payload. 0xC1 never begins a MessagePack value, so no
/// edit record (MessagePack) starts like a marker.
const BATCH_END: [u8; 4] = [0xC1, b'E', b'N', b'D'];

/// The record at `pos` of `data`: its payload's range, if its header and checksum are intact.
fn intact_record(data: &[u8], pos: usize) -> Option<std::ops::Range<usize>> {
    let header = data.get(pos..pos.checked_add(8)?)?;
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    let payload = pos + 8..(pos + 8).checked_add(len)?;
    let bytes = data.get(payload.clone())?;
    (crc32fast::hash(bytes) == crc).then_some(payload)
}

fn is_marker(payload: &[u8]) -> bool {
    payload.len() == BATCH_END.len() + 8 && payload.starts_with(&BATCH_END)
}

/// Appends one record (`len | crc32 | payload`) to `buf`.
fn encode_record(buf: &mut Vec<u8>, payload: &[u8]) {
    buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    buf.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
    buf.extend_from_slice(payload);
}

/// Appends the batch-end marker of a batch whose last record has sequence number `seq`.
fn encode_marker(buf: &mut Vec<u8>, seq: u64) {
    let mut payload = [0u8; BATCH_END.len() + 8];
    payload[..BATCH_END.len()].copy_from_slice(&BATCH_END);
    payload[BATCH_END.len()..].copy_from_slice(&seq.to_be_bytes());
    encode_record(buf, &payload);
}

/// Where a later, acknowledged batch starts after the bad record at `bad`, if one does: an
/// intact end marker after it, directly followed by an intact record.
fn synced_data_follows(data: &[u8], bad: usize) -> Option<usize> {
    (bad + 1..data.len().saturating_sub(8)).find(|&q| {
        intact_record(data, q)
            .is_some_and(|p| is_marker(&data[p.clone()]) && intact_record(data, p.end).is_some())
    })
}

/// Reads every intact record of the log at `path` and truncates a torn tail. Returns the
/// payloads in order (empty if the file does not exist). A damaged record before acknowledged
/// ones is an error naming its offset (see the module doc).
pub fn read_records(path: &Path) -> Result<Vec<Vec<u8>>, EditLogError> {
    let io = |source| EditLogError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(e)),
    };
    let mut data = Vec::new();
    file.read_to_end(&mut data).map_err(io)?;
    let mut records = Vec::new();
    let mut pos = 0usize;
    while let Some(payload) = intact_record(&data, pos) {
        if !is_marker(&data[payload.clone()]) {
            records.push(data[payload.clone()].to_vec());
        }
        pos = payload.end;
    }
    if pos != data.len() {
        if let Some(later) = synced_data_follows(&data, pos) {
            return Err(EditLogError::Damaged {
                path: path.to_path_buf(),
                offset: pos as u64,
                intact_after: later as u64,
            });
        }
    }
    if pos != data.len() {
        tracing::warn!(path = %path.display(), intact = pos, total = data.len(), "edit log has a torn tail; truncating");
        file.set_len(pos as u64).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    Ok(records)
}

impl EditLog {
    /// Opens (creating if needed) the log at `path` for appending; `synced_seq` is the sequence
    /// number of the last record already in it.
    pub fn open(path: &Path, synced_seq: u64, window: Duration) -> Result<EditLog, EditLogError> {
        let io = |source| EditLogError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        if let Some(dir) = path.parent() {
            sync_dir(dir).map_err(io)?;
        }
        let (durability, _) = watch::channel(Durability::Synced(synced_seq));
        let shared = Arc::new(LogShared {
            state: Mutex::new(LogState {
                buf: Vec::new(),
                last_appended: synced_seq,
                synced: synced_seq,
                failed: None,
                writing: false,
                stop: false,
            }),
            changed: Condvar::new(),
            file: Mutex::new(file),
            durability,
            window,
            syncs: AtomicU64::new(0),
        });
        let worker = shared.clone();
        let committer = std::thread::Builder::new()
            .name("nn-edit-committer".into())
            .spawn(move || committer_loop(&worker))
            .map_err(io)?;
        Ok(EditLog {
            shared,
            committer: Some(committer),
            path: path.to_path_buf(),
        })
    }

    /// Replaces the file under the committer (tests: a file whose writes fail).
    #[cfg(test)]
    pub(crate) fn replace_file(&self, file: File) {
        *lock(&self.shared.file) = file;
    }

    /// Appends a record with sequence number `seq` (strictly increasing). It is durable once
    /// [`EditLog::wait_synced`] (or the [`Durability`] watch) reaches `seq`.
    pub fn append(&self, seq: u64, payload: &[u8]) -> Result<(), EditLogError> {
        let mut st = lock(&self.shared.state);
        if let Some(f) = &st.failed {
            return Err(EditLogError::Failed(f.clone()));
        }
        encode_record(&mut st.buf, payload);
        st.last_appended = seq;
        self.shared.changed.notify_all();
        Ok(())
    }

    /// How many fsyncs the committer has done so far.
    pub fn syncs(&self) -> u64 {
        self.shared.syncs.load(Ordering::Relaxed)
    }

    /// A watch of the durable sequence number, for async waiters.
    pub fn durability(&self) -> watch::Receiver<Durability> {
        self.shared.durability.subscribe()
    }

    /// Blocks until `seq` is durable.
    pub fn wait_synced(&self, seq: u64) -> Result<(), EditLogError> {
        let mut st = lock(&self.shared.state);
        loop {
            if let Some(f) = &st.failed {
                return Err(EditLogError::Failed(f.clone()));
            }
            if st.synced >= seq {
                return Ok(());
            }
            st = self
                .shared
                .changed
                .wait(st)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Sequence number of the last record appended (not necessarily durable yet).
    pub fn last_appended(&self) -> u64 {
        lock(&self.shared.state).last_appended
    }

    /// Starts a new log segment: the current file (every record written so far, all synced)
    /// is renamed to `old`, and later records go to a new, empty file at the log's path. Both
    /// names are durable before any record reaches the new file. Appends may go on meanwhile;
    /// the committer only waits for the renames.
    pub fn rotate(&self, old: &Path) -> Result<(), EditLogError> {
        let io = |source| EditLogError::Io {
            path: self.path.clone(),
            source,
        };
        // Holding the file lock: no batch is half-written, and every written one is synced.
        let mut file = lock(&self.shared.file);
        std::fs::rename(&self.path, old).map_err(io)?;
        let fresh = match OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
        {
            Ok(f) => f,
            Err(e) => {
                // Keep appending to the one segment rather than to a file under another name.
                let _ = std::fs::rename(old, &self.path);
                return Err(io(e));
            }
        };
        if let Some(dir) = self.path.parent() {
            sync_dir(dir).map_err(io)?;
        }
        *file = fresh;
        Ok(())
    }

    /// Empties the log once every appended record is durable. The caller must guarantee that
    /// the state those records describe is itself durable (the store's checkpoint) and that no
    /// record is appended concurrently (it holds the namespace lock).
    pub fn truncate(&self) -> Result<(), EditLogError> {
        let last = lock(&self.shared.state).last_appended;
        self.wait_synced(last)?;
        {
            let mut st = lock(&self.shared.state);
            while st.writing || !st.buf.is_empty() {
                st = self
                    .shared
                    .changed
                    .wait(st)
                    .unwrap_or_else(|p| p.into_inner());
            }
        }
        let io = |source| EditLogError::Io {
            path: self.path.clone(),
            source,
        };
        let file = lock(&self.shared.file);
        file.set_len(0).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(())
    }
}

impl Drop for EditLog {
    fn drop(&mut self) {
        lock(&self.shared.state).stop = true;
        self.shared.changed.notify_all();
        if let Some(h) = self.committer.take() {
            let _ = h.join();
        }
    }
}

fn committer_loop(shared: &LogShared) {
    loop {
        let mut st = lock(&shared.state);
        while st.buf.is_empty() && !st.stop {
            st = shared.changed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        if st.buf.is_empty() && st.stop {
            return;
        }
        if !shared.window.is_zero() && !st.stop {
            // Give concurrent mutations a moment to join this sync.
            let (s, _) = shared
                .changed
                .wait_timeout(st, shared.window)
                .unwrap_or_else(|p| p.into_inner());
            st = s;
        }
        let mut batch = std::mem::take(&mut st.buf);
        let upto = st.last_appended;
        encode_marker(&mut batch, upto);
        st.writing = true;
        drop(st);

        let result = {
            let mut file = lock(&shared.file);
            file.write_all(&batch).and_then(|_| file.sync_data())
        };

        let mut st = lock(&shared.state);
        st.writing = false;
        match result {
            Ok(()) => {
                shared.syncs.fetch_add(1, Ordering::Relaxed);
                st.synced = upto;
                shared.durability.send_replace(Durability::Synced(upto));
            }
            Err(e) => {
                let msg = format!("write/fsync of the edit log failed: {e}");
                tracing::error!("{msg}");
                st.failed = Some(msg.clone());
                shared.durability.send_replace(Durability::Failed(msg));
            }
        }
        shared.changed.notify_all();
        if st.failed.is_some() {
            return;
        }
    }
}

/// fsyncs a directory so that entries created or renamed in it survive a power cut.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_reopen_and_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("edits.log");
        {
            let log = EditLog::open(&path, 0, Duration::from_micros(200)).unwrap();
            for i in 1..=5u64 {
                log.append(i, format!("record {i}").as_bytes()).unwrap();
            }
            log.wait_synced(5).unwrap();
        }
        // A torn record at the tail: a length that promises more bytes than exist.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0, 0, 0, 50, 1, 2, 3, 4, 9, 9]).unwrap();
        drop(f);
        let recs = read_records(&path).unwrap();
        assert_eq!(recs.len(), 5);
        assert_eq!(recs[4], b"record 5");
        // The tail was truncated: reading again gives the same and the file ends cleanly.
        assert_eq!(read_records(&path).unwrap().len(), 5);
    }

    #[test]
    fn a_damaged_record_before_acknowledged_ones_is_an_error_naming_its_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("edits.log");
        {
            // Zero window: every append is its own synced batch.
            let log = EditLog::open(&path, 0, Duration::ZERO).unwrap();
            for i in 1..=4u64 {
                log.append(i, format!("record {i}").as_bytes()).unwrap();
                log.wait_synced(i).unwrap();
            }
        }
        let clean = std::fs::read(&path).unwrap();
        // Flip a payload byte of the second record (the first record is 8 + 8 bytes, then its
        // 20-byte marker).
        let second = 8 + 8 + 20;
        let mut bad = clean.clone();
        bad[second + 8] ^= 0xff;
        std::fs::write(&path, &bad).unwrap();
        match read_records(&path) {
            Err(EditLogError::Damaged { offset, .. }) => assert_eq!(offset, second as u64),
            other => panic!("expected a damaged log, got {other:?}"),
        }
        // Nothing was cut: the file is as it was.
        assert_eq!(std::fs::read(&path).unwrap(), bad);
        // The same damage in the last batch is a torn tail: nothing after it was acknowledged.
        let last = clean.len() - (8 + 8 + 20);
        let mut torn = clean.clone();
        torn[last + 8] ^= 0xff;
        std::fs::write(&path, &torn).unwrap();
        assert_eq!(read_records(&path).unwrap().len(), 3);
        assert_eq!(std::fs::read(&path).unwrap().len(), last);
    }

    #[test]
    fn a_failed_write_fails_the_log_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let log = EditLog::open(&dir.path().join("edits.log"), 0, Duration::ZERO).unwrap();
        log.append(1, b"one").unwrap();
        log.wait_synced(1).unwrap();
        // Writes to /dev/full fail with ENOSPC, as on a full disk.
        log.replace_file(OpenOptions::new().write(true).open("/dev/full").unwrap());
        log.append(2, b"two").unwrap();
        assert!(matches!(log.wait_synced(2), Err(EditLogError::Failed(_))));
        assert!(matches!(
            *log.durability().borrow(),
            Durability::Failed(ref e) if e.contains("No space left")
        ));
        assert!(matches!(
            log.append(3, b"three"),
            Err(EditLogError::Failed(_))
        ));
    }

    #[test]
    fn concurrent_appends_share_syncs_and_all_become_durable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("edits.log");
        let log = Arc::new(EditLog::open(&path, 0, Duration::from_micros(500)).unwrap());
        let seq = Arc::new(Mutex::new(0u64));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let log = log.clone();
                let seq = seq.clone();
                std::thread::spawn(move || {
                    for i in 0..20 {
                        let s = {
                            let mut g = seq.lock().unwrap();
                            *g += 1;
                            log.append(*g, format!("{t}-{i}").as_bytes()).unwrap();
                            *g
                        };
                        log.wait_synced(s).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(read_records(&path).unwrap().len(), 160);
        let syncs = log.syncs();
        assert!(
            syncs < 160,
            "160 concurrent appends took {syncs} fsyncs: no group commit"
        );
        log.truncate().unwrap();
        assert!(read_records(&path).unwrap().is_empty());
    }
}
