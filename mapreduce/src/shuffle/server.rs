//! The shuffle server: serves partition segments of registered map outputs over QUIC with the
//! cluster's mutual TLS. Embeddable: a NodeManager hosts it as an aux service
//! ([`super::aux_service::ShuffleAuxService`]), where the node's map tasks register their
//! outputs over the wire and the JobTracker removes finished jobs.

use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use quinn::{Connection, Endpoint, RecvStream, SendStream};
use sheaf_rpc::service::{Shutdown, ShutdownTrigger};
use sheaf_rpc::{frame, packet, quic, RpcError, TlsIdentity};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::aux_service::shuffle_job_dir;
use super::error::ShuffleError;
use super::protocol::{
    FetchReply, FetchRequest, JobSecret, MapAttemptId, SegmentHeader, ServiceReply, ShuffleRequest,
};
use super::registry::{validate_job_id, RegisteredOutput, Removal, ShuffleRegistry};
use crate::task::map_task::index_path;
use crate::task::run_file::SegmentIndexEntry;

/// Bytes read from a map-output file per read call and sent per packet: large sequential reads
/// keep the disk (or page cache) streaming, and big packets amortise per-packet costs.
pub const READ_CHUNK: usize = 1 << 20;
/// Chunks read ahead of the network per stream.
const READ_AHEAD: usize = 4;
/// A client that sends no complete request within this time loses its stream.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Counters of a running shuffle server.
#[derive(Debug, Default)]
struct Stats {
    requests: AtomicU64,
    refused: AtomicU64,
    segments: AtomicU64,
    bytes: AtomicU64,
    active: AtomicUsize,
    peak_active: AtomicUsize,
    registered: AtomicU64,
    removed_jobs: AtomicU64,
}

/// What one connection's streams share.
struct ServerContext {
    registry: Arc<ShuffleRegistry>,
    /// Canonical shuffle root; `None`: no registrations over the wire.
    root: Option<PathBuf>,
    stats: Arc<Stats>,
}

/// A snapshot of a shuffle server's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShuffleServerStats {
    /// Fetch requests received.
    pub requests: u64,
    /// Requests refused (unknown job or bad MAC).
    pub refused: u64,
    /// Segments served.
    pub segments: u64,
    /// Segment bytes served.
    pub bytes: u64,
    /// Most fetch requests ever served at the same time.
    pub peak_concurrent_requests: usize,
    /// Map outputs registered over the wire.
    pub registered: u64,
    /// Jobs removed over the wire.
    pub removed_jobs: u64,
}

/// Starts shuffle servers.
pub struct ShuffleServer;

/// A shuffle server running on the current tokio runtime.
pub struct RunningShuffleServer {
    addr: SocketAddr,
    endpoint: Endpoint,
    trigger: ShutdownTrigger,
    accept: JoinHandle<()>,
    stats: Arc<Stats>,
}

impl ShuffleServer {
    /// Binds a QUIC endpoint on `bind` presenting `identity` and serves the outputs in
    /// `registry` until [`RunningShuffleServer::shutdown`]. Must be called inside a tokio runtime.
    ///
    /// Without a shuffle root the server accepts no registrations over the wire (outputs are
    /// registered in-process through `registry`); see [`ShuffleServer::spawn`].
    pub async fn start(
        bind: SocketAddr,
        identity: &TlsIdentity,
        registry: Arc<ShuffleRegistry>,
    ) -> Result<RunningShuffleServer, ShuffleError> {
        Self::spawn(bind, identity, registry, None)
    }

    /// Like [`ShuffleServer::start`], from synchronous code running inside a tokio runtime (an
    /// aux service's `start`). With `root` (an existing directory) the server also accepts
    /// [`ShuffleRequest::RegisterMapOutput`] for files under `<root>/<job_id>/` and
    /// [`ShuffleRequest::RemoveJob`], which deletes `<root>/<job_id>`.
    pub fn spawn(
        bind: SocketAddr,
        identity: &TlsIdentity,
        registry: Arc<ShuffleRegistry>,
        root: Option<PathBuf>,
    ) -> Result<RunningShuffleServer, ShuffleError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ShuffleError::Config(
                "the shuffle server must be started inside a tokio runtime".into(),
            ));
        }
        let endpoint = quic::server_endpoint(bind, identity)?;
        let addr = endpoint
            .local_addr()
            .map_err(|e| ShuffleError::io(format!("shuffle endpoint on {bind}"), e))?;
        let (trigger, shutdown) = Shutdown::new();
        let stats = Arc::new(Stats::default());
        let ctx = Arc::new(ServerContext {
            registry,
            root,
            stats: stats.clone(),
        });
        let accept = tokio::spawn(accept_loop(endpoint.clone(), ctx, shutdown));
        tracing::info!(%addr, "shuffle server listening");
        Ok(RunningShuffleServer {
            addr,
            endpoint,
            trigger,
            accept,
            stats,
        })
    }
}

impl RunningShuffleServer {
    /// The UDP address the server listens on (reducers fetch from it).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A snapshot of the server's counters.
    pub fn stats(&self) -> ShuffleServerStats {
        let s = &self.stats;
        ShuffleServerStats {
            requests: s.requests.load(Ordering::Relaxed),
            refused: s.refused.load(Ordering::Relaxed),
            segments: s.segments.load(Ordering::Relaxed),
            bytes: s.bytes.load(Ordering::Relaxed),
            peak_concurrent_requests: s.peak_active.load(Ordering::Relaxed),
            registered: s.registered.load(Ordering::Relaxed),
            removed_jobs: s.removed_jobs.load(Ordering::Relaxed),
        }
    }

    /// Starts stopping from synchronous code: stops accepting and closes every connection at
    /// once; the tasks wind down on their own (an aux service's `stop`).
    pub fn stop_now(&self) {
        self.trigger.trigger();
        self.endpoint
            .close(0u32.into(), b"shuffle server shutting down");
    }

    /// Stops accepting, closes every connection and waits (briefly) for the endpoint to go idle.
    pub async fn shutdown(self) {
        self.trigger.trigger();
        let _ = self.accept.await;
        self.endpoint
            .close(0u32.into(), b"shuffle server shutting down");
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
    }
}

async fn accept_loop(endpoint: Endpoint, ctx: Arc<ServerContext>, mut shutdown: Shutdown) {
    loop {
        let incoming = tokio::select! {
            _ = shutdown.wait() => break,
            inc = endpoint.accept() => match inc { Some(i) => i, None => break },
        };
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            match incoming.await {
                Ok(conn) => serve_connection(conn, ctx, shutdown).await,
                Err(e) => tracing::debug!(error = %e, "refused shuffle connection"),
            }
        });
    }
    endpoint.close(0u32.into(), b"shuffle server shutting down");
}

async fn serve_connection(conn: Connection, ctx: Arc<ServerContext>, mut shutdown: Shutdown) {
    let peer = conn.remote_address();
    loop {
        let (send, recv) = tokio::select! {
            _ = shutdown.wait() => return,
            s = conn.accept_bi() => match s { Ok(s) => s, Err(_) => return },
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let stats = &ctx.stats;
            let active = stats.active.fetch_add(1, Ordering::SeqCst) + 1;
            stats.peak_active.fetch_max(active, Ordering::SeqCst);
            if let Err(e) = serve_stream(send, recv, &ctx).await {
                tracing::debug!(%peer, error = %e, "shuffle stream ended early");
            }
            stats.active.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

async fn serve_stream(
    mut send: SendStream,
    mut recv: RecvStream,
    ctx: &ServerContext,
) -> Result<(), RpcError> {
    let request = match tokio::time::timeout(
        REQUEST_TIMEOUT,
        frame::read_frame::<_, ShuffleRequest>(&mut recv),
    )
    .await
    {
        Ok(Ok(Some(r))) => r,
        Ok(Ok(None)) => return Ok(()),
        Ok(Err(e)) => {
            let _ = send.reset(1u32.into());
            return Err(e);
        }
        Err(_) => {
            let _ = send.reset(1u32.into());
            return Err(RpcError::UnexpectedEof);
        }
    };
    let reply = match request {
        ShuffleRequest::Fetch(fetch) => {
            return serve_fetch(send, fetch, &ctx.registry, &ctx.stats).await
        }
        ShuffleRequest::RegisterMapOutput {
            job_id,
            secret,
            map_attempt,
            path,
            index,
        } => {
            let reply = register(ctx, job_id, &secret, map_attempt, path, index).await;
            if reply == ServiceReply::Registered {
                ctx.stats.registered.fetch_add(1, Ordering::Relaxed);
            }
            reply
        }
        ShuffleRequest::RemoveJob { job_id, mac } => remove(ctx, job_id, &mac).await,
    };
    frame::write_frame(&mut send, &reply).await?;
    let _ = send.finish();
    Ok(())
}

/// Serves one fetch request: a reply frame (and the segment's packets) per map attempt.
async fn serve_fetch(
    mut send: SendStream,
    request: FetchRequest,
    registry: &ShuffleRegistry,
    stats: &Stats,
) -> Result<(), RpcError> {
    stats.requests.fetch_add(1, Ordering::Relaxed);
    if let Err(reason) = authorize(registry, &request) {
        stats.refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(job = %request.job_id, %reason, "shuffle request refused");
        frame::write_frame(&mut send, &FetchReply::Refused { reason }).await?;
        let _ = send.finish();
        return Ok(());
    }
    for &map_attempt in &request.map_attempts {
        let located = registry
            .map_output(&request.job_id, map_attempt)
            .ok_or_else(|| format!("{map_attempt} is not registered on this node"))
            .and_then(|out| segment_of(&out, request.partition).map(|e| (out, e)));
        let (output, entry) = match located {
            Ok(found) => found,
            Err(reason) => {
                frame::write_frame(
                    &mut send,
                    &FetchReply::MapOutputMissing {
                        map_attempt,
                        reason,
                    },
                )
                .await?;
                continue;
            }
        };
        let path = output.path.clone();
        let opened = tokio::task::spawn_blocking(move || open_checked(&path, &entry)).await;
        let file = match opened {
            Ok(Ok(f)) => f,
            failed => {
                let reason = match failed {
                    Ok(Err(reason)) => reason,
                    Err(e) => format!("reader task failed: {e}"),
                    Ok(Ok(_)) => String::new(),
                };
                frame::write_frame(
                    &mut send,
                    &FetchReply::MapOutputMissing {
                        map_attempt,
                        reason,
                    },
                )
                .await?;
                continue;
            }
        };
        let header = SegmentHeader {
            map_attempt,
            raw_len: entry.raw_len,
            compressed_len: entry.compressed_len,
            records: entry.records,
        };
        frame::write_frame(&mut send, &FetchReply::Segment(header)).await?;
        send_segment(&mut send, file, entry.offset, entry.compressed_len).await?;
        stats.segments.fetch_add(1, Ordering::Relaxed);
        stats
            .bytes
            .fetch_add(entry.compressed_len, Ordering::Relaxed);
    }
    let _ = send.finish();
    Ok(())
}

/// Handles a [`ShuffleRequest::RegisterMapOutput`]: checks the secret, the path (inside
/// `<root>/<job_id>/`, after resolving symlinks and `..`) and the index against the file.
async fn register(
    ctx: &ServerContext,
    job_id: String,
    secret: &[u8],
    map_attempt: MapAttemptId,
    path: PathBuf,
    index: Vec<SegmentIndexEntry>,
) -> ServiceReply {
    let refuse = |reason: String| {
        tracing::warn!(job = %job_id, map = %map_attempt, %reason, "map output registration refused");
        ServiceReply::Refused { reason }
    };
    let Some(root) = ctx.root.clone() else {
        return refuse("this shuffle server accepts no registrations over the wire".into());
    };
    let Some(secret) = JobSecret::from_slice(secret) else {
        return refuse(format!(
            "a job secret has {} bytes, not {}",
            super::protocol::JOB_SECRET_LEN,
            secret.len()
        ));
    };
    if let Err(e) = validate_job_id(&job_id) {
        return refuse(e.to_string());
    }
    let checked = {
        let job_id = job_id.clone();
        let index = index.clone();
        tokio::task::spawn_blocking(move || checked_output_path(&root, &job_id, &path, &index))
            .await
    };
    let path = match checked {
        Ok(Ok(p)) => p,
        Ok(Err(reason)) => return refuse(reason),
        Err(e) => return refuse(format!("path check failed: {e}")),
    };
    match ctx
        .registry
        .register_with_secret(&job_id, &secret, map_attempt, path.clone(), index)
    {
        Ok(()) => {
            tracing::debug!(job = %job_id, map = %map_attempt, path = %path.display(), "map output registered");
            ServiceReply::Registered
        }
        Err(e) => refuse(e.to_string()),
    }
}

/// The canonical form of `path` if it is a regular file under `<root>/<job_id>/` (`root`
/// canonical) that holds every segment of `index`; else why not.
fn checked_output_path(
    root: &Path,
    job_id: &str,
    path: &Path,
    index: &[SegmentIndexEntry],
) -> Result<PathBuf, String> {
    if !path.is_absolute() {
        return Err(format!("{} is not an absolute path", path.display()));
    }
    if index.is_empty() {
        return Err("the partition index is empty".into());
    }
    let job_dir = shuffle_job_dir(root, job_id);
    let canonical = std::fs::canonicalize(path)
        .map_err(|e| format!("cannot resolve {}: {e}", path.display()))?;
    if !canonical.starts_with(&job_dir) || canonical == job_dir {
        return Err(format!(
            "{} is outside this job's shuffle directory {}",
            path.display(),
            job_dir.display()
        ));
    }
    let meta = std::fs::metadata(&canonical)
        .map_err(|e| format!("cannot stat {}: {e}", canonical.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", canonical.display()));
    }
    let end = index
        .iter()
        .map(|e| e.offset.saturating_add(e.compressed_len))
        .max()
        .unwrap_or(0);
    if end > meta.len() {
        return Err(format!(
            "{} is {} bytes, shorter than its index says ({end})",
            canonical.display(),
            meta.len()
        ));
    }
    Ok(canonical)
}

/// Handles a [`ShuffleRequest::RemoveJob`]: forgets the job and deletes its files.
async fn remove(ctx: &ServerContext, job_id: String, mac: &[u8]) -> ServiceReply {
    let outputs = match ctx.registry.remove_job_signed(&job_id, mac) {
        Ok(Removal::Removed(outputs)) => outputs,
        Ok(Removal::AlreadyRemoved) => Vec::new(),
        Ok(Removal::Unknown) => {
            // Nothing of the job was registered here, and without its secret the request
            // cannot be authenticated: leave the directory alone (a map may still be writing).
            return ServiceReply::Removed { files: 0 };
        }
        Err(e) => {
            tracing::warn!(job = %job_id, error = %e, "job removal refused");
            return ServiceReply::Refused {
                reason: e.to_string(),
            };
        }
    };
    ctx.stats.removed_jobs.fetch_add(1, Ordering::Relaxed);
    let job_dir = ctx.root.as_ref().map(|r| shuffle_job_dir(r, &job_id));
    let deleted =
        tokio::task::spawn_blocking(move || delete_job_files(job_dir.as_deref(), &outputs)).await;
    match deleted {
        Ok(Ok(files)) => {
            tracing::info!(job = %job_id, files, "shuffle outputs of finished job removed");
            ServiceReply::Removed { files }
        }
        Ok(Err(reason)) => {
            tracing::warn!(job = %job_id, %reason, "cannot delete shuffle outputs");
            ServiceReply::Refused { reason }
        }
        Err(e) => ServiceReply::Refused {
            reason: format!("deleting the job's files failed: {e}"),
        },
    }
}

/// Deletes the registered outputs inside `job_dir` (and their index files), then `job_dir`
/// itself. Outputs registered in-process elsewhere are only forgotten, never deleted.
fn delete_job_files(job_dir: Option<&Path>, outputs: &[RegisteredOutput]) -> Result<u64, String> {
    let Some(job_dir) = job_dir else {
        return Ok(0);
    };
    let mut files = 0u64;
    for output in outputs.iter().filter(|o| o.path.starts_with(job_dir)) {
        match std::fs::remove_file(&output.path) {
            Ok(()) => files += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot delete {}: {e}", output.path.display())),
        }
        let _ = std::fs::remove_file(index_path(&output.path));
    }
    match std::fs::remove_dir_all(job_dir) {
        Ok(()) => Ok(files),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(files),
        Err(e) => Err(format!("cannot delete {}: {e}", job_dir.display())),
    }
}

fn authorize(registry: &ShuffleRegistry, request: &FetchRequest) -> Result<(), String> {
    let secret = registry
        .secret(&request.job_id)
        .ok_or_else(|| format!("job {} is not known to this shuffle server", request.job_id))?;
    if secret.verify(request) {
        Ok(())
    } else {
        Err(format!(
            "bad job token for {} (the request was not signed with this job's secret)",
            request.job_id
        ))
    }
}

fn segment_of(
    output: &RegisteredOutput,
    partition: u32,
) -> Result<crate::task::run_file::SegmentIndexEntry, String> {
    output
        .index
        .get(partition as usize)
        .copied()
        .ok_or_else(|| {
            format!(
                "{} has {} partitions, not {}",
                output.path.display(),
                output.index.len(),
                partition + 1
            )
        })
}

/// Opens the data file and checks the segment lies inside it (a truncated file is "missing",
/// not a stream that dies half-way).
fn open_checked(
    path: &std::path::Path,
    entry: &crate::task::run_file::SegmentIndexEntry,
) -> Result<File, String> {
    let file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let len = file
        .metadata()
        .map_err(|e| format!("cannot stat {}: {e}", path.display()))?
        .len();
    if entry.offset + entry.compressed_len > len {
        return Err(format!(
            "{} is {len} bytes, shorter than its index says ({})",
            path.display(),
            entry.offset + entry.compressed_len
        ));
    }
    Ok(file)
}

/// Streams `len` bytes from `offset` of `file` as packets. A blocking reader thread does the
/// large sequential reads; the async side only writes packets. Buffers travel back to the
/// reader once sent, so a stream reuses `READ_AHEAD + 1` buffers instead of allocating (and
/// zeroing and faulting in) a fresh megabyte per packet.
async fn send_segment(
    send: &mut SendStream,
    file: File,
    offset: u64,
    len: u64,
) -> Result<(), RpcError> {
    let (tx, mut rx) = mpsc::channel::<std::io::Result<Vec<u8>>>(READ_AHEAD);
    let (recycle_tx, recycle_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let reader = tokio::task::spawn_blocking(move || {
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(READ_CHUNK as u64) as usize;
            let mut buf = recycle_rx.try_recv().unwrap_or_default();
            buf.resize(n, 0);
            let item = file.read_exact_at(&mut buf, offset + done).map(|_| buf);
            let failed = item.is_err();
            if tx.blocking_send(item).is_err() || failed {
                return;
            }
            done += n as u64;
        }
    });
    let mut seqno = 0u64;
    let mut sent = 0u64;
    if len == 0 {
        packet::write_packet(send, 0, 0, true, &[]).await?;
    }
    while sent < len {
        let chunk = match rx.recv().await {
            Some(Ok(c)) => c,
            Some(Err(e)) => {
                let _ = send.reset(2u32.into());
                return Err(RpcError::Io(e));
            }
            None => {
                let _ = send.reset(2u32.into());
                return Err(RpcError::UnexpectedEof);
            }
        };
        let last = sent + chunk.len() as u64 >= len;
        packet::write_packet(send, seqno, sent, last, &chunk).await?;
        seqno += 1;
        sent += chunk.len() as u64;
        // The reader may have finished already; then the buffer is simply dropped.
        let _ = recycle_tx.send(chunk);
    }
    drop(rx);
    let _ = reader.await;
    Ok(())
}
