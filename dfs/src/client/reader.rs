//! Reading a file: each block is streamed from its closest replica by a background task that
//! reads ahead a few packets, so network, checksum verification and the consumer overlap.
//! Every packet's chunk checksums (from the DataNode's `.meta` file) are verified on receipt;
//! a mismatch is reported to the NameNode and the read fails over to the next replica, resuming
//! at the exact byte it had reached.

use super::{ClientInner, DfsError};
use crate::protocol::{DataRequest, DataResponse, DatanodeAddr, DatanodeError, LocatedBlock};
use bytes::Bytes;
use sheaf_rpc::packet::{read_packet, Packet};
use sheaf_rpc::{frame, RpcError};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Packets read ahead of the consumer per block stream.
const READ_AHEAD_PACKETS: usize = 8;
/// Longest silence from a DataNode before the read fails over.
const READ_DEADLINE: Duration = Duration::from_secs(30);

/// A file open for reading, with a current position.
pub struct DfsReader {
    inner: Arc<ClientInner>,
    path: String,
    len: u64,
    blocks: Vec<LocatedBlock>,
    pos: u64,
    /// Where reads stop (the file's length unless `set_end` narrowed it): streams ask the
    /// DataNode for nothing past it.
    end: u64,
    current: Option<BlockStream>,
    /// (block id, DataNode uuid) pairs that failed for this reader.
    failed: HashSet<(u64, String)>,
}

struct BlockStream {
    /// File offset of the next byte `pending` or the channel will yield.
    next: u64,
    /// File offset where this stream ends (the block's end, or the reader's end before it).
    end: u64,
    index: usize,
    node: DatanodeAddr,
    pending: Bytes,
    rx: mpsc::Receiver<Result<Bytes, ReadFailure>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for BlockStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct ReadFailure {
    checksum: bool,
    reason: String,
}

impl DfsReader {
    pub(crate) async fn open(inner: Arc<ClientInner>, path: String) -> Result<DfsReader, DfsError> {
        let located = inner.block_locations(&path, 0, u64::MAX).await?;
        Ok(DfsReader {
            inner,
            path,
            len: located.file_len,
            blocks: located.blocks,
            pos: 0,
            end: located.file_len,
            current: None,
            failed: HashSet::new(),
        })
    }

    /// Another reader of the same file at offset 0, without asking the NameNode again (for
    /// reading several ranges at once).
    pub fn fork(&self) -> DfsReader {
        DfsReader {
            inner: self.inner.clone(),
            path: self.path.clone(),
            len: self.len,
            blocks: self.blocks.clone(),
            pos: 0,
            end: self.len,
            current: None,
            failed: self.failed.clone(),
        }
    }

    /// Stops reads at file offset `end` (clamped to the length): `next_chunk` and `read` see
    /// the end of the file there, and no DataNode is asked for bytes past it (a ranged read
    /// does not make the DataNode read, checksum and send the rest of the block).
    pub fn set_end(&mut self, end: u64) {
        self.end = end.min(self.len);
    }

    /// The file's length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty file.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The current position.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The file's blocks and their replicas.
    pub fn blocks(&self) -> &[LocatedBlock] {
        &self.blocks
    }

    /// Moves the position to `pos` (clamped to the file's length).
    pub fn seek(&mut self, pos: u64) {
        let pos = pos.min(self.len);
        if pos != self.pos {
            self.pos = pos;
            self.current = None;
        }
    }

    /// The next bytes from the position (up to one packet), `None` at the end of the file.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, DfsError> {
        loop {
            if self.pos >= self.end {
                return Ok(None);
            }
            if self
                .current
                .as_ref()
                .map(|c| c.next != self.pos || c.next >= c.end)
                .unwrap_or(true)
            {
                self.current = None;
                self.start_stream().await?;
            }
            let Some(cur) = self.current.as_mut() else {
                continue;
            };
            if !cur.pending.is_empty() {
                let mut chunk = std::mem::take(&mut cur.pending);
                // A stream opened before `set_end` narrowed the reader may run past the end.
                let room = (self.end - self.pos) as usize;
                if chunk.len() > room {
                    cur.pending = chunk.split_off(room);
                }
                cur.next += chunk.len() as u64;
                self.pos += chunk.len() as u64;
                return Ok(Some(chunk));
            }
            let got = match tokio::time::timeout(READ_DEADLINE, cur.rx.recv()).await {
                Ok(Some(r)) => r,
                Ok(None) => Err(ReadFailure {
                    checksum: false,
                    reason: "stream ended early".into(),
                }),
                Err(_) => Err(ReadFailure {
                    checksum: false,
                    reason: format!("no data within {}s", READ_DEADLINE.as_secs()),
                }),
            };
            match got {
                Ok(bytes) => cur.pending = bytes,
                Err(failure) => self.fail_over(failure).await,
            }
        }
    }

    /// Reads into `buf`; returns 0 only at the end of the file.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, DfsError> {
        if buf.is_empty() {
            return Ok(0);
        }
        if let Some(cur) = self.current.as_mut() {
            if !cur.pending.is_empty() && cur.next == self.pos && self.pos < self.end {
                let n = cur
                    .pending
                    .len()
                    .min(buf.len())
                    .min((self.end - self.pos) as usize);
                buf[..n].copy_from_slice(&cur.pending[..n]);
                let _ = cur.pending.split_to(n);
                cur.next += n as u64;
                self.pos += n as u64;
                return Ok(n);
            }
        }
        let Some(chunk) = self.next_chunk().await? else {
            return Ok(0);
        };
        let n = chunk.len().min(buf.len());
        buf[..n].copy_from_slice(&chunk[..n]);
        if n < chunk.len() {
            // Give the rest back: it is the stream's next data.
            self.pos -= (chunk.len() - n) as u64;
            if let Some(cur) = self.current.as_mut() {
                cur.next -= (chunk.len() - n) as u64;
                cur.pending = chunk.slice(n..);
            }
        }
        Ok(n)
    }

    /// `len` bytes from `offset` (fewer at the end of the file). The DataNodes are asked for
    /// exactly these bytes, as HDFS's positional read does.
    pub async fn read_range(&mut self, offset: u64, len: u64) -> Result<Vec<u8>, DfsError> {
        let end = self.end;
        self.set_end(offset.saturating_add(len));
        let read = self.read_exactly(offset, len).await;
        self.end = end;
        read
    }

    async fn read_exactly(&mut self, offset: u64, len: u64) -> Result<Vec<u8>, DfsError> {
        self.seek(offset);
        let want = len.min(self.len.saturating_sub(offset));
        let mut out = Vec::with_capacity(want as usize);
        while (out.len() as u64) < want {
            let Some(chunk) = self.next_chunk().await? else {
                break;
            };
            let take = ((want - out.len() as u64) as usize).min(chunk.len());
            out.extend_from_slice(&chunk[..take]);
            if take < chunk.len() {
                self.pos -= (chunk.len() - take) as u64;
                if let Some(cur) = self.current.as_mut() {
                    cur.next -= (chunk.len() - take) as u64;
                    cur.pending = chunk.slice(take..);
                }
            }
        }
        Ok(out)
    }

    /// Everything from the position to the end.
    pub async fn read_to_end(&mut self) -> Result<Vec<u8>, DfsError> {
        let mut out = Vec::with_capacity(self.len.saturating_sub(self.pos) as usize);
        while let Some(chunk) = self.next_chunk().await? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    fn block_index(&self, pos: u64) -> Option<usize> {
        self.blocks
            .iter()
            .position(|b| pos >= b.offset && pos < b.offset + b.block.len)
    }

    /// Opens a stream for the block holding the position, from the first replica that answers.
    async fn start_stream(&mut self) -> Result<(), DfsError> {
        let mut refreshed = false;
        let mut last_reason = String::from("no live replica");
        loop {
            let index = self
                .block_index(self.pos)
                .ok_or_else(|| DfsError::BlockUnreadable {
                    path: self.path.clone(),
                    block: 0,
                    reason: format!(
                        "no block covers offset {} (file length {})",
                        self.pos, self.len
                    ),
                })?;
            let lb = self.blocks[index].clone();
            let candidates: Vec<DatanodeAddr> = lb
                .locations
                .iter()
                .filter(|d| !self.failed.contains(&(lb.block.id, d.uuid.clone())))
                .cloned()
                .collect();
            for node in candidates {
                match self.open_on(&lb, index, &node).await {
                    Ok(stream) => {
                        self.current = Some(stream);
                        return Ok(());
                    }
                    Err(failure) => {
                        tracing::warn!(block = lb.block.id, node = %node.data_addr(), reason = %failure.reason, "replica read failed");
                        if failure.checksum {
                            self.inner.report_bad_block(lb.block, &node.uuid).await;
                        }
                        self.failed.insert((lb.block.id, node.uuid.clone()));
                        last_reason = format!("{}: {}", node.data_addr(), failure.reason);
                    }
                }
            }
            if refreshed {
                return Err(DfsError::BlockUnreadable {
                    path: self.path.clone(),
                    block: lb.block.id,
                    reason: last_reason,
                });
            }
            // New replicas may exist by now (re-replication); ask again once.
            refreshed = true;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let located = self.inner.block_locations(&self.path, 0, u64::MAX).await?;
            self.blocks = located.blocks;
            // A replica that failed transiently gets one more chance; corrupt ones are no
            // longer among the NameNode's locations.
            self.failed.retain(|(id, _)| *id != lb.block.id);
        }
    }

    async fn open_on(
        &self,
        lb: &LocatedBlock,
        index: usize,
        node: &DatanodeAddr,
    ) -> Result<BlockStream, ReadFailure> {
        let in_block = self.pos - lb.offset;
        let want = (lb.block.len - in_block).min(self.end.saturating_sub(self.pos));
        let mut stream = self
            .inner
            .bulk
            .connect(node.data_addr())
            .await
            .map_err(|e| ReadFailure {
                checksum: false,
                reason: e.to_string(),
            })?;
        let req = DataRequest::ReadBlock {
            block: lb.block,
            offset: in_block,
            len: want,
        };
        let setup = async {
            frame::write_frame(&mut stream.writer, &req).await?;
            stream.writer.flush().await?;
            frame::read_frame::<_, DataResponse>(&mut stream.reader).await
        };
        let start = match tokio::time::timeout(READ_DEADLINE, setup).await {
            Err(_) => {
                return Err(ReadFailure {
                    checksum: false,
                    reason: "no answer to ReadBlock".into(),
                })
            }
            Ok(Err(e)) => {
                return Err(ReadFailure {
                    checksum: false,
                    reason: e.to_string(),
                })
            }
            Ok(Ok(None)) => {
                return Err(ReadFailure {
                    checksum: false,
                    reason: "closed before answering".into(),
                })
            }
            Ok(Ok(Some(DataResponse::Refused(e)))) => {
                // A DataNode that found its own replica corrupt has reported it already.
                return Err(ReadFailure {
                    checksum: false,
                    reason: refusal(&e),
                });
            }
            Ok(Ok(Some(DataResponse::Ready { start_offset }))) => start_offset,
        };
        if start > in_block {
            return Err(ReadFailure {
                checksum: false,
                reason: format!("stream starts at {start}, after {in_block}"),
            });
        }
        let (tx, rx) = mpsc::channel(READ_AHEAD_PACKETS);
        let mut reader = stream.reader;
        let mut writer = stream.writer;
        let task = tokio::spawn(async move {
            let mut expect = start;
            let end = in_block + want;
            let mut pkt = Packet::default();
            while expect < end {
                let r =
                    tokio::time::timeout(READ_DEADLINE, read_packet(&mut reader, &mut pkt)).await;
                let failure = match r {
                    Err(_) => Some(ReadFailure {
                        checksum: false,
                        reason: "DataNode went silent".into(),
                    }),
                    Ok(Err(RpcError::PacketChecksum { seqno })) => Some(ReadFailure {
                        checksum: true,
                        reason: format!("checksum mismatch in packet {seqno}"),
                    }),
                    Ok(Err(e)) => Some(ReadFailure {
                        checksum: false,
                        reason: e.to_string(),
                    }),
                    Ok(Ok(false)) => Some(ReadFailure {
                        checksum: false,
                        reason: "stream ended early".into(),
                    }),
                    Ok(Ok(true)) => None,
                };
                if let Some(f) = failure {
                    let _ = tx.send(Err(f)).await;
                    return;
                }
                let Some(h) = pkt.header else { continue };
                if h.offset != expect {
                    let reason =
                        format!("packet at offset {} where {expect} was expected", h.offset);
                    let _ = tx
                        .send(Err(ReadFailure {
                            checksum: false,
                            reason,
                        }))
                        .await;
                    return;
                }
                let payload = Bytes::from(std::mem::take(&mut pkt.payload));
                let from = in_block.saturating_sub(expect).min(payload.len() as u64) as usize;
                let to = ((end - expect) as usize).min(payload.len());
                expect += payload.len() as u64;
                if from < to && tx.send(Ok(payload.slice(from..to))).await.is_err() {
                    return;
                }
                if h.last && expect < end {
                    let _ = tx
                        .send(Err(ReadFailure {
                            checksum: false,
                            reason: "replica shorter than expected".into(),
                        }))
                        .await;
                    return;
                }
            }
            let _ = writer.shutdown().await;
        });
        Ok(BlockStream {
            next: self.pos,
            end: self.pos + want,
            index,
            node: node.clone(),
            pending: Bytes::new(),
            rx,
            task,
        })
    }

    /// A replica failed mid-stream: report it if its data was bad, and resume elsewhere.
    async fn fail_over(&mut self, failure: ReadFailure) {
        let Some(cur) = self.current.take() else {
            return;
        };
        let lb = &self.blocks[cur.index];
        tracing::warn!(block = lb.block.id, node = %cur.node.data_addr(), reason = %failure.reason, "replica read failed; trying another");
        if failure.checksum {
            self.inner.report_bad_block(lb.block, &cur.node.uuid).await;
        }
        self.failed.insert((lb.block.id, cur.node.uuid.clone()));
    }
}

fn refusal(e: &DatanodeError) -> String {
    e.to_string()
}
