//! The NameNode's decisions in one place: the namespace plus the block manager, leases, lease
//! recovery and safe mode, driven by requests and monitor ticks. No networking here: the daemon
//! calls [`Namesystem::handle`] under one lock (like Hadoop's FSNamesystem lock) and replies once
//! the store says the changes are durable.
//!
//! [`Namesystem::handle`] dispatches the two protocols the NameNode speaks:
//! - [`ClientRequest`](crate::protocol::ClientRequest)s in `client` (namespace, reads, administration), whose write path
//!   (create, add block, pipeline updates, complete) is in `write`;
//! - [`DatanodeProtocolRequest`](crate::protocol::DatanodeProtocolRequest)s in `datanodes` (registration, heartbeats, reports).
//!
//! Lease recovery (expired writers, `CommitBlockSynchronization`) is in `recovery`, `fsck` in
//! `fsck`, the trash emptier in `trash`.

mod client;
mod datanodes;
mod fsck;
mod recovery;
mod trash;
mod write;

#[cfg(test)]
mod tests;

use super::block_manager::{BlockManager, BlockManagerConfig};
use super::leases::LeaseManager;
use super::namespace::{FileData, Inode, Namespace, Removed};
use super::permissions::Caller;
use super::safe_mode::SafeMode;
use super::topology::Topology;
use crate::config::NamenodeConfig;
use crate::path;
use crate::protocol::{ExtendedBlock, NamenodeError, NamenodeRequest, NamenodeResponse};
use recovery::Recovery;
use sheaf_rpc::{Identity, Role};
use std::collections::HashMap;
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
    /// How long deleted paths stay in the trash (`[dfs] trash-interval-ms`; 0: no emptier).
    pub trash_interval_ms: u64,
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
            trash_interval_ms: 0,
        }
    }
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

    /// Handles one request; `peer` is the caller's address (default for the client host) and
    /// `identity` who its certificate names: client requests are checked against it, and only
    /// a daemon certificate may speak the DataNode protocol.
    pub fn handle(
        &mut self,
        req: NamenodeRequest,
        now: Now,
        peer: IpAddr,
        identity: &Identity,
    ) -> NamenodeResponse {
        match req {
            NamenodeRequest::Client(req) => {
                let caller = Caller {
                    user: identity.name.clone(),
                    groups: identity.groups.clone(),
                    superuser: identity.is_superuser(),
                };
                self.handle_client(req, now, peer, &caller)
            }
            NamenodeRequest::Datanode(_) if identity.role != Role::Daemon => {
                Err(NamenodeError::PermissionDenied(format!(
                    "{identity} holds a user certificate and cannot act as a DataNode (register, heartbeat or report blocks); DataNodes run with the cluster's daemon certificate"
                )))
            }
            NamenodeRequest::Datanode(req) => self.handle_datanode(req, now),
        }
    }

    /// Monitor duties: dead DataNodes, safe mode exit, lease expiry and recovery retries.
    pub fn tick(&mut self, now: Now) {
        for dead in self.bm.check_liveness(now.mono_ms) {
            tracing::warn!(datanode = %dead, "DataNode declared dead; its replicas will be re-created");
        }
        if self.safe_mode.is_on() {
            self.check_safe_mode(now);
            return;
        }
        self.recover_expired_leases(now);
    }

    /// One replication monitor pass (nothing is scheduled in safe mode).
    pub fn replication_pass(&mut self, now: Now) {
        if !self.safe_mode.is_on() {
            self.bm.compute_replication_work(now.mono_ms);
        }
    }

    fn require_writable(&self) -> Result<()> {
        if self.safe_mode.is_on() {
            let (total, safe) = self.bm.safe_block_counts();
            return Err(NamenodeError::SafeMode(self.safe_mode.reason(total, safe)));
        }
        Ok(())
    }

    fn check_safe_mode(&mut self, now: Now) {
        if self.safe_mode.is_on() {
            let (total, safe) = self.bm.safe_block_counts();
            if self.safe_mode.check(total, safe, now.mono_ms) {
                tracing::info!(total, safe, "leaving safe mode");
            }
        }
    }

    /// Drops the blocks and leases of deleted or overwritten files.
    fn forget_removed(&mut self, removed: &Removed) {
        for id in &removed.blocks {
            self.bm.remove_block(*id);
        }
        for (inode, client) in &removed.open_files {
            self.leases.remove(client, *inode);
            self.recovering.remove(inode);
        }
    }
}

fn norm(p: &str) -> Result<String> {
    path::normalize(p).map_err(|e| NamenodeError::InvalidPath(e.path, e.reason.to_string()))
}

fn file_ref<'a>(inode: &'a Inode, p: &str) -> Result<&'a FileData> {
    inode
        .file
        .as_ref()
        .ok_or_else(|| NamenodeError::IsADirectory(p.to_string()))
}

fn file_mut<'a>(inode: &'a mut Inode, p: &str) -> Result<&'a mut FileData> {
    inode
        .file
        .as_mut()
        .ok_or_else(|| NamenodeError::IsADirectory(p.to_string()))
}
