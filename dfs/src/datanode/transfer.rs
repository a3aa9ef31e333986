//! The DataNode's bulk data server: block writes through a pipeline and verified block reads.
//!
//! A write stream runs three stages concurrently so that network, disk and acks overlap:
//! - this task reads packets from upstream (their chunk crcs verified by `read_packet`) and
//!   forwards each to the downstream DataNode;
//! - a blocking disk task appends each packet's data and crcs to the replica and finalizes
//!   it (fsync + move to `current/`) on the last packet;
//! - an ack task waits for the local result and the downstream's ack of each packet, and sends
//!   `PipelineAck { statuses: [own, downstream's…] }` upstream. A downstream that broke is
//!   simply missing from the statuses, which tells the client whom to drop.
//!
//! Packet buffers go round a small pool, so a steady stream allocates nothing per packet.

use super::block_store::{ReplicaReader, ReplicaWriter, StoreError};
use super::reports::ReportQueue;
use super::DatanodeContext;
use crate::protocol::{
    AckStatus, DataRequest, DataResponse, DatanodeAddr, DatanodeError, ExtendedBlock, PipelineAck,
    WriteStage,
};
use sheaf_rpc::bulk::{BulkReader, BulkWriter};
use sheaf_rpc::frame::{read_frame, write_frame};
use sheaf_rpc::packet::{read_packet, write_packet_with_checksums, Packet, CHUNK};
use sheaf_rpc::service::Shutdown;
use sheaf_rpc::{BulkListener, BulkStream, RpcError};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Payload bytes per packet this DataNode sends (reads, replication): a multiple of CHUNK.
pub const SEND_PACKET: usize = 16 * CHUNK;
/// Packets allowed between the network and the disk stage of one stream.
const IN_FLIGHT: usize = 8;
/// Longest wait for the request header of a new stream.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest silence from upstream between packets, and from downstream for an ack (Hadoop: 60 s).
const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// Re-replication throttle per copy, bytes per second.
pub const REPLICATION_RATE: u64 = 64 << 20;

/// Accepts bulk streams until `shutdown`; in-flight streams are aborted at shutdown.
pub(crate) async fn serve(
    listener: BulkListener,
    ctx: Arc<DatanodeContext>,
    mut shutdown: Shutdown,
) {
    let mut streams = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            s = listener.accept() => match s {
                Some(s) => { streams.spawn(handle_stream(ctx.clone(), s)); }
                None => break,
            },
            Some(_) = streams.join_next(), if !streams.is_empty() => {}
        }
    }
    streams.abort_all();
    while streams.join_next().await.is_some() {}
}

/// Counts a transfer for heartbeats while it lives.
struct ActiveTransfer<'a>(&'a DatanodeContext);

impl<'a> ActiveTransfer<'a> {
    fn new(ctx: &'a DatanodeContext) -> Self {
        ctx.active_transfers.fetch_add(1, Ordering::Relaxed);
        ActiveTransfer(ctx)
    }
}

impl Drop for ActiveTransfer<'_> {
    fn drop(&mut self) {
        self.0.active_transfers.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn handle_stream(ctx: Arc<DatanodeContext>, stream: BulkStream) {
    let BulkStream {
        mut reader,
        mut writer,
        peer,
    } = stream;
    let req = match tokio::time::timeout(HEADER_TIMEOUT, read_frame::<_, DataRequest>(&mut reader))
        .await
    {
        Ok(Ok(Some(r))) => r,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "bad data request");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "no data request within the deadline");
            return;
        }
    };
    let _active = ActiveTransfer::new(&ctx);
    let outcome = match req {
        DataRequest::WriteBlock {
            block,
            stage,
            downstream,
            resume_offset,
            client,
        } => {
            let req = WriteRequest {
                block,
                stage,
                downstream,
                resume_offset,
                client,
            };
            write_block(&ctx, reader, writer, req).await
        }
        DataRequest::ReadBlock { block, offset, len } => {
            read_block(&ctx, &mut writer, block, offset, len).await
        }
    };
    if let Err(e) = outcome {
        tracing::info!(%peer, error = %e, "data stream ended with an error");
    }
}

/// Why a data stream ended early.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The peer's stream failed.
    #[error(transparent)]
    Wire(#[from] RpcError),
    /// The replica could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The remote DataNode refused the stream.
    #[error("refused by {0}: {1}")]
    Refused(std::net::SocketAddr, DatanodeError),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

async fn refuse(w: &mut BulkWriter, err: DatanodeError) -> Result<(), TransferError> {
    write_frame(w, &DataResponse::Refused(err.clone())).await?;
    w.flush().await.map_err(RpcError::from)?;
    let _ = w.shutdown().await;
    Err(TransferError::Other(format!("refused: {err}")))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, TransferError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| TransferError::Other(format!("disk task failed: {e}")))
}

struct WriteRequest {
    block: ExtendedBlock,
    stage: WriteStage,
    downstream: Vec<DatanodeAddr>,
    resume_offset: u64,
    client: String,
}

enum DiskJob {
    Packet(Packet),
    Fail { seqno: u64, status: AckStatus },
}

struct DiskDone {
    seqno: u64,
    status: AckStatus,
    /// No more acks follow (last packet, or the stream failed here).
    end: bool,
}

async fn write_block(
    ctx: &Arc<DatanodeContext>,
    mut up_r: BulkReader,
    mut up_w: BulkWriter,
    req: WriteRequest,
) -> Result<(), TransferError> {
    let WriteRequest {
        block,
        stage,
        downstream,
        resume_offset,
        client,
    } = req;
    let store = ctx.store.clone();
    let writer = match blocking(move || store.create_writer(block, stage, resume_offset)).await? {
        Ok(w) => w,
        Err(e) => return refuse(&mut up_w, e.into()).await,
    };
    let mut down: Option<(BulkReader, BulkWriter)> = None;
    if let Some((first, rest)) = downstream.split_first() {
        let header = DataRequest::WriteBlock {
            block,
            stage,
            downstream: rest.to_vec(),
            resume_offset,
            client,
        };
        match open_stream(ctx, first, &header).await {
            Ok(s) => down = Some(s),
            // Not fatal: the missing status in every ack tells the client to rebuild the pipeline.
            Err(e) => {
                tracing::warn!(block = block.id, downstream = %first.data_addr(), error = %e, "downstream unavailable")
            }
        }
    }
    write_frame(
        &mut up_w,
        &DataResponse::Ready {
            start_offset: resume_offset,
        },
    )
    .await?;
    up_w.flush().await.map_err(RpcError::from)?;

    let (down_r, mut down_w) = match down {
        Some((r, w)) => (Some(r), Some(w)),
        None => (None, None),
    };
    let (disk_tx, disk_rx) = mpsc::channel::<DiskJob>(IN_FLIGHT);
    let (done_tx, done_rx) = mpsc::unbounded_channel::<DiskDone>();
    let (pool_tx, mut pool_rx) = mpsc::unbounded_channel::<Packet>();
    let reports = ctx.reports.clone();
    let disk = tokio::task::spawn_blocking(move || {
        disk_stage(writer, disk_rx, done_tx, pool_tx, &reports)
    });
    let acks = tokio::spawn(ack_stage(up_w, down_r, done_rx, block.id));

    let mut result = Ok(());
    loop {
        let mut pkt = pool_rx.try_recv().unwrap_or_default();
        match tokio::time::timeout(IO_TIMEOUT, read_packet(&mut up_r, &mut pkt)).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => {
                result = Err(TransferError::Other(
                    "upstream closed the stream before the last packet".into(),
                ));
                break;
            }
            Ok(Err(RpcError::PacketChecksum { seqno })) => {
                let _ = disk_tx
                    .send(DiskJob::Fail {
                        seqno,
                        status: AckStatus::ChecksumError,
                    })
                    .await;
                result = Err(RpcError::PacketChecksum { seqno }.into());
                break;
            }
            Ok(Err(e)) => {
                result = Err(e.into());
                break;
            }
            Err(_) => {
                result = Err(TransferError::Other(format!(
                    "no packet from upstream for {}s",
                    IO_TIMEOUT.as_secs()
                )));
                break;
            }
        }
        let Some(h) = pkt.header else { break };
        if let Some(w) = down_w.as_mut() {
            let forwarded = async {
                write_packet_with_checksums(
                    w,
                    h.seqno,
                    h.offset,
                    h.last,
                    &pkt.payload,
                    &pkt.checksums,
                )
                .await?;
                w.flush().await.map_err(RpcError::from)
            };
            // A downstream that stops reading must not stall the whole pipeline.
            let forwarded = tokio::time::timeout(IO_TIMEOUT, forwarded)
                .await
                .unwrap_or_else(|_| Err(RpcError::Io(std::io::ErrorKind::TimedOut.into())));
            if let Err(e) = forwarded {
                tracing::warn!(block = block.id, error = %e, "downstream broke mid-stream");
                down_w = None;
            }
        }
        if disk_tx.send(DiskJob::Packet(pkt)).await.is_err() {
            break; // the disk stage stopped on an error it already acked
        }
        if h.last {
            break;
        }
    }
    drop(disk_tx);
    let _ = disk.await;
    let _ = acks.await;
    if let Some(mut w) = down_w {
        let _ = w.shutdown().await;
    }
    result
}

fn disk_stage(
    writer: ReplicaWriter,
    mut jobs: mpsc::Receiver<DiskJob>,
    done: mpsc::UnboundedSender<DiskDone>,
    pool: mpsc::UnboundedSender<Packet>,
    reports: &ReportQueue,
) {
    let mut writer = Some(writer);
    while let Some(job) = jobs.blocking_recv() {
        let pkt = match job {
            DiskJob::Fail { seqno, status } => {
                let _ = done.send(DiskDone {
                    seqno,
                    status,
                    end: true,
                });
                return;
            }
            DiskJob::Packet(p) => p,
        };
        let Some(h) = pkt.header else { continue };
        let Some(w) = writer.as_mut() else { return };
        let mut result = w.append(h.offset, &pkt.payload, &pkt.checksums);
        if result.is_ok() && h.last {
            if let Some(w) = writer.take() {
                match w.finalize() {
                    Ok(b) => reports.received(b),
                    Err(e) => result = Err(e),
                }
            }
        }
        let status = match &result {
            Ok(()) => AckStatus::Success,
            Err(e) => {
                tracing::warn!(seqno = h.seqno, error = %e, "cannot store packet");
                AckStatus::Error
            }
        };
        let _ = done.send(DiskDone {
            seqno: h.seqno,
            status,
            end: h.last || status != AckStatus::Success,
        });
        let _ = pool.send(pkt);
        if status != AckStatus::Success {
            return;
        }
    }
}

async fn ack_stage(
    mut up_w: BulkWriter,
    mut down_r: Option<BulkReader>,
    mut done: mpsc::UnboundedReceiver<DiskDone>,
    id: u64,
) {
    while let Some(d) = done.recv().await {
        let mut statuses = vec![d.status];
        if d.status == AckStatus::Success {
            if let Some(r) = down_r.as_mut() {
                match tokio::time::timeout(IO_TIMEOUT, read_frame::<_, PipelineAck>(r)).await {
                    Ok(Ok(Some(ack))) if ack.seqno == d.seqno => statuses.extend(ack.statuses),
                    other => {
                        let why = match other {
                            Ok(Ok(Some(ack))) => {
                                format!("ack for packet {} while expecting {}", ack.seqno, d.seqno)
                            }
                            Ok(Ok(None)) => "stream closed".into(),
                            Ok(Err(e)) => e.to_string(),
                            Err(_) => "ack timed out".into(),
                        };
                        tracing::warn!(block = id, seqno = d.seqno, reason = %why, "downstream failed");
                        down_r = None;
                    }
                }
            }
        }
        let ack = PipelineAck {
            seqno: d.seqno,
            statuses,
        };
        if write_frame(&mut up_w, &ack).await.is_err() || up_w.flush().await.is_err() {
            return;
        }
        if d.end {
            break;
        }
    }
    let _ = up_w.shutdown().await;
}

/// Opens a bulk stream to `target` and sends `header`; returns once the target said Ready.
async fn open_stream(
    ctx: &DatanodeContext,
    target: &DatanodeAddr,
    header: &DataRequest,
) -> Result<(BulkReader, BulkWriter), TransferError> {
    let addr = target.data_addr();
    let mut s = ctx.connector.connect(addr).await?;
    write_frame(&mut s.writer, header).await?;
    s.writer.flush().await.map_err(RpcError::from)?;
    match tokio::time::timeout(IO_TIMEOUT, read_frame::<_, DataResponse>(&mut s.reader)).await {
        Ok(Ok(Some(DataResponse::Ready { .. }))) => Ok((s.reader, s.writer)),
        Ok(Ok(Some(DataResponse::Refused(e)))) => Err(TransferError::Refused(addr, e)),
        Ok(Ok(None)) => Err(RpcError::UnexpectedEof.into()),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(RpcError::Timeout {
            addr,
            secs: IO_TIMEOUT.as_secs_f64(),
        }
        .into()),
    }
}

/// One verified piece of a replica, ready to send as a packet.
struct ReadPiece {
    offset: u64,
    last: bool,
    buf: Vec<u8>,
    crcs: Vec<u32>,
}

/// Reads `[start, end)` of a replica on a blocking thread, verifying every chunk, ahead of
/// the sender by a few packets. Buffers come back through the returned sender for reuse.
fn produce(
    reader: ReplicaReader,
    start: u64,
    end: u64,
) -> (
    mpsc::Receiver<Result<ReadPiece, StoreError>>,
    mpsc::UnboundedSender<ReadPiece>,
) {
    let (tx, rx) = mpsc::channel(4);
    let (recycle_tx, mut recycle_rx) = mpsc::unbounded_channel::<ReadPiece>();
    tokio::task::spawn_blocking(move || {
        let mut pos = start;
        loop {
            let n = (end - pos).min(SEND_PACKET as u64) as usize;
            let mut piece = recycle_rx.try_recv().unwrap_or_else(|_| ReadPiece {
                offset: 0,
                last: false,
                buf: Vec::new(),
                crcs: Vec::new(),
            });
            piece.offset = pos;
            piece.last = pos + n as u64 >= end;
            let item = reader
                .read_verified(pos, n, &mut piece.buf, &mut piece.crcs)
                .map(|()| piece);
            let stop = item.is_err();
            let last = item.as_ref().map(|p| p.last).unwrap_or(true);
            if tx.blocking_send(item).is_err() || stop || last {
                return;
            }
            pos += n as u64;
        }
    });
    (rx, recycle_tx)
}

async fn read_block(
    ctx: &Arc<DatanodeContext>,
    w: &mut BulkWriter,
    block: ExtendedBlock,
    offset: u64,
    len: u64,
) -> Result<(), TransferError> {
    let store = ctx.store.clone();
    let reader = match blocking(move || store.open_reader(block.id, block.gen)).await? {
        Ok(r) => r,
        Err(e) => {
            if matches!(e, StoreError::Corrupt { .. }) {
                ctx.report_corrupt(block);
            }
            return refuse(w, e.into()).await;
        }
    };
    let replica = reader.block();
    if offset > replica.len {
        let msg = format!(
            "offset {offset} is past the end of block {} ({} bytes)",
            block.id, replica.len
        );
        return refuse(w, DatanodeError::Invalid(msg)).await;
    }
    let chunk = CHUNK as u64;
    let start = offset / chunk * chunk;
    let wanted_end = offset.saturating_add(len).min(replica.len);
    // Whole chunks only (the client verifies them), except the replica's last one.
    let end = wanted_end
        .div_ceil(chunk)
        .saturating_mul(chunk)
        .min(replica.len)
        .max(start);
    write_frame(
        w,
        &DataResponse::Ready {
            start_offset: start,
        },
    )
    .await?;
    send_replica(ctx, w, reader, start, end, None).await?;
    w.flush().await.map_err(RpcError::from)?;
    let _ = w.shutdown().await;
    Ok(())
}

/// Sends `[start, end)` of a replica as packets (seqno from 0; the final one flagged last).
/// On corruption the stream is abandoned without a last packet, so the reader fails over,
/// and the replica is reported. `rate` caps bytes per second (re-replication).
async fn send_replica(
    ctx: &DatanodeContext,
    w: &mut BulkWriter,
    reader: ReplicaReader,
    start: u64,
    end: u64,
    rate: Option<u64>,
) -> Result<u64, TransferError> {
    let replica = reader.block();
    let (mut pieces, recycle) = produce(reader, start, end);
    let began = Instant::now();
    let mut seqno = 0u64;
    let mut sent = 0u64;
    while let Some(item) = pieces.recv().await {
        let piece = match item {
            Ok(p) => p,
            Err(e) => {
                if matches!(e, StoreError::Corrupt { .. }) {
                    tracing::warn!(block = replica.id, error = %e, "corrupt replica: aborting the stream");
                    ctx.report_corrupt(replica);
                } else {
                    // Not proven corrupt: let the scanner look at the whole replica.
                    ctx.scanner.scan_now(replica.id);
                }
                return Err(e.into());
            }
        };
        write_packet_with_checksums(w, seqno, piece.offset, piece.last, &piece.buf, &piece.crcs)
            .await?;
        seqno += 1;
        sent += piece.buf.len() as u64;
        let last = piece.last;
        let _ = recycle.send(piece);
        if let Some(rate) = rate {
            let due = Duration::from_secs_f64(sent as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(began.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        if last {
            return Ok(seqno);
        }
    }
    Err(TransferError::Other("replica reader stopped early".into()))
}

/// Copies a local replica to `target` (re-replication): `WriteBlock { stage: Replicate }`,
/// throttled to [`REPLICATION_RATE`]; done once the target acked the last packet.
pub(crate) async fn replicate(
    ctx: &DatanodeContext,
    block: ExtendedBlock,
    target: &DatanodeAddr,
) -> Result<(), TransferError> {
    let store = ctx.store.clone();
    let reader = blocking(move || store.open_reader(block.id, block.gen)).await??;
    let replica = reader.block();
    if replica.len < block.len {
        return Err(TransferError::Other(format!(
            "replica of block {} has {} bytes, fewer than {}",
            block.id, replica.len, block.len
        )));
    }
    let header = DataRequest::WriteBlock {
        block: replica,
        stage: WriteStage::Replicate,
        downstream: Vec::new(),
        resume_offset: 0,
        client: format!("datanode:{}", ctx.addr.uuid),
    };
    let (mut r, mut w) = open_stream(ctx, target, &header).await?;
    let packets = send_replica(ctx, &mut w, reader, 0, replica.len, Some(REPLICATION_RATE)).await?;
    w.flush().await.map_err(RpcError::from)?;
    let last = packets.saturating_sub(1);
    loop {
        match tokio::time::timeout(IO_TIMEOUT, read_frame::<_, PipelineAck>(&mut r)).await {
            Ok(Ok(Some(ack))) => {
                if ack.statuses.first() != Some(&AckStatus::Success) {
                    return Err(TransferError::Other(format!(
                        "target {} failed packet {}",
                        target.data_addr(),
                        ack.seqno
                    )));
                }
                if ack.seqno >= last {
                    let _ = w.shutdown().await;
                    return Ok(());
                }
            }
            Ok(Ok(None)) => return Err(RpcError::UnexpectedEof.into()),
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => return Err(TransferError::Other("target stopped acking".into())),
        }
    }
}
