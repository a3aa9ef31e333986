//! Lease recovery: a file whose writer's lease expired (hard limit, or soft limit with another
//! writer waiting) is taken over by [`RECOVERY_HOLDER`]; one replica holder synchronizes the
//! last block and reports back with `CommitBlockSynchronization`, which closes the file.

use super::{file_mut, Namesystem, Now, Result, RECOVERY_HOLDER};
use crate::namenode::namespace::StoredBlock;
use crate::protocol::{
    DatanodeCommand, ExtendedBlock, NamenodeError, NamenodeReply, NamenodeResponse,
};

/// A lease recovery waiting for its `CommitBlockSynchronization`.
#[derive(Debug, Clone)]
pub(super) struct Recovery {
    block: u64,
    new_gen: u64,
    started_ms: u64,
}

impl Namesystem {
    /// The recovery part of a monitor tick (out of safe mode): recoveries interrupted by a
    /// restart, leases past their hard limit, and recoveries not committed in time.
    pub(super) fn recover_expired_leases(&mut self, now: Now) {
        for inode in std::mem::take(&mut self.interrupted_recoveries) {
            self.start_recovery(inode, now);
        }
        for (client, files) in self
            .leases
            .take_expired(now.mono_ms, self.cfg.lease_hard_limit_ms)
        {
            tracing::info!(%client, files = files.len(), "lease hard limit expired; recovering its files");
            for inode in files {
                self.start_recovery(inode, now);
            }
        }
        let stuck: Vec<u64> = self
            .recovering
            .iter()
            .filter(|(_, r)| now.mono_ms.saturating_sub(r.started_ms) > self.cfg.recovery_retry_ms)
            .map(|(i, _)| *i)
            .collect();
        for inode in stuck {
            tracing::info!(inode, "lease recovery not committed in time; retrying");
            self.recovering.remove(&inode);
            self.start_recovery(inode, now);
        }
    }

    /// Starts lease recovery of file `inode`: closes it at once if nothing needs agreeing on,
    /// else asks a live replica holder to synchronize the last block.
    pub(super) fn start_recovery(&mut self, inode_id: u64, now: Now) {
        if let Err(e) = self.try_start_recovery(inode_id, now) {
            tracing::error!(inode = inode_id, error = %e, "lease recovery failed to start");
        }
    }

    fn try_start_recovery(&mut self, inode_id: u64, now: Now) -> Result<()> {
        let Some(mut inode) = self.ns.inode(inode_id)? else {
            return Ok(());
        };
        let Some(f) = inode.file.as_mut() else {
            return Ok(());
        };
        let Some(uc) = f.under_construction.as_mut() else {
            return Ok(());
        };
        let old_holder = std::mem::replace(&mut uc.client, RECOVERY_HOLDER.to_string());
        self.leases.remove(&old_holder, inode_id);
        let last = f.blocks.last().copied();
        let nodes = last
            .map(|b| self.bm.recovery_nodes(b.id))
            .unwrap_or_default();
        match last {
            Some(b) if !b.complete && !nodes.is_empty() => {
                let new_gen = self.ns.next_gen_stamp();
                self.ns.put_inode(&inode)?;
                let primary = nodes[0].uuid.clone();
                tracing::info!(inode = inode_id, block = b.id, %primary, new_gen, "lease recovery: synchronizing last block");
                self.bm.queue_command(
                    &primary,
                    DatanodeCommand::RecoverBlock {
                        block: ExtendedBlock {
                            id: b.id,
                            gen: b.gen,
                            len: b.len,
                        },
                        new_gen,
                        replicas: nodes,
                    },
                );
                self.recovering.insert(
                    inode_id,
                    Recovery {
                        block: b.id,
                        new_gen,
                        started_ms: now.mono_ms,
                    },
                );
            }
            _ => {
                // Nothing to agree on: no block, a committed last block, or a last block no
                // DataNode ever had (its bytes were never acknowledged to anyone).
                if let Some(b) = last.filter(|b| !b.complete) {
                    tracing::warn!(
                        inode = inode_id,
                        block = b.id,
                        "lease recovery: no replica of the last block; dropping it"
                    );
                    f.blocks.pop();
                    self.bm.remove_block(b.id);
                }
                f.under_construction = None;
                inode.mtime_ms = now.wall_ms;
                self.ns.put_inode(&inode)?;
                self.recovering.remove(&inode_id);
            }
        }
        Ok(())
    }

    /// The end of a lease recovery: `block` has `new_gen` and `new_len` on `nodes`; the file
    /// is closed (its last block dropped if no bytes survived).
    pub(super) fn commit_block_synchronization(
        &mut self,
        block: ExtendedBlock,
        new_gen: u64,
        new_len: u64,
        nodes: &[String],
    ) -> NamenodeResponse {
        let Some((&inode_id, rec)) = self.recovering.iter().find(|(_, r)| r.block == block.id)
        else {
            return Err(NamenodeError::InvalidOperation(format!(
                "no lease recovery in progress for block {}",
                block.id
            )));
        };
        if rec.new_gen != new_gen {
            return Err(NamenodeError::InvalidOperation(format!(
                "block {}: recovery generation {new_gen} is not the current one ({})",
                block.id, rec.new_gen
            )));
        }
        let Some(mut inode) = self.ns.inode(inode_id)? else {
            self.recovering.remove(&inode_id);
            return Ok(NamenodeReply::Done);
        };
        let p = self.ns.path_of(inode_id)?.unwrap_or_default();
        let f = file_mut(&mut inode, &p)?;
        let final_block = ExtendedBlock {
            id: block.id,
            gen: new_gen,
            len: new_len,
        };
        let drop_block = new_len == 0 || nodes.is_empty();
        if drop_block {
            f.blocks.retain(|b| b.id != block.id);
        } else if let Some(b) = f.blocks.iter_mut().find(|b| b.id == block.id) {
            *b = StoredBlock {
                id: block.id,
                gen: new_gen,
                len: new_len,
                complete: true,
            };
        }
        f.under_construction = None;
        self.ns.put_inode(&inode)?;
        if drop_block {
            self.bm.remove_block(block.id);
        } else {
            self.bm.commit_recovered(final_block, nodes);
        }
        self.recovering.remove(&inode_id);
        tracing::info!(path = %p, block = block.id, new_len, "lease recovery committed; file closed");
        Ok(NamenodeReply::Done)
    }
}
