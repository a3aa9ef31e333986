//! The client protocol: namespace operations, reads and administration. The write path
//! (create, blocks, pipelines, complete) is in `write`.

use super::{norm, Namesystem, Now, Result};
use crate::protocol::{
    ClientRequest, ExtendedBlock, LocatedBlock, LocatedBlocks, NamenodeError, NamenodeReply,
    NamenodeResponse, SafeModeAction,
};
use std::net::IpAddr;

impl Namesystem {
    /// Handles one client request; `peer` is the client's address.
    pub(super) fn handle_client(
        &mut self,
        req: ClientRequest,
        now: Now,
        peer: IpAddr,
    ) -> NamenodeResponse {
        use ClientRequest as Q;
        use NamenodeReply as R;
        match req {
            Q::GetFileInfo { path } => {
                let p = norm(&path)?;
                Ok(R::FileInfo(self.ns.lookup(&p)?.map(|i| i.status(&p))))
            }
            Q::ListStatus { path } => Ok(R::Listing(self.ns.list(&path)?)),
            Q::Mkdirs {
                path,
                parents,
                mode,
                owner,
            } => {
                self.require_writable()?;
                self.ns.mkdirs(&path, parents, mode, &owner, now.wall_ms)?;
                Ok(R::Done)
            }
            Q::Create {
                path,
                overwrite,
                replication,
                block_size,
                client,
                client_host,
                owner,
                mode,
            } => {
                self.require_writable()?;
                let file = crate::namenode::namespace::NewFile {
                    overwrite,
                    replication,
                    block_size,
                    client,
                    client_host: client_host.or(Some(peer)),
                    owner,
                    mode,
                };
                self.create(&path, file, now)
            }
            Q::AddBlock {
                path,
                client,
                previous,
                excluded,
            } => {
                self.require_writable()?;
                self.add_block(&path, &client, previous, &excluded, now)
            }
            Q::AbandonBlock {
                path,
                client,
                block,
            } => {
                self.require_writable()?;
                self.abandon_block(&path, &client, block, now)
            }
            Q::UpdateBlockForPipeline {
                path,
                client,
                block,
            } => {
                self.require_writable()?;
                self.update_block_for_pipeline(&path, &client, block, now)
            }
            Q::UpdatePipeline {
                path,
                client,
                old,
                new,
                nodes,
            } => {
                self.require_writable()?;
                self.update_pipeline(&path, &client, old, new, nodes, now)
            }
            Q::Complete { path, client, last } => {
                self.require_writable()?;
                self.complete(&path, &client, last, now)
            }
            Q::RenewLease { client } => {
                self.leases.renew(&client, now.mono_ms);
                Ok(R::Done)
            }
            Q::GetBlockLocations {
                path,
                offset,
                len,
                client_host,
            } => Ok(R::Locations(self.block_locations(
                &path,
                offset,
                len,
                client_host.or(Some(peer)),
            )?)),
            Q::Delete { path, recursive } => {
                self.require_writable()?;
                match self.ns.delete(&path, recursive, now.wall_ms)? {
                    Some(removed) => {
                        self.forget_removed(&removed);
                        Ok(R::Deleted(true))
                    }
                    None => Ok(R::Deleted(false)),
                }
            }
            Q::Rename { src, dst } => {
                self.require_writable()?;
                self.ns.rename(&src, &dst, now.wall_ms)?;
                Ok(R::Done)
            }
            Q::SetReplication { path, replication } => {
                self.require_writable()?;
                let inode = self.ns.set_replication(&path, replication)?;
                if let Some(f) = &inode.file {
                    for b in &f.blocks {
                        self.bm.set_replication(b.id, replication);
                    }
                }
                Ok(R::Done)
            }
            Q::SetTimes { path, mtime_ms } => {
                self.require_writable()?;
                self.ns.set_times(&path, mtime_ms)?;
                Ok(R::Done)
            }
            Q::GetContentSummary { path } => Ok(R::Summary(self.ns.content_summary(&path)?)),
            Q::GetStats => Ok(R::Stats(self.bm.stats())),
            Q::Fsck { path } => Ok(R::Fsck(self.fsck(&path)?)),
            Q::DatanodeReport => Ok(R::Datanodes(self.bm.reports(now.mono_ms))),
            Q::SafeMode { action } => Ok(R::SafeMode(self.safe_mode_action(action))),
            Q::ReportBadBlock {
                block,
                datanode_uuid,
            } => {
                tracing::warn!(block = block.id, datanode = %datanode_uuid, "client reported a corrupt replica");
                self.bm.mark_corrupt(block, &datanode_uuid);
                Ok(R::Done)
            }
        }
    }

    /// The blocks of `path` overlapping `offset..offset+len`, replicas sorted for `host`.
    fn block_locations(
        &self,
        path: &str,
        offset: u64,
        len: u64,
        host: Option<IpAddr>,
    ) -> Result<LocatedBlocks> {
        let p = norm(path)?;
        let inode = self
            .ns
            .lookup(&p)?
            .ok_or_else(|| NamenodeError::NotFound(p.clone()))?;
        let f = inode
            .file
            .as_ref()
            .ok_or_else(|| NamenodeError::IsADirectory(p.clone()))?;
        let end = offset.saturating_add(len);
        let mut blocks = Vec::new();
        let mut pos = 0u64;
        for b in &f.blocks {
            let b_end = pos + b.len;
            // An empty block (being written) counts as at its offset.
            let overlaps = (b_end > offset && pos < end)
                || (b.len == 0 && pos >= offset && pos < end.max(offset + 1));
            if overlaps {
                let (locations, corrupt_locations) = self.bm.locations(b.id, host);
                blocks.push(LocatedBlock {
                    block: ExtendedBlock {
                        id: b.id,
                        gen: b.gen,
                        len: b.len,
                    },
                    offset: pos,
                    locations,
                    corrupt_locations,
                });
            }
            pos = b_end;
        }
        Ok(LocatedBlocks {
            file_len: f.len(),
            blocks,
        })
    }

    /// Applies `dfsadmin safemode`; true if safe mode is on afterwards.
    fn safe_mode_action(&mut self, action: SafeModeAction) -> bool {
        match action {
            SafeModeAction::Get => {}
            SafeModeAction::Enter => {
                tracing::info!("entering safe mode by request");
                self.safe_mode.enter();
            }
            SafeModeAction::Leave => {
                tracing::info!("leaving safe mode by request");
                self.safe_mode.leave();
            }
        }
        self.safe_mode.is_on()
    }
}
