//! Writing a file: bytes are cut into checksummed packets and streamed through a pipeline of
//! DataNodes (client → DN1 → DN2 → DN3). Packets stay queued until every pipeline member acked
//! them, so a DataNode failing mid-block costs only a pipeline recovery: a new generation stamp,
//! the survivors truncate to the bytes all of them acknowledged, and the queued packets are sent
//! again. The NameNode re-replicates the block later.

use super::error::NoDatanodesReason;
use super::{ClientInner, DfsError};
use crate::protocol::{
    AckStatus, ClientRequest, DataRequest, DataResponse, DatanodeAddr, ExtendedBlock, FileStatus,
    LocatedBlock, NamenodeError, NamenodeReply, PipelineAck, WriteStage,
};
use bytes::Bytes;
use sheaf_rpc::bulk::BulkWriter;
use sheaf_rpc::{frame, packet};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Longest wait for a pipeline member's ack or `Ready` before it is treated as failed.
const ACK_DEADLINE: Duration = Duration::from_secs(30);
/// Bytes of packets in flight (sent, not yet acked by the whole pipeline).
const IN_FLIGHT_BYTES: usize = 32 << 20;
/// How long `close` keeps asking the NameNode to complete the file.
const COMPLETE_DEADLINE: Duration = Duration::from_secs(60);
/// Attempts to start a block pipeline (each excludes the node that failed).
const ADD_BLOCK_ATTEMPTS: usize = 5;

/// What a finished write achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Bytes written.
    pub bytes: u64,
    /// Blocks written.
    pub blocks: u64,
    /// The file's target replication.
    pub target_replication: u16,
    /// The fewest DataNodes any block was written to (0 for an empty file).
    pub min_replicas: usize,
}

impl WriteOutcome {
    /// True if some block was written to fewer DataNodes than the target replication
    /// (fewer live DataNodes than wanted, or failures during the write).
    pub fn under_replicated(&self) -> bool {
        self.blocks > 0 && self.min_replicas < self.target_replication as usize
    }
}

/// A file being written. Call [`DfsWriter::close`]: a dropped writer leaves the file open until
/// the NameNode recovers its lease.
pub struct DfsWriter {
    inner: Arc<ClientInner>,
    path: String,
    replication: u16,
    block_size: u64,
    packet_size: usize,
    buf: Vec<u8>,
    active: Option<ActiveBlock>,
    previous: Option<ExtendedBlock>,
    excluded: Vec<String>,
    bytes: u64,
    blocks: u64,
    min_replicas: usize,
    open: bool,
}

struct OutPacket {
    seqno: u64,
    offset: u64,
    last: bool,
    data: Bytes,
}

struct ActiveBlock {
    block: ExtendedBlock,
    nodes: Vec<DatanodeAddr>,
    sent: u64,
    next_seqno: u64,
    unacked: VecDeque<OutPacket>,
    unacked_bytes: usize,
    stream: PipelineStream,
    last_sent: bool,
}

enum AckEvent {
    Ack(PipelineAck),
    Failed(String),
}

struct PipelineStream {
    writer: BulkWriter,
    acks: mpsc::UnboundedReceiver<AckEvent>,
    ack_task: tokio::task::JoinHandle<()>,
}

impl Drop for PipelineStream {
    fn drop(&mut self) {
        self.ack_task.abort();
    }
}

/// Why a pipeline failed: which member (index), if known.
struct PipelineFailure {
    bad: Option<usize>,
    reason: String,
}

impl DfsWriter {
    pub(crate) fn new(inner: Arc<ClientInner>, path: String, status: FileStatus) -> DfsWriter {
        inner.open_writers.fetch_add(1, Ordering::SeqCst);
        let packet_size = inner.config.dfs.packet_size;
        let block_size = if status.block_size > 0 {
            status.block_size
        } else {
            inner.config.dfs.block_size
        };
        DfsWriter {
            inner,
            path,
            replication: status.replication.max(1),
            block_size,
            packet_size,
            buf: Vec::with_capacity(packet_size),
            active: None,
            previous: None,
            excluded: Vec::new(),
            bytes: 0,
            blocks: 0,
            min_replicas: usize::MAX,
            open: true,
        }
    }

    /// The file being written.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Bytes accepted so far.
    pub fn bytes_written(&self) -> u64 {
        self.bytes + self.buf.len() as u64
    }

    /// Appends `data` to the file.
    pub async fn write_all(&mut self, mut data: &[u8]) -> Result<(), DfsError> {
        if !self.open {
            return Err(DfsError::Usage(format!("{}: write after close", self.path)));
        }
        while !data.is_empty() {
            let cap = self.packet_capacity();
            let take = (cap - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == cap {
                self.flush_packet(false).await?;
            }
        }
        Ok(())
    }

    /// Bytes the next packet may hold: a full packet, or what is left of the current block.
    fn packet_capacity(&self) -> usize {
        let in_block = self.active.as_ref().map(|a| a.sent).unwrap_or(0);
        let left = self.block_size - in_block;
        (self.packet_size as u64).min(left) as usize
    }

    /// Sends the buffered bytes as one packet; it is the block's last packet if it fills the
    /// block or `closing` says so.
    async fn flush_packet(&mut self, closing: bool) -> Result<(), DfsError> {
        let data = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(self.packet_size),
        ));
        if self.active.is_none() {
            if data.is_empty() {
                return Ok(());
            }
            self.start_block().await?;
        }
        let len = data.len() as u64;
        let block_full = self
            .active
            .as_ref()
            .map(|a| a.sent + len >= self.block_size)
            .unwrap_or(false);
        let last = closing || block_full;
        self.bytes += len;
        self.send(data, last).await?;
        if last {
            self.finish_block().await?;
        }
        Ok(())
    }

    async fn send(&mut self, data: Bytes, last: bool) -> Result<(), DfsError> {
        let Some(active) = self.active.as_mut() else {
            return Err(DfsError::Usage("no block open".into()));
        };
        let pkt = OutPacket {
            seqno: active.next_seqno,
            offset: active.sent,
            last,
            data,
        };
        active.next_seqno += 1;
        active.sent += pkt.data.len() as u64;
        active.unacked_bytes += pkt.data.len();
        active.last_sent |= last;
        let sent = write_out(&mut active.stream.writer, &pkt).await;
        active.unacked.push_back(pkt);
        if let Err(reason) = sent {
            // The ack reader usually knows which member failed; give it a moment to say so.
            let failure = self.failure_from_acks(reason).await;
            self.recover(failure).await?;
        }
        self.drain_acks(false).await?;
        let max_in_flight = IN_FLIGHT_BYTES.max(4 * self.packet_size);
        while self
            .active
            .as_ref()
            .map(|a| a.unacked_bytes > max_in_flight)
            .unwrap_or(false)
        {
            self.drain_acks(true).await?;
        }
        Ok(())
    }

    /// After a write error, the ack stream's verdict (which member broke) if it comes quickly.
    async fn failure_from_acks(&mut self, reason: String) -> PipelineFailure {
        let Some(active) = self.active.as_mut() else {
            return PipelineFailure { bad: None, reason };
        };
        let deadline = Instant::now() + Duration::from_millis(500);
        loop {
            match tokio::time::timeout_at(deadline.into(), active.stream.acks.recv()).await {
                Ok(Some(AckEvent::Ack(ack))) => {
                    if let Some(f) = judge_ack(&ack, active.nodes.len()) {
                        return f;
                    }
                    pop_acked(active, ack.seqno);
                }
                Ok(Some(AckEvent::Failed(r))) => {
                    return PipelineFailure {
                        bad: None,
                        reason: r,
                    }
                }
                Ok(None) | Err(_) => return PipelineFailure { bad: None, reason },
            }
        }
    }

    /// Processes acks: without `wait`, only those already received; with it, at least one.
    async fn drain_acks(&mut self, wait: bool) -> Result<(), DfsError> {
        let mut must_wait = wait;
        loop {
            let Some(active) = self.active.as_mut() else {
                return Ok(());
            };
            if active.unacked.is_empty() {
                return Ok(());
            }
            let event = if must_wait {
                match tokio::time::timeout(ACK_DEADLINE, active.stream.acks.recv()).await {
                    Ok(Some(e)) => e,
                    Ok(None) => AckEvent::Failed("pipeline closed".into()),
                    Err(_) => {
                        AckEvent::Failed(format!("no ack within {}s", ACK_DEADLINE.as_secs()))
                    }
                }
            } else {
                match active.stream.acks.try_recv() {
                    Ok(e) => e,
                    Err(mpsc::error::TryRecvError::Empty) => return Ok(()),
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        AckEvent::Failed("pipeline closed".into())
                    }
                }
            };
            must_wait = false;
            match event {
                AckEvent::Ack(ack) => {
                    if let Some(failure) = judge_ack(&ack, active.nodes.len()) {
                        self.recover(failure).await?;
                    } else {
                        pop_acked(active, ack.seqno);
                    }
                }
                AckEvent::Failed(reason) => {
                    self.recover(PipelineFailure { bad: None, reason }).await?
                }
            }
        }
    }

    /// Waits for every packet of the current block to be acked, then closes its pipeline.
    async fn finish_block(&mut self) -> Result<(), DfsError> {
        while self
            .active
            .as_ref()
            .map(|a| !a.unacked.is_empty())
            .unwrap_or(false)
        {
            self.drain_acks(true).await?;
        }
        if let Some(mut active) = self.active.take() {
            let _ = active.stream.writer.shutdown().await;
            let mut done = active.block;
            done.len = active.sent;
            self.previous = Some(done);
            self.blocks += 1;
            self.min_replicas = self.min_replicas.min(active.nodes.len());
        }
        Ok(())
    }

    /// Allocates the next block and opens its pipeline; nodes that cannot even start a pipeline
    /// are excluded and the block is abandoned and allocated again.
    async fn start_block(&mut self) -> Result<(), DfsError> {
        let mut last_reason = String::new();
        for _ in 0..ADD_BLOCK_ATTEMPTS {
            let req = ClientRequest::AddBlock {
                path: self.path.clone(),
                client: self.inner.name.clone(),
                previous: self.previous,
                excluded: self.excluded.clone(),
            };
            let located = match self.inner.call_once(req).await {
                Ok(NamenodeReply::Block(lb)) => lb,
                Ok(_) => return Err(DfsError::UnexpectedReply("AddBlock")),
                Err(DfsError::Namenode(NamenodeError::NoDatanodes(placement))) => {
                    let none_alive = placement.live == 0;
                    return Err(self.no_datanodes(placement.to_string(), none_alive, &last_reason));
                }
                Err(e) => return Err(e),
            };
            if located.locations.is_empty() {
                return Err(self.no_datanodes(
                    "the NameNode offered no DataNode".into(),
                    false,
                    &last_reason,
                ));
            }
            match self
                .open_pipeline(&located.block, &located.locations, WriteStage::Create, 0)
                .await
            {
                Ok(stream) => {
                    self.active = Some(ActiveBlock {
                        block: located.block,
                        nodes: located.locations,
                        sent: 0,
                        next_seqno: 0,
                        unacked: VecDeque::new(),
                        unacked_bytes: 0,
                        stream,
                        last_sent: false,
                    });
                    return Ok(());
                }
                Err(failure) => {
                    tracing::warn!(block = located.block.id, reason = %failure.reason, "pipeline did not start; abandoning block");
                    last_reason = failure.reason.clone();
                    let bad = failure.bad.unwrap_or(0).min(located.locations.len() - 1);
                    self.excluded.push(located.locations[bad].uuid.clone());
                    let abandon = ClientRequest::AbandonBlock {
                        path: self.path.clone(),
                        client: self.inner.name.clone(),
                        block: located.block,
                    };
                    self.inner.call_once(abandon).await?;
                }
            }
        }
        Err(self.no_datanodes(
            format!("{ADD_BLOCK_ATTEMPTS} pipelines failed to start"),
            false,
            &last_reason,
        ))
    }

    fn no_datanodes(&self, reason: String, none_alive: bool, last_failure: &str) -> DfsError {
        let detail = if last_failure.is_empty() {
            reason
        } else {
            format!("{reason}; last failure: {last_failure}")
        };
        DfsError::NoDatanodes {
            path: self.path.clone(),
            block: format!("#{}", self.blocks),
            reason: NoDatanodesReason { none_alive, detail },
        }
    }

    /// Connects to `nodes[0]`, sends the `WriteBlock` header and waits for `Ready`.
    async fn open_pipeline(
        &self,
        block: &ExtendedBlock,
        nodes: &[DatanodeAddr],
        stage: WriteStage,
        resume_offset: u64,
    ) -> Result<PipelineStream, PipelineFailure> {
        let first = nodes.first().ok_or(PipelineFailure {
            bad: None,
            reason: "empty pipeline".into(),
        })?;
        let mut stream = self
            .inner
            .bulk
            .connect(first.data_addr())
            .await
            .map_err(|e| PipelineFailure {
                bad: Some(0),
                reason: format!("{}: {e}", first.data_addr()),
            })?;
        let header = DataRequest::WriteBlock {
            block: *block,
            stage,
            downstream: nodes[1..].to_vec(),
            resume_offset,
            client: self.inner.name.clone(),
        };
        let setup = async {
            frame::write_frame(&mut stream.writer, &header).await?;
            stream.writer.flush().await?;
            frame::read_frame::<_, DataResponse>(&mut stream.reader).await
        };
        let reply = match tokio::time::timeout(ACK_DEADLINE, setup).await {
            Err(_) => {
                return Err(PipelineFailure {
                    bad: None,
                    reason: "no Ready from the pipeline".into(),
                })
            }
            Ok(Err(e)) => {
                return Err(PipelineFailure {
                    bad: None,
                    reason: format!("pipeline setup: {e}"),
                })
            }
            Ok(Ok(None)) => {
                return Err(PipelineFailure {
                    bad: None,
                    reason: "pipeline closed during setup".into(),
                })
            }
            Ok(Ok(Some(r))) => r,
        };
        match reply {
            DataResponse::Ready { .. } => {}
            DataResponse::Refused(e) => {
                return Err(PipelineFailure {
                    bad: None,
                    reason: format!("pipeline refused: {e}"),
                })
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let mut reader = stream.reader;
        let ack_task = tokio::spawn(async move {
            loop {
                match frame::read_frame::<_, PipelineAck>(&mut reader).await {
                    Ok(Some(ack)) => {
                        if tx.send(AckEvent::Ack(ack)).is_err() {
                            return;
                        }
                    }
                    Ok(None) => {
                        let _ = tx.send(AckEvent::Failed(
                            "pipeline closed by the first DataNode".into(),
                        ));
                        return;
                    }
                    Err(e) => {
                        let _ = tx.send(AckEvent::Failed(format!("ack stream: {e}")));
                        return;
                    }
                }
            }
        });
        Ok(PipelineStream {
            writer: stream.writer,
            acks: rx,
            ack_task,
        })
    }

    /// Which of `nodes` accept a connection right now: a killed DataNode refuses at once.
    async fn probe_dead(&self, nodes: &[DatanodeAddr]) -> Vec<usize> {
        let probes = nodes.iter().map(|n| async move {
            tokio::time::timeout(
                Duration::from_secs(2),
                self.inner.bulk.connect(n.data_addr()),
            )
            .await
        });
        let results = futures::future::join_all(probes).await;
        results
            .into_iter()
            .enumerate()
            .filter(|(_, r)| !matches!(r, Ok(Ok(_))))
            .map(|(i, _)| i)
            .collect()
    }

    /// Pipeline recovery: drop the failed member(s), get a new generation stamp, restart the
    /// survivors at the bytes all of them acked, resend the unacked packets, tell the NameNode.
    async fn recover(&mut self, first_failure: PipelineFailure) -> Result<(), DfsError> {
        let mut failure = first_failure;
        loop {
            let Some(active) = self.active.as_mut() else {
                return Ok(());
            };
            tracing::warn!(block = active.block.id, reason = %failure.reason, "write pipeline failed; recovering");
            let mut bad: Vec<usize> = match failure.bad {
                Some(i) if i < active.nodes.len() => vec![i],
                _ => Vec::new(),
            };
            if bad.is_empty() {
                let nodes = active.nodes.clone();
                bad = self.probe_dead(&nodes).await;
                if bad.is_empty() {
                    bad.push(0);
                }
            }
            let Some(active) = self.active.as_mut() else {
                return Ok(());
            };
            let survivors: Vec<DatanodeAddr> = active
                .nodes
                .iter()
                .enumerate()
                .filter(|(i, _)| !bad.contains(i))
                .map(|(_, n)| n.clone())
                .collect();
            for i in &bad {
                if let Some(n) = active.nodes.get(*i) {
                    self.excluded.push(n.uuid.clone());
                }
            }
            if survivors.is_empty() {
                return Err(DfsError::PipelineFailed {
                    path: self.path.clone(),
                    block: active.block.id,
                    reason: format!(
                        "every DataNode of the pipeline failed (last: {})",
                        failure.reason
                    ),
                });
            }
            let old = active.block;
            let req = ClientRequest::UpdateBlockForPipeline {
                path: self.path.clone(),
                client: self.inner.name.clone(),
                block: old,
            };
            let new_block = match self.inner.call_once(req).await? {
                NamenodeReply::Block(LocatedBlock { block, .. }) => block,
                _ => return Err(DfsError::UnexpectedReply("UpdateBlockForPipeline")),
            };
            let Some(active) = self.active.as_mut() else {
                return Ok(());
            };
            let acked = active
                .unacked
                .front()
                .map(|p| p.offset)
                .unwrap_or(active.sent);
            let mut header_block = new_block;
            header_block.id = old.id;
            header_block.len = acked;
            let stream = match self
                .open_pipeline(&header_block, &survivors, WriteStage::Recover, acked)
                .await
            {
                Ok(s) => s,
                Err(f) => {
                    let Some(active) = self.active.as_mut() else {
                        return Ok(());
                    };
                    active.block = header_block;
                    active.nodes = survivors;
                    failure = f;
                    continue;
                }
            };
            let Some(active) = self.active.as_mut() else {
                return Ok(());
            };
            active.stream = stream;
            active.block = header_block;
            active.nodes = survivors.clone();
            for (i, p) in active.unacked.iter_mut().enumerate() {
                p.seqno = i as u64;
            }
            active.next_seqno = active.unacked.len() as u64;
            let mut resend_err = None;
            for p in active.unacked.iter() {
                if let Err(e) = write_out(&mut active.stream.writer, p).await {
                    resend_err = Some(e);
                    break;
                }
            }
            if let Some(reason) = resend_err {
                failure = PipelineFailure { bad: None, reason };
                continue;
            }
            let req = ClientRequest::UpdatePipeline {
                path: self.path.clone(),
                client: self.inner.name.clone(),
                old,
                new: header_block,
                nodes: survivors.iter().map(|n| n.uuid.clone()).collect(),
            };
            self.inner.call_once(req).await?;
            tracing::info!(
                block = old.id,
                survivors = survivors.len(),
                "write pipeline recovered"
            );
            return Ok(());
        }
    }

    /// Finishes the file: sends what is buffered, waits for every ack, and asks the NameNode to
    /// complete it (retried until the last block is minimally replicated).
    pub async fn close(mut self) -> Result<WriteOutcome, DfsError> {
        let result = self.close_inner().await;
        self.release();
        result
    }

    async fn close_inner(&mut self) -> Result<WriteOutcome, DfsError> {
        if !self.open {
            return Err(DfsError::Usage(format!("{}: already closed", self.path)));
        }
        if !self.buf.is_empty() || self.active.as_ref().map(|a| !a.last_sent).unwrap_or(false) {
            self.flush_packet(true).await?;
        }
        self.finish_block().await?;
        let started = Instant::now();
        let mut backoff = Duration::from_millis(5);
        loop {
            let req = ClientRequest::Complete {
                path: self.path.clone(),
                client: self.inner.name.clone(),
                last: self.previous,
            };
            match self.inner.call_idempotent(req).await? {
                NamenodeReply::Completed(true) | NamenodeReply::Done => break,
                NamenodeReply::Completed(false) => {
                    if started.elapsed() > COMPLETE_DEADLINE {
                        return Err(DfsError::PipelineFailed {
                            path: self.path.clone(),
                            block: self.previous.map(|b| b.id).unwrap_or(0),
                            reason: "the NameNode did not see the last block replicated in time"
                                .into(),
                        });
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
                _ => return Err(DfsError::UnexpectedReply("Complete")),
            }
        }
        self.open = false;
        Ok(WriteOutcome {
            bytes: self.bytes,
            blocks: self.blocks,
            target_replication: self.replication,
            min_replicas: if self.blocks == 0 {
                0
            } else {
                self.min_replicas
            },
        })
    }

    fn release(&mut self) {
        if self.open {
            self.open = false;
        }
        self.active = None;
        self.inner.open_writers.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for DfsWriter {
    fn drop(&mut self) {
        if self.open {
            self.release();
        }
    }
}

/// Sends one packet on a pipeline stream.
async fn write_out(w: &mut BulkWriter, p: &OutPacket) -> Result<(), String> {
    packet::write_packet(w, p.seqno, p.offset, p.last, &p.data)
        .await
        .map_err(|e| e.to_string())?;
    w.flush().await.map_err(|e| e.to_string())
}

/// `None` if the ack says every member stored the packet, else which member failed.
fn judge_ack(ack: &PipelineAck, members: usize) -> Option<PipelineFailure> {
    if let Some(i) = ack.statuses.iter().position(|s| *s != AckStatus::Success) {
        return Some(PipelineFailure {
            bad: Some(i),
            reason: format!(
                "DataNode #{i} of the pipeline answered {:?}",
                ack.statuses[i]
            ),
        });
    }
    if ack.statuses.len() < members {
        let i = ack.statuses.len();
        return Some(PipelineFailure {
            bad: Some(i),
            reason: format!("DataNode #{i} of the pipeline dropped out"),
        });
    }
    None
}

fn pop_acked(active: &mut ActiveBlock, seqno: u64) {
    while let Some(front) = active.unacked.front() {
        if front.seqno > seqno {
            break;
        }
        active.unacked_bytes -= front.data.len();
        active.unacked.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_name_the_failed_member() {
        let ok = PipelineAck {
            seqno: 1,
            statuses: vec![AckStatus::Success; 3],
        };
        assert!(judge_ack(&ok, 3).is_none());
        let short = PipelineAck {
            seqno: 1,
            statuses: vec![AckStatus::Success],
        };
        assert_eq!(judge_ack(&short, 3).and_then(|f| f.bad), Some(1));
        let bad = PipelineAck {
            seqno: 1,
            statuses: vec![
                AckStatus::Success,
                AckStatus::ChecksumError,
                AckStatus::Success,
            ],
        };
        assert_eq!(judge_ack(&bad, 3).and_then(|f| f.bad), Some(1));
    }

    #[test]
    fn outcome_reports_under_replication() {
        let o = WriteOutcome {
            bytes: 10,
            blocks: 1,
            target_replication: 3,
            min_replicas: 2,
        };
        assert!(o.under_replicated());
        let empty = WriteOutcome {
            bytes: 0,
            blocks: 0,
            target_replication: 3,
            min_replicas: 0,
        };
        assert!(!empty.under_replicated());
    }
}
