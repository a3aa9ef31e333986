//! A DFS cluster as a [`JobFileSystem`]: a synchronous bridge over the async [`DfsClient`].
//! Task threads call `block_on` on a runtime handle (never from inside the runtime); reads pull
//! several packets per call so the per-call hand-off costs nothing next to the data moved, and
//! the client's block streams keep reading ahead on the runtime between calls.

use std::collections::VecDeque;
use std::future::Future;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use sheaf_dfs::client::{DfsClient, DfsError, DfsReader, DfsWriter};
use sheaf_dfs::config::DfsConfig;
use sheaf_dfs::protocol::{FileKind, FileStatus, NamenodeError};
use sheaf_rpc::TlsIdentity;

use super::{FileEntry, FsError, FsResult, JobFileReader, JobFileSystem, JobFileWriter, JobPath};

/// Bytes fetched per blocking read call (many DFS packets): amortises the thread hand-off.
const READ_AHEAD_BYTES: usize = 4 << 20;
/// Bytes gathered before a blocking write call hands them to the DFS writer.
const WRITE_BUFFER_BYTES: usize = 4 << 20;
/// Runtime worker threads of a bridge that owns its runtime: the DFS client's own work
/// (checksums, packet framing) is light next to the tasks that consume the data.
const BRIDGE_WORKER_THREADS: usize = 2;

/// What a job needs to reach a DFS cluster: its configuration and the identity to present.
#[derive(Clone)]
pub struct DfsAccess {
    /// The DFS sections of the configuration (the NameNode of `sheaf:///` paths among them).
    pub config: DfsConfig,
    /// The client certificate (the `user` role).
    pub identity: TlsIdentity,
}

impl std::fmt::Debug for DfsAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DfsAccess")
            .field("namenode", &self.config.namenode.address)
            .finish_non_exhaustive()
    }
}

/// Runs futures to completion for synchronous callers.
struct Bridge {
    handle: tokio::runtime::Handle,
    /// Kept alive as long as any file of this bridge is open, when the bridge owns it.
    _runtime: Option<tokio::runtime::Runtime>,
}

impl Bridge {
    fn block_on<F: Future>(&self, f: F) -> FsResult<F::Output> {
        if tokio::runtime::Handle::try_current().is_ok() {
            // Blocking a runtime thread on the same runtime can deadlock; refuse instead.
            return Err(FsError::Unavailable(
                "DFS job filesystem used from inside an async runtime (call it from a plain thread or spawn_blocking)".into(),
            ));
        }
        Ok(self.handle.block_on(f))
    }
}

/// One DFS cluster, used synchronously.
pub struct DfsFs {
    client: DfsClient,
    /// Last: dropped after the client, so the runtime outlives everything that runs on it.
    bridge: Arc<Bridge>,
}

impl DfsFs {
    /// Connects to the NameNode at `namenode` with `access`'s settings, on a runtime of its own.
    pub fn connect(access: &DfsAccess, namenode: SocketAddr) -> FsResult<DfsFs> {
        Self::connect_from(access, namenode, None)
    }

    /// Like [`DfsFs::connect`], as a client on `host` (see `DfsClient::connect_from`): the
    /// NameNode lists that host's replicas first.
    pub fn connect_from(
        access: &DfsAccess,
        namenode: SocketAddr,
        host: Option<std::net::IpAddr>,
    ) -> FsResult<DfsFs> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(BRIDGE_WORKER_THREADS)
            .thread_name("sheaf-job-dfs")
            .enable_all()
            .build()
            .map_err(|e| {
                FsError::Unavailable(format!("cannot start the DFS client runtime: {e}"))
            })?;
        let bridge = Arc::new(Bridge {
            handle: runtime.handle().clone(),
            _runtime: Some(runtime),
        });
        let mut config = access.config.clone();
        config.namenode.address = namenode;
        let client = bridge
            .block_on(DfsClient::connect_from(
                &config,
                access.identity.clone(),
                host,
            ))?
            .map_err(|source| FsError::Dfs {
                path: format!("sheaf://{namenode}/"),
                source,
            })?;
        Ok(DfsFs { bridge, client })
    }

    /// Wraps an existing client; `handle` must be the runtime the client was made on.
    pub fn new(client: DfsClient, handle: tokio::runtime::Handle) -> DfsFs {
        DfsFs {
            bridge: Arc::new(Bridge {
                handle,
                _runtime: None,
            }),
            client,
        }
    }

    /// The client underneath.
    pub fn client(&self) -> &DfsClient {
        &self.client
    }

    fn call<T, F>(&self, path: &JobPath, f: F) -> FsResult<T>
    where
        F: Future<Output = Result<T, DfsError>>,
    {
        self.bridge
            .block_on(f)?
            .map_err(|source| dfs_error(path, source))
    }
}

/// The DFS part of `path`, refusing local paths.
fn dfs_path(path: &JobPath) -> FsResult<(Option<SocketAddr>, &str)> {
    match path {
        JobPath::Dfs { namenode, path } => Ok((*namenode, path)),
        other => Err(FsError::BadPath(format!(
            "{other} is a local path, not a DFS one"
        ))),
    }
}

fn dfs_error(path: &JobPath, source: DfsError) -> FsError {
    match source.namenode_error() {
        Some(NamenodeError::NotFound(_)) => FsError::NotFound(path.to_string()),
        Some(NamenodeError::AlreadyExists(_)) => FsError::AlreadyExists(path.to_string()),
        _ => FsError::Dfs {
            path: path.to_string(),
            source,
        },
    }
}

fn entry(namenode: Option<SocketAddr>, s: FileStatus) -> FileEntry {
    let is_dir = s.kind == FileKind::Directory;
    FileEntry {
        path: JobPath::Dfs {
            namenode,
            path: s.path,
        },
        len: if is_dir { 0 } else { s.len },
        is_dir,
    }
}

impl JobFileSystem for DfsFs {
    fn status(&self, path: &JobPath) -> FsResult<Option<FileEntry>> {
        let (nn, p) = dfs_path(path)?;
        let status = self.call(path, self.client.status(p))?;
        Ok(status.map(|s| entry(nn, s)))
    }

    fn list(&self, path: &JobPath) -> FsResult<Vec<FileEntry>> {
        let (nn, p) = dfs_path(path)?;
        let listing = self.call(path, self.client.list(p))?;
        Ok(listing.into_iter().map(|s| entry(nn, s)).collect())
    }

    fn open(&self, path: &JobPath) -> FsResult<Box<dyn JobFileReader>> {
        let (_, p) = dfs_path(path)?;
        let reader = self.call(path, self.client.open(p))?;
        Ok(Box::new(DfsFileReader {
            bridge: self.bridge.clone(),
            path: path.clone(),
            reader,
            chunks: VecDeque::new(),
            pos: 0,
        }))
    }

    fn create(&self, path: &JobPath) -> FsResult<Box<dyn JobFileWriter>> {
        let (_, p) = dfs_path(path)?;
        let writer = self.call(path, self.client.create(p, false, None, None))?;
        Ok(Box::new(DfsFileWriter {
            bridge: self.bridge.clone(),
            path: path.clone(),
            writer: Some(writer),
            buf: Vec::with_capacity(WRITE_BUFFER_BYTES),
        }))
    }

    fn mkdirs(&self, path: &JobPath) -> FsResult<()> {
        let (_, p) = dfs_path(path)?;
        self.call(path, self.client.mkdirs(p, true))
    }

    fn rename(&self, from: &JobPath, to: &JobPath) -> FsResult<()> {
        let (_, f) = dfs_path(from)?;
        let (_, t) = dfs_path(to)?;
        // The DFS moves a source *into* an existing directory (Hadoop's rename); the runner
        // means "becomes `to`", so an existing target is an error here.
        if self.call(to, self.client.status(t))?.is_some() {
            return Err(FsError::AlreadyExists(to.to_string()));
        }
        self.call(from, self.client.rename(f, t))
    }

    fn delete(&self, path: &JobPath, recursive: bool) -> FsResult<bool> {
        let (_, p) = dfs_path(path)?;
        match self.call(path, self.client.delete(p, recursive)) {
            Err(FsError::NotFound(_)) => Ok(false),
            r => r,
        }
    }
}

/// A DFS file as `Read + Seek`: holds up to [`READ_AHEAD_BYTES`] of packets fetched in one
/// blocking call.
struct DfsFileReader {
    path: JobPath,
    reader: DfsReader,
    /// Fetched, not yet consumed bytes starting at `pos`.
    chunks: VecDeque<Bytes>,
    /// File offset of the next byte `read` returns.
    pos: u64,
    bridge: Arc<Bridge>,
}

impl DfsFileReader {
    fn buffered(&self) -> u64 {
        self.chunks.iter().map(|c| c.len() as u64).sum()
    }

    /// Fetches the next run of packets; false at the end of the file.
    fn fill(&mut self) -> std::io::Result<bool> {
        let reader = &mut self.reader;
        let got = self
            .bridge
            .block_on(async move {
                let mut got = VecDeque::new();
                let mut n = 0usize;
                while n < READ_AHEAD_BYTES {
                    match reader.next_chunk().await? {
                        Some(c) => {
                            n += c.len();
                            got.push_back(c);
                        }
                        None => break,
                    }
                }
                Ok::<_, DfsError>(got)
            })
            .map_err(FsError::into_io)?
            .map_err(|e| dfs_error(&self.path, e).into_io())?;
        self.chunks = got;
        Ok(!self.chunks.is_empty())
    }
}

impl Read for DfsFileReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.chunks.front().is_some_and(|c| c.is_empty()) {
            self.chunks.pop_front();
        }
        if self.chunks.is_empty() && (self.pos >= self.reader.len() || !self.fill()?) {
            return Ok(0);
        }
        let Some(front) = self.chunks.front_mut() else {
            return Ok(0);
        };
        let n = front.len().min(buf.len());
        buf[..n].copy_from_slice(&front[..n]);
        let _ = front.split_to(n);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for DfsFileReader {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.reader.len().checked_add_signed(d),
        }
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{}: seek before the start of the file", self.path),
            )
        })?;
        if target >= self.pos && target - self.pos < self.buffered() {
            // Forward within what is fetched: skip, keeping the stream going.
            let mut skip = target - self.pos;
            while skip > 0 {
                let Some(front) = self.chunks.front_mut() else {
                    break;
                };
                let n = (front.len() as u64).min(skip) as usize;
                let _ = front.split_to(n);
                skip -= n as u64;
                if front.is_empty() {
                    self.chunks.pop_front();
                }
            }
        } else if target != self.pos || !self.chunks.is_empty() {
            self.chunks.clear();
            self.reader.seek(target);
        }
        self.pos = target;
        Ok(target)
    }
}

/// A DFS file as `Write`: gathers [`WRITE_BUFFER_BYTES`] before each blocking hand-off.
struct DfsFileWriter {
    path: JobPath,
    writer: Option<DfsWriter>,
    buf: Vec<u8>,
    bridge: Arc<Bridge>,
}

impl DfsFileWriter {
    fn send(&mut self, data: &[u8]) -> FsResult<()> {
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| FsError::Unavailable(format!("{}: write after close", self.path)))?;
        self.bridge
            .block_on(writer.write_all(data))?
            .map_err(|e| dfs_error(&self.path, e))
    }

    fn send_buffered(&mut self) -> FsResult<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::take(&mut self.buf);
        let r = self.send(&data);
        self.buf = data;
        self.buf.clear();
        r
    }
}

impl Write for DfsFileWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > WRITE_BUFFER_BYTES {
            self.send_buffered().map_err(FsError::into_io)?;
        }
        if data.len() >= WRITE_BUFFER_BYTES {
            self.send(data).map_err(FsError::into_io)?;
        } else {
            self.buf.extend_from_slice(data);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send_buffered().map_err(FsError::into_io)
    }
}

impl JobFileWriter for DfsFileWriter {
    fn close(mut self: Box<Self>) -> FsResult<()> {
        self.send_buffered()?;
        let writer = self
            .writer
            .take()
            .ok_or_else(|| FsError::Unavailable(format!("{}: already closed", self.path)))?;
        self.bridge
            .block_on(writer.close())?
            .map(|_| ())
            .map_err(|e| dfs_error(&self.path, e))
    }
}
