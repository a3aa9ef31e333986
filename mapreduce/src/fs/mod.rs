//! The filesystems a job reads its input from and commits its output to: the local disk
//! ([`LocalFs`]) or a DFS cluster ([`DfsFs`]), behind one synchronous [`JobFileSystem`] trait so
//! task threads read splits and write output the same way wherever the data lives.
//! [`JobFileSystems`] picks the filesystem of a [`JobPath`] and connects to each cluster once.
//! Intermediate data (spills, map outputs) never goes through here: it stays on local disk.

mod dfs;
mod local;
mod path;

pub use dfs::{DfsAccess, DfsFs};
pub use local::LocalFs;
pub use path::{JobPath, DEFAULT_NAMENODE_PORT, DFS_SCHEME};

use std::collections::HashMap;
use std::io::{Read, Seek, Write};
use std::sync::{Arc, Mutex};

/// A failure of a job filesystem operation; every variant names the path involved.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The path does not exist.
    #[error("{0}: No such file or directory")]
    NotFound(String),
    /// The path exists already.
    #[error("{0}: File exists")]
    AlreadyExists(String),
    /// A local filesystem operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path operated on.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A DFS operation failed.
    #[error("{path}: {source}")]
    Dfs {
        /// The path operated on.
        path: String,
        /// What the DFS client said.
        source: sheaf_dfs::client::DfsError,
    },
    /// The path cannot be parsed or does not belong to this filesystem.
    #[error("{0}")]
    BadPath(String),
    /// The DFS cannot be reached as configured (no configuration, no runtime, no connection).
    #[error("{0}")]
    Unavailable(String),
}

impl FsError {
    /// Converts to an `io::Error` of the matching kind (for `Read`/`Write` implementations and
    /// callers that speak `io::Error`).
    pub fn into_io(self) -> std::io::Error {
        use std::io::ErrorKind;
        match self {
            FsError::Io { source, .. } => source,
            e @ FsError::NotFound(_) => std::io::Error::new(ErrorKind::NotFound, e),
            e @ FsError::AlreadyExists(_) => std::io::Error::new(ErrorKind::AlreadyExists, e),
            e @ FsError::BadPath(_) => std::io::Error::new(ErrorKind::InvalidInput, e),
            e => std::io::Error::other(e),
        }
    }
}

/// Result alias of filesystem operations.
pub type FsResult<T> = Result<T, FsError>;

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// The entry's full path.
    pub path: JobPath,
    /// Length in bytes (0 for directories).
    pub len: u64,
    /// True for a directory.
    pub is_dir: bool,
}

/// A file open for reading: seekable, usable from any task thread.
pub trait JobFileReader: Read + Seek + Send {}
impl<T: Read + Seek + Send> JobFileReader for T {}

/// A file open for writing. `close` must be called: it makes the data durable (a DFS file is
/// completed only then) and reports the errors a `Drop` would have to swallow.
pub trait JobFileWriter: Write + Send {
    /// Flushes everything and finishes the file.
    fn close(self: Box<Self>) -> FsResult<()>;
}

/// The operations the job runner needs from a filesystem. Calls block; they are made from task
/// threads, never from inside an async runtime.
pub trait JobFileSystem: Send + Sync {
    /// The entry at `path`, `None` if nothing is there.
    fn status(&self, path: &JobPath) -> FsResult<Option<FileEntry>>;

    /// The entries of the directory `path` sorted by name (the file itself for a file).
    fn list(&self, path: &JobPath) -> FsResult<Vec<FileEntry>>;

    /// Opens a file for reading.
    fn open(&self, path: &JobPath) -> FsResult<Box<dyn JobFileReader>>;

    /// Creates a new file for writing (an existing file is an error); the parent must exist.
    fn create(&self, path: &JobPath) -> FsResult<Box<dyn JobFileWriter>>;

    /// Creates a directory and its missing parents; an existing directory is fine.
    fn mkdirs(&self, path: &JobPath) -> FsResult<()>;

    /// Renames `from` to `to` (which must not exist).
    fn rename(&self, from: &JobPath, to: &JobPath) -> FsResult<()>;

    /// Deletes `path` (a non-empty directory needs `recursive`); whether anything was deleted.
    fn delete(&self, path: &JobPath, recursive: bool) -> FsResult<bool>;

    /// Whether anything exists at `path`.
    fn exists(&self, path: &JobPath) -> FsResult<bool> {
        Ok(self.status(path)?.is_some())
    }

    /// The files an input path stands for, as Hadoop's `FileInputFormat` lists them: a file is
    /// itself; a directory gives its regular files one level down whose names do not start with
    /// `_` or `.` (so `_SUCCESS` and `_temporary` of a previous job's output are skipped). A
    /// missing path is [`FsError::NotFound`].
    fn input_files(&self, path: &JobPath) -> FsResult<Vec<FileEntry>> {
        let entry = self
            .status(path)?
            .ok_or_else(|| FsError::NotFound(path.to_string()))?;
        if !entry.is_dir {
            return Ok(vec![entry]);
        }
        let mut files: Vec<FileEntry> = self
            .list(path)?
            .into_iter()
            .filter(|e| {
                !e.is_dir
                    && !e
                        .path
                        .file_name()
                        .is_some_and(|n| n.starts_with(['_', '.']))
            })
            .collect();
        files.sort_by_key(|e| e.path.to_string());
        Ok(files)
    }
}

/// Hands out the filesystem of each path of a job: the local disk, or one connection per DFS
/// cluster (made on first use, shared by every task).
pub struct JobFileSystems {
    local: Arc<LocalFs>,
    dfs: Option<DfsAccess>,
    /// The host DFS client endpoints bind to (a worker's address), if not the default.
    client_host: Option<std::net::IpAddr>,
    clusters: Mutex<HashMap<std::net::SocketAddr, Arc<DfsFs>>>,
}

impl JobFileSystems {
    /// Local paths only; a DFS path is refused with a clear error.
    pub fn local_only() -> Self {
        Self::new(None)
    }

    /// Local paths, and DFS paths through `dfs` (its configuration and identity) when given.
    pub fn new(dfs: Option<DfsAccess>) -> Self {
        JobFileSystems {
            local: Arc::new(LocalFs),
            dfs,
            client_host: None,
            clusters: Mutex::new(HashMap::new()),
        }
    }

    /// DFS connections made from now on run as a client on `host` (a worker's address): the
    /// NameNode then sorts replicas by distance to it, so a task reads its node's replica.
    pub fn bound_to(mut self, host: std::net::IpAddr) -> Self {
        self.client_host = Some(host);
        self
    }

    /// The filesystem `path` lives on.
    pub fn for_path(&self, path: &JobPath) -> FsResult<Arc<dyn JobFileSystem>> {
        let namenode = match path {
            JobPath::Local(_) => return Ok(self.local.clone()),
            JobPath::Dfs { namenode, .. } => *namenode,
        };
        let access = self.dfs.as_ref().ok_or_else(|| {
            FsError::Unavailable(format!(
                "{path}: DFS paths need the cluster's configuration (run through `sheaf job`, which loads it)"
            ))
        })?;
        let addr = namenode.unwrap_or(access.config.namenode.address);
        let mut clusters = self
            .clusters
            .lock()
            .map_err(|_| FsError::Unavailable("DFS connection table poisoned".into()))?;
        if let Some(fs) = clusters.get(&addr) {
            return Ok(fs.clone());
        }
        let fs = Arc::new(DfsFs::connect_from(access, addr, self.client_host)?);
        clusters.insert(addr, fs.clone());
        Ok(fs)
    }
}

impl Default for JobFileSystems {
    fn default() -> Self {
        Self::local_only()
    }
}

#[cfg(test)]
mod tests;
