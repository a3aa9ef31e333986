//! The NameNode's decisions in one place: the namespace plus the block manager, leases, lease
//! recovery and safe mode, driven by requests and monitor ticks. No networking here: the daemon
//! calls [`Namesystem::handle`] under one lock (like Hadoop's FSNamesystem lock) and replies once
//! the store says the changes are durable.

use super::block_manager::{BlockManager, BlockManagerConfig};
use super::leases::LeaseManager;
use super::namespace::{Inode, Namespace, NewFile, Removed, StoredBlock};
use super::safe_mode::SafeMode;
use super::topology::Topology;
use crate::config::NamenodeConfig;
use crate::path;
use crate::protocol::{
    BlockHealth, DatanodeCommand, ExtendedBlock, FsckBlock, FsckFile, LocatedBlock, LocatedBlocks,
    NamenodeError, NamenodeReply, NamenodeRequest, NamenodeResponse, SafeModeAction,
};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

/// Lease holder of files whose writer's lease expired and that the NameNode is recovering.
pub const RECOVERY_HOLDER: &str = "sheaf-namenode-lease-recovery";

/// The time as the namesystem sees it.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Monotonic ms (liveness, leases, safe mode).
    pub mono_ms: u64,
    /// Wall-clock ms since the epoch (file times).
    pub wall_ms: u64,
}

/// Tunables of the namesystem.
#[derive(Debug, Clone)]
pub struct NamesystemConfig {
    /// Block manager tunables.
    pub blocks: BlockManagerConfig,
    /// Lease soft limit (another writer may take over after recovery).
    pub lease_soft_limit_ms: u64,
    /// Lease hard limit (the NameNode recovers by itself).
    pub lease_hard_limit_ms: u64,
    /// A lease recovery without `CommitBlockSynchronization` is retried after this long.
    pub recovery_retry_ms: u64,
    /// Safe-mode threshold.
    pub safemode_threshold: f64,
    /// Safe-mode extension.
    pub safemode_extension_ms: u64,
}

impl NamesystemConfig {
    /// The namesystem settings of a `[namenode]` section.
    pub fn from_config(c: &NamenodeConfig) -> NamesystemConfig {
        NamesystemConfig {
            blocks: BlockManagerConfig {
                dead_timeout_ms: c.dead_timeout_ms,
                max_streams: c.replication_max_streams.max(1),
                // A copy of one block takes seconds; give it several monitor rounds and at least
                // the time the target needs to be declared dead.
                pending_timeout_ms: (c.replication_interval_ms * 10).max(c.dead_timeout_ms),
                invalidate_batch: 1000,
            },
            lease_soft_limit_ms: c.lease_soft_limit_ms,
            lease_hard_limit_ms: c.lease_hard_limit_ms,
            recovery_retry_ms: c.dead_timeout_ms.max(1000),
            safemode_threshold: c.safemode_threshold,
            safemode_extension_ms: c.safemode_extension_ms,
        }
    }
}

#[derive(Debug, Clone)]
struct Recovery {
    block: u64,
    new_gen: u64,
    started_ms: u64,
}

/// Namespace, block map, leases and safe mode.
pub struct Namesystem {
    ns: Namespace,
    bm: BlockManager,
    leases: LeaseManager,
    safe_mode: SafeMode,
    recovering: HashMap<u64, Recovery>,
    /// Files whose recovery was in progress when the NameNode stopped: restarted after safe mode.
    interrupted_recoveries: Vec<u64>,
    cfg: NamesystemConfig,
}

type Result<T> = std::result::Result<T, NamenodeError>;

impl Namesystem {
    /// Builds the in-memory state from the namespace: every block enters the block map with
    /// no location (block reports fill them in), every open file gets its writer's lease back.
    pub fn load(
        ns: Namespace,
        cfg: NamesystemConfig,
        topology: Topology,
        now: Now,
    ) -> Result<Namesystem> {
        let mut bm = BlockManager::new(cfg.blocks.clone(), topology, now.wall_ms);
        let mut leases = LeaseManager::default();
        let mut interrupted_recoveries = Vec::new();
        for inode in ns.all_files()? {
            let Some(f) = &inode.file else { continue };
            let last = f.blocks.len().saturating_sub(1);
            for (i, b) in f.blocks.iter().enumerate() {
                let expected = match (&f.under_construction, i == last) {
                    (Some(uc), true) => uc.targets.clone(),
                    _ => Vec::new(),
                };
                bm.add_block(
                    ExtendedBlock {
                        id: b.id,
                        gen: b.gen,
                        len: b.len,
                    },
                    f.replication,
                    b.complete,
                    expected,
                );
            }
            match &f.under_construction {
                Some(uc) if uc.client == RECOVERY_HOLDER => interrupted_recoveries.push(inode.id),
                Some(uc) => leases.add(&uc.client, inode.id, now.mono_ms),
                None => {}
            }
        }
        let safe_mode = SafeMode::at_startup(cfg.safemode_threshold, cfg.safemode_extension_ms);
        let mut sys = Namesystem {
            ns,
            bm,
            leases,
            safe_mode,
            recovering: HashMap::new(),
            interrupted_recoveries,
            cfg,
        };
        let (total, safe) = sys.bm.safe_block_counts();
        sys.safe_mode.check(total, safe, now.mono_ms);
        Ok(sys)
    }

    /// The namespace (store access for durability and checkpoints).
    pub fn namespace(&self) -> &Namespace {
        &self.ns
    }

    /// The namespace, mutably.
    pub fn namespace_mut(&mut self) -> &mut Namespace {
        &mut self.ns
    }

    /// The block manager (read-only, for tests and reports).
    pub fn blocks(&self) -> &BlockManager {
        &self.bm
    }

    /// True while in safe mode.
    pub fn in_safe_mode(&self) -> bool {
        self.safe_mode.is_on()
    }

    fn require_writable(&self) -> Result<()> {
        if self.safe_mode.is_on() {
            let (total, safe) = self.bm.safe_block_counts();
            return Err(NamenodeError::SafeMode(self.safe_mode.reason(total, safe)));
        }
        Ok(())
    }

    /// Monitor duties: dead DataNodes, safe mode exit, lease expiry and recovery retries.
    pub fn tick(&mut self, now: Now) {
        for dead in self.bm.check_liveness(now.mono_ms) {
            tracing::warn!(datanode = %dead, "DataNode declared dead; its replicas will be re-created");
        }
        if self.safe_mode.is_on() {
            let (total, safe) = self.bm.safe_block_counts();
            if self.safe_mode.check(total, safe, now.mono_ms) {
                tracing::info!(total, safe, "leaving safe mode");
            }
            return;
        }
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

    /// One replication monitor pass (nothing is scheduled in safe mode).
    pub fn replication_pass(&mut self, now: Now) {
        if !self.safe_mode.is_on() {
            self.bm.compute_replication_work(now.mono_ms);
        }
    }

    /// Handles one request; `peer` is the caller's address (default for the client host).
    pub fn handle(&mut self, req: NamenodeRequest, now: Now, peer: IpAddr) -> NamenodeResponse {
        use NamenodeReply as R;
        use NamenodeRequest as Q;
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
                let p = norm(&path)?;
                self.leases.renew(&client, now.mono_ms);
                let f = NewFile {
                    overwrite,
                    replication,
                    block_size,
                    client: client.clone(),
                    client_host: client_host.or(Some(peer)),
                    owner,
                    mode,
                };
                match self.ns.create(&p, &f, now.wall_ms) {
                    Ok((inode, removed)) => {
                        self.forget_removed(&removed);
                        self.leases.add(&client, inode.id, now.mono_ms);
                        Ok(R::Created(inode.status(&p)))
                    }
                    Err(NamenodeError::LeaseConflict { path, holder }) => {
                        if holder != client
                            && holder != RECOVERY_HOLDER
                            && self.leases.expired(
                                &holder,
                                now.mono_ms,
                                self.cfg.lease_soft_limit_ms,
                            )
                        {
                            if let Some(inode) = self.ns.lookup(&path)? {
                                tracing::info!(%path, %holder, "soft lease limit passed; recovering for a new writer");
                                self.leases.remove(&holder, inode.id);
                                self.start_recovery(inode.id, now);
                            }
                        }
                        Err(NamenodeError::LeaseConflict { path, holder })
                    }
                    Err(e) => Err(e),
                }
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
                let (p, mut inode) = self.file_for_write(&path, &client, now)?;
                let f = file_mut(&mut inode, &p)?;
                if f.blocks
                    .last()
                    .is_some_and(|b| b.id == block.id && !b.complete)
                {
                    f.blocks.pop();
                    if let Some(uc) = f.under_construction.as_mut() {
                        uc.targets.clear();
                    }
                    self.ns.put_inode(&inode)?;
                    self.bm.remove_block(block.id);
                }
                Ok(R::Done)
            }
            Q::UpdateBlockForPipeline {
                path,
                client,
                block,
            } => {
                self.require_writable()?;
                let (p, inode) = self.file_for_write(&path, &client, now)?;
                let f = file_ref(&inode, &p)?;
                let (offset, last) = last_block(f, block.id, &p)?;
                let gen = self.ns.next_gen_stamp();
                self.ns.persist_counters()?;
                let targets = f
                    .under_construction
                    .as_ref()
                    .map(|u| u.targets.clone())
                    .unwrap_or_default();
                Ok(R::Block(LocatedBlock {
                    block: ExtendedBlock {
                        id: last.id,
                        gen,
                        len: block.len,
                    },
                    offset,
                    locations: self.bm.addrs(&targets),
                    corrupt_locations: Vec::new(),
                }))
            }
            Q::UpdatePipeline {
                path,
                client,
                old,
                new,
                nodes,
            } => {
                self.require_writable()?;
                let (p, mut inode) = self.file_for_write(&path, &client, now)?;
                let f = file_mut(&mut inode, &p)?;
                let (_, last) = last_block(f, old.id, &p)?;
                if new.id != old.id || new.gen <= last.gen {
                    return Err(NamenodeError::InvalidOperation(format!(
                        "{p}: pipeline update of block {} to generation {} is stale",
                        old.id, new.gen
                    )));
                }
                if let Some(b) = f.blocks.last_mut() {
                    b.gen = new.gen;
                    b.len = new.len;
                }
                if let Some(uc) = f.under_construction.as_mut() {
                    uc.targets = nodes.clone();
                }
                self.ns.put_inode(&inode)?;
                self.bm.update_block(new, false, Some(nodes));
                Ok(R::Done)
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
                let p = norm(&path)?;
                let inode = self
                    .ns
                    .lookup(&p)?
                    .ok_or_else(|| NamenodeError::NotFound(p.clone()))?;
                let f = inode
                    .file
                    .as_ref()
                    .ok_or_else(|| NamenodeError::IsADirectory(p.clone()))?;
                let host = client_host.or(Some(peer));
                let end = offset.saturating_add(len);
                let mut blocks = Vec::new();
                let mut pos = 0u64;
                for b in &f.blocks {
                    let b_end = pos + b.len;
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
                Ok(R::Locations(LocatedBlocks {
                    file_len: f.len(),
                    blocks,
                }))
            }
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
            Q::SafeMode { action } => {
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
                Ok(R::SafeMode(self.safe_mode.is_on()))
            }
            Q::ReportBadBlock {
                block,
                datanode_uuid,
            } => {
                tracing::warn!(block = block.id, datanode = %datanode_uuid, "client reported a corrupt replica");
                self.bm.mark_corrupt(block, &datanode_uuid);
                Ok(R::Done)
            }
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

    fn check_safe_mode(&mut self, now: Now) {
        if self.safe_mode.is_on() {
            let (total, safe) = self.bm.safe_block_counts();
            if self.safe_mode.check(total, safe, now.mono_ms) {
                tracing::info!(total, safe, "leaving safe mode");
            }
        }
    }

    fn forget_removed(&mut self, removed: &Removed) {
        for id in &removed.blocks {
            self.bm.remove_block(*id);
        }
        for (inode, client) in &removed.open_files {
            self.leases.remove(client, *inode);
            self.recovering.remove(inode);
        }
    }

    /// The file `path` open for write by `client` (renewing its lease).
    fn file_for_write(&mut self, path: &str, client: &str, now: Now) -> Result<(String, Inode)> {
        let p = norm(path)?;
        let inode = self
            .ns
            .lookup(&p)?
            .ok_or_else(|| NamenodeError::NotFound(p.clone()))?;
        let f = inode
            .file
            .as_ref()
            .ok_or_else(|| NamenodeError::IsADirectory(p.clone()))?;
        match &f.under_construction {
            Some(uc) if uc.client == client => {
                self.leases.renew(client, now.mono_ms);
                Ok((p, inode))
            }
            _ => Err(NamenodeError::NoLease(p)),
        }
    }

    fn add_block(
        &mut self,
        path: &str,
        client: &str,
        previous: Option<ExtendedBlock>,
        excluded: &[String],
        now: Now,
    ) -> NamenodeResponse {
        let (p, mut inode) = self.file_for_write(path, client, now)?;
        let f = file_mut(&mut inode, &p)?;
        let n = f.blocks.len();
        // A retried AddBlock (the reply was lost): hand out the same block again.
        if let Some(last) = f.blocks.last().filter(|b| !b.complete && b.len == 0) {
            let penultimate = if n >= 2 {
                Some(f.blocks[n - 2].id)
            } else {
                None
            };
            if previous.map(|b| b.id) == penultimate {
                let targets = f
                    .under_construction
                    .as_ref()
                    .map(|u| u.targets.clone())
                    .unwrap_or_default();
                let offset = f.blocks[..n - 1].iter().map(|b| b.len).sum();
                return Ok(NamenodeReply::Block(LocatedBlock {
                    block: ExtendedBlock {
                        id: last.id,
                        gen: last.gen,
                        len: 0,
                    },
                    offset,
                    locations: self.bm.addrs(&targets),
                    corrupt_locations: Vec::new(),
                }));
            }
        }
        match (f.blocks.last_mut(), previous) {
            (None, None) => {}
            (Some(last), Some(prev)) if last.id == prev.id => {
                last.gen = prev.gen;
                last.len = prev.len;
                last.complete = true;
            }
            (Some(last), None) if last.complete => {}
            (last, prev) => {
                return Err(NamenodeError::InvalidOperation(format!(
                    "{p}: previous block {:?} does not match the file's last block {:?}",
                    prev.map(|b| b.id),
                    last.map(|b| b.id)
                )))
            }
        }
        let committed = f.blocks.last().map(|b| ExtendedBlock {
            id: b.id,
            gen: b.gen,
            len: b.len,
        });
        let replication = f.replication;
        let block_size = f.block_size;
        let writer = f.under_construction.as_ref().and_then(|u| u.client_host);
        let excluded: HashSet<String> = excluded.iter().cloned().collect();
        let targets = self.bm.choose_targets_for_new_block(
            usize::from(replication),
            writer,
            &excluded,
            block_size,
        );
        if targets.is_empty() {
            return Err(NamenodeError::NoDatanodes(format!(
                "no live DataNode can take a {block_size}-byte block ({} live, {} excluded by the client)",
                self.bm.live_count(),
                excluded.len()
            )));
        }
        if targets.len() < usize::from(replication) {
            tracing::info!(path = %p, wanted = replication, got = targets.len(), "writing under-replicated block");
        }
        let id = self.ns.alloc_block_id();
        let gen = self.ns.next_gen_stamp();
        let uuids: Vec<String> = targets.iter().map(|t| t.uuid.clone()).collect();
        let f = file_mut(&mut inode, &p)?;
        let offset = f.len();
        f.blocks.push(StoredBlock {
            id,
            gen,
            len: 0,
            complete: false,
        });
        if let Some(uc) = f.under_construction.as_mut() {
            uc.targets = uuids.clone();
        }
        self.ns.put_inode(&inode)?;
        if let Some(c) = committed {
            self.bm.update_block(c, true, Some(Vec::new()));
        }
        let block = ExtendedBlock { id, gen, len: 0 };
        self.bm.add_block(block, replication, false, uuids);
        Ok(NamenodeReply::Block(LocatedBlock {
            block,
            offset,
            locations: targets,
            corrupt_locations: Vec::new(),
        }))
    }

    fn complete(
        &mut self,
        path: &str,
        client: &str,
        last: Option<ExtendedBlock>,
        now: Now,
    ) -> NamenodeResponse {
        let p = norm(path)?;
        let inode = self
            .ns
            .lookup(&p)?
            .ok_or_else(|| NamenodeError::NotFound(p.clone()))?;
        let f = inode
            .file
            .as_ref()
            .ok_or_else(|| NamenodeError::IsADirectory(p.clone()))?;
        match &f.under_construction {
            // Already closed: a retry whose first reply was lost.
            None if f.blocks.last().map(|b| b.id) == last.map(|b| b.id) => {
                return Ok(NamenodeReply::Completed(true))
            }
            Some(uc) if uc.client == client => {}
            _ => return Err(NamenodeError::NoLease(p)),
        }
        let (p, mut inode) = self.file_for_write(&p, client, now)?;
        let f = file_mut(&mut inode, &p)?;
        match (f.blocks.last_mut(), last) {
            (None, None) => {}
            (Some(b), Some(l)) if b.id == l.id => {
                b.gen = l.gen;
                b.len = l.len;
                b.complete = true;
            }
            (Some(b), None) if b.complete => {}
            (b, l) => {
                return Err(NamenodeError::InvalidOperation(format!(
                    "{p}: last block {:?} does not match the file's last block {:?}",
                    l.map(|x| x.id),
                    b.map(|x| x.id)
                )))
            }
        }
        if let Some(b) = f.blocks.last().copied() {
            self.bm.update_block(
                ExtendedBlock {
                    id: b.id,
                    gen: b.gen,
                    len: b.len,
                },
                true,
                None,
            );
            if self.bm.live_replicas(b.id) == 0 {
                // Not minimally replicated yet: the DataNodes' reports are on their way.
                return Ok(NamenodeReply::Completed(false));
            }
        }
        f.under_construction = None;
        inode.mtime_ms = now.wall_ms;
        self.ns.put_inode(&inode)?;
        self.leases.remove(client, inode.id);
        Ok(NamenodeReply::Completed(true))
    }

    /// Starts lease recovery of file `inode`: closes it at once if nothing needs agreeing on,
    /// else asks a live replica holder to synchronize the last block.
    fn start_recovery(&mut self, inode_id: u64, now: Now) {
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

    fn commit_block_synchronization(
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

    fn fsck(&self, path: &str) -> Result<Vec<FsckFile>> {
        let mut files = Vec::new();
        self.ns.walk(path, |p, inode| {
            let Some(f) = &inode.file else { return };
            let blocks = f
                .blocks
                .iter()
                .map(|b| {
                    let (locations, _) = self.bm.locations(b.id, None);
                    let health = match self.bm.health(b.id) {
                        // A block still being written has no final replicas yet.
                        BlockHealth::Missing if !b.complete => BlockHealth::UnderReplicated {
                            live: 0,
                            target: f.replication,
                        },
                        h => h,
                    };
                    FsckBlock {
                        block: ExtendedBlock {
                            id: b.id,
                            gen: b.gen,
                            len: b.len,
                        },
                        health,
                        locations,
                    }
                })
                .collect();
            files.push(FsckFile {
                path: p.to_string(),
                len: f.len(),
                replication: f.replication,
                blocks,
                open_for_write: f.under_construction.is_some(),
            });
        })?;
        Ok(files)
    }
}

fn norm(p: &str) -> Result<String> {
    path::normalize(p).map_err(|e| NamenodeError::InvalidPath(e.path, e.reason.to_string()))
}

fn file_ref<'a>(inode: &'a Inode, p: &str) -> Result<&'a super::namespace::FileData> {
    inode
        .file
        .as_ref()
        .ok_or_else(|| NamenodeError::IsADirectory(p.to_string()))
}

fn file_mut<'a>(inode: &'a mut Inode, p: &str) -> Result<&'a mut super::namespace::FileData> {
    inode
        .file
        .as_mut()
        .ok_or_else(|| NamenodeError::IsADirectory(p.to_string()))
}

/// The file's last block if it is `id` and still being written, with its offset.
fn last_block(f: &super::namespace::FileData, id: u64, p: &str) -> Result<(u64, StoredBlock)> {
    match f.blocks.last() {
        Some(b) if b.id == id && !b.complete => {
            let offset = f.blocks[..f.blocks.len() - 1].iter().map(|b| b.len).sum();
            Ok((offset, *b))
        }
        _ => Err(NamenodeError::InvalidOperation(format!(
            "{p}: block {id} is not the block being written"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::namenode::store::{self, NamespaceStore};
    use crate::protocol::{DatanodeAddr, FileKind};
    use std::time::Duration;

    const MB: u64 = 1 << 20;

    fn cfg() -> NamesystemConfig {
        NamesystemConfig {
            blocks: BlockManagerConfig {
                dead_timeout_ms: 1000,
                max_streams: 2,
                pending_timeout_ms: 5000,
                invalidate_batch: 100,
            },
            lease_soft_limit_ms: 500,
            lease_hard_limit_ms: 2000,
            recovery_retry_ms: 1000,
            safemode_threshold: 1.0,
            safemode_extension_ms: 0,
        }
    }

    fn at(ms: u64) -> Now {
        Now {
            mono_ms: ms,
            wall_ms: 1_700_000_000_000 + ms,
        }
    }

    fn open(dir: &std::path::Path, fresh: bool) -> Namesystem {
        if fresh {
            store::create_empty(dir, false).unwrap();
        }
        let st = NamespaceStore::open(dir, Duration::ZERO, true).unwrap();
        let mut ns = Namespace::load(st).unwrap();
        if fresh {
            ns.init_root("root", "supergroup", 0).unwrap();
        }
        let topo = Topology::parse("127.0.0.2 /r1\n127.0.0.3 /r1\n127.0.0.4 /r2\n", "t").unwrap();
        Namesystem::load(ns, cfg(), topo, at(0)).unwrap()
    }

    fn dn(i: u8) -> DatanodeAddr {
        DatanodeAddr {
            uuid: format!("dn{i}"),
            host: IpAddr::from([127, 0, 0, i]),
            rpc_port: 1,
            data_port: 2,
        }
    }

    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));

    fn call(sys: &mut Namesystem, req: NamenodeRequest, now: u64) -> NamenodeResponse {
        sys.handle(req, at(now), CLIENT)
    }

    fn register_all(sys: &mut Namesystem, now: u64) {
        for i in 2..=4 {
            call(
                sys,
                NamenodeRequest::RegisterDatanode {
                    addr: dn(i),
                    capacity: 100 * MB,
                    used: 0,
                    remaining: 100 * MB,
                },
                now,
            )
            .unwrap();
        }
    }

    fn heartbeat(sys: &mut Namesystem, i: u8, now: u64) -> Vec<DatanodeCommand> {
        match call(
            sys,
            NamenodeRequest::Heartbeat {
                uuid: format!("dn{i}"),
                capacity: 100 * MB,
                used: 0,
                remaining: 100 * MB,
                active_transfers: 0,
                last_error: None,
            },
            now,
        ) {
            Ok(NamenodeReply::Commands(c)) => c,
            other => panic!("{other:?}"),
        }
    }

    fn create(
        sys: &mut Namesystem,
        path: &str,
        client: &str,
        host: Option<IpAddr>,
        now: u64,
    ) -> NamenodeResponse {
        call(
            sys,
            NamenodeRequest::Create {
                path: path.into(),
                overwrite: false,
                replication: 3,
                block_size: MB,
                client: client.into(),
                client_host: host,
                owner: "u".into(),
                mode: 0o644,
            },
            now,
        )
    }

    fn add_block(
        sys: &mut Namesystem,
        path: &str,
        client: &str,
        prev: Option<ExtendedBlock>,
        now: u64,
    ) -> LocatedBlock {
        match call(
            sys,
            NamenodeRequest::AddBlock {
                path: path.into(),
                client: client.into(),
                previous: prev,
                excluded: vec![],
            },
            now,
        ) {
            Ok(NamenodeReply::Block(b)) => b,
            other => panic!("{other:?}"),
        }
    }

    /// Writes a one-block file of `len` bytes the way a client and ideal DataNodes would.
    fn write_file(sys: &mut Namesystem, path: &str, len: u64, now: u64) -> ExtendedBlock {
        create(sys, path, "c1", Some(IpAddr::from([127, 0, 0, 3])), now).unwrap();
        let lb = add_block(sys, path, "c1", None, now);
        let done = ExtendedBlock { len, ..lb.block };
        for loc in &lb.locations {
            call(
                sys,
                NamenodeRequest::IncrementalBlockReport {
                    uuid: loc.uuid.clone(),
                    received: vec![done],
                    deleted: vec![],
                },
                now,
            )
            .unwrap();
        }
        let r = call(
            sys,
            NamenodeRequest::Complete {
                path: path.into(),
                client: "c1".into(),
                last: Some(done),
            },
            now,
        );
        assert!(matches!(r, Ok(NamenodeReply::Completed(true))), "{r:?}");
        done
    }

    #[test]
    fn write_read_and_complete_waits_for_a_replica() {
        let d = tempfile::tempdir().unwrap();
        let mut sys = open(d.path(), true);
        assert!(
            !sys.in_safe_mode(),
            "an empty namespace starts out of safe mode"
        );
        register_all(&mut sys, 1);
        call(
            &mut sys,
            NamenodeRequest::Mkdirs {
                path: "/d".into(),
                parents: false,
                mode: 0o755,
                owner: "u".into(),
            },
            1,
        )
        .unwrap();
        create(
            &mut sys,
            "/d/f",
            "c1",
            Some(IpAddr::from([127, 0, 0, 3])),
            1,
        )
        .unwrap();
        // Another client cannot write the file.
        let e = call(
            &mut sys,
            NamenodeRequest::AddBlock {
                path: "/d/f".into(),
                client: "c2".into(),
                previous: None,
                excluded: vec![],
            },
            1,
        );
        assert_eq!(e.unwrap_err(), NamenodeError::NoLease("/d/f".into()));
        let lb = add_block(&mut sys, "/d/f", "c1", None, 1);
        assert_eq!(lb.locations.len(), 3);
        assert_eq!(lb.locations[0].uuid, "dn3", "writer-local first");
        // A retried AddBlock returns the same block.
        assert_eq!(
            add_block(&mut sys, "/d/f", "c1", None, 1).block.id,
            lb.block.id
        );
        let last = ExtendedBlock {
            len: 700,
            ..lb.block
        };
        let r = call(
            &mut sys,
            NamenodeRequest::Complete {
                path: "/d/f".into(),
                client: "c1".into(),
                last: Some(last),
            },
            2,
        );
        assert!(
            matches!(r, Ok(NamenodeReply::Completed(false))),
            "no replica reported yet: {r:?}"
        );
        call(
            &mut sys,
            NamenodeRequest::IncrementalBlockReport {
                uuid: "dn3".into(),
                received: vec![last],
                deleted: vec![],
            },
            2,
        )
        .unwrap();
        let r = call(
            &mut sys,
            NamenodeRequest::Complete {
                path: "/d/f".into(),
                client: "c1".into(),
                last: Some(last),
            },
            3,
        );
        assert!(matches!(r, Ok(NamenodeReply::Completed(true))), "{r:?}");
        // Retrying after success still says true.
        let r = call(
            &mut sys,
            NamenodeRequest::Complete {
                path: "/d/f".into(),
                client: "c1".into(),
                last: Some(last),
            },
            3,
        );
        assert!(matches!(r, Ok(NamenodeReply::Completed(true))), "{r:?}");
        let Ok(NamenodeReply::FileInfo(Some(st))) = call(
            &mut sys,
            NamenodeRequest::GetFileInfo {
                path: "/d/f".into(),
            },
            3,
        ) else {
            panic!()
        };
        assert_eq!((st.kind, st.len, st.replication), (FileKind::File, 700, 3));
        // Reads: the client's own host first; corrupt replicas listed apart.
        call(
            &mut sys,
            NamenodeRequest::IncrementalBlockReport {
                uuid: "dn2".into(),
                received: vec![last],
                deleted: vec![],
            },
            3,
        )
        .unwrap();
        call(
            &mut sys,
            NamenodeRequest::IncrementalBlockReport {
                uuid: "dn4".into(),
                received: vec![last],
                deleted: vec![],
            },
            3,
        )
        .unwrap();
        call(
            &mut sys,
            NamenodeRequest::ReportBadBlock {
                block: last,
                datanode_uuid: "dn2".into(),
            },
            3,
        )
        .unwrap();
        let req = NamenodeRequest::GetBlockLocations {
            path: "/d/f".into(),
            offset: 0,
            len: 10,
            client_host: Some(IpAddr::from([127, 0, 0, 4])),
        };
        let Ok(NamenodeReply::Locations(locs)) = call(&mut sys, req, 3) else {
            panic!()
        };
        assert_eq!(locs.file_len, 700);
        let b = &locs.blocks[0];
        assert_eq!(
            b.locations
                .iter()
                .map(|a| a.uuid.as_str())
                .collect::<Vec<_>>(),
            vec!["dn4", "dn3"]
        );
        assert_eq!(b.corrupt_locations[0].uuid, "dn2");
        let Ok(NamenodeReply::Fsck(files)) =
            call(&mut sys, NamenodeRequest::Fsck { path: "/".into() }, 3)
        else {
            panic!()
        };
        assert_eq!(files.len(), 1);
        assert_eq!(
            files[0].blocks[0].health,
            BlockHealth::Corrupt {
                live: 2,
                corrupt: 1
            }
        );
    }

    #[test]
    fn restart_enters_safe_mode_until_blocks_are_reported() {
        let d = tempfile::tempdir().unwrap();
        let blk = {
            let mut sys = open(d.path(), true);
            register_all(&mut sys, 1);
            write_file(&mut sys, "/f", 100, 1)
        };
        let mut sys = open(d.path(), false);
        assert!(sys.in_safe_mode());
        let e = call(
            &mut sys,
            NamenodeRequest::Mkdirs {
                path: "/x".into(),
                parents: true,
                mode: 0o755,
                owner: "u".into(),
            },
            1,
        );
        assert!(matches!(e, Err(NamenodeError::SafeMode(_))), "{e:?}");
        // Reads work in safe mode.
        assert!(call(
            &mut sys,
            NamenodeRequest::ListStatus { path: "/".into() },
            1
        )
        .is_ok());
        // Unknown DataNode heartbeats are told to re-register.
        assert_eq!(heartbeat(&mut sys, 2, 1), vec![DatanodeCommand::Reregister]);
        register_all(&mut sys, 2);
        sys.tick(at(3));
        assert!(sys.in_safe_mode());
        // A replica the namespace does not know: its deletion waits for the end of safe mode.
        let orphan = ExtendedBlock {
            id: 77,
            gen: 1,
            len: 1,
        };
        let report = NamenodeRequest::BlockReport {
            uuid: "dn3".into(),
            blocks: vec![orphan],
        };
        call(&mut sys, report, 3).unwrap();
        assert!(heartbeat(&mut sys, 3, 3).is_empty());
        call(
            &mut sys,
            NamenodeRequest::BlockReport {
                uuid: "dn2".into(),
                blocks: vec![blk],
            },
            4,
        )
        .unwrap();
        assert!(!sys.in_safe_mode(), "threshold reached with zero extension");
        let cmds = heartbeat(&mut sys, 3, 5);
        assert_eq!(cmds, vec![DatanodeCommand::Invalidate { blocks: vec![77] }]);
        // Manual safe mode holds until leave.
        let r = call(
            &mut sys,
            NamenodeRequest::SafeMode {
                action: SafeModeAction::Enter,
            },
            5,
        )
        .unwrap();
        assert!(matches!(r, NamenodeReply::SafeMode(true)));
        sys.tick(at(6));
        assert!(sys.in_safe_mode());
        call(
            &mut sys,
            NamenodeRequest::SafeMode {
                action: SafeModeAction::Leave,
            },
            7,
        )
        .unwrap();
        assert!(!sys.in_safe_mode());
    }

    #[test]
    fn expired_lease_triggers_block_recovery_and_commit_closes_the_file() {
        let d = tempfile::tempdir().unwrap();
        let mut sys = open(d.path(), true);
        register_all(&mut sys, 1);
        create(&mut sys, "/w", "dying", None, 1).unwrap();
        let lb = add_block(&mut sys, "/w", "dying", None, 1);
        // Keep the DataNodes alive, let the writer's lease pass the soft limit: another writer
        // is refused but recovery starts.
        for i in 2..=4 {
            heartbeat(&mut sys, i, 600);
        }
        let e = create(&mut sys, "/w", "other", None, 600).unwrap_err();
        assert!(matches!(e, NamenodeError::LeaseConflict { .. }), "{e:?}");
        let mut recover = None;
        for i in 2..=4 {
            for c in heartbeat(&mut sys, i, 700) {
                if let DatanodeCommand::RecoverBlock {
                    block,
                    new_gen,
                    replicas,
                } = c
                {
                    recover = Some((format!("dn{i}"), block, new_gen, replicas));
                }
            }
        }
        let (_primary, block, new_gen, replicas) = recover.expect("a RecoverBlock command");
        assert_eq!(block.id, lb.block.id);
        assert!(new_gen > lb.block.gen);
        assert_eq!(replicas.len(), 3);
        // The old writer lost its lease.
        let e = call(
            &mut sys,
            NamenodeRequest::Complete {
                path: "/w".into(),
                client: "dying".into(),
                last: None,
            },
            710,
        );
        assert!(matches!(e, Err(NamenodeError::NoLease(_))), "{e:?}");
        let nodes: Vec<String> = replicas.iter().map(|r| r.uuid.clone()).collect();
        call(
            &mut sys,
            NamenodeRequest::CommitBlockSynchronization {
                block,
                new_gen,
                new_len: 4242,
                nodes,
            },
            720,
        )
        .unwrap();
        let Ok(NamenodeReply::FileInfo(Some(st))) = call(
            &mut sys,
            NamenodeRequest::GetFileInfo { path: "/w".into() },
            720,
        ) else {
            panic!()
        };
        assert_eq!(st.len, 4242);
        assert_eq!(sys.blocks().live_replicas(block.id), 3);
        // Closed: the new writer may overwrite it now.
        let r = call(
            &mut sys,
            NamenodeRequest::Create {
                path: "/w".into(),
                overwrite: true,
                replication: 1,
                block_size: MB,
                client: "other".into(),
                client_host: None,
                owner: "u".into(),
                mode: 0o644,
            },
            730,
        );
        assert!(r.is_ok(), "{r:?}");
    }

    #[test]
    fn hard_limit_recovers_by_itself_and_empty_files_close_at_once() {
        let d = tempfile::tempdir().unwrap();
        let mut sys = open(d.path(), true);
        register_all(&mut sys, 1);
        create(&mut sys, "/empty", "gone", None, 1).unwrap();
        create(&mut sys, "/one", "gone", None, 1).unwrap();
        add_block(&mut sys, "/one", "gone", None, 1);
        for i in 2..=4 {
            heartbeat(&mut sys, i, 1900);
        }
        sys.tick(at(1900));
        let mut cmds: Vec<DatanodeCommand> =
            (2..=4).flat_map(|i| heartbeat(&mut sys, i, 1950)).collect();
        assert!(cmds.is_empty(), "{cmds:?}");
        sys.tick(at(2100));
        cmds = (2..=4).flat_map(|i| heartbeat(&mut sys, i, 2150)).collect();
        assert_eq!(
            cmds.iter()
                .filter(|c| matches!(c, DatanodeCommand::RecoverBlock { .. }))
                .count(),
            1
        );
        let Ok(NamenodeReply::Fsck(files)) =
            call(&mut sys, NamenodeRequest::Fsck { path: "/".into() }, 2200)
        else {
            panic!()
        };
        let open: Vec<(&str, bool)> = files
            .iter()
            .map(|f| (f.path.as_str(), f.open_for_write))
            .collect();
        assert_eq!(open, vec![("/empty", false), ("/one", true)]);
        // No commit arrives: the recovery is retried with a newer generation stamp.
        for i in 2..=4 {
            heartbeat(&mut sys, i, 3000);
        }
        sys.tick(at(3200));
        let again: Vec<DatanodeCommand> =
            (2..=4).flat_map(|i| heartbeat(&mut sys, i, 3250)).collect();
        assert_eq!(
            again
                .iter()
                .filter(|c| matches!(c, DatanodeCommand::RecoverBlock { .. }))
                .count(),
            1
        );
    }

    #[test]
    fn dead_datanode_blocks_are_re_replicated_through_heartbeats() {
        let d = tempfile::tempdir().unwrap();
        let mut sys = open(d.path(), true);
        register_all(&mut sys, 1);
        call(
            &mut sys,
            NamenodeRequest::RegisterDatanode {
                addr: dn(5),
                capacity: 100 * MB,
                used: 0,
                remaining: 100 * MB,
            },
            1,
        )
        .unwrap();
        let blk = write_file(&mut sys, "/f", 10, 1);
        let holders: Vec<String> = sys
            .blocks()
            .block(blk.id)
            .unwrap()
            .replicas
            .keys()
            .cloned()
            .collect();
        let victim = holders[0].clone();
        let survivors: Vec<u8> = (2..=5).filter(|i| format!("dn{i}") != victim).collect();
        for i in &survivors {
            heartbeat(&mut sys, *i, 1500);
        }
        sys.tick(at(1500));
        assert_eq!(sys.blocks().live_replicas(blk.id), 2);
        sys.replication_pass(at(1500));
        let mut copies = 0;
        for i in &survivors {
            for c in heartbeat(&mut sys, *i, 1600) {
                if let DatanodeCommand::Replicate { block, targets } = c {
                    copies += targets.len();
                    assert!(targets
                        .iter()
                        .all(|t| t.uuid != victim && !holders[1..].contains(&t.uuid)));
                    for t in targets {
                        call(
                            &mut sys,
                            NamenodeRequest::IncrementalBlockReport {
                                uuid: t.uuid,
                                received: vec![block],
                                deleted: vec![],
                            },
                            1600,
                        )
                        .unwrap();
                    }
                }
            }
        }
        assert_eq!(copies, 1);
        assert_eq!(sys.blocks().live_replicas(blk.id), 3);
        // Deleting the file invalidates every replica.
        call(
            &mut sys,
            NamenodeRequest::Delete {
                path: "/f".into(),
                recursive: false,
            },
            1700,
        )
        .unwrap();
        let inval = survivors
            .iter()
            .flat_map(|i| heartbeat(&mut sys, *i, 1700))
            .filter(|c| matches!(c, DatanodeCommand::Invalidate { .. }))
            .count();
        assert_eq!(inval, 3);
    }
}
