//! The write path of the client protocol: create a file under a lease, allocate its blocks,
//! recover its pipeline, abandon a block and complete the file.

use super::{file_mut, file_ref, norm, Namesystem, Now, Result, RECOVERY_HOLDER};
use crate::namenode::namespace::{FileData, Inode, NewFile, StoredBlock};
use crate::protocol::{
    ExtendedBlock, LocatedBlock, NamenodeError, NamenodeReply, NamenodeResponse, NoPlacement,
};
use std::collections::HashSet;

/// Which request reported the file's last block (the wording of a mismatch).
#[derive(Debug, Clone, Copy)]
enum Reported {
    /// `AddBlock`'s `previous`.
    Previous,
    /// `Complete`'s `last`.
    Last,
}

impl Reported {
    fn name(self) -> &'static str {
        match self {
            Reported::Previous => "previous block",
            Reported::Last => "last block",
        }
    }
}

impl Namesystem {
    /// Creates `path` open for write under `file.client`'s lease. A file held by a writer past
    /// its soft limit is refused but its lease recovery starts, so a retry can succeed.
    pub(super) fn create(&mut self, path: &str, file: NewFile, now: Now) -> NamenodeResponse {
        let p = norm(path)?;
        let client = file.client.clone();
        self.leases.renew(&client, now.mono_ms);
        match self.ns.create(&p, &file, now.wall_ms) {
            Ok((inode, removed)) => {
                self.forget_removed(&removed);
                self.leases.add(&client, inode.id, now.mono_ms);
                Ok(NamenodeReply::Created(inode.status(&p)))
            }
            Err(NamenodeError::LeaseConflict { path, holder }) => {
                if holder != client
                    && holder != RECOVERY_HOLDER
                    && self
                        .leases
                        .expired(&holder, now.mono_ms, self.cfg.lease_soft_limit_ms)
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

    /// Commits the next block of a file being written and allocates a new one.
    pub(super) fn add_block(
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
        commit_last_block(f, previous, Reported::Previous, &p)?;
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
            return Err(NamenodeError::NoDatanodes(NoPlacement {
                block_size,
                live: self.bm.live_count() as u64,
                excluded: excluded.len() as u64,
            }));
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

    /// Drops the file's last block if it is `block` and still being written (no DataNode took it).
    pub(super) fn abandon_block(
        &mut self,
        path: &str,
        client: &str,
        block: ExtendedBlock,
        now: Now,
    ) -> NamenodeResponse {
        let (p, mut inode) = self.file_for_write(path, client, now)?;
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
        Ok(NamenodeReply::Done)
    }

    /// Pipeline recovery, step 1: a new generation stamp for the block being written.
    pub(super) fn update_block_for_pipeline(
        &mut self,
        path: &str,
        client: &str,
        block: ExtendedBlock,
        now: Now,
    ) -> NamenodeResponse {
        let (p, inode) = self.file_for_write(path, client, now)?;
        let f = file_ref(&inode, &p)?;
        let (offset, last) = block_being_written(f, block.id, &p)?;
        let gen = self.ns.next_gen_stamp();
        self.ns.persist_counters()?;
        let targets = f
            .under_construction
            .as_ref()
            .map(|u| u.targets.clone())
            .unwrap_or_default();
        Ok(NamenodeReply::Block(LocatedBlock {
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

    /// Pipeline recovery, step 2: the surviving `nodes` hold the block at its new generation.
    pub(super) fn update_pipeline(
        &mut self,
        path: &str,
        client: &str,
        old: ExtendedBlock,
        new: ExtendedBlock,
        nodes: Vec<String>,
        now: Now,
    ) -> NamenodeResponse {
        let (p, mut inode) = self.file_for_write(path, client, now)?;
        let f = file_mut(&mut inode, &p)?;
        let (_, last) = block_being_written(f, old.id, &p)?;
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
        Ok(NamenodeReply::Done)
    }

    /// Closes a file once its last block (`last`, with its final length) has a replica.
    pub(super) fn complete(
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
        let f = file_ref(&inode, &p)?;
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
        commit_last_block(f, last, Reported::Last, &p)?;
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
}

/// Commits the writer's view of the file's last block: `reported` (with its final generation
/// and length) must be the file's last block, or absent when the file has no block or its last
/// block is already committed.
fn commit_last_block(
    f: &mut FileData,
    reported: Option<ExtendedBlock>,
    what: Reported,
    p: &str,
) -> Result<()> {
    match (f.blocks.last_mut(), reported) {
        (None, None) => Ok(()),
        (Some(last), Some(r)) if last.id == r.id => {
            last.gen = r.gen;
            last.len = r.len;
            last.complete = true;
            Ok(())
        }
        (Some(last), None) if last.complete => Ok(()),
        (last, r) => Err(NamenodeError::InvalidOperation(format!(
            "{p}: {} {:?} does not match the file's last block {:?}",
            what.name(),
            r.map(|b| b.id),
            last.map(|b| b.id)
        ))),
    }
}

/// The file's last block if it is `id` and still being written, with its offset.
fn block_being_written(f: &FileData, id: u64, p: &str) -> Result<(u64, StoredBlock)> {
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
