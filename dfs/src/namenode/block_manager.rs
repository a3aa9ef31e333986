//! The block manager: which DataNodes hold which replica, DataNode liveness, and the
//! replication monitor. Sans-I/O: events (registration, heartbeat, block reports, corrupt
//! reports, namespace changes) come in as method calls with the current time in ms, and the
//! work for DataNodes comes out as queued [`DatanodeCommand`]s handed over in heartbeat replies.
//!
//! The block → locations map lives only in memory: after a restart it is rebuilt from the
//! DataNodes' block reports (the namespace supplies the list of blocks and their targets).

use super::placement::{BlockPlacement, Candidate, PlacementRequest};
use super::topology::Topology;
use crate::protocol::{
    BlockHealth, BlockId, DatanodeAddr, DatanodeCommand, DatanodeReport, DatanodeState,
    ExtendedBlock, FsStats,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

/// Tunables of the block manager.
#[derive(Debug, Clone)]
pub struct BlockManagerConfig {
    /// A DataNode silent this long is dead.
    pub dead_timeout_ms: u64,
    /// Most replication copies one DataNode sources or receives at a time.
    pub max_streams: u32,
    /// A scheduled copy not reported within this time is forgotten and scheduled again.
    pub pending_timeout_ms: u64,
    /// Most blocks per `Invalidate` command.
    pub invalidate_batch: usize,
}

impl Default for BlockManagerConfig {
    fn default() -> Self {
        BlockManagerConfig {
            dead_timeout_ms: 630_000,
            max_streams: 2,
            pending_timeout_ms: 300_000,
            invalidate_batch: 1000,
        }
    }
}

/// What the NameNode knows about one DataNode.
#[derive(Debug, Clone)]
pub struct DatanodeDescriptor {
    /// Where it is.
    pub addr: DatanodeAddr,
    /// Its rack.
    pub rack: String,
    /// Raw capacity.
    pub capacity: u64,
    /// Bytes used by blocks.
    pub used: u64,
    /// Bytes available.
    pub remaining: u64,
    /// Time of its last heartbeat (ms, the block manager's clock).
    pub last_heartbeat_ms: u64,
    /// Last error it reported.
    pub last_error: Option<String>,
    /// False once silent past the dead timeout (until it registers again).
    pub alive: bool,
    /// Blocks it holds (good or corrupt) as far as the map knows.
    pub blocks: HashSet<BlockId>,
    /// Commands waiting for its next heartbeat.
    commands: Vec<DatanodeCommand>,
    /// Replicas to delete at its next heartbeat.
    invalidate: BTreeSet<BlockId>,
}

/// A replica as reported by its DataNode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaInfo {
    /// Generation stamp it reported.
    pub gen: u64,
    /// Length it reported.
    pub len: u64,
}

/// What the NameNode knows about one block.
#[derive(Debug, Clone)]
pub struct BlockRecord {
    /// Current generation stamp.
    pub gen: u64,
    /// Length (final once complete).
    pub len: u64,
    /// Target replication (of its file).
    pub replication: u16,
    /// True once its writer committed the final length.
    pub complete: bool,
    /// Good replicas on live DataNodes.
    pub replicas: BTreeMap<String, ReplicaInfo>,
    /// DataNodes holding a corrupt or stale replica.
    pub corrupt: BTreeSet<String>,
    /// Pipeline nodes of a block being written (lease recovery asks them).
    pub expected: Vec<String>,
}

impl BlockRecord {
    fn extended(&self, id: BlockId) -> ExtendedBlock {
        ExtendedBlock {
            id,
            gen: self.gen,
            len: self.len,
        }
    }
}

/// A copy scheduled by the replication monitor and not yet reported by its target.
#[derive(Debug, Clone)]
struct PendingCopy {
    source: String,
    target: String,
    issued_ms: u64,
}

/// Replica locations, DataNode descriptors and the replication monitor.
pub struct BlockManager {
    cfg: BlockManagerConfig,
    topology: Topology,
    nodes: BTreeMap<String, DatanodeDescriptor>,
    blocks: BTreeMap<BlockId, BlockRecord>,
    pending: HashMap<BlockId, Vec<PendingCopy>>,
    /// Replicas queued or sent for deletion: reports of them are ignored until they go.
    invalidating: HashSet<(BlockId, String)>,
    /// In safe mode deletions wait (like Hadoop's postponed invalidations): a namespace that is
    /// not fully trusted yet must not make DataNodes delete data.
    invalidations_held: bool,
    rng: StdRng,
}

impl BlockManager {
    /// An empty block manager; `seed` fixes the placement randomness (tests).
    pub fn new(cfg: BlockManagerConfig, topology: Topology, seed: u64) -> BlockManager {
        BlockManager {
            cfg,
            topology,
            nodes: BTreeMap::new(),
            blocks: BTreeMap::new(),
            pending: HashMap::new(),
            invalidating: HashSet::new(),
            invalidations_held: false,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Holds (`true`) or releases queued `Invalidate` commands (safe mode).
    pub fn hold_invalidations(&mut self, held: bool) {
        self.invalidations_held = held;
    }

    /// The rack of a host.
    pub fn rack_of(&self, host: IpAddr) -> &str {
        self.topology.rack_of(host)
    }

    // ---------------------------------------------------------------- namespace events

    /// A block of the namespace (at startup, or a new block of a file being written).
    pub fn add_block(
        &mut self,
        block: ExtendedBlock,
        replication: u16,
        complete: bool,
        expected: Vec<String>,
    ) {
        let rec = self.blocks.entry(block.id).or_insert_with(|| BlockRecord {
            gen: block.gen,
            len: block.len,
            replication,
            complete,
            replicas: BTreeMap::new(),
            corrupt: BTreeSet::new(),
            expected: Vec::new(),
        });
        rec.gen = block.gen;
        rec.len = block.len;
        rec.replication = replication;
        rec.complete = complete;
        rec.expected = expected;
    }

    /// The writer committed `block`'s final generation stamp and length (or moved it to a new
    /// generation stamp in pipeline recovery, `complete = false`). Replicas reported with a
    /// different stamp or length are now stale.
    pub fn update_block(
        &mut self,
        block: ExtendedBlock,
        complete: bool,
        expected: Option<Vec<String>>,
    ) {
        let Some(rec) = self.blocks.get_mut(&block.id) else {
            return;
        };
        rec.gen = block.gen;
        rec.len = block.len;
        rec.complete = complete;
        if let Some(e) = expected {
            rec.expected = e;
        }
        let stale: Vec<String> = rec
            .replicas
            .iter()
            .filter(|(_, r)| {
                r.gen < block.gen || (complete && (r.gen != block.gen || r.len != block.len))
            })
            .map(|(u, _)| u.clone())
            .collect();
        for u in stale {
            rec.replicas.remove(&u);
            rec.corrupt.insert(u);
        }
    }

    /// Lease recovery finished: the block is final at `block` on exactly `nodes`.
    pub fn commit_recovered(&mut self, block: ExtendedBlock, nodes: &[String]) {
        let Some(rec) = self.blocks.get_mut(&block.id) else {
            return;
        };
        rec.gen = block.gen;
        rec.len = block.len;
        rec.complete = true;
        let old: Vec<String> = rec.replicas.keys().cloned().collect();
        rec.replicas.clear();
        for u in old {
            if !nodes.contains(&u) {
                rec.corrupt.insert(u);
            }
        }
        for u in nodes {
            if let Some(n) = self.nodes.get_mut(u).filter(|n| n.alive) {
                rec.corrupt.remove(u);
                rec.replicas.insert(
                    u.clone(),
                    ReplicaInfo {
                        gen: block.gen,
                        len: block.len,
                    },
                );
                n.blocks.insert(block.id);
            }
        }
    }

    /// A block left the namespace (file deleted/overwritten, block abandoned): every replica
    /// is invalidated.
    pub fn remove_block(&mut self, id: BlockId) {
        let Some(rec) = self.blocks.remove(&id) else {
            return;
        };
        self.pending.remove(&id);
        for u in rec.replicas.keys().chain(rec.corrupt.iter()) {
            if let Some(n) = self.nodes.get_mut(u) {
                n.blocks.remove(&id);
                if n.alive {
                    n.invalidate.insert(id);
                    self.invalidating.insert((id, u.clone()));
                }
            }
        }
    }

    /// The file of `id` changed its target replication.
    pub fn set_replication(&mut self, id: BlockId, replication: u16) {
        if let Some(rec) = self.blocks.get_mut(&id) {
            rec.replication = replication;
        }
    }

    // ---------------------------------------------------------------- DataNode events

    /// A DataNode (re-)registered: it starts with no replicas until its block report.
    pub fn register(
        &mut self,
        addr: DatanodeAddr,
        capacity: u64,
        used: u64,
        remaining: u64,
        now: u64,
    ) {
        let rack = self.topology.rack_of(addr.host).to_string();
        self.forget_replicas_of(&addr.uuid);
        let uuid = addr.uuid.clone();
        self.nodes.insert(
            uuid,
            DatanodeDescriptor {
                addr,
                rack,
                capacity,
                used,
                remaining,
                last_heartbeat_ms: now,
                last_error: None,
                alive: true,
                blocks: HashSet::new(),
                commands: Vec::new(),
                invalidate: BTreeSet::new(),
            },
        );
    }

    /// A heartbeat. `None` if the DataNode is unknown or was declared dead: it must re-register.
    /// Otherwise the commands queued for it.
    pub fn heartbeat(
        &mut self,
        uuid: &str,
        capacity: u64,
        used: u64,
        remaining: u64,
        last_error: Option<String>,
        now: u64,
    ) -> Option<Vec<DatanodeCommand>> {
        let batch = if self.invalidations_held {
            0
        } else {
            self.cfg.invalidate_batch
        };
        let n = self.nodes.get_mut(uuid).filter(|n| n.alive)?;
        n.capacity = capacity;
        n.used = used;
        n.remaining = remaining;
        n.last_heartbeat_ms = now;
        if last_error.is_some() || n.last_error.is_some() {
            n.last_error = last_error;
        }
        let mut cmds = std::mem::take(&mut n.commands);
        if batch > 0 && !n.invalidate.is_empty() {
            let ids: Vec<BlockId> = n.invalidate.iter().take(batch).copied().collect();
            for id in &ids {
                n.invalidate.remove(id);
            }
            cmds.push(DatanodeCommand::Invalidate { blocks: ids });
        }
        Some(cmds)
    }

    /// Queues a command for a DataNode's next heartbeat.
    pub fn queue_command(&mut self, uuid: &str, cmd: DatanodeCommand) {
        if let Some(n) = self.nodes.get_mut(uuid) {
            n.commands.push(cmd);
        }
    }

    /// True if `uuid` is a registered, live DataNode.
    pub fn is_live(&self, uuid: &str) -> bool {
        self.nodes.get(uuid).is_some_and(|n| n.alive)
    }

    /// A full block report: the node holds exactly `blocks`. `false` if the node is unknown.
    pub fn block_report(&mut self, uuid: &str, blocks: &[ExtendedBlock]) -> bool {
        let Some(n) = self.nodes.get(uuid).filter(|n| n.alive) else {
            return false;
        };
        let reported: HashSet<BlockId> = blocks.iter().map(|b| b.id).collect();
        let gone: Vec<BlockId> = n
            .blocks
            .iter()
            .filter(|id| !reported.contains(id))
            .copied()
            .collect();
        for id in gone {
            self.replica_deleted(uuid, id);
        }
        self.invalidating
            .retain(|(id, u)| u != uuid || reported.contains(id));
        for b in blocks {
            self.replica_reported(uuid, *b);
        }
        true
    }

    /// An incremental block report. `false` if the node is unknown.
    pub fn incremental_report(
        &mut self,
        uuid: &str,
        received: &[ExtendedBlock],
        deleted: &[BlockId],
    ) -> bool {
        if !self.is_live(uuid) {
            return false;
        }
        for id in deleted {
            self.replica_deleted(uuid, *id);
            self.invalidating.remove(&(*id, uuid.to_string()));
        }
        for b in received {
            self.replica_reported(uuid, *b);
        }
        true
    }

    fn replica_deleted(&mut self, uuid: &str, id: BlockId) {
        if let Some(rec) = self.blocks.get_mut(&id) {
            rec.replicas.remove(uuid);
            rec.corrupt.remove(uuid);
        }
        if let Some(n) = self.nodes.get_mut(uuid) {
            n.blocks.remove(&id);
        }
    }

    fn replica_reported(&mut self, uuid: &str, b: ExtendedBlock) {
        if self.invalidating.contains(&(b.id, uuid.to_string())) {
            return;
        }
        let Some(rec) = self.blocks.get_mut(&b.id) else {
            // Not in the namespace (its file was deleted while the node was away): delete it.
            if let Some(n) = self.nodes.get_mut(uuid) {
                n.invalidate.insert(b.id);
                self.invalidating.insert((b.id, uuid.to_string()));
            }
            return;
        };
        let Some(n) = self.nodes.get_mut(uuid) else {
            return;
        };
        n.blocks.insert(b.id);
        if let Some(p) = self.pending.get_mut(&b.id) {
            p.retain(|c| c.target != uuid);
        }
        let good = if rec.complete {
            b.gen == rec.gen && b.len == rec.len
        } else {
            b.gen >= rec.gen
        };
        if good && !rec.corrupt.contains(uuid) {
            rec.replicas.insert(
                uuid.to_string(),
                ReplicaInfo {
                    gen: b.gen,
                    len: b.len,
                },
            );
        } else if !good {
            rec.replicas.remove(uuid);
            rec.corrupt.insert(uuid.to_string());
        }
    }

    /// A replica failed its checksum (reported by a client or by its DataNode).
    pub fn mark_corrupt(&mut self, block: ExtendedBlock, uuid: &str) {
        if !self.nodes.contains_key(uuid) {
            return;
        }
        if let Some(rec) = self.blocks.get_mut(&block.id) {
            rec.replicas.remove(uuid);
            rec.corrupt.insert(uuid.to_string());
            if let Some(n) = self.nodes.get_mut(uuid) {
                n.blocks.insert(block.id);
            }
        }
    }

    fn forget_replicas_of(&mut self, uuid: &str) {
        let Some(n) = self.nodes.get_mut(uuid) else {
            return;
        };
        let held: Vec<BlockId> = n.blocks.drain().collect();
        n.commands.clear();
        n.invalidate.clear();
        for id in held {
            if let Some(rec) = self.blocks.get_mut(&id) {
                rec.replicas.remove(uuid);
                rec.corrupt.remove(uuid);
            }
        }
        self.invalidating.retain(|(_, u)| u != uuid);
        for copies in self.pending.values_mut() {
            copies.retain(|c| c.source != uuid && c.target != uuid);
        }
    }

    /// Declares DataNodes silent past the dead timeout dead; returns their uuids. Their
    /// replicas leave the map, so the replication monitor re-creates them elsewhere.
    pub fn check_liveness(&mut self, now: u64) -> Vec<String> {
        let dead: Vec<String> = self
            .nodes
            .values()
            .filter(|n| {
                n.alive && now.saturating_sub(n.last_heartbeat_ms) > self.cfg.dead_timeout_ms
            })
            .map(|n| n.addr.uuid.clone())
            .collect();
        for u in &dead {
            self.forget_replicas_of(u);
            if let Some(n) = self.nodes.get_mut(u) {
                n.alive = false;
            }
        }
        dead
    }

    // ---------------------------------------------------------------- placement

    fn candidates(&self, busy: &HashMap<&str, u32>) -> Vec<Candidate> {
        self.nodes
            .values()
            .filter(|n| n.alive)
            .map(|n| Candidate {
                uuid: n.addr.uuid.clone(),
                host: n.addr.host,
                rack: n.rack.clone(),
                remaining: n.remaining,
                busy: busy
                    .get(n.addr.uuid.as_str())
                    .is_some_and(|c| *c >= self.cfg.max_streams),
            })
            .collect()
    }

    /// Targets for a new block of a file (the write pipeline), in pipeline order.
    pub fn choose_targets_for_new_block(
        &mut self,
        count: usize,
        writer: Option<IpAddr>,
        excluded: &HashSet<String>,
        block_size: u64,
    ) -> Vec<DatanodeAddr> {
        let nodes = self.candidates(&HashMap::new());
        let req = PlacementRequest {
            count,
            writer,
            existing: &[],
            excluded,
            min_remaining: block_size,
        };
        let uuids = BlockPlacement::choose_targets(&nodes, &req, &mut self.rng);
        self.addrs(&uuids)
    }

    /// The addresses of DataNodes by uuid (unknown ones skipped).
    pub fn addrs(&self, uuids: &[String]) -> Vec<DatanodeAddr> {
        uuids
            .iter()
            .filter_map(|u| self.nodes.get(u))
            .map(|n| n.addr.clone())
            .collect()
    }

    // ---------------------------------------------------------------- replication monitor

    /// One pass of the replication monitor: forgets timed-out copies, schedules `Replicate`
    /// for under-replicated blocks (throttled per node) and `Invalidate` for excess and
    /// corrupt replicas, never the last good copy.
    pub fn compute_replication_work(&mut self, now: u64) {
        let timeout = self.cfg.pending_timeout_ms;
        for copies in self.pending.values_mut() {
            copies.retain(|c| now.saturating_sub(c.issued_ms) <= timeout);
        }
        self.pending.retain(|_, c| !c.is_empty());
        let mut load: HashMap<String, u32> = HashMap::new();
        for c in self.pending.values().flatten() {
            *load.entry(c.source.clone()).or_default() += 1;
            *load.entry(c.target.clone()).or_default() += 1;
        }
        let ids: Vec<BlockId> = self.blocks.keys().copied().collect();
        for id in ids {
            self.check_block(id, now, &mut load);
        }
    }

    fn check_block(&mut self, id: BlockId, now: u64, load: &mut HashMap<String, u32>) {
        let Some(rec) = self.blocks.get(&id) else {
            return;
        };
        if !rec.complete {
            return;
        }
        let target = usize::from(rec.replication);
        let live = rec.replicas.len();
        let pending: Vec<String> = self
            .pending
            .get(&id)
            .map(|p| p.iter().map(|c| c.target.clone()).collect())
            .unwrap_or_default();
        if live >= target {
            // Enough good copies: corrupt ones can go, then any excess.
            let corrupt: Vec<String> = rec.corrupt.iter().cloned().collect();
            for u in corrupt {
                self.invalidate(id, &u);
            }
            if live > target {
                self.remove_excess(id, live - target);
            }
            return;
        }
        if live == 0 || live + pending.len() >= target {
            return;
        }
        let need = target - live - pending.len();
        let max = self.cfg.max_streams;
        let mut sources: Vec<String> = rec
            .replicas
            .keys()
            .filter(|u| load.get(u.as_str()).copied().unwrap_or(0) < max)
            .cloned()
            .collect();
        if sources.is_empty() {
            return;
        }
        sources.shuffle(&mut self.rng);
        sources.sort_by_key(|u| load.get(u.as_str()).copied().unwrap_or(0));
        let source = sources[0].clone();
        let existing: Vec<String> = rec.replicas.keys().cloned().collect();
        let excluded: HashSet<String> = rec
            .corrupt
            .iter()
            .cloned()
            .chain(pending.iter().cloned())
            .collect();
        let block = rec.extended(id);
        let has_corrupt = !rec.corrupt.is_empty();
        let busy: HashMap<&str, u32> = load.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let nodes = self.candidates(&busy);
        let req = PlacementRequest {
            count: need,
            writer: None,
            existing: &existing,
            excluded: &excluded,
            min_remaining: block.len,
        };
        let targets = BlockPlacement::choose_targets(&nodes, &req, &mut self.rng);
        if targets.len() < need && has_corrupt {
            // Nowhere else to put a copy: free the nodes holding corrupt copies so they can take one.
            let corrupt: Vec<String> = self
                .blocks
                .get(&id)
                .map(|r| r.corrupt.iter().cloned().collect())
                .unwrap_or_default();
            for u in corrupt {
                self.invalidate(id, &u);
            }
        }
        if targets.is_empty() {
            return;
        }
        *load.entry(source.clone()).or_default() += 1;
        let copies = self.pending.entry(id).or_default();
        for t in &targets {
            *load.entry(t.clone()).or_default() += 1;
            copies.push(PendingCopy {
                source: source.clone(),
                target: t.clone(),
                issued_ms: now,
            });
        }
        let addrs = self.addrs(&targets);
        self.queue_command(
            &source,
            DatanodeCommand::Replicate {
                block,
                targets: addrs,
            },
        );
    }

    /// Queues deletion of the replica of `id` on `uuid` and drops it from the map.
    fn invalidate(&mut self, id: BlockId, uuid: &str) {
        if let Some(rec) = self.blocks.get_mut(&id) {
            rec.replicas.remove(uuid);
            rec.corrupt.remove(uuid);
        }
        if let Some(n) = self.nodes.get_mut(uuid) {
            n.blocks.remove(&id);
            n.invalidate.insert(id);
            self.invalidating.insert((id, uuid.to_string()));
        }
    }

    /// Removes `count` excess replicas, preferring nodes on racks holding several replicas (so
    /// rack spread survives) and, among those, the node with the least space left.
    fn remove_excess(&mut self, id: BlockId, count: usize) {
        for _ in 0..count {
            let Some(rec) = self.blocks.get(&id) else {
                return;
            };
            if rec.replicas.len() <= 1 {
                return;
            }
            let mut per_rack: HashMap<&str, usize> = HashMap::new();
            for u in rec.replicas.keys() {
                if let Some(n) = self.nodes.get(u) {
                    *per_rack.entry(n.rack.as_str()).or_default() += 1;
                }
            }
            let victim = rec
                .replicas
                .keys()
                .filter_map(|u| self.nodes.get(u))
                .min_by_key(|n| {
                    (
                        per_rack.get(n.rack.as_str()).copied().unwrap_or(0) <= 1,
                        n.remaining,
                        n.addr.uuid.clone(),
                    )
                })
                .map(|n| n.addr.uuid.clone());
            let Some(victim) = victim else { return };
            self.invalidate(id, &victim);
        }
    }

    // ---------------------------------------------------------------- queries

    /// The record of a block.
    pub fn block(&self, id: BlockId) -> Option<&BlockRecord> {
        self.blocks.get(&id)
    }

    /// Number of good live replicas of a block.
    pub fn live_replicas(&self, id: BlockId) -> usize {
        self.blocks.get(&id).map_or(0, |r| r.replicas.len())
    }

    /// The descriptor of a DataNode.
    pub fn datanode(&self, uuid: &str) -> Option<&DatanodeDescriptor> {
        self.nodes.get(uuid)
    }

    /// Good replica locations sorted by distance to `client` (same host, same rack, other)
    /// and the corrupt ones. Equal distances are rotated by block id to spread reads.
    pub fn locations(
        &self,
        id: BlockId,
        client: Option<IpAddr>,
    ) -> (Vec<DatanodeAddr>, Vec<DatanodeAddr>) {
        let Some(rec) = self.blocks.get(&id) else {
            return (Vec::new(), Vec::new());
        };
        let mut good: Vec<&DatanodeDescriptor> = rec
            .replicas
            .keys()
            .filter_map(|u| self.nodes.get(u))
            .collect();
        if !good.is_empty() {
            let k = (id % good.len() as u64) as usize;
            good.rotate_left(k);
        }
        if let Some(c) = client {
            let client_rack = self.topology.rack_of(c);
            good.sort_by_key(|n| {
                if n.addr.host == c {
                    0
                } else if n.rack == client_rack {
                    1
                } else {
                    2
                }
            });
        }
        let corrupt = rec
            .corrupt
            .iter()
            .filter_map(|u| self.nodes.get(u))
            .map(|n| n.addr.clone())
            .collect();
        (good.into_iter().map(|n| n.addr.clone()).collect(), corrupt)
    }

    /// Candidate primaries for lease recovery of a block: live holders of a replica, or live
    /// nodes of its pipeline, most recently heard from first.
    pub fn recovery_nodes(&self, id: BlockId) -> Vec<DatanodeAddr> {
        let Some(rec) = self.blocks.get(&id) else {
            return Vec::new();
        };
        let mut uuids: Vec<&String> = rec.replicas.keys().collect();
        for e in &rec.expected {
            if !uuids.contains(&e) {
                uuids.push(e);
            }
        }
        let mut nodes: Vec<&DatanodeDescriptor> = uuids
            .into_iter()
            .filter_map(|u| self.nodes.get(u))
            .filter(|n| n.alive)
            .collect();
        nodes.sort_by_key(|n| std::cmp::Reverse(n.last_heartbeat_ms));
        nodes.into_iter().map(|n| n.addr.clone()).collect()
    }

    /// The health of a block as `fsck` shows it.
    pub fn health(&self, id: BlockId) -> BlockHealth {
        let Some(rec) = self.blocks.get(&id) else {
            return BlockHealth::Missing;
        };
        let live = rec.replicas.len() as u16;
        let corrupt = rec.corrupt.len() as u16;
        if corrupt > 0 {
            BlockHealth::Corrupt { live, corrupt }
        } else if live == 0 {
            BlockHealth::Missing
        } else if live < rec.replication {
            BlockHealth::UnderReplicated {
                live,
                target: rec.replication,
            }
        } else {
            BlockHealth::Healthy
        }
    }

    /// `(complete blocks, complete blocks with at least one good replica)`, for safe mode.
    pub fn safe_block_counts(&self) -> (u64, u64) {
        let mut total = 0;
        let mut safe = 0;
        for rec in self.blocks.values().filter(|r| r.complete) {
            total += 1;
            if !rec.replicas.is_empty() {
                safe += 1;
            }
        }
        (total, safe)
    }

    /// Cluster capacity and block health counts.
    pub fn stats(&self) -> FsStats {
        let mut s = FsStats::default();
        for n in self.nodes.values().filter(|n| n.alive) {
            s.capacity += n.capacity;
            s.used += n.used;
            s.remaining += n.remaining;
        }
        for rec in self.blocks.values().filter(|r| r.complete) {
            if rec.replicas.is_empty() {
                s.missing_blocks += 1;
            } else if rec.replicas.len() < usize::from(rec.replication) {
                s.under_replicated_blocks += 1;
            }
            if !rec.corrupt.is_empty() {
                s.corrupt_blocks += 1;
            }
        }
        s
    }

    /// Every known DataNode for `dfsadmin report`.
    pub fn reports(&self, now: u64) -> Vec<DatanodeReport> {
        self.nodes
            .values()
            .map(|n| DatanodeReport {
                addr: n.addr.clone(),
                rack: n.rack.clone(),
                state: if n.alive {
                    DatanodeState::Live
                } else {
                    DatanodeState::Dead
                },
                capacity: n.capacity,
                used: n.used,
                remaining: n.remaining,
                blocks: n.blocks.len() as u64,
                last_contact_ms: now.saturating_sub(n.last_heartbeat_ms),
                last_error: n.last_error.clone(),
            })
            .collect()
    }

    /// Number of live DataNodes.
    pub fn live_count(&self) -> usize {
        self.nodes.values().filter(|n| n.alive).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    const MB: u64 = 1 << 20;

    fn addr(i: u8) -> DatanodeAddr {
        DatanodeAddr {
            uuid: format!("dn{i}"),
            host: IpAddr::from([127, 0, 0, i]),
            rpc_port: 9867,
            data_port: 9866,
        }
    }

    fn topology() -> Topology {
        Topology::parse(
            "127.0.0.2 /r1\n127.0.0.3 /r1\n127.0.0.4 /r2\n127.0.0.5 /r2\n127.0.0.6 /r3\n",
            "t",
        )
        .unwrap()
    }

    fn manager(nodes: u8) -> BlockManager {
        let cfg = BlockManagerConfig {
            dead_timeout_ms: 1000,
            max_streams: 2,
            pending_timeout_ms: 5000,
            invalidate_batch: 100,
        };
        let mut bm = BlockManager::new(cfg, topology(), 42);
        for i in 2..2 + nodes {
            bm.register(addr(i), 100 * MB, 0, 100 * MB, 0);
        }
        bm
    }

    fn blk(id: u64) -> ExtendedBlock {
        ExtendedBlock {
            id,
            gen: 1001,
            len: 10,
        }
    }

    /// Runs one heartbeat of every live node at `now` and applies its commands like an ideal
    /// DataNode would (copies arrive, deletions happen). Returns the commands seen.
    fn heartbeat_all(
        bm: &mut BlockManager,
        now: u64,
        dead: &HashSet<String>,
    ) -> Vec<(String, DatanodeCommand)> {
        let uuids: Vec<String> = bm.nodes.keys().cloned().collect();
        let mut seen = Vec::new();
        for u in uuids {
            if dead.contains(&u) {
                continue;
            }
            let Some(cmds) = bm.heartbeat(&u, 100 * MB, 0, 100 * MB, None, now) else {
                continue;
            };
            for c in cmds {
                match &c {
                    DatanodeCommand::Replicate { block, targets } => {
                        for t in targets {
                            if !dead.contains(&t.uuid) {
                                bm.incremental_report(&t.uuid, &[*block], &[]);
                            }
                        }
                    }
                    DatanodeCommand::Invalidate { blocks } => {
                        bm.incremental_report(&u, &[], blocks);
                    }
                    _ => {}
                }
                seen.push((u.clone(), c));
            }
        }
        seen
    }

    fn holders(bm: &BlockManager, id: u64) -> Vec<String> {
        bm.block(id).unwrap().replicas.keys().cloned().collect()
    }

    #[test]
    fn dead_node_is_re_replicated_to_exactly_the_target() {
        let mut bm = manager(5);
        bm.add_block(blk(1), 3, true, vec![]);
        for u in ["dn2", "dn4", "dn5"] {
            bm.incremental_report(u, &[blk(1)], &[]);
        }
        assert_eq!(bm.live_replicas(1), 3);
        // dn4 stops heartbeating; the others keep going.
        let dead: HashSet<String> = ["dn4".to_string()].into();
        heartbeat_all(&mut bm, 900, &dead);
        assert!(bm.check_liveness(1500).contains(&"dn4".to_string()));
        assert_eq!(bm.live_replicas(1), 2);
        bm.compute_replication_work(1500);
        let cmds = heartbeat_all(&mut bm, 1600, &dead);
        let replicates: Vec<_> = cmds
            .iter()
            .filter(|(_, c)| matches!(c, DatanodeCommand::Replicate { .. }))
            .collect();
        assert_eq!(replicates.len(), 1, "{cmds:?}");
        if let DatanodeCommand::Replicate { targets, .. } = &replicates[0].1 {
            assert_eq!(targets.len(), 1);
            assert_ne!(targets[0].uuid, "dn4");
        }
        assert_eq!(bm.live_replicas(1), 3);
        // Nothing more to do, and nothing is over-replicated.
        bm.compute_replication_work(1700);
        assert!(heartbeat_all(&mut bm, 1800, &dead).is_empty());
        assert_eq!(bm.live_replicas(1), 3);
        assert!(!holders(&bm, 1).contains(&"dn4".to_string()));
        // The dead node must re-register before it counts again.
        assert!(bm.heartbeat("dn4", 0, 0, 0, None, 2000).is_none());
    }

    #[test]
    fn corrupt_replica_is_replaced_then_invalidated() {
        let mut bm = manager(4);
        bm.add_block(blk(7), 3, true, vec![]);
        for u in ["dn2", "dn3", "dn4"] {
            bm.incremental_report(u, &[blk(7)], &[]);
        }
        bm.mark_corrupt(blk(7), "dn3");
        assert_eq!(
            bm.health(7),
            BlockHealth::Corrupt {
                live: 2,
                corrupt: 1
            }
        );
        let none = HashSet::new();
        bm.compute_replication_work(10);
        let cmds = heartbeat_all(&mut bm, 10, &none);
        // A copy to the only node without any replica; the corrupt copy is not deleted yet.
        assert!(cmds.iter().any(|(_, c)| matches!(c, DatanodeCommand::Replicate { targets, .. } if targets.len() == 1 && targets[0].uuid == "dn5")));
        assert!(!cmds
            .iter()
            .any(|(_, c)| matches!(c, DatanodeCommand::Invalidate { .. })));
        assert_eq!(bm.live_replicas(7), 3);
        // Now three good copies: the corrupt one goes.
        bm.compute_replication_work(20);
        let cmds = heartbeat_all(&mut bm, 20, &none);
        assert!(cmds.iter().any(|(u, c)| u == "dn3"
            && matches!(c, DatanodeCommand::Invalidate { blocks } if blocks == &vec![7])));
        assert_eq!(bm.health(7), BlockHealth::Healthy);
    }

    #[test]
    fn last_good_copy_is_never_invalidated() {
        let mut bm = manager(2);
        bm.add_block(blk(3), 2, true, vec![]);
        bm.incremental_report("dn2", &[blk(3)], &[]);
        bm.incremental_report("dn3", &[blk(3)], &[]);
        bm.mark_corrupt(blk(3), "dn2");
        bm.mark_corrupt(blk(3), "dn3");
        bm.compute_replication_work(5);
        let cmds = heartbeat_all(&mut bm, 5, &HashSet::new());
        assert!(cmds.is_empty(), "{cmds:?}");
        assert_eq!(
            bm.health(3),
            BlockHealth::Corrupt {
                live: 0,
                corrupt: 2
            }
        );
    }

    #[test]
    fn excess_replicas_are_removed_keeping_rack_spread() {
        let mut bm = manager(5);
        bm.add_block(blk(9), 2, true, vec![]);
        // dn2, dn3 on /r1 and dn4 on /r2.
        for u in ["dn2", "dn3", "dn4"] {
            bm.incremental_report(u, &[blk(9)], &[]);
        }
        bm.compute_replication_work(1);
        let cmds = heartbeat_all(&mut bm, 1, &HashSet::new());
        let inv: Vec<&String> = cmds
            .iter()
            .filter(|(_, c)| matches!(c, DatanodeCommand::Invalidate { .. }))
            .map(|(u, _)| u)
            .collect();
        assert_eq!(inv.len(), 1);
        assert!(
            inv[0] == "dn2" || inv[0] == "dn3",
            "removed from the rack with two copies: {inv:?}"
        );
        assert_eq!(bm.live_replicas(9), 2);
        // A full report of the victim before it deleted does not resurrect the replica.
        assert_eq!(bm.live_replicas(9), 2);
    }

    #[test]
    fn deleted_file_blocks_are_invalidated_and_unknown_reported_blocks_too() {
        let mut bm = manager(3);
        bm.add_block(blk(4), 3, true, vec![]);
        for u in ["dn2", "dn3", "dn4"] {
            bm.incremental_report(u, &[blk(4)], &[]);
        }
        bm.remove_block(4);
        bm.block_report("dn2", &[blk(4), blk(99)]);
        let cmds = heartbeat_all(&mut bm, 1, &HashSet::new());
        let mut deleted: Vec<(String, Vec<u64>)> = cmds
            .into_iter()
            .filter_map(|(u, c)| match c {
                DatanodeCommand::Invalidate { blocks } => Some((u, blocks)),
                _ => None,
            })
            .collect();
        deleted.sort();
        assert_eq!(
            deleted,
            vec![
                ("dn2".into(), vec![4, 99]),
                ("dn3".into(), vec![4]),
                ("dn4".into(), vec![4])
            ]
        );
    }

    #[test]
    fn replication_is_throttled_and_lost_copies_are_rescheduled() {
        let mut bm = manager(5);
        for id in 1..=10 {
            bm.add_block(blk(id), 2, true, vec![]);
            bm.incremental_report("dn2", &[blk(id)], &[]);
        }
        bm.compute_replication_work(0);
        // dn2 is the only source: at most max_streams copies at a time.
        let cmds = bm.heartbeat("dn2", 100 * MB, 0, 100 * MB, None, 0).unwrap();
        assert_eq!(cmds.len(), 2, "{cmds:?}");
        // The copies never arrive; after the pending timeout they are scheduled again.
        bm.compute_replication_work(1000);
        assert!(bm
            .heartbeat("dn2", 100 * MB, 0, 100 * MB, None, 1000)
            .unwrap()
            .is_empty());
        bm.compute_replication_work(6001);
        assert_eq!(
            bm.heartbeat("dn2", 100 * MB, 0, 100 * MB, None, 6001)
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn stale_generation_and_wrong_length_are_corrupt() {
        let mut bm = manager(3);
        bm.add_block(
            ExtendedBlock {
                id: 5,
                gen: 1002,
                len: 10,
            },
            3,
            true,
            vec![],
        );
        bm.incremental_report(
            "dn2",
            &[ExtendedBlock {
                id: 5,
                gen: 1001,
                len: 10,
            }],
            &[],
        );
        bm.incremental_report(
            "dn3",
            &[ExtendedBlock {
                id: 5,
                gen: 1002,
                len: 9,
            }],
            &[],
        );
        bm.incremental_report(
            "dn4",
            &[ExtendedBlock {
                id: 5,
                gen: 1002,
                len: 10,
            }],
            &[],
        );
        assert_eq!(bm.live_replicas(5), 1);
        assert_eq!(bm.block(5).unwrap().corrupt.len(), 2);
        let (good, bad) = bm.locations(5, None);
        assert_eq!(good.len(), 1);
        assert_eq!(bad.len(), 2);
    }

    #[test]
    fn locations_are_sorted_by_distance() {
        let mut bm = manager(5);
        bm.add_block(blk(2), 3, true, vec![]);
        for u in ["dn2", "dn4", "dn5"] {
            bm.incremental_report(u, &[blk(2)], &[]);
        }
        // Client on dn5's host: dn5 first, then dn4 (same rack /r2), then dn2.
        let (locs, _) = bm.locations(2, Some(IpAddr::from([127, 0, 0, 5])));
        let order: Vec<&str> = locs.iter().map(|a| a.uuid.as_str()).collect();
        assert_eq!(order, vec!["dn5", "dn4", "dn2"]);
        // A client on /r1 without a DataNode: dn2 (same rack) first.
        let t = Topology::parse(
            "127.0.0.2 /r1\n127.0.0.3 /r1\n127.0.0.4 /r2\n127.0.0.5 /r2\n127.0.0.9 /r1\n",
            "t",
        )
        .unwrap();
        bm.topology = t;
        let (locs, _) = bm.locations(2, Some(IpAddr::from([127, 0, 0, 9])));
        assert_eq!(locs[0].uuid, "dn2");
    }

    #[test]
    fn reregistration_waits_for_the_block_report() {
        let mut bm = manager(3);
        bm.add_block(blk(1), 3, true, vec![]);
        bm.block_report("dn2", &[blk(1)]);
        assert_eq!(bm.live_replicas(1), 1);
        bm.register(addr(2), 100 * MB, 0, 100 * MB, 50);
        assert_eq!(bm.live_replicas(1), 0);
        bm.block_report("dn2", &[blk(1)]);
        assert_eq!(bm.live_replicas(1), 1);
        // A later full report without the block drops it.
        bm.block_report("dn2", &[]);
        assert_eq!(bm.live_replicas(1), 0);
    }

    /// Thousands of random event sequences: registration, heartbeats with ideal DataNodes,
    /// reports, kills and revivals. Invariants: never two replicas of a block on one node, no
    /// replica on a dead node, and once enough nodes stay alive every block reaches its target.
    #[test]
    fn randomized_event_sequences_keep_invariants_and_converge() {
        for seed in 0..300u64 {
            let mut rng = StdRng::seed_from_u64(seed);
            let n_nodes = rng.gen_range(3..=6u8);
            let cfg = BlockManagerConfig {
                dead_timeout_ms: 300,
                max_streams: 2,
                pending_timeout_ms: 1000,
                invalidate_batch: 50,
            };
            let mut bm = BlockManager::new(cfg, topology(), seed);
            for i in 2..2 + n_nodes {
                bm.register(addr(i), 100 * MB, 0, 100 * MB, 0);
            }
            let n_blocks = rng.gen_range(1..20u64);
            for id in 1..=n_blocks {
                let repl = rng.gen_range(1..=3u16);
                bm.add_block(blk(id), repl, true, vec![]);
                let targets =
                    bm.choose_targets_for_new_block(usize::from(repl), None, &HashSet::new(), 10);
                for t in targets {
                    bm.incremental_report(&t.uuid, &[blk(id)], &[]);
                }
            }
            let mut dead: HashSet<String> = HashSet::new();
            let mut now = 0u64;
            for _step in 0..60 {
                now += rng.gen_range(10..120);
                match rng.gen_range(0..10) {
                    0 if dead.len() + 3 < usize::from(n_nodes) => {
                        let victim = format!("dn{}", rng.gen_range(2..2 + n_nodes));
                        dead.insert(victim);
                    }
                    1 if !dead.is_empty() => {
                        let back = dead.iter().next().cloned().unwrap_or_default();
                        dead.remove(&back);
                        let i: u8 = back[2..].parse().unwrap();
                        bm.register(addr(i), 100 * MB, 0, 100 * MB, now);
                        // Its disk still has whatever it had; report some of the blocks.
                        let report: Vec<ExtendedBlock> = (1..=n_blocks)
                            .filter(|_| rng.gen_bool(0.5))
                            .map(blk)
                            .collect();
                        bm.block_report(&back, &report);
                    }
                    2 => {
                        let id = rng.gen_range(1..=n_blocks);
                        let u = format!("dn{}", rng.gen_range(2..2 + n_nodes));
                        if !dead.contains(&u) && bm.block(id).is_some_and(|r| r.replicas.len() > 1)
                        {
                            bm.mark_corrupt(blk(id), &u);
                        }
                    }
                    _ => {}
                }
                bm.check_liveness(now);
                bm.compute_replication_work(now);
                heartbeat_all(&mut bm, now, &dead);
                check_invariants(&bm);
            }
            // Quiet period: enough nodes live, the cluster converges.
            for _ in 0..40 {
                now += 100;
                bm.check_liveness(now);
                bm.compute_replication_work(now);
                heartbeat_all(&mut bm, now, &dead);
                check_invariants(&bm);
            }
            let live = bm.live_count();
            for (id, rec) in &bm.blocks {
                let want = usize::from(rec.replication).min(live);
                if rec.replicas.is_empty() {
                    continue; // every copy was lost with the nodes: nothing to copy from
                }
                assert_eq!(rec.replicas.len(), want, "seed {seed} block {id}: {rec:?}");
            }
        }
    }

    fn check_invariants(bm: &BlockManager) {
        for (id, rec) in &bm.blocks {
            // Replicas are keyed by node, so two on one node would show as good+corrupt.
            for u in rec.replicas.keys() {
                assert!(
                    !rec.corrupt.contains(u),
                    "block {id} good and corrupt on {u}"
                );
                let n = bm.nodes.get(u).expect("replica on an unknown node");
                assert!(n.alive, "block {id} counted on dead node {u}");
                assert!(n.blocks.contains(id));
            }
            let hosts: HashSet<IpAddr> =
                rec.replicas.keys().map(|u| bm.nodes[u].addr.host).collect();
            assert_eq!(
                hosts.len(),
                rec.replicas.len(),
                "two replicas of {id} on one host"
            );
        }
    }
}
