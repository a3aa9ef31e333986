//! The shuffle server: serves partition segments of registered map outputs over QUIC with the
//! cluster's mutual TLS. Embeddable: a NodeManager hosts it as an aux service.

use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use quinn::{Connection, Endpoint, RecvStream, SendStream};
use sheaf_rpc::service::{Shutdown, ShutdownTrigger};
use sheaf_rpc::{frame, packet, quic, RpcError, TlsIdentity};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::error::ShuffleError;
use super::protocol::{FetchReply, FetchRequest, SegmentHeader, ShuffleRequest};
use super::registry::{RegisteredOutput, ShuffleRegistry};

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
    pub async fn start(
        bind: SocketAddr,
        identity: &TlsIdentity,
        registry: Arc<ShuffleRegistry>,
    ) -> Result<RunningShuffleServer, ShuffleError> {
        let endpoint = quic::server_endpoint(bind, identity)?;
        let addr = endpoint
            .local_addr()
            .map_err(|e| ShuffleError::io(format!("shuffle endpoint on {bind}"), e))?;
        let (trigger, shutdown) = Shutdown::new();
        let stats = Arc::new(Stats::default());
        let accept = tokio::spawn(accept_loop(
            endpoint.clone(),
            registry,
            stats.clone(),
            shutdown,
        ));
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
        }
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

async fn accept_loop(
    endpoint: Endpoint,
    registry: Arc<ShuffleRegistry>,
    stats: Arc<Stats>,
    mut shutdown: Shutdown,
) {
    loop {
        let incoming = tokio::select! {
            _ = shutdown.wait() => break,
            inc = endpoint.accept() => match inc { Some(i) => i, None => break },
        };
        let registry = registry.clone();
        let stats = stats.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            match incoming.await {
                Ok(conn) => serve_connection(conn, registry, stats, shutdown).await,
                Err(e) => tracing::debug!(error = %e, "refused shuffle connection"),
            }
        });
    }
    endpoint.close(0u32.into(), b"shuffle server shutting down");
}

async fn serve_connection(
    conn: Connection,
    registry: Arc<ShuffleRegistry>,
    stats: Arc<Stats>,
    mut shutdown: Shutdown,
) {
    let peer = conn.remote_address();
    loop {
        let (send, recv) = tokio::select! {
            _ = shutdown.wait() => return,
            s = conn.accept_bi() => match s { Ok(s) => s, Err(_) => return },
        };
        let registry = registry.clone();
        let stats = stats.clone();
        tokio::spawn(async move {
            let active = stats.active.fetch_add(1, Ordering::SeqCst) + 1;
            stats.peak_active.fetch_max(active, Ordering::SeqCst);
            if let Err(e) = serve_stream(send, recv, &registry, &stats).await {
                tracing::debug!(%peer, error = %e, "shuffle stream ended early");
            }
            stats.active.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

async fn serve_stream(
    mut send: SendStream,
    mut recv: RecvStream,
    registry: &ShuffleRegistry,
    stats: &Stats,
) -> Result<(), RpcError> {
    let request = match tokio::time::timeout(
        REQUEST_TIMEOUT,
        frame::read_frame::<_, ShuffleRequest>(&mut recv),
    )
    .await
    {
        Ok(Ok(Some(ShuffleRequest::Fetch(r)))) => r,
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
