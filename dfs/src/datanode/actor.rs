//! The DataNode's link to the NameNode: registration (retried with backoff until the
//! NameNode is up), a full block report after registering and every
//! `block-report-interval-ms`, heartbeats with storage figures, prompt incremental reports,
//! and the commands heartbeat replies carry (replicate, invalidate, recover, re-register).

use super::{transfer, DatanodeContext};
use crate::protocol::{
    DatanodeAddr, DatanodeCommand, DatanodeError, DatanodeProtocolRequest, DatanodeReply,
    DatanodeRequest, DatanodeResponse, ExtendedBlock, NamenodeError, NamenodeReply,
    NamenodeRequest, NamenodeResponse,
};
use sheaf_rpc::service::Shutdown;
use sheaf_rpc::{RpcClient, RpcError};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Wait after the first queued report for more to join the same incremental report.
const REPORT_COALESCE: Duration = Duration::from_millis(20);
/// Deadline of a full block report call.
const FULL_REPORT_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline of one call to another DataNode during lease recovery.
const PEER_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How a NameNode call failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The NameNode does not know us (it restarted): register again.
    #[error("the NameNode asks this DataNode to re-register")]
    Reregister,
    /// The NameNode refused the request.
    #[error(transparent)]
    Refused(#[from] NamenodeError),
    /// The NameNode could not be reached.
    #[error(transparent)]
    Wire(#[from] RpcError),
    /// Lease recovery could not complete.
    #[error("{0}")]
    Recovery(String),
}

/// The NameNode link of one DataNode.
pub(crate) struct NamenodeLink {
    pub(crate) ctx: Arc<DatanodeContext>,
    pub(crate) rpc: Arc<RpcClient>,
    pub(crate) namenode: SocketAddr,
    pub(crate) heartbeat: Duration,
    pub(crate) block_report: Duration,
}

impl NamenodeLink {
    /// Deadline of a small call: short, because after a NameNode restart the old QUIC
    /// connection is silently dead and only a timed-out call makes us drop it and reconnect.
    fn control_deadline(&self) -> Duration {
        (self.heartbeat * 5).clamp(Duration::from_secs(2), Duration::from_secs(10))
    }

    async fn call(&self, req: DatanodeProtocolRequest) -> Result<NamenodeReply, LinkError> {
        // A full report of many blocks takes the NameNode longer to process.
        let deadline = match req {
            DatanodeProtocolRequest::BlockReport { .. } => FULL_REPORT_TIMEOUT,
            _ => self.control_deadline(),
        };
        let req = NamenodeRequest::Datanode(req);
        match self
            .rpc
            .call_within::<_, NamenodeResponse>(self.namenode, &req, deadline)
            .await?
        {
            Ok(reply) => Ok(reply),
            Err(NamenodeError::UnknownDatanode(_)) => Err(LinkError::Reregister),
            Err(e) => Err(LinkError::Refused(e)),
        }
    }

    /// Runs until `shutdown`.
    pub(crate) async fn run(self: Arc<Self>, mut shutdown: Shutdown) {
        'session: loop {
            let commands = tokio::select! {
                _ = shutdown.wait() => return,
                c = self.register() => c,
            };
            if self.execute(commands) {
                continue 'session;
            }
            let mut next_report = Instant::now();
            let mut next_heartbeat = Instant::now() + self.heartbeat;
            loop {
                if Instant::now() >= next_report {
                    next_report = match self.full_report().await {
                        Ok(()) => Instant::now() + self.block_report,
                        Err(LinkError::Reregister) => continue 'session,
                        Err(e) => {
                            tracing::warn!(error = %e, "full block report failed; retrying");
                            Instant::now() + self.heartbeat
                        }
                    };
                }
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = tokio::time::sleep_until(next_heartbeat) => {
                        next_heartbeat = Instant::now() + self.heartbeat;
                        match self.heartbeat().await {
                            Ok(commands) => {
                                if self.execute(commands) {
                                    continue 'session;
                                }
                                // Reports that failed earlier go out with the next beat.
                                if let Err(LinkError::Reregister) = self.send_reports().await {
                                    continue 'session;
                                }
                            }
                            Err(LinkError::Reregister) => continue 'session,
                            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
                        }
                    }
                    _ = self.ctx.reports.wait() => {
                        tokio::time::sleep(REPORT_COALESCE).await;
                        if let Err(LinkError::Reregister) = self.send_reports().await {
                            continue 'session;
                        }
                    }
                    _ = tokio::time::sleep_until(next_report) => {}
                }
            }
        }
    }

    async fn storage(&self) -> super::block_store::StorageReport {
        let store = self.ctx.store.clone();
        // statvfs touches the file system: keep it off the runtime threads.
        tokio::task::spawn_blocking(move || store.storage())
            .await
            .unwrap_or_default()
    }

    /// Registers, retrying with backoff until the NameNode answers.
    async fn register(&self) -> Vec<DatanodeCommand> {
        let mut backoff = Duration::from_millis(100);
        let mut attempts = 0u32;
        loop {
            let s = self.storage().await;
            let req = DatanodeProtocolRequest::RegisterDatanode {
                addr: self.ctx.addr.clone(),
                capacity: s.capacity,
                used: s.used,
                remaining: s.remaining,
            };
            attempts += 1;
            match self.call(req).await {
                Ok(reply) => {
                    tracing::info!(namenode = %self.namenode, uuid = %self.ctx.addr.uuid, "registered with the NameNode");
                    return commands_of(reply);
                }
                Err(e) => {
                    if attempts == 1 || attempts.is_multiple_of(10) {
                        tracing::warn!(namenode = %self.namenode, error = %e, attempts, "cannot register yet; retrying");
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2)
                .min(Duration::from_secs(5))
                .min(self.heartbeat.max(Duration::from_millis(100)));
        }
    }

    async fn full_report(self: &Arc<Self>) -> Result<(), LinkError> {
        let blocks = self.ctx.store.finalized();
        let n = blocks.len();
        let reply = self
            .call(DatanodeProtocolRequest::BlockReport {
                uuid: self.ctx.addr.uuid.clone(),
                blocks,
            })
            .await?;
        tracing::debug!(blocks = n, "full block report sent");
        if self.execute(commands_of(reply)) {
            return Err(LinkError::Reregister);
        }
        Ok(())
    }

    async fn heartbeat(&self) -> Result<Vec<DatanodeCommand>, LinkError> {
        let s = self.storage().await;
        let req = DatanodeProtocolRequest::Heartbeat {
            uuid: self.ctx.addr.uuid.clone(),
            capacity: s.capacity,
            used: s.used,
            remaining: s.remaining,
            active_transfers: self.ctx.active_transfers.load(Ordering::Relaxed),
            last_error: self.ctx.store.last_error(),
        };
        self.call(req).await.map(commands_of)
    }

    /// Sends queued incremental and corrupt-replica reports; puts them back on failure.
    async fn send_reports(self: &Arc<Self>) -> Result<(), LinkError> {
        let pending = self.ctx.reports.take();
        if pending.is_empty() {
            return Ok(());
        }
        let uuid = self.ctx.addr.uuid.clone();
        let mut result = Ok(());
        if !pending.received.is_empty() || !pending.deleted.is_empty() {
            let req = DatanodeProtocolRequest::IncrementalBlockReport {
                uuid: uuid.clone(),
                received: pending.received.clone(),
                deleted: pending.deleted.clone(),
            };
            result = self.call(req).await.map(|reply| {
                let _ = self.execute(commands_of(reply));
            });
        }
        let mut undelivered = pending.clone();
        if result.is_ok() {
            undelivered.received.clear();
            undelivered.deleted.clear();
            for block in &pending.corrupt {
                let req = DatanodeProtocolRequest::ReportCorruptReplica {
                    uuid: uuid.clone(),
                    block: *block,
                };
                match self.call(req).await {
                    Ok(_) => undelivered.corrupt.retain(|b| b != block),
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
        }
        if let Err(e) = &result {
            tracing::warn!(error = %e, "reports not delivered; will retry");
            // Reports the NameNode refused outright would be refused again: drop them.
            if !matches!(e, LinkError::Refused(_)) {
                self.ctx.reports.restore(undelivered);
            }
        }
        result
    }

    /// Starts every command; returns true if the NameNode asked us to re-register.
    fn execute(self: &Arc<Self>, commands: Vec<DatanodeCommand>) -> bool {
        let mut reregister = false;
        for cmd in commands {
            match cmd {
                DatanodeCommand::Reregister => reregister = true,
                DatanodeCommand::Invalidate { blocks } => {
                    let ctx = self.ctx.clone();
                    tokio::task::spawn_blocking(move || {
                        for id in blocks {
                            if ctx.store.delete(id).is_some() {
                                tracing::debug!(block = id, "replica invalidated");
                            }
                            ctx.reports.deleted(id);
                        }
                    });
                }
                DatanodeCommand::Replicate { block, targets } => {
                    let ctx = self.ctx.clone();
                    tokio::spawn(async move {
                        for t in targets {
                            match transfer::replicate(&ctx, block, &t).await {
                                Ok(()) => {
                                    tracing::info!(block = block.id, target = %t.data_addr(), "replica copied")
                                }
                                Err(e) => {
                                    tracing::warn!(block = block.id, target = %t.data_addr(), error = %e, "replication failed")
                                }
                            }
                        }
                    });
                }
                DatanodeCommand::RecoverBlock {
                    block,
                    new_gen,
                    replicas,
                } => {
                    let link = self.clone();
                    tokio::spawn(async move {
                        if let Err(e) = link.recover_block(block, new_gen, &replicas).await {
                            tracing::warn!(block = block.id, error = %e, "lease recovery failed");
                        }
                    });
                }
            }
        }
        reregister
    }

    async fn replica_info(
        &self,
        node: &DatanodeAddr,
        block: ExtendedBlock,
    ) -> Result<ExtendedBlock, String> {
        let reply = if node.uuid == self.ctx.addr.uuid {
            self.ctx
                .store
                .replica(block.id)
                .map(|i| DatanodeReply::Replica {
                    block: i.block,
                    state: i.state,
                })
                .ok_or(DatanodeError::ReplicaNotFound(block.id))
        } else {
            let req = DatanodeRequest::GetReplicaInfo { block: block.id };
            self.rpc
                .call_within::<_, DatanodeResponse>(node.rpc_addr(), &req, PEER_CALL_TIMEOUT)
                .await
                .map_err(|e| e.to_string())?
        };
        match reply {
            Ok(DatanodeReply::Replica { block, .. }) => Ok(block),
            Ok(other) => Err(format!("unexpected reply {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn finalize_on(
        &self,
        node: &DatanodeAddr,
        id: u64,
        new_gen: u64,
        len: u64,
    ) -> Result<(), String> {
        if node.uuid == self.ctx.addr.uuid {
            return self
                .ctx
                .finalize_recovered(id, new_gen, len)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string());
        }
        let req = DatanodeRequest::FinalizeRecovered {
            block: id,
            new_gen,
            len,
        };
        match self
            .rpc
            .call_within::<_, DatanodeResponse>(node.rpc_addr(), &req, PEER_CALL_TIMEOUT)
            .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Lease recovery as the primary: agree on the shortest replica length among the
    /// replicas of a current generation, finalize all at `new_gen`, tell the NameNode.
    pub(crate) async fn recover_block(
        &self,
        block: ExtendedBlock,
        new_gen: u64,
        replicas: &[DatanodeAddr],
    ) -> Result<(), LinkError> {
        let mut live = Vec::new();
        for node in replicas {
            match self.replica_info(node, block).await {
                Ok(r) if r.gen >= block.gen && r.gen <= new_gen => live.push((node, r)),
                Ok(r) => {
                    tracing::info!(block = block.id, node = %node.uuid, gen = r.gen, "stale replica left out of recovery")
                }
                Err(e) => {
                    tracing::info!(block = block.id, node = %node.uuid, error = %e, "replica unavailable for recovery")
                }
            }
        }
        let new_len = live.iter().map(|(_, r)| r.len).min().ok_or_else(|| {
            LinkError::Recovery(format!("block {}: no replica available", block.id))
        })?;
        let mut nodes = Vec::new();
        for (node, _) in &live {
            match self.finalize_on(node, block.id, new_gen, new_len).await {
                Ok(()) => nodes.push(node.uuid.clone()),
                Err(e) => {
                    tracing::warn!(block = block.id, node = %node.uuid, error = %e, "finalize during recovery failed")
                }
            }
        }
        if nodes.is_empty() {
            return Err(LinkError::Recovery(format!(
                "block {}: no replica could be finalized",
                block.id
            )));
        }
        tracing::info!(
            block = block.id,
            new_gen,
            new_len,
            nodes = nodes.len(),
            "block recovered"
        );
        let req = DatanodeProtocolRequest::CommitBlockSynchronization {
            block,
            new_gen,
            new_len,
            nodes,
        };
        let reply = self.call(req).await?;
        let _ = commands_of(reply);
        Ok(())
    }
}

fn commands_of(reply: NamenodeReply) -> Vec<DatanodeCommand> {
    match reply {
        NamenodeReply::Commands(c) => c,
        _ => Vec::new(),
    }
}
