//! The client protocol: namespace operations, reads and administration. The write path
//! (create, blocks, pipelines, complete) is in `write`.

use super::{norm, Namesystem, Now, Result};
use crate::namenode::namespace::Resolved;
use crate::namenode::permissions::{self, check, Access, Caller};
use crate::protocol::{
    ClientRequest, ExtendedBlock, LocatedBlock, LocatedBlocks, NamenodeError, NamenodeReply,
    NamenodeResponse, SafeModeAction,
};
use std::net::IpAddr;

/// Operations HDFS keeps to the superuser.
fn require_superuser(caller: &Caller, what: &str) -> Result<()> {
    if caller.superuser {
        return Ok(());
    }
    Err(NamenodeError::PermissionDenied(format!(
        "user={}: {what} needs superuser privilege",
        caller.user
    )))
}

impl Namesystem {
    /// Handles one client request; `peer` is the client's address, `caller` who it is.
    pub(super) fn handle_client(
        &mut self,
        req: ClientRequest,
        now: Now,
        peer: IpAddr,
        caller: &Caller,
    ) -> NamenodeResponse {
        use ClientRequest as Q;
        use NamenodeReply as R;
        match req {
            Q::GetFileInfo { path } => {
                let p = norm(&path)?;
                self.check_traverse(caller, &p)?;
                Ok(R::FileInfo(self.ns.lookup(&p)?.map(|i| i.status(&p))))
            }
            Q::ListStatus { path } => {
                let r = self.check_traverse(caller, &path)?;
                if let Some(dir) = r.target.as_ref().filter(|t| t.is_dir()) {
                    check(caller, &r.path, dir, Access::READ_EXECUTE)?;
                }
                Ok(R::Listing(self.ns.list(&path)?))
            }
            Q::Mkdirs {
                path,
                parents,
                mode,
            } => {
                self.require_writable()?;
                let r = self.check_traverse(caller, &path)?;
                if r.target.is_none() {
                    // Creating under the deepest directory that exists needs write on it.
                    if let Some((at, dir)) = r.ancestors.last().filter(|(_, d)| d.is_dir()) {
                        check(caller, at, dir, Access::WRITE)?;
                    }
                }
                self.ns
                    .mkdirs(&path, parents, mode, &caller.user, now.wall_ms)?;
                Ok(R::Done)
            }
            Q::Create {
                path,
                overwrite,
                replication,
                block_size,
                client,
                client_host,
                mode,
            } => {
                self.require_writable()?;
                let r = self.check_traverse(caller, &path)?;
                if let Some((at, parent)) = r.parent() {
                    check(caller, at, parent, Access::WRITE)?;
                }
                if let Some(existing) = r.target.as_ref().filter(|_| overwrite) {
                    // HDFS: overwriting needs write on the file too.
                    check(caller, &r.path, existing, Access::WRITE)?;
                }
                let owner = caller.user.clone();
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
            } => {
                let r = self.check_traverse(caller, &path)?;
                if let Some(file) = &r.target {
                    check(caller, &r.path, file, Access::READ)?;
                }
                Ok(R::Locations(self.block_locations(
                    &path,
                    offset,
                    len,
                    client_host.or(Some(peer)),
                )?))
            }
            Q::Delete { path, recursive } => {
                self.require_writable()?;
                self.check_remove(caller, &path)?;
                if recursive {
                    self.check_subtree(caller, &path, Access::ALL)?;
                }
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
                self.check_remove(caller, &src)?;
                let d = self.check_traverse(caller, &dst)?;
                match &d.target {
                    // Into an existing directory: it gains the entry.
                    Some(dir) if dir.is_dir() => {
                        check(caller, &d.path, dir, Access::WRITE_EXECUTE)?
                    }
                    _ => {
                        if let Some((at, parent)) = d.parent() {
                            check(caller, at, parent, Access::WRITE)?;
                        }
                    }
                }
                self.ns.rename(&src, &dst, now.wall_ms)?;
                Ok(R::Done)
            }
            Q::SetReplication { path, replication } => {
                self.require_writable()?;
                self.check_target(caller, &path, Access::WRITE)?;
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
                self.check_target(caller, &path, Access::WRITE)?;
                self.ns.set_times(&path, mtime_ms)?;
                Ok(R::Done)
            }
            Q::SetPermission { path, mode } => {
                self.require_writable()?;
                let r = self.check_traverse(caller, &path)?;
                let inode = r
                    .target
                    .as_ref()
                    .ok_or_else(|| NamenodeError::NotFound(r.path.clone()))?;
                permissions::check_owner(caller, &r.path, inode)?;
                self.ns.set_permission(&path, mode)?;
                Ok(R::Done)
            }
            Q::SetOwner { path, owner, group } => {
                self.require_writable()?;
                for name in owner.iter().chain(group.iter()) {
                    if !sheaf_rpc::identity::valid_principal_name(name) {
                        return Err(NamenodeError::InvalidOperation(format!(
                            "'{name}' is not a valid user or group name"
                        )));
                    }
                }
                let r = self.check_traverse(caller, &path)?;
                let inode = r
                    .target
                    .as_ref()
                    .ok_or_else(|| NamenodeError::NotFound(r.path.clone()))?;
                permissions::check_set_owner(
                    caller,
                    &r.path,
                    inode,
                    owner.as_deref(),
                    group.as_deref(),
                )?;
                self.ns
                    .set_owner(&path, owner.as_deref(), group.as_deref())?;
                Ok(R::Done)
            }
            Q::GetContentSummary { path } => {
                self.check_traverse(caller, &path)?;
                self.check_subtree(caller, &path, Access::READ_EXECUTE)?;
                Ok(R::Summary(self.ns.content_summary(&path)?))
            }
            Q::GetStats => Ok(R::Stats(self.bm.stats())),
            Q::Fsck { path } => {
                require_superuser(caller, "fsck")?;
                Ok(R::Fsck(self.fsck(&path)?))
            }
            Q::DatanodeReport => {
                require_superuser(caller, "dfsadmin -report")?;
                Ok(R::Datanodes(self.bm.reports(now.mono_ms)))
            }
            Q::SafeMode { action } => {
                if action != SafeModeAction::Get {
                    require_superuser(caller, "dfsadmin -safemode")?;
                }
                Ok(R::SafeMode(self.safe_mode_action(action)))
            }
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

    /// Checks traverse on every directory above `path`; returns what exists along it.
    fn check_traverse(&self, caller: &Caller, path: &str) -> Result<Resolved> {
        let r = self.ns.resolve(path)?;
        permissions::check_traverse(caller, &r.ancestors)?;
        Ok(r)
    }

    /// Checks traverse, then `access` on the inode at `path` if it exists (a missing path
    /// fails later with the operation's own error).
    fn check_target(&self, caller: &Caller, path: &str, access: Access) -> Result<()> {
        let r = self.check_traverse(caller, path)?;
        if let Some(inode) = &r.target {
            check(caller, &r.path, inode, access)?;
        }
        Ok(())
    }

    /// Removing `path` from its parent (delete, the source of a rename): write on the parent,
    /// and the sticky-bit rule.
    fn check_remove(&self, caller: &Caller, path: &str) -> Result<()> {
        let r = self.check_traverse(caller, path)?;
        if let (Some((at, parent)), Some(target)) = (r.parent(), &r.target) {
            check(caller, at, parent, Access::WRITE)?;
            permissions::check_sticky(caller, parent, &r.path, target)?;
        }
        Ok(())
    }

    /// `access` on every directory of the subtree at `path` (HDFS's subtree checks for a
    /// recursive delete and a content summary).
    fn check_subtree(&self, caller: &Caller, path: &str, access: Access) -> Result<()> {
        if caller.superuser {
            return Ok(());
        }
        let mut refused = None;
        match self.ns.walk(path, |p, inode| {
            if refused.is_none() && inode.is_dir() && !permissions::permits(caller, inode, access) {
                refused = Some(permissions::denied(caller, access, p, inode));
            }
        }) {
            Ok(()) | Err(NamenodeError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        refused.map_or(Ok(()), Err)
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
