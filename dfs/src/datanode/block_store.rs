//! The DataNode's replicas on disk.
//!
//! Layout of a data dir (Hadoop's naming):
//! - `uuid`: the DataNode's identity, created on first start.
//! - `current/blk_<id>` + `current/blk_<id>_<gen>.meta`: finalized replicas.
//! - `rbw/blk_<id>` + `rbw/blk_<id>_<gen>.meta`: replicas being written.
//!
//! A meta file is a 6-byte header (version `u16`, chunk size `u32`, big-endian) followed by one
//! big-endian crc32 per [`CHUNK`] of data, so packets' chunk checksums are stored as they arrive.
//!
//! Every method here does blocking file I/O: callers on the async runtime use `spawn_blocking`
//! or a dedicated thread.

use crate::protocol::{BlockId, DatanodeError, ExtendedBlock, ReplicaState, WriteStage};
use sheaf_rpc::packet::{chunk_checksums, CHUNK};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Version written in every meta file header.
pub const META_VERSION: u16 = 1;
/// Bytes of the meta file header (version `u16` + chunk size `u32`).
pub const META_HEADER_LEN: u64 = 6;

/// What can go wrong with a replica or the data dir.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// No replica of this block (or only an older generation).
    #[error("replica of block {0} not found")]
    NotFound(BlockId),
    /// A chunk does not match its stored checksum, or the files are inconsistent.
    #[error("replica of block {id} is corrupt at offset {offset}: {reason}")]
    Corrupt {
        /// The block.
        id: BlockId,
        /// First bad byte offset (chunk-aligned).
        offset: u64,
        /// What was found.
        reason: String,
    },
    /// The data dir cannot take writes: full or read-only.
    #[error("{0}")]
    Storage(String),
    /// Another I/O failure.
    #[error("{0}")]
    Io(String),
    /// The request does not fit the replica's state.
    #[error("{0}")]
    Invalid(String),
}

impl From<StoreError> for DatanodeError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(id) => DatanodeError::ReplicaNotFound(id),
            StoreError::Corrupt { id, .. } => DatanodeError::Corrupt(id),
            StoreError::Storage(m) | StoreError::Io(m) => DatanodeError::Storage(m),
            StoreError::Invalid(m) => DatanodeError::Invalid(m),
        }
    }
}

/// A replica as the store knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaInfo {
    /// Id, generation stamp and bytes on disk.
    pub block: ExtendedBlock,
    /// Being written or finalized.
    pub state: ReplicaState,
}

/// Capacity figures for heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StorageReport {
    /// Raw capacity.
    pub capacity: u64,
    /// Bytes used by replicas (data + meta).
    pub used: u64,
    /// Bytes a new replica may still use.
    pub remaining: u64,
}

#[derive(Debug, Clone, Copy)]
struct Replica {
    gen: u64,
    len: u64,
    state: ReplicaState,
    /// Bumped whenever the replica is taken over (recovery, replacement, deletion), so a
    /// writer that lost its replica stops instead of writing into someone else's files.
    epoch: u64,
}

struct StoreInner {
    dir: PathBuf,
    current: PathBuf,
    rbw: PathBuf,
    capacity_bytes: u64,
    reserved_bytes: u64,
    replicas: Mutex<HashMap<BlockId, Replica>>,
    next_epoch: AtomicU64,
    used: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// Test hook: an errno every write fails with (simulates EROFS/ENOSPC as root).
    fault: Mutex<Option<i32>>,
}

/// The replicas of one data dir. Cheap to clone (shared state).
#[derive(Clone)]
pub struct BlockStore {
    inner: Arc<StoreInner>,
}

fn data_name(id: BlockId) -> String {
    format!("blk_{id}")
}

fn meta_name(id: BlockId, gen: u64) -> String {
    format!("blk_{id}_{gen}.meta")
}

/// Bytes of the meta file of a replica of `len` bytes.
pub fn meta_len_for(len: u64) -> u64 {
    META_HEADER_LEN + len.div_ceil(CHUNK as u64) * 4
}

fn meta_header() -> [u8; META_HEADER_LEN as usize] {
    let mut h = [0u8; META_HEADER_LEN as usize];
    h[0..2].copy_from_slice(&META_VERSION.to_be_bytes());
    h[2..6].copy_from_slice(&(CHUNK as u32).to_be_bytes());
    h
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `statvfs` of the file system holding `path`: (total bytes, bytes available to us).
fn fs_space(path: &Path) -> io::Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated path and `st` points to writable memory of the right type.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled the struct.
    let st = unsafe { st.assume_init() };
    // The field types differ between platforms (u32 on some 32-bit targets).
    #[allow(clippy::unnecessary_cast)]
    let (frsize, blocks, avail) = (st.f_frsize as u64, st.f_blocks as u64, st.f_bavail as u64);
    Ok((blocks * frsize, avail * frsize))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Parses `blk_<id>` → id, `blk_<id>_<gen>.meta` → (id, gen).
enum BlockFile {
    Data(BlockId),
    Meta(BlockId, u64),
}

fn parse_block_file(name: &str) -> Option<BlockFile> {
    let rest = name.strip_prefix("blk_")?;
    if let Some(stem) = rest.strip_suffix(".meta") {
        let (id, gen) = stem.split_once('_')?;
        return Some(BlockFile::Meta(id.parse().ok()?, gen.parse().ok()?));
    }
    rest.parse().ok().map(BlockFile::Data)
}

/// The DataNode's identity in `<dir>/uuid`, created (and made durable) on first start.
pub fn load_or_create_uuid(dir: &Path) -> Result<String, StoreError> {
    let path = dir.join("uuid");
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(classify(
                dir,
                &format!("cannot read {}", path.display()),
                e,
                0,
            ))
        }
    }
    let b: [u8; 16] = rand::random();
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    let uuid = format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    );
    let tmp = dir.join("uuid.tmp");
    let write = || -> io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(uuid.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        sync_dir(dir)
    };
    write().map_err(|e| classify(dir, &format!("cannot write {}", path.display()), e, 0))?;
    Ok(uuid)
}

/// Turns an I/O error into a storage error with a message naming the data dir when the
/// disk is full or read-only.
fn classify(dir: &Path, what: &str, e: io::Error, remaining: u64) -> StoreError {
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => StoreError::Storage(format!(
            "data dir {} is full ({remaining} bytes left): {what}: {e} (free space on it)",
            dir.display()
        )),
        Some(libc::EROFS) | Some(libc::EACCES) | Some(libc::EPERM) => StoreError::Storage(format!(
            "data dir {} is read-only: {what}: {e} (make it writable or set another data-dir)",
            dir.display()
        )),
        _ => StoreError::Io(format!("data dir {}: {what}: {e}", dir.display())),
    }
}

impl BlockStore {
    /// Opens (creating if needed) a data dir, proves it writable and loads its replicas.
    /// Leftover in-progress replicas are kept (trimmed to their last consistent chunk) for
    /// lease recovery; stale generations are removed.
    pub fn open(
        dir: &Path,
        capacity_bytes: u64,
        reserved_bytes: u64,
    ) -> Result<BlockStore, StoreError> {
        let inner = StoreInner {
            dir: dir.to_path_buf(),
            current: dir.join("current"),
            rbw: dir.join("rbw"),
            capacity_bytes,
            reserved_bytes,
            replicas: Mutex::new(HashMap::new()),
            next_epoch: AtomicU64::new(1),
            used: AtomicU64::new(0),
            last_error: Mutex::new(None),
            fault: Mutex::new(None),
        };
        for d in [&inner.dir, &inner.current, &inner.rbw] {
            std::fs::create_dir_all(d)
                .map_err(|e| classify(dir, &format!("cannot create {}", d.display()), e, 0))?;
        }
        // Prove the dir takes writes now rather than at the first block.
        let probe = dir.join(".write-probe");
        let check = || -> io::Result<()> {
            let mut f = File::create(&probe)?;
            f.write_all(b"sheaf")?;
            f.sync_all()?;
            std::fs::remove_file(&probe)
        };
        check().map_err(|e| classify(dir, "cannot write a probe file", e, 0))?;
        let store = BlockStore {
            inner: Arc::new(inner),
        };
        store.load()?;
        Ok(store)
    }

    /// The data dir.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    fn io_err(&self, what: &str, e: io::Error) -> StoreError {
        let remaining = self.remaining();
        let err = classify(&self.inner.dir, what, e, remaining);
        *lock(&self.inner.last_error) = Some(err.to_string());
        err
    }

    /// Test hook: make every later write fail with `errno` (None clears it).
    pub fn inject_write_fault(&self, errno: Option<i32>) {
        *lock(&self.inner.fault) = errno;
    }

    fn fault(&self) -> io::Result<()> {
        match *lock(&self.inner.fault) {
            Some(errno) => Err(io::Error::from_raw_os_error(errno)),
            None => Ok(()),
        }
    }

    /// The last storage error seen (cleared by the next successful finalize).
    pub fn last_error(&self) -> Option<String> {
        lock(&self.inner.last_error).clone()
    }

    fn epoch(&self) -> u64 {
        self.inner.next_epoch.fetch_add(1, Ordering::Relaxed)
    }

    fn dir_of(&self, state: ReplicaState) -> &Path {
        match state {
            ReplicaState::Finalized => &self.inner.current,
            ReplicaState::InProgress => &self.inner.rbw,
        }
    }

    fn paths(&self, id: BlockId, gen: u64, state: ReplicaState) -> (PathBuf, PathBuf) {
        let d = self.dir_of(state);
        (d.join(data_name(id)), d.join(meta_name(id, gen)))
    }

    fn load(&self) -> Result<(), StoreError> {
        let mut found = HashMap::new();
        for state in [ReplicaState::Finalized, ReplicaState::InProgress] {
            let dir = self.dir_of(state).to_path_buf();
            let mut datas = Vec::new();
            let mut metas: HashMap<BlockId, Vec<u64>> = HashMap::new();
            let entries = std::fs::read_dir(&dir)
                .map_err(|e| self.io_err(&format!("cannot list {}", dir.display()), e))?;
            for entry in entries {
                let entry =
                    entry.map_err(|e| self.io_err(&format!("cannot list {}", dir.display()), e))?;
                match entry.file_name().to_str().and_then(parse_block_file) {
                    Some(BlockFile::Data(id)) => datas.push(id),
                    Some(BlockFile::Meta(id, gen)) => metas.entry(id).or_default().push(gen),
                    None => {}
                }
            }
            for id in datas {
                let Some(gens) = metas.get_mut(&id) else {
                    tracing::warn!(block = id, dir = %dir.display(), "replica without meta file: ignored");
                    continue;
                };
                gens.sort_unstable();
                let gen = gens.pop().unwrap_or_default();
                for old in gens.drain(..) {
                    let _ = std::fs::remove_file(dir.join(meta_name(id, old)));
                }
                let (data, meta) = (dir.join(data_name(id)), dir.join(meta_name(id, gen)));
                let mut len = std::fs::metadata(&data)
                    .map_err(|e| self.io_err("cannot stat replica", e))?
                    .len();
                if state == ReplicaState::InProgress {
                    if let Some(Replica { gen: fg, .. }) = found.get(&id).copied() {
                        if fg >= gen {
                            // A finalized replica supersedes the leftover.
                            let _ = std::fs::remove_file(&data);
                            let _ = std::fs::remove_file(&meta);
                            continue;
                        }
                        // A newer unfinished generation (crash during recovery) supersedes
                        // the finalized one: keep one replica per block.
                        let _ = std::fs::remove_file(self.inner.current.join(data_name(id)));
                        let _ = std::fs::remove_file(self.inner.current.join(meta_name(id, fg)));
                    }
                    len = self.trim_in_progress(id, &data, &meta, len)?;
                }
                found.insert(
                    id,
                    Replica {
                        gen,
                        len,
                        state,
                        epoch: self.epoch(),
                    },
                );
            }
        }
        let used: u64 = found.values().map(|r| r.len + meta_len_for(r.len)).sum();
        self.inner.used.store(used, Ordering::Relaxed);
        tracing::info!(replicas = found.len(), used, dir = %self.inner.dir.display(), "loaded replicas");
        *lock(&self.inner.replicas) = found;
        Ok(())
    }

    /// An unfinished replica from before a crash: keep the longest prefix whose data and
    /// checksums agree (a crash can leave the last chunk's data and crc out of step).
    fn trim_in_progress(
        &self,
        id: BlockId,
        data: &Path,
        meta: &Path,
        data_len: u64,
    ) -> Result<u64, StoreError> {
        let meta_len = std::fs::metadata(meta)
            .map_err(|e| self.io_err("cannot stat meta", e))?
            .len();
        let crcs = meta_len.saturating_sub(META_HEADER_LEN) / 4;
        let mut len = data_len.min(crcs * CHUNK as u64);
        if len > 0 {
            let last_chunk = (len - 1) / CHUNK as u64;
            let start = last_chunk * CHUNK as u64;
            let ok = (|| -> io::Result<bool> {
                let d = File::open(data)?;
                let m = File::open(meta)?;
                let mut buf = vec![0u8; (len - start) as usize];
                d.read_exact_at(&mut buf, start)?;
                let mut c = [0u8; 4];
                m.read_exact_at(&mut c, META_HEADER_LEN + last_chunk * 4)?;
                Ok(crc32fast::hash(&buf) == u32::from_be_bytes(c))
            })()
            .unwrap_or(false);
            if !ok {
                len = start;
            }
        }
        let fix = || -> io::Result<()> {
            OpenOptions::new().write(true).open(data)?.set_len(len)?;
            OpenOptions::new()
                .write(true)
                .open(meta)?
                .set_len(meta_len_for(len))?;
            Ok(())
        };
        fix().map_err(|e| self.io_err("cannot trim in-progress replica", e))?;
        if len != data_len {
            tracing::info!(
                block = id,
                from = data_len,
                to = len,
                "trimmed unfinished replica"
            );
        }
        Ok(len)
    }

    /// Every finalized replica (the full block report).
    pub fn finalized(&self) -> Vec<ExtendedBlock> {
        lock(&self.inner.replicas)
            .iter()
            .filter(|(_, r)| r.state == ReplicaState::Finalized)
            .map(|(id, r)| ExtendedBlock {
                id: *id,
                gen: r.gen,
                len: r.len,
            })
            .collect()
    }

    /// Number of replicas of any state.
    pub fn replica_count(&self) -> usize {
        lock(&self.inner.replicas).len()
    }

    /// One replica's state.
    pub fn replica(&self, id: BlockId) -> Option<ReplicaInfo> {
        lock(&self.inner.replicas).get(&id).map(|r| ReplicaInfo {
            block: ExtendedBlock {
                id,
                gen: r.gen,
                len: r.len,
            },
            state: r.state,
        })
    }

    /// Capacity, used and remaining bytes (`capacity-bytes` if set, else the file system's).
    pub fn storage(&self) -> StorageReport {
        let used = self.inner.used.load(Ordering::Relaxed);
        let (fs_total, fs_avail) = fs_space(&self.inner.dir).unwrap_or((0, 0));
        let capacity = if self.inner.capacity_bytes > 0 {
            self.inner.capacity_bytes
        } else {
            fs_total
        };
        let mut remaining = fs_avail.saturating_sub(self.inner.reserved_bytes);
        if self.inner.capacity_bytes > 0 {
            remaining = remaining.min(
                capacity
                    .saturating_sub(used)
                    .saturating_sub(self.inner.reserved_bytes),
            );
        }
        StorageReport {
            capacity,
            used,
            remaining,
        }
    }

    /// Bytes a replica may still use.
    pub fn remaining(&self) -> u64 {
        self.storage().remaining
    }

    fn ensure_space(&self, bytes: u64) -> Result<(), StoreError> {
        let remaining = self.remaining();
        if bytes > remaining {
            let err = StoreError::Storage(format!(
                "data dir {} is full ({remaining} bytes left, {bytes} needed; \
                 raise capacity-bytes or free space)",
                self.inner.dir.display()
            ));
            *lock(&self.inner.last_error) = Some(err.to_string());
            return Err(err);
        }
        Ok(())
    }

    fn sub_used(&self, bytes: u64) {
        let _ = self
            .inner
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                Some(u.saturating_sub(bytes))
            });
    }

    fn remove_files(&self, id: BlockId, r: &Replica) {
        let (data, meta) = self.paths(id, r.gen, r.state);
        let _ = std::fs::remove_file(data);
        let _ = std::fs::remove_file(meta);
        self.sub_used(r.len + meta_len_for(r.len));
    }

    /// Starts writing a replica of `block` (whose `gen` is the generation to write) for a
    /// pipeline stage. `Recover` keeps the existing bytes up to `resume_offset`.
    pub fn create_writer(
        &self,
        block: ExtendedBlock,
        stage: WriteStage,
        resume_offset: u64,
    ) -> Result<ReplicaWriter, StoreError> {
        let id = block.id;
        self.fault()
            .map_err(|e| self.io_err("cannot create replica", e))?;
        let mut map = lock(&self.inner.replicas);
        let existing = map.get(&id).copied();
        let start_len = match (stage, existing) {
            (WriteStage::Recover, Some(r)) => {
                if r.gen > block.gen {
                    return Err(StoreError::Invalid(format!(
                        "block {id}: replica has generation {} newer than {}",
                        r.gen, block.gen
                    )));
                }
                if r.len < resume_offset {
                    return Err(StoreError::Invalid(format!(
                        "block {id}: replica has {} bytes, cannot resume at {resume_offset}",
                        r.len
                    )));
                }
                self.move_and_truncate(id, &r, block.gen, resume_offset, ReplicaState::InProgress)?;
                resume_offset
            }
            (WriteStage::Recover, None) if resume_offset > 0 => {
                return Err(StoreError::NotFound(id))
            }
            (_, Some(r)) if r.state == ReplicaState::Finalized && r.gen >= block.gen => {
                return Err(StoreError::Invalid(format!(
                    "block {id}: a finalized replica (generation {}) already exists",
                    r.gen
                )));
            }
            (_, existing) => {
                if let Some(r) = existing {
                    self.remove_files(id, &r);
                }
                let (data, meta) = self.paths(id, block.gen, ReplicaState::InProgress);
                let create = || -> io::Result<()> {
                    OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .open(&data)?;
                    let mut m = OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .open(&meta)?;
                    m.write_all(&meta_header())
                };
                if let Err(e) = create() {
                    map.remove(&id);
                    drop(map);
                    return Err(self.io_err("cannot create replica files", e));
                }
                self.inner
                    .used
                    .fetch_add(META_HEADER_LEN, Ordering::Relaxed);
                0
            }
        };
        let epoch = self.epoch();
        map.insert(
            id,
            Replica {
                gen: block.gen,
                len: start_len,
                state: ReplicaState::InProgress,
                epoch,
            },
        );
        drop(map);
        let (data, meta) = self.paths(id, block.gen, ReplicaState::InProgress);
        let open = || -> io::Result<(File, File)> {
            Ok((
                OpenOptions::new().read(true).write(true).open(&data)?,
                OpenOptions::new().read(true).write(true).open(&meta)?,
            ))
        };
        let (data, meta) = open().map_err(|e| self.io_err("cannot open replica files", e))?;
        Ok(ReplicaWriter {
            store: self.clone(),
            id,
            gen: block.gen,
            epoch,
            data,
            meta,
            len: start_len,
            synced: start_len,
            crc_buf: Vec::new(),
        })
    }

    /// Moves a replica's files to `state`'s dir under generation `new_gen`, truncated to
    /// `len` with the last partial chunk's crc regenerated. Caller holds the map lock.
    fn move_and_truncate(
        &self,
        id: BlockId,
        r: &Replica,
        new_gen: u64,
        len: u64,
        state: ReplicaState,
    ) -> Result<(), StoreError> {
        let (old_data, old_meta) = self.paths(id, r.gen, r.state);
        let (new_data, new_meta) = self.paths(id, new_gen, state);
        let work = || -> io::Result<()> {
            self.fault()?;
            let data = OpenOptions::new().read(true).write(true).open(&old_data)?;
            data.set_len(len)?;
            let meta = OpenOptions::new().read(true).write(true).open(&old_meta)?;
            meta.set_len(meta_len_for(len))?;
            let tail = len % CHUNK as u64;
            if tail != 0 {
                let start = len - tail;
                let mut buf = vec![0u8; tail as usize];
                data.read_exact_at(&mut buf, start)?;
                let crc = crc32fast::hash(&buf);
                meta.write_all_at(
                    &crc.to_be_bytes(),
                    META_HEADER_LEN + (start / CHUNK as u64) * 4,
                )?;
            }
            data.sync_data()?;
            meta.sync_data()?;
            std::fs::rename(&old_meta, &new_meta)?;
            if old_data != new_data {
                std::fs::rename(&old_data, &new_data)?;
            }
            sync_dir(self.dir_of(state))?;
            if r.state != state {
                sync_dir(self.dir_of(r.state))?;
            }
            Ok(())
        };
        work().map_err(|e| self.io_err("cannot truncate replica for recovery", e))?;
        let before = r.len + meta_len_for(r.len);
        let after = len + meta_len_for(len);
        self.sub_used(before.saturating_sub(after));
        Ok(())
    }

    /// Lease recovery: truncates a replica to `len`, gives it `new_gen` and finalizes it.
    pub fn finalize_recovered(
        &self,
        id: BlockId,
        new_gen: u64,
        len: u64,
    ) -> Result<ExtendedBlock, StoreError> {
        let mut map = lock(&self.inner.replicas);
        let r = *map.get(&id).ok_or(StoreError::NotFound(id))?;
        if r.gen > new_gen {
            return Err(StoreError::Invalid(format!(
                "block {id}: replica generation {} is newer than {new_gen}",
                r.gen
            )));
        }
        if r.gen == new_gen && r.state == ReplicaState::Finalized && r.len == len {
            return Ok(ExtendedBlock {
                id,
                gen: new_gen,
                len,
            });
        }
        if r.len < len {
            return Err(StoreError::Invalid(format!(
                "block {id}: replica has {} bytes, fewer than {len}",
                r.len
            )));
        }
        self.move_and_truncate(id, &r, new_gen, len, ReplicaState::Finalized)?;
        // A new epoch stops any writer still attached to the old replica.
        map.insert(
            id,
            Replica {
                gen: new_gen,
                len,
                state: ReplicaState::Finalized,
                epoch: self.epoch(),
            },
        );
        Ok(ExtendedBlock {
            id,
            gen: new_gen,
            len,
        })
    }

    /// Deletes a replica (invalidation). Returns what was deleted.
    pub fn delete(&self, id: BlockId) -> Option<ExtendedBlock> {
        let mut map = lock(&self.inner.replicas);
        let r = map.remove(&id)?;
        self.remove_files(id, &r);
        Some(ExtendedBlock {
            id,
            gen: r.gen,
            len: r.len,
        })
    }

    /// Opens a replica for verified reads. `min_gen`: a replica older than this is not served.
    pub fn open_reader(&self, id: BlockId, min_gen: u64) -> Result<ReplicaReader, StoreError> {
        let r = *lock(&self.inner.replicas)
            .get(&id)
            .ok_or(StoreError::NotFound(id))?;
        if r.gen < min_gen {
            return Err(StoreError::NotFound(id));
        }
        let (data, meta) = self.paths(id, r.gen, r.state);
        let corrupt = |what: &str, e: io::Error| StoreError::Corrupt {
            id,
            offset: 0,
            reason: format!("{what}: {e}"),
        };
        let data = File::open(&data).map_err(|e| corrupt("cannot open block file", e))?;
        let meta = File::open(&meta).map_err(|e| corrupt("cannot open meta file", e))?;
        Ok(ReplicaReader {
            block: ExtendedBlock {
                id,
                gen: r.gen,
                len: r.len,
            },
            state: r.state,
            data,
            meta,
        })
    }

    /// Hadoop-style MD5-of-CRC32s of the first `len` bytes of a replica: MD5 over the
    /// big-endian crc32 of each chunk. Returns (bytes per crc, crc count, digest).
    pub fn checksum(&self, block: ExtendedBlock) -> Result<(u32, u64, Vec<u8>), StoreError> {
        use md5::{Digest, Md5};
        let reader = self.open_reader(block.id, block.gen)?;
        let len = block.len.min(reader.block.len);
        if block.len > reader.block.len {
            return Err(StoreError::Invalid(format!(
                "block {}: replica has {} bytes, fewer than {}",
                block.id, reader.block.len, block.len
            )));
        }
        let mut crcs = reader.stored_checksums(0, len)?;
        let tail = len % CHUNK as u64;
        if tail != 0 && len < reader.block.len {
            // The requested length ends inside a chunk the replica holds more of: recompute it.
            let mut buf = vec![0u8; tail as usize];
            reader
                .data
                .read_exact_at(&mut buf, len - tail)
                .map_err(|e| reader.corrupt(len - tail, e.to_string()))?;
            if let Some(last) = crcs.last_mut() {
                *last = crc32fast::hash(&buf);
            }
        }
        let mut md5 = Md5::new();
        for c in &crcs {
            md5.update(c.to_be_bytes());
        }
        Ok((CHUNK as u32, crcs.len() as u64, md5.finalize().to_vec()))
    }
}

/// Appends packets to one replica under `rbw/` and finalizes it.
pub struct ReplicaWriter {
    store: BlockStore,
    id: BlockId,
    gen: u64,
    epoch: u64,
    data: File,
    meta: File,
    len: u64,
    /// Bytes already handed to the kernel's writeback (see [`SYNC_BEHIND`]).
    synced: u64,
    crc_buf: Vec<u8>,
}

/// Writeback of a replica's data is started every this many bytes (`sync_file_range`), so
/// the fsync at finalize finds little left to write and the disk streams steadily instead of
/// stalling every pipeline at each block end (Hadoop's `sync.behind.writes`).
pub const SYNC_BEHIND: u64 = 8 << 20;

impl ReplicaWriter {
    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True before any byte was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The block being written.
    pub fn block(&self) -> ExtendedBlock {
        ExtendedBlock {
            id: self.id,
            gen: self.gen,
            len: self.len,
        }
    }

    fn still_owner(&self) -> Result<(), StoreError> {
        match lock(&self.store.inner.replicas).get(&self.id) {
            Some(r) if r.epoch == self.epoch => Ok(()),
            _ => Err(StoreError::Invalid(format!(
                "block {}: replica was taken over by recovery or deleted",
                self.id
            ))),
        }
    }

    /// Appends a packet's payload at `offset` with its chunk checksums (already verified).
    /// A packet wholly below the current length is a resend and is skipped.
    pub fn append(&mut self, offset: u64, payload: &[u8], crcs: &[u32]) -> Result<(), StoreError> {
        if payload.is_empty() {
            return Ok(());
        }
        let end = offset + payload.len() as u64;
        if end <= self.len {
            return Ok(());
        }
        if offset != self.len {
            return Err(StoreError::Invalid(format!(
                "block {}: packet at offset {offset} does not follow the {} bytes written",
                self.id, self.len
            )));
        }
        self.still_owner()?;
        let tail = self.len % CHUNK as u64;
        let chunk_start = self.len - tail;
        let merged_crcs;
        let crcs = if tail == 0 {
            crcs
        } else {
            // Appending to a partial chunk (after a recovery at an unaligned length): the
            // stored crc of that chunk must cover the old and new bytes together.
            let mut merged = vec![0u8; tail as usize];
            self.data
                .read_exact_at(&mut merged, chunk_start)
                .map_err(|e| self.store.io_err("cannot read replica", e))?;
            merged.extend_from_slice(payload);
            merged_crcs = chunk_checksums(&merged);
            &merged_crcs[..]
        };
        let new_meta_len = meta_len_for(end);
        let old_meta_len = meta_len_for(self.len);
        self.store
            .ensure_space(payload.len() as u64 + new_meta_len - old_meta_len)?;
        self.crc_buf.clear();
        for c in crcs {
            self.crc_buf.extend_from_slice(&c.to_be_bytes());
        }
        let write = || -> io::Result<()> {
            self.store.fault()?;
            self.data.write_all_at(payload, offset)?;
            self.meta.write_all_at(
                &self.crc_buf,
                META_HEADER_LEN + (chunk_start / CHUNK as u64) * 4,
            )
        };
        write().map_err(|e| {
            self.store
                .io_err(&format!("cannot write block {}", self.id), e)
        })?;
        self.store.inner.used.fetch_add(
            end - self.len + new_meta_len - old_meta_len,
            Ordering::Relaxed,
        );
        self.len = end;
        if let Some(r) = lock(&self.store.inner.replicas).get_mut(&self.id) {
            if r.epoch == self.epoch {
                r.len = end;
            }
        }
        if self.len - self.synced >= SYNC_BEHIND {
            self.start_writeback();
        }
        Ok(())
    }

    /// Asks the kernel to start writing the bytes since the last call (does not wait).
    fn start_writeback(&mut self) {
        use std::os::fd::AsRawFd;
        let (from, len) = (self.synced, self.len - self.synced);
        // SAFETY: a valid open fd and a byte range; SYNC_FILE_RANGE_WRITE only starts writeback.
        let rc = unsafe {
            libc::sync_file_range(
                self.data.as_raw_fd(),
                from as i64,
                len as i64,
                libc::SYNC_FILE_RANGE_WRITE,
            )
        };
        if rc != 0 {
            tracing::debug!(block = self.id, error = %io::Error::last_os_error(), "sync_file_range failed");
        }
        self.synced = self.len;
    }

    /// Makes the replica durable (fsync data and meta), moves it to `current/` and fsyncs
    /// the directories.
    pub fn finalize(self) -> Result<ExtendedBlock, StoreError> {
        let store = self.store.clone();
        let sync = || -> io::Result<()> {
            store.fault()?;
            self.data.sync_data()?;
            self.meta.sync_data()
        };
        sync().map_err(|e| store.io_err(&format!("cannot sync block {}", self.id), e))?;
        let mut map = lock(&store.inner.replicas);
        match map.get(&self.id) {
            Some(r) if r.epoch == self.epoch => {}
            _ => {
                return Err(StoreError::Invalid(format!(
                    "block {}: replica was taken over before finalize",
                    self.id
                )))
            }
        }
        let (rbw_data, rbw_meta) = store.paths(self.id, self.gen, ReplicaState::InProgress);
        let (cur_data, cur_meta) = store.paths(self.id, self.gen, ReplicaState::Finalized);
        let mv = || -> io::Result<()> {
            std::fs::rename(&rbw_meta, &cur_meta)?;
            std::fs::rename(&rbw_data, &cur_data)?;
            sync_dir(&store.inner.current)?;
            sync_dir(&store.inner.rbw)
        };
        mv().map_err(|e| store.io_err(&format!("cannot finalize block {}", self.id), e))?;
        map.insert(
            self.id,
            Replica {
                gen: self.gen,
                len: self.len,
                state: ReplicaState::Finalized,
                epoch: self.epoch,
            },
        );
        drop(map);
        *lock(&store.inner.last_error) = None;
        Ok(ExtendedBlock {
            id: self.id,
            gen: self.gen,
            len: self.len,
        })
    }
}

/// Reads a replica with every chunk checked against its meta file.
pub struct ReplicaReader {
    block: ExtendedBlock,
    state: ReplicaState,
    data: File,
    meta: File,
}

impl ReplicaReader {
    /// The replica (length as of opening).
    pub fn block(&self) -> ExtendedBlock {
        self.block
    }

    /// Finalized or in progress.
    pub fn state(&self) -> ReplicaState {
        self.state
    }

    fn corrupt(&self, offset: u64, reason: String) -> StoreError {
        StoreError::Corrupt {
            id: self.block.id,
            offset,
            reason,
        }
    }

    /// The stored crcs of the chunks covering `[offset, offset+len)` (offset chunk-aligned).
    pub fn stored_checksums(&self, offset: u64, len: u64) -> Result<Vec<u32>, StoreError> {
        let first = offset / CHUNK as u64;
        let n = len.div_ceil(CHUNK as u64) as usize;
        let mut raw = vec![0u8; n * 4];
        self.meta
            .read_exact_at(&mut raw, META_HEADER_LEN + first * 4)
            .map_err(|e| self.corrupt(offset, format!("meta file too short: {e}")))?;
        Ok(raw
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    /// Reads `len` bytes from chunk-aligned `offset` into `buf`, verifying every chunk, and
    /// leaves the chunks' crcs in `crcs` (ready to send as packet checksums).
    pub fn read_verified(
        &self,
        offset: u64,
        len: usize,
        buf: &mut Vec<u8>,
        crcs: &mut Vec<u32>,
    ) -> Result<(), StoreError> {
        if !offset.is_multiple_of(CHUNK as u64) {
            return Err(StoreError::Invalid(format!(
                "read offset {offset} is not chunk-aligned"
            )));
        }
        if offset + len as u64 > self.block.len {
            return Err(StoreError::Invalid(format!(
                "read of {len} bytes at {offset} is past the replica's {} bytes",
                self.block.len
            )));
        }
        buf.resize(len, 0);
        self.data.read_exact_at(buf, offset).map_err(|e| {
            self.corrupt(offset, format!("block file shorter than its length: {e}"))
        })?;
        *crcs = self.stored_checksums(offset, len as u64)?;
        for (i, (chunk, want)) in buf.chunks(CHUNK).zip(crcs.iter()).enumerate() {
            if crc32fast::hash(chunk) != *want {
                let at = offset + (i * CHUNK) as u64;
                return Err(self.corrupt(at, "checksum mismatch".into()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
