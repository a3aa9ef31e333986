//! The namespace's persistent key-value store: sled for the materialized state, the
//! [`EditLog`](super::edit_log::EditLog) for durability.
//!
//! Every mutation is a [`Change`] (a list of key puts/removes) with a sequence number. It is
//! appended to the fsync'd edit log and applied to sled as one atomic batch that also records
//! `applied-seq`. After a crash sled recovers some prefix of its batches (each one atomic), so
//! `applied-seq` says exactly which log records to replay. A checkpoint (at open and at clean
//! shutdown) calls `sled::Db::flush()`, then `fsync`s every file of the sled directory (sled
//! itself only does `sync_file_range`), and only then empties the log.
//!
//! Whenever the log passes [`CHECKPOINT_LOG_BYTES`], a background checkpoint runs instead, on
//! its own thread and outside the namesystem lock (a full flush there stalled every request):
//! it rotates the log (`edits.log` → `edits.log.old`, new records go to a fresh `edits.log`),
//! waits until sled applied every record of the old segment, flushes and fsyncs sled, and
//! deletes the old segment. Open replays `edits.log.old` (if a checkpoint was interrupted)
//! and then `edits.log`.

use super::edit_log::{self, Durability, EditLog, EditLogError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The log is checkpointed into sled once it holds this many bytes (default of
/// `[namenode] checkpoint-log-bytes`).
pub const CHECKPOINT_LOG_BYTES: u64 = 64 << 20;

const APPLIED_SEQ: &[u8] = b"m:applied-seq";
const FORMAT_FILE: &str = "VERSION";
const SLED_DIR: &str = "namespace.sled";
const LOG_FILE: &str = "edits.log";
/// The log segment a background checkpoint is folding into sled.
const OLD_LOG_FILE: &str = "edits.log.old";
/// A background checkpoint gives up if sled has not applied the old segment by then.
const APPLY_WAIT: Duration = Duration::from_secs(30);

/// One key-value mutation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum KeyOp {
    /// Set `key` to `value`.
    Put(
        #[serde(with = "serde_bytes")] Vec<u8>,
        #[serde(with = "serde_bytes")] Vec<u8>,
    ),
    /// Remove `key`.
    Remove(#[serde(with = "serde_bytes")] Vec<u8>),
}

/// The key operations of one namespace mutation, applied atomically.
#[derive(Debug, Clone, Default)]
pub struct Change {
    /// The operations, in order.
    pub ops: Vec<KeyOp>,
}

impl Change {
    /// Adds a put.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push(KeyOp::Put(key, value));
    }
    /// Adds a remove.
    pub fn remove(&mut self, key: Vec<u8>) {
        self.ops.push(KeyOp::Remove(key));
    }
    /// True if nothing changes.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

#[derive(Serialize, Deserialize)]
struct LogRecord {
    seq: u64,
    ops: Vec<KeyOp>,
}

/// What the `VERSION` file of a formatted NameNode data dir says.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct FormatInfo {
    /// Cluster name given to `sheaf format`.
    pub cluster: String,
    /// Random id of this namespace (changes on every format; below 2^63 to fit TOML integers).
    pub namespace_id: u64,
    /// Format time, ms since the Unix epoch.
    pub created_ms: u64,
}

/// Errors of the namespace store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data dir holds no formatted namespace.
    #[error("{0}: no formatted namespace (run `sheaf format` first)")]
    NotFormatted(PathBuf),
    /// The data dir already holds a namespace.
    #[error("{0}: a namespace already exists (use --force to destroy it and reformat)")]
    AlreadyFormatted(PathBuf),
    /// sled failed.
    #[error("namespace database: {0}")]
    Sled(#[from] sled::Error),
    /// The edit log failed.
    #[error(transparent)]
    Log(#[from] EditLogError),
    /// A file of the data dir could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A stored record does not decode.
    #[error("corrupt namespace record: {0}")]
    Corrupt(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// sled plus the edit log, with durable group-committed mutations.
pub struct NamespaceStore {
    db: sled::Db,
    log: Arc<EditLog>,
    dir: PathBuf,
    last_seq: u64,
    log_bytes: u64,
    checkpoint_log_bytes: u64,
    size_checkpoints: u64,
    /// The background checkpoint in flight, if any.
    background: Option<JoinHandle<()>>,
}

/// True if `dir` holds a formatted namespace.
pub fn is_formatted(dir: &Path) -> bool {
    dir.join(FORMAT_FILE).exists()
}

/// Reads the `VERSION` file of a formatted data dir.
pub fn format_info(dir: &Path) -> Result<FormatInfo, StoreError> {
    let path = dir.join(FORMAT_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => StoreError::NotFormatted(dir.to_path_buf()),
        _ => StoreError::Io {
            path: path.clone(),
            source: e,
        },
    })?;
    toml::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{}: {e}", path.display())))
}

/// Creates an empty store in `dir` (the caller then writes the root inode and calls
/// [`mark_formatted`]). With `force`, an existing namespace is destroyed first.
pub fn create_empty(dir: &Path, force: bool) -> Result<(), StoreError> {
    if is_formatted(dir) || dir.join(SLED_DIR).exists() {
        if !force {
            return Err(StoreError::AlreadyFormatted(dir.to_path_buf()));
        }
        // Remove the marker first so a crash mid-reformat leaves an unformatted dir, not a mix.
        let marker = dir.join(FORMAT_FILE);
        if marker.exists() {
            std::fs::remove_file(&marker).map_err(io_err(&marker))?;
        }
        for name in [SLED_DIR, LOG_FILE, OLD_LOG_FILE] {
            let p = dir.join(name);
            if p.is_dir() {
                std::fs::remove_dir_all(&p).map_err(io_err(&p))?;
            } else if p.exists() {
                std::fs::remove_file(&p).map_err(io_err(&p))?;
            }
        }
    }
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    Ok(())
}

/// Writes the `VERSION` marker (durably): from now on the dir counts as formatted.
pub fn mark_formatted(dir: &Path, info: &FormatInfo) -> Result<(), StoreError> {
    let text = toml::to_string(info).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let tmp = dir.join("VERSION.tmp");
    let path = dir.join(FORMAT_FILE);
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(text.as_bytes()).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
    edit_log::sync_dir(dir).map_err(io_err(dir))?;
    Ok(())
}

impl NamespaceStore {
    /// Opens the store of `dir`, replays the edit log into sled and checkpoints.
    /// `allow_unformatted` is for `format` itself, which opens the store before the marker exists.
    pub fn open(
        dir: &Path,
        window: Duration,
        allow_unformatted: bool,
    ) -> Result<NamespaceStore, StoreError> {
        if !allow_unformatted && !is_formatted(dir) {
            return Err(StoreError::NotFormatted(dir.to_path_buf()));
        }
        let db = sled::Config::new().path(dir.join(SLED_DIR)).open()?;
        let log_path = dir.join(LOG_FILE);
        let mut applied = read_u64(&db, APPLIED_SEQ)?;
        let mut replayed = 0usize;
        // An interrupted background checkpoint leaves the older segment behind: replay it first.
        let segments = [dir.join(OLD_LOG_FILE), log_path.clone()];
        let mut payloads = Vec::new();
        for segment in &segments {
            payloads.extend(edit_log::read_records(segment)?);
        }
        for payload in payloads {
            let rec: LogRecord =
                rmp_serde::from_slice(&payload).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            if rec.seq <= applied {
                continue;
            }
            apply(&db, rec.seq, &rec.ops)?;
            applied = rec.seq;
            replayed += 1;
        }
        if replayed > 0 {
            tracing::info!(replayed, applied_seq = applied, "replayed edit log");
        }
        let log = Arc::new(EditLog::open(&log_path, applied, window)?);
        let mut store = NamespaceStore {
            db,
            log,
            dir: dir.to_path_buf(),
            last_seq: applied,
            log_bytes: 0,
            checkpoint_log_bytes: CHECKPOINT_LOG_BYTES,
            size_checkpoints: 0,
            background: None,
        };
        store.checkpoint()?;
        Ok(store)
    }

    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<sled::IVec>, StoreError> {
        Ok(self.db.get(key)?)
    }

    /// Every key-value pair whose key starts with `prefix`, in key order.
    pub fn scan_prefix(
        &self,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<(sled::IVec, sled::IVec), StoreError>> {
        self.db
            .scan_prefix(prefix)
            .map(|r| r.map_err(StoreError::from))
    }

    /// Logs and applies `change`; returns its sequence number. It is durable once
    /// [`NamespaceStore::durability`] reaches that number.
    pub fn commit(&mut self, change: Change) -> Result<u64, StoreError> {
        let seq = self.last_seq + 1;
        let rec = LogRecord {
            seq,
            ops: change.ops,
        };
        let payload = rmp_serde::to_vec(&rec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.log.append(seq, &payload)?;
        self.last_seq = seq;
        self.log_bytes += payload.len() as u64 + 8;
        apply(&self.db, seq, &rec.ops)?;
        if self.log_bytes >= self.checkpoint_log_bytes {
            self.start_background_checkpoint();
        }
        Ok(seq)
    }

    /// Starts a background checkpoint unless one is still running (the log then grows until
    /// the next commit after it ended).
    fn start_background_checkpoint(&mut self) {
        if self.background.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        if let Some(h) = self.background.take() {
            // It logged its own failure; a panic is the only thing left to report.
            if h.join().is_err() {
                tracing::error!("background checkpoint panicked");
            }
        }
        let (db, log, dir) = (self.db.clone(), self.log.clone(), self.dir.clone());
        let spawned = std::thread::Builder::new()
            .name("nn-checkpoint".into())
            .spawn(move || {
                let started = Instant::now();
                match background_checkpoint(&db, &log, &dir) {
                    Ok(()) => tracing::info!(
                        ms = started.elapsed().as_millis() as u64,
                        "edit log checkpointed"
                    ),
                    // The old segment stays; open replays it, the next checkpoint retries.
                    Err(e) => tracing::error!(error = %e, "background checkpoint failed"),
                }
            });
        match spawned {
            Ok(h) => {
                self.background = Some(h);
                self.size_checkpoints += 1;
                self.log_bytes = 0;
            }
            Err(e) => tracing::error!(error = %e, "cannot start the checkpoint thread"),
        }
    }

    /// Waits for the background checkpoint in flight, if any.
    fn wait_background_checkpoint(&mut self) {
        if let Some(h) = self.background.take() {
            if h.join().is_err() {
                tracing::error!("background checkpoint panicked");
            }
        }
    }

    /// Checkpoints once the log holds `bytes` (default [`CHECKPOINT_LOG_BYTES`]).
    pub fn set_checkpoint_log_bytes(&mut self, bytes: u64) {
        self.checkpoint_log_bytes = bytes.max(1);
    }

    /// How many checkpoints the log size has triggered so far (benchmarks, tests).
    pub fn size_checkpoints(&self) -> u64 {
        self.size_checkpoints
    }

    /// Sequence number of the last committed change.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The edit log (tests inject faults into it).
    #[cfg(test)]
    pub(crate) fn edit_log(&self) -> &EditLog {
        &self.log
    }

    /// A watch of how far the edit log is durable.
    pub fn durability(&self) -> watch::Receiver<Durability> {
        self.log.durability()
    }

    /// Blocks until change `seq` is durable.
    pub fn wait_synced(&self, seq: u64) -> Result<(), StoreError> {
        Ok(self.log.wait_synced(seq)?)
    }

    /// Makes sled's state durable (flush + fsync of its files) and empties the edit log
    /// (both segments). Waits for a background checkpoint first.
    pub fn checkpoint(&mut self) -> Result<(), StoreError> {
        self.wait_background_checkpoint();
        self.db.flush()?;
        fsync_tree(&self.dir.join(SLED_DIR))?;
        self.log.truncate()?;
        remove_segment(&self.dir)?;
        self.log_bytes = 0;
        Ok(())
    }
}

impl Drop for NamespaceStore {
    fn drop(&mut self) {
        // Never leave a checkpoint thread working on a directory someone may reopen.
        self.wait_background_checkpoint();
    }
}

/// The background checkpoint: rotate the log, wait until sled applied the old segment, make
/// sled durable, delete the old segment. Runs without the namesystem lock.
fn background_checkpoint(db: &sled::Db, log: &EditLog, dir: &Path) -> Result<(), StoreError> {
    let old = dir.join(OLD_LOG_FILE);
    // A segment left by a failed checkpoint is folded in first; rotating would overwrite it.
    if !old.exists() {
        log.rotate(&old)?;
    }
    // Every record of the old segment was appended before now, and is applied right after
    // its append (under the namesystem lock): wait for sled to catch up.
    let upto = log.last_appended();
    let deadline = Instant::now() + APPLY_WAIT;
    while read_u64(db, APPLIED_SEQ)? < upto {
        if Instant::now() > deadline {
            return Err(StoreError::Corrupt(format!(
                "checkpoint: sled did not apply record {upto} within {}s",
                APPLY_WAIT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    db.flush()?;
    fsync_tree(&dir.join(SLED_DIR))?;
    remove_segment(dir)
}

/// Deletes the old log segment (durably), if there is one.
fn remove_segment(dir: &Path) -> Result<(), StoreError> {
    let old = dir.join(OLD_LOG_FILE);
    match std::fs::remove_file(&old) {
        Ok(()) => edit_log::sync_dir(dir).map_err(io_err(dir)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(&old)(e)),
    }
}

fn read_u64(db: &sled::Db, key: &[u8]) -> Result<u64, StoreError> {
    match db.get(key)? {
        None => Ok(0),
        Some(v) => {
            let b: [u8; 8] = v
                .as_ref()
                .try_into()
                .map_err(|_| StoreError::Corrupt("bad counter".into()))?;
            Ok(u64::from_be_bytes(b))
        }
    }
}

fn apply(db: &sled::Db, seq: u64, ops: &[KeyOp]) -> Result<(), StoreError> {
    let mut batch = sled::Batch::default();
    for op in ops {
        match op {
            KeyOp::Put(k, v) => batch.insert(k.as_slice(), v.as_slice()),
            KeyOp::Remove(k) => batch.remove(k.as_slice()),
        }
    }
    batch.insert(APPLIED_SEQ, &seq.to_be_bytes());
    db.apply_batch(batch)?;
    Ok(())
}

/// fsyncs every file and directory under `root` (sled's data, config and blob files).
fn fsync_tree(root: &Path) -> Result<(), StoreError> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let path = entry.path();
            let ft = entry.file_type().map_err(io_err(&path))?;
            if ft.is_dir() {
                stack.push(path);
            } else if ft.is_file() {
                let f = std::fs::File::open(&path).map_err(io_err(&path))?;
                f.sync_all().map_err(io_err(&path))?;
            }
        }
        edit_log::sync_dir(&dir).map_err(io_err(&dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_applies_only_records_after_applied_seq() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new()
            .path(dir.path().join(SLED_DIR))
            .open()
            .unwrap();
        apply(&db, 1, &[KeyOp::Put(b"k".to_vec(), b"old".to_vec())]).unwrap();
        db.flush().unwrap();
        drop(db);
        // The log holds record 1 (already applied) and record 2 (not yet).
        {
            let log = EditLog::open(&dir.path().join(LOG_FILE), 0, Duration::ZERO).unwrap();
            for (seq, v) in [(1u64, "old"), (2, "new")] {
                let rec = LogRecord {
                    seq,
                    ops: vec![KeyOp::Put(b"k".to_vec(), v.as_bytes().to_vec())],
                };
                log.append(seq, &rmp_serde::to_vec(&rec).unwrap()).unwrap();
            }
            log.wait_synced(2).unwrap();
        }
        let s = NamespaceStore::open(dir.path(), Duration::ZERO, true).unwrap();
        assert_eq!(s.get(b"k").unwrap().unwrap().as_ref(), b"new");
        assert_eq!(s.last_seq(), 2);
        // The checkpoint at open emptied the log.
        assert!(edit_log::read_records(&dir.path().join(LOG_FILE))
            .unwrap()
            .is_empty());
    }

    fn keys(s: &NamespaceStore) -> usize {
        s.scan_prefix(b"k").count()
    }

    #[test]
    fn background_checkpoints_keep_every_commit_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = NamespaceStore::open(dir.path(), Duration::ZERO, true).unwrap();
        s.set_checkpoint_log_bytes(4096);
        let mut last = 0;
        for i in 0..2000u32 {
            let mut c = Change::default();
            c.put(format!("k{i:05}").into_bytes(), vec![7; 40]);
            last = s.commit(c).unwrap();
        }
        s.wait_synced(last).unwrap();
        assert!(s.size_checkpoints() >= 1, "{}", s.size_checkpoints());
        drop(s);
        let s = NamespaceStore::open(dir.path(), Duration::ZERO, true).unwrap();
        assert_eq!((keys(&s), s.last_seq()), (2000, last));
        assert!(!dir.path().join(OLD_LOG_FILE).exists());
    }

    #[test]
    fn an_interrupted_checkpoints_old_segment_is_replayed_before_the_log() {
        let dir = tempfile::tempdir().unwrap();
        drop(NamespaceStore::open(dir.path(), Duration::ZERO, true).unwrap());
        // A crash after the rotation: records 1-2 in the old segment, 3 in the new log, sled
        // never flushed (nothing applied).
        for (file, seqs) in [(OLD_LOG_FILE, 1..=2u64), (LOG_FILE, 3..=3)] {
            let log = EditLog::open(&dir.path().join(file), 0, Duration::ZERO).unwrap();
            for seq in seqs.clone() {
                let rec = LogRecord {
                    seq,
                    ops: vec![KeyOp::Put(format!("k{seq}").into_bytes(), b"v".to_vec())],
                };
                log.append(seq, &rmp_serde::to_vec(&rec).unwrap()).unwrap();
            }
            log.wait_synced(*seqs.end()).unwrap();
        }
        let s = NamespaceStore::open(dir.path(), Duration::ZERO, true).unwrap();
        assert_eq!((keys(&s), s.last_seq()), (3, 3));
        assert!(!dir.path().join(OLD_LOG_FILE).exists());
    }

    #[test]
    fn refuses_unformatted_and_double_format() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            NamespaceStore::open(dir.path(), Duration::ZERO, false),
            Err(StoreError::NotFormatted(_))
        ));
        create_empty(dir.path(), false).unwrap();
        drop(NamespaceStore::open(dir.path(), Duration::ZERO, true).unwrap());
        mark_formatted(
            dir.path(),
            &FormatInfo {
                cluster: "c".into(),
                namespace_id: 1,
                created_ms: 0,
            },
        )
        .unwrap();
        assert!(matches!(
            create_empty(dir.path(), false),
            Err(StoreError::AlreadyFormatted(_))
        ));
        create_empty(dir.path(), true).unwrap();
        assert!(!is_formatted(dir.path()));
    }
}
