//! The DataNode protocol: registration, heartbeats (answered with the block manager's
//! commands), full and incremental block reports, corrupt replicas, and the commit of a lease
//! recovery (in `recovery`).

use super::{Namesystem, Now};
use crate::protocol::{DatanodeCommand, DatanodeProtocolRequest, NamenodeReply, NamenodeResponse};

impl Namesystem {
    /// Handles one DataNode request.
    pub(super) fn handle_datanode(
        &mut self,
        req: DatanodeProtocolRequest,
        now: Now,
    ) -> NamenodeResponse {
        use DatanodeProtocolRequest as Q;
        use NamenodeReply as R;
        match req {
            Q::RegisterDatanode {
                addr,
                capacity,
                used,
                remaining,
            } => {
                tracing::info!(uuid = %addr.uuid, host = %addr.host, rack = %self.bm.rack_of(addr.host), "DataNode registered");
                self.bm
                    .register(addr, capacity, used, remaining, now.mono_ms);
                Ok(R::Commands(Vec::new()))
            }
            Q::Heartbeat {
                uuid,
                capacity,
                used,
                remaining,
                active_transfers: _,
                last_error,
            } => {
                self.bm.hold_invalidations(self.safe_mode.is_on());
                match self
                    .bm
                    .heartbeat(&uuid, capacity, used, remaining, last_error, now.mono_ms)
                {
                    Some(cmds) => Ok(R::Commands(cmds)),
                    None => Ok(R::Commands(vec![DatanodeCommand::Reregister])),
                }
            }
            Q::BlockReport { uuid, blocks } => {
                if !self.bm.block_report(&uuid, &blocks) {
                    return Ok(R::Commands(vec![DatanodeCommand::Reregister]));
                }
                tracing::debug!(datanode = %uuid, blocks = blocks.len(), "full block report");
                self.check_safe_mode(now);
                Ok(R::Commands(Vec::new()))
            }
            Q::IncrementalBlockReport {
                uuid,
                received,
                deleted,
            } => {
                if !self.bm.incremental_report(&uuid, &received, &deleted) {
                    return Ok(R::Commands(vec![DatanodeCommand::Reregister]));
                }
                Ok(R::Commands(Vec::new()))
            }
            Q::ReportCorruptReplica { uuid, block } => {
                tracing::warn!(block = block.id, datanode = %uuid, "DataNode reported a corrupt replica");
                self.bm.mark_corrupt(block, &uuid);
                Ok(R::Done)
            }
            Q::CommitBlockSynchronization {
                block,
                new_gen,
                new_len,
                nodes,
            } => self.commit_block_synchronization(block, new_gen, new_len, &nodes),
        }
    }
}
