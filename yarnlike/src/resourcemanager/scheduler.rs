//! The capacity scheduler as a sans-I/O state machine: nodes, a queue tree, applications' asks
//! and placed containers go in; [`Scheduler::schedule`] returns placements. No clocks, no sockets:
//! a "scheduling opportunity" is one offer of one node in one [`Scheduler::schedule`] pass, which
//! the daemon runs on every heartbeat and allocate call (Hadoop counts node heartbeats the same way).
//!
//! Policy, after Hadoop's CapacityScheduler:
//! - leaf queues are offered a node in order of how much of their guarantee they use (most
//!   under-served first), so over-demanded queues converge to their capacity ratio;
//! - a queue may grow past its guarantee into idle capacity up to its max-capacity (and every
//!   ancestor's);
//! - inside a queue, applications are served FIFO, asks by priority;
//! - delay scheduling: an ask that prefers hosts declines other nodes for `node_delay` offers,
//!   then accepts its racks, then after `rack_delay` more any node.

use crate::config::{QueueConfig, YarnConfig};
use crate::protocol::{
    AttemptId, ContainerAsk, ContainerId, Locality, QueueReport, Resource, YarnError,
};
use std::collections::{BTreeMap, HashMap, HashSet};

/// A container the scheduler placed on a node.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// The new container.
    pub container: ContainerId,
    /// The node it is on.
    pub node_id: u64,
    /// The ask it satisfies.
    pub ask_id: u64,
    /// Its size.
    pub resource: Resource,
    /// Locality achieved.
    pub locality: Locality,
}

#[derive(Debug, Clone)]
struct Queue {
    path: String,
    parent: Option<usize>,
    is_leaf: bool,
    capacity: f64,
    max_capacity: f64,
    abs_capacity: f64,
    abs_max_capacity: f64,
    used: Resource,
}

#[derive(Debug, Clone)]
struct Node {
    host: String,
    rack: String,
    total: Resource,
    used: Resource,
    containers: u32,
}

#[derive(Debug, Clone)]
struct PendingAsk {
    ask: ContainerAsk,
    remaining: u32,
    missed: u32,
}

#[derive(Debug, Clone)]
struct App {
    queue: usize,
    asks: Vec<PendingAsk>,
}

#[derive(Debug, Clone, Copy)]
struct Placed {
    node_id: u64,
    queue: usize,
    resource: Resource,
}

/// Usage of one node, as the scheduler tracks it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeUsage {
    /// Resources in use.
    pub used: Resource,
    /// Containers on it.
    pub containers: u32,
}

/// The capacity scheduler's state.
#[derive(Debug, Clone)]
pub struct Scheduler {
    queues: Vec<Queue>,
    nodes: BTreeMap<u64, Node>,
    apps: BTreeMap<AttemptId, App>,
    containers: HashMap<ContainerId, Placed>,
    next_container: u64,
    node_delay: u32,
    rack_delay: u32,
    minimum_allocation_mb: u64,
    pass: u64,
}

/// The queue tree used when the configuration names none.
pub fn default_queues() -> Vec<QueueConfig> {
    vec![QueueConfig {
        path: "root.default".into(),
        capacity: 100.0,
        max_capacity: 100.0,
    }]
}

fn build_queues(configs: &[QueueConfig]) -> Result<Vec<Queue>, YarnError> {
    let bad = |m: String| YarnError::Config(format!("[yarn] queues: {m}"));
    let mut queues = vec![Queue {
        path: "root".into(),
        parent: None,
        is_leaf: configs.is_empty(),
        capacity: 100.0,
        max_capacity: 100.0,
        abs_capacity: 1.0,
        abs_max_capacity: 1.0,
        used: Resource::default(),
    }];
    let mut sorted: Vec<&QueueConfig> = configs.iter().collect();
    sorted.sort_by_key(|q| q.path.matches('.').count());
    for q in sorted {
        let Some((parent_path, name)) = q.path.rsplit_once('.') else {
            return Err(bad(format!(
                "'{}' must be a path under root (root.NAME)",
                q.path
            )));
        };
        if name.is_empty() || queues.iter().any(|e| e.path == q.path) {
            return Err(bad(format!("'{}' is empty or defined twice", q.path)));
        }
        let Some(parent) = queues.iter().position(|e| e.path == parent_path) else {
            return Err(bad(format!(
                "'{}' has no parent queue '{parent_path}' defined",
                q.path
            )));
        };
        if !(q.capacity > 0.0 && q.capacity <= 100.0)
            || q.max_capacity < q.capacity
            || q.max_capacity > 100.0
        {
            return Err(bad(format!(
                "'{}' needs 0 < capacity <= max-capacity <= 100 (got {} / {})",
                q.path, q.capacity, q.max_capacity
            )));
        }
        queues[parent].is_leaf = false;
        let (pa, pm) = (queues[parent].abs_capacity, queues[parent].abs_max_capacity);
        queues.push(Queue {
            path: q.path.clone(),
            parent: Some(parent),
            is_leaf: true,
            capacity: q.capacity,
            max_capacity: q.max_capacity,
            abs_capacity: pa * q.capacity / 100.0,
            abs_max_capacity: pm * q.max_capacity / 100.0,
            used: Resource::default(),
        });
    }
    for (i, parent) in queues.iter().enumerate() {
        if parent.is_leaf {
            continue;
        }
        let sum: f64 = queues
            .iter()
            .filter(|q| q.parent == Some(i))
            .map(|q| q.capacity)
            .sum();
        if (sum - 100.0).abs() > 0.01 {
            return Err(bad(format!(
                "the children of '{}' have capacities summing to {sum}, not 100",
                parent.path
            )));
        }
    }
    Ok(queues)
}

impl Scheduler {
    /// A scheduler over the queue tree `queues` (see [`default_queues`]) with the delays of `yarn`.
    pub fn new(queues: &[QueueConfig], yarn: &YarnConfig) -> Result<Scheduler, YarnError> {
        Ok(Scheduler {
            queues: build_queues(queues)?,
            nodes: BTreeMap::new(),
            apps: BTreeMap::new(),
            containers: HashMap::new(),
            next_container: 1,
            node_delay: yarn.node_locality_delay,
            rack_delay: yarn.rack_locality_delay,
            minimum_allocation_mb: yarn.minimum_allocation_mb.max(1),
            pass: 0,
        })
    }

    /// Resolves a queue name given at submission: a full path or a unique leaf name.
    pub fn resolve_queue(&self, name: &str) -> Result<String, YarnError> {
        let mut hits = self
            .queues
            .iter()
            .filter(|q| q.path == name || q.path.rsplit('.').next() == Some(name));
        match (hits.next(), hits.next()) {
            (Some(q), None) if q.is_leaf => Ok(q.path.clone()),
            _ => Err(YarnError::UnknownQueue(name.to_string())),
        }
    }

    fn queue_index(&self, path: &str) -> Result<usize, YarnError> {
        self.queues
            .iter()
            .position(|q| q.path == path && q.is_leaf)
            .ok_or_else(|| YarnError::UnknownQueue(path.into()))
    }

    /// Adds a node (or replaces its capability when it re-registers under the same id).
    pub fn add_node(&mut self, node_id: u64, host: &str, rack: &str, total: Resource) {
        self.nodes.insert(
            node_id,
            Node {
                host: host.into(),
                rack: rack.into(),
                total,
                used: Resource::default(),
                containers: 0,
            },
        );
    }

    /// Removes a node; returns the containers that were on it (already freed).
    pub fn remove_node(&mut self, node_id: u64) -> Vec<ContainerId> {
        self.nodes.remove(&node_id);
        let lost: Vec<ContainerId> = self
            .containers
            .iter()
            .filter(|(_, p)| p.node_id == node_id)
            .map(|(id, _)| *id)
            .collect();
        for id in &lost {
            self.release(*id);
        }
        lost
    }

    /// Usage of a node.
    pub fn node_usage(&self, node_id: u64) -> Option<NodeUsage> {
        self.nodes.get(&node_id).map(|n| NodeUsage {
            used: n.used,
            containers: n.containers,
        })
    }

    /// The largest container any registered node can hold (zero with no nodes).
    pub fn largest_node(&self) -> Resource {
        self.nodes.values().fold(Resource::default(), |acc, n| {
            Resource::new(
                acc.memory_mb.max(n.total.memory_mb),
                acc.vcores.max(n.total.vcores),
            )
        })
    }

    fn cluster_memory(&self) -> u64 {
        self.nodes.values().map(|n| n.total.memory_mb).sum()
    }

    /// Adds an application attempt to a leaf queue (by full path).
    pub fn add_attempt(&mut self, attempt: AttemptId, queue_path: &str) -> Result<(), YarnError> {
        let queue = self.queue_index(queue_path)?;
        self.apps.insert(
            attempt,
            App {
                queue,
                asks: Vec::new(),
            },
        );
        Ok(())
    }

    /// Removes an attempt; returns its containers (already freed) so they can be killed.
    pub fn remove_attempt(&mut self, attempt: AttemptId) -> Vec<ContainerId> {
        self.apps.remove(&attempt);
        let owned: Vec<ContainerId> = self
            .containers
            .keys()
            .filter(|c| c.attempt == attempt)
            .copied()
            .collect();
        for id in &owned {
            self.release(*id);
        }
        owned
    }

    /// Rounds an ask's memory up to the minimum allocation and checks that some node can hold it.
    pub fn normalize(&self, resource: Resource) -> Result<Resource, YarnError> {
        if resource.memory_mb == 0 {
            return Err(YarnError::BadRequest(
                "a container needs at least 1 MB of memory".into(),
            ));
        }
        let m = self.minimum_allocation_mb;
        let normalized = Resource::new(resource.memory_mb.div_ceil(m) * m, resource.vcores.max(1));
        if !self.nodes.is_empty() && !self.nodes.values().any(|n| n.total.fits(&normalized)) {
            let largest = self.largest_node();
            return Err(YarnError::ResourceTooLarge {
                asked: normalized.to_string(),
                largest: largest.to_string(),
            });
        }
        Ok(normalized)
    }

    /// Adds an ask of an attempt. Rejected at once when no node could ever hold it.
    pub fn add_ask(&mut self, attempt: AttemptId, mut ask: ContainerAsk) -> Result<(), YarnError> {
        ask.resource = self.normalize(ask.resource)?;
        let app = self
            .apps
            .get_mut(&attempt)
            .ok_or_else(|| YarnError::NotCurrentMaster(attempt.to_string()))?;
        if ask.count > 0 {
            app.asks.push(PendingAsk {
                remaining: ask.count,
                missed: 0,
                ask,
            });
            app.asks.sort_by_key(|a| (a.ask.priority, a.ask.ask_id));
        }
        Ok(())
    }

    /// Drops the unallocated remainder of an ask.
    pub fn cancel_ask(&mut self, attempt: AttemptId, ask_id: u64) {
        if let Some(app) = self.apps.get_mut(&attempt) {
            app.asks.retain(|a| a.ask.ask_id != ask_id);
        }
    }

    /// Containers still to be allocated for an attempt.
    pub fn pending(&self, attempt: AttemptId) -> u32 {
        self.apps
            .get(&attempt)
            .map(|a| a.asks.iter().map(|k| k.remaining).sum())
            .unwrap_or(0)
    }

    /// Frees a container (completed, released or killed). Returns false when it was unknown.
    pub fn release(&mut self, id: ContainerId) -> bool {
        let Some(p) = self.containers.remove(&id) else {
            return false;
        };
        if let Some(n) = self.nodes.get_mut(&p.node_id) {
            n.used = n.used.minus(&p.resource);
            n.containers = n.containers.saturating_sub(1);
        }
        let mut q = Some(p.queue);
        while let Some(i) = q {
            self.queues[i].used = self.queues[i].used.minus(&p.resource);
            q = self.queues[i].parent;
        }
        true
    }

    /// Records a container that already runs (a NodeManager re-registered with it).
    pub fn adopt(&mut self, id: ContainerId, node_id: u64, resource: Resource) -> bool {
        let Some(app) = self.apps.get(&id.attempt) else {
            return false;
        };
        if !self.nodes.contains_key(&node_id) || self.containers.contains_key(&id) {
            return false;
        }
        let queue = app.queue;
        self.charge(id, node_id, queue, resource);
        self.next_container = self.next_container.max(id.seq + 1);
        true
    }

    fn charge(&mut self, id: ContainerId, node_id: u64, queue: usize, resource: Resource) {
        if let Some(n) = self.nodes.get_mut(&node_id) {
            n.used = n.used.plus(&resource);
            n.containers += 1;
        }
        let mut q = Some(queue);
        while let Some(i) = q {
            self.queues[i].used = self.queues[i].used.plus(&resource);
            q = self.queues[i].parent;
        }
        self.containers.insert(
            id,
            Placed {
                node_id,
                queue,
                resource,
            },
        );
    }

    /// True when queue `leaf` (and every ancestor) may grow by `r` within its max-capacity.
    fn within_max(&self, leaf: usize, r: &Resource, cluster_mb: u64) -> bool {
        let mut q = Some(leaf);
        while let Some(i) = q {
            let limit = self.queues[i].abs_max_capacity * cluster_mb as f64;
            if (self.queues[i].used.memory_mb + r.memory_mb) as f64 > limit + 0.5 {
                return false;
            }
            q = self.queues[i].parent;
        }
        true
    }

    /// The racks of an ask's preferred hosts plus its preferred racks.
    fn preferred_racks(&self, ask: &ContainerAsk) -> HashSet<String> {
        let mut racks: HashSet<String> = ask.racks.iter().cloned().collect();
        for n in self.nodes.values() {
            if ask.hosts.contains(&n.host) {
                racks.insert(n.rack.clone());
            }
        }
        racks
    }

    /// Whether an ask takes `node` given the offers it has missed, and at what locality.
    fn locality_on(&self, pending: &PendingAsk, node: &Node) -> Option<Locality> {
        let ask = &pending.ask;
        if ask.hosts.is_empty() && ask.racks.is_empty() {
            return Some(Locality::Unconstrained);
        }
        if ask.hosts.contains(&node.host) {
            return Some(Locality::NodeLocal);
        }
        let racks = self.preferred_racks(ask);
        let rack_ok = racks.contains(&node.rack);
        if !ask.relax_locality {
            return (ask.hosts.is_empty() && rack_ok).then_some(Locality::RackLocal);
        }
        let host_wait = if ask.hosts.is_empty() {
            0
        } else {
            self.node_delay
        };
        if pending.missed < host_wait {
            return None;
        }
        if rack_ok {
            return Some(Locality::RackLocal);
        }
        if pending.missed < host_wait + self.rack_delay {
            return None;
        }
        Some(Locality::OffRack)
    }

    /// One scheduling pass: offers every node (in rotating order) until nothing more fits.
    pub fn schedule(&mut self) -> Vec<Placement> {
        let mut ids: Vec<u64> = self.nodes.keys().copied().collect();
        if !ids.is_empty() {
            let k = (self.pass % ids.len() as u64) as usize;
            ids.rotate_left(k);
        }
        self.pass += 1;
        // Round-robin, one container per node per round, so work spreads over the nodes instead
        // of filling the first one. An ask declines a node at most once per pass.
        let mut declined: HashMap<u64, HashSet<(AttemptId, u64)>> = HashMap::new();
        let mut out = Vec::new();
        loop {
            let before = out.len();
            for &node_id in &ids {
                if let Some(p) = self.assign_one(node_id, declined.entry(node_id).or_default()) {
                    out.push(p);
                }
            }
            if out.len() == before {
                return out;
            }
        }
    }

    fn leaf_order(&self) -> Vec<usize> {
        let mut leaves: Vec<usize> = (0..self.queues.len())
            .filter(|&i| self.queues[i].is_leaf)
            .collect();
        let share =
            |i: usize| self.queues[i].used.memory_mb as f64 / self.queues[i].abs_capacity.max(1e-9);
        leaves.sort_by(|&a, &b| share(a).total_cmp(&share(b)).then(a.cmp(&b)));
        leaves
    }

    fn assign_one(
        &mut self,
        node_id: u64,
        declined: &mut HashSet<(AttemptId, u64)>,
    ) -> Option<Placement> {
        let node = self.nodes.get(&node_id)?;
        let free = node.total.minus(&node.used);
        if free.memory_mb == 0 || free.vcores == 0 {
            return None;
        }
        let cluster_mb = self.cluster_memory();
        let mut choice: Option<(AttemptId, usize, Locality)> = None;
        let mut misses: Vec<(AttemptId, usize)> = Vec::new();
        'queues: for q in self.leaf_order() {
            for (attempt, app) in self.apps.iter().filter(|(_, a)| a.queue == q) {
                for (i, pending) in app.asks.iter().enumerate() {
                    let r = pending.ask.resource;
                    if pending.remaining == 0
                        || !free.fits(&r)
                        || declined.contains(&(*attempt, pending.ask.ask_id))
                    {
                        continue;
                    }
                    if !self.within_max(q, &r, cluster_mb) {
                        continue;
                    }
                    match self.locality_on(pending, node) {
                        Some(loc) => {
                            choice = Some((*attempt, i, loc));
                            break 'queues;
                        }
                        None => misses.push((*attempt, i)),
                    }
                }
            }
        }
        for (attempt, i) in misses {
            if let Some(p) = self.apps.get_mut(&attempt).and_then(|a| a.asks.get_mut(i)) {
                p.missed += 1;
                declined.insert((attempt, p.ask.ask_id));
            }
        }
        let (attempt, i, locality) = choice?;
        let app = self.apps.get_mut(&attempt)?;
        let queue = app.queue;
        let pending = app.asks.get_mut(i)?;
        pending.remaining -= 1;
        if locality == Locality::NodeLocal {
            pending.missed = 0;
        }
        let (ask_id, resource) = (pending.ask.ask_id, pending.ask.resource);
        app.asks.retain(|a| a.remaining > 0);
        let container = ContainerId {
            attempt,
            seq: self.next_container,
        };
        self.next_container += 1;
        self.charge(container, node_id, queue, resource);
        Some(Placement {
            container,
            node_id,
            ask_id,
            resource,
            locality,
        })
    }

    /// The queue tree with usage, parents before children.
    pub fn queue_reports(&self) -> Vec<QueueReport> {
        let cluster_mb = self.cluster_memory().max(1) as f64;
        self.queues
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let in_queue = |a: &App| {
                    let mut cur = Some(a.queue);
                    while let Some(c) = cur {
                        if c == i {
                            return true;
                        }
                        cur = self.queues[c].parent;
                    }
                    false
                };
                let apps: Vec<&App> = self.apps.values().filter(|a| in_queue(a)).collect();
                QueueReport {
                    path: q.path.clone(),
                    capacity: q.capacity,
                    max_capacity: q.max_capacity,
                    absolute_capacity: q.abs_capacity * 100.0,
                    used_percent: q.used.memory_mb as f64 * 100.0 / cluster_mb,
                    used: q.used,
                    active_apps: apps.len() as u32,
                    pending_containers: apps
                        .iter()
                        .flat_map(|a| a.asks.iter())
                        .map(|k| k.remaining)
                        .sum(),
                    is_leaf: q.is_leaf,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::AppId;

    fn attempt(seq: u32) -> AttemptId {
        AttemptId {
            app: AppId { cluster_ts: 1, seq },
            attempt: 1,
        }
    }

    fn ask(id: u64, count: u32, mb: u64, hosts: &[&str]) -> ContainerAsk {
        ContainerAsk {
            ask_id: id,
            count,
            resource: Resource::new(mb, 1),
            priority: 1,
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            racks: vec![],
            relax_locality: true,
        }
    }

    fn queues(spec: &[(&str, f64, f64)]) -> Vec<QueueConfig> {
        spec.iter()
            .map(|(p, c, m)| QueueConfig {
                path: p.to_string(),
                capacity: *c,
                max_capacity: *m,
            })
            .collect()
    }

    fn yarn(node_delay: u32, rack_delay: u32) -> YarnConfig {
        YarnConfig {
            node_locality_delay: node_delay,
            rack_locality_delay: rack_delay,
            ..YarnConfig::default()
        }
    }

    fn count_by_app(placements: &[Placement], a: AttemptId) -> usize {
        placements
            .iter()
            .filter(|p| p.container.attempt == a)
            .count()
    }

    #[test]
    fn over_demanded_70_30_queues_split_the_cluster_70_30() {
        let q = queues(&[("root.prod", 70.0, 100.0), ("root.dev", 30.0, 100.0)]);
        let mut s = Scheduler::new(&q, &yarn(0, 0)).unwrap();
        for n in 0..10 {
            s.add_node(
                n,
                &format!("10.0.0.{n}"),
                "/r1",
                Resource::new(10 * 1024, 10),
            );
        }
        let (prod, dev) = (attempt(1), attempt(2));
        // dev submits first: FIFO across queues must not let it take everything.
        s.add_attempt(dev, "root.dev").unwrap();
        s.add_attempt(prod, "root.prod").unwrap();
        s.add_ask(dev, ask(1, 1000, 1024, &[])).unwrap();
        s.add_ask(prod, ask(1, 1000, 1024, &[])).unwrap();
        let placed = s.schedule();
        assert_eq!(placed.len(), 100, "the cluster holds 100 containers");
        let (p, d) = (count_by_app(&placed, prod), count_by_app(&placed, dev));
        assert!(
            (68..=72).contains(&p) && (28..=32).contains(&d),
            "prod {p} dev {d}"
        );
    }

    #[test]
    fn an_idle_queue_lends_up_to_the_borrowers_max_capacity() {
        let q = queues(&[("root.a", 50.0, 80.0), ("root.b", 50.0, 100.0)]);
        let mut s = Scheduler::new(&q, &yarn(0, 0)).unwrap();
        s.add_node(1, "h1", "/r", Resource::new(10_000, 100));
        let a = attempt(1);
        s.add_attempt(a, "root.a").unwrap();
        s.add_ask(a, ask(1, 100, 1000, &[])).unwrap();
        let placed = s.schedule();
        assert_eq!(placed.len(), 8, "a may borrow up to its 80% max");
        // b arrives: it gets the remaining 20% now and more as a's containers finish.
        let b = attempt(2);
        s.add_attempt(b, "root.b").unwrap();
        s.add_ask(b, ask(1, 100, 1000, &[])).unwrap();
        assert_eq!(count_by_app(&s.schedule(), b), 2);
        for p in &placed[..4] {
            s.release(p.container);
        }
        let next = s.schedule();
        // Shares of guarantee: b climbs 2000→4000 MB before tying with a, then they alternate.
        assert_eq!(
            (count_by_app(&next, a), count_by_app(&next, b)),
            (1, 3),
            "freed capacity goes to the under-served queue first"
        );
    }

    #[test]
    fn fifo_inside_a_queue_and_priorities_inside_an_app() {
        let mut s = Scheduler::new(&default_queues(), &yarn(0, 0)).unwrap();
        s.add_node(1, "h1", "/r", Resource::new(3000, 10));
        let (first, second) = (attempt(1), attempt(2));
        s.add_attempt(second, "root.default").unwrap();
        s.add_attempt(first, "root.default").unwrap();
        s.add_ask(second, ask(1, 5, 1000, &[])).unwrap();
        let mut low = ask(7, 1, 1000, &[]);
        low.priority = 5;
        s.add_ask(first, low).unwrap();
        s.add_ask(first, ask(3, 1, 1000, &[])).unwrap();
        let placed = s.schedule();
        let order: Vec<(u32, u64)> = placed
            .iter()
            .map(|p| (p.container.attempt.app.seq, p.ask_id))
            .collect();
        assert_eq!(order, vec![(1, 3), (1, 7), (2, 1)]);
    }

    #[test]
    fn delay_scheduling_waits_for_the_preferred_node_when_it_frees_in_time() {
        let mut s = Scheduler::new(&default_queues(), &yarn(3, 3)).unwrap();
        s.add_node(1, "h1", "/r1", Resource::new(1000, 1));
        s.add_node(2, "h2", "/r1", Resource::new(1000, 1));
        s.add_node(3, "h3", "/r2", Resource::new(1000, 1));
        let filler = attempt(1);
        s.add_attempt(filler, "root.default").unwrap();
        s.add_ask(filler, ask(1, 1, 1000, &["h1"])).unwrap();
        let busy = s.schedule();
        assert_eq!(busy.len(), 1);
        assert_eq!(
            (busy[0].node_id, busy[0].locality),
            (1, Locality::NodeLocal)
        );
        let a = attempt(2);
        s.add_attempt(a, "root.default").unwrap();
        s.add_ask(a, ask(1, 1, 1000, &["h1"])).unwrap();
        // One pass offers h2 and h3: two missed offers, still under the delay of 3.
        assert!(s.schedule().is_empty());
        s.release(busy[0].container);
        let placed = s.schedule();
        assert_eq!(placed.len(), 1);
        assert_eq!(
            (placed[0].node_id, placed[0].locality),
            (1, Locality::NodeLocal)
        );
    }

    #[test]
    fn delay_scheduling_relaxes_host_to_rack_then_to_any() {
        let mut s = Scheduler::new(&default_queues(), &yarn(3, 3)).unwrap();
        s.add_node(1, "h1", "/r1", Resource::new(1000, 1));
        s.add_node(2, "h2", "/r1", Resource::new(1000, 1));
        s.add_node(3, "h3", "/r2", Resource::new(1000, 1));
        let filler = attempt(1);
        s.add_attempt(filler, "root.default").unwrap();
        s.add_ask(filler, ask(1, 2, 1000, &["h1", "h2"])).unwrap();
        assert_eq!(s.schedule().len(), 2);
        let a = attempt(2);
        s.add_attempt(a, "root.default").unwrap();
        s.add_ask(a, ask(1, 1, 1000, &["h1"])).unwrap();
        // Only h3 (other rack) is free: it must wait node_delay + rack_delay = 6 offers.
        for pass in 0..6 {
            assert!(s.schedule().is_empty(), "pass {pass} placed too early");
        }
        let placed = s.schedule();
        assert_eq!(
            (placed[0].node_id, placed[0].locality),
            (3, Locality::OffRack)
        );

        // Rack-local after node_delay when a rack-mate is free.
        let mut s = Scheduler::new(&default_queues(), &yarn(2, 5)).unwrap();
        s.add_node(1, "h1", "/r1", Resource::new(1000, 1));
        s.add_node(2, "h2", "/r1", Resource::new(1000, 1));
        s.add_attempt(filler, "root.default").unwrap();
        s.add_ask(filler, ask(1, 1, 1000, &["h1"])).unwrap();
        assert_eq!(s.schedule().len(), 1);
        s.add_attempt(a, "root.default").unwrap();
        s.add_ask(a, ask(1, 1, 1000, &["h1"])).unwrap();
        assert!(s.schedule().is_empty());
        assert!(s.schedule().is_empty());
        let placed = s.schedule();
        assert_eq!(
            (placed[0].node_id, placed[0].locality),
            (2, Locality::RackLocal)
        );
    }

    #[test]
    fn strict_locality_never_relaxes() {
        let mut s = Scheduler::new(&default_queues(), &yarn(1, 1)).unwrap();
        s.add_node(1, "h1", "/r1", Resource::new(1000, 1));
        s.add_node(2, "h2", "/r1", Resource::new(1000, 1));
        let a = attempt(1);
        s.add_attempt(a, "root.default").unwrap();
        let mut strict = ask(1, 2, 1000, &["h1"]);
        strict.relax_locality = false;
        s.add_ask(a, strict).unwrap();
        for _ in 0..10 {
            for p in s.schedule() {
                assert_eq!(p.node_id, 1);
            }
        }
        assert_eq!(s.pending(a), 1);
    }

    #[test]
    fn impossible_asks_and_unknown_queues_are_rejected_at_once() {
        let q = queues(&[("root.a", 100.0, 100.0)]);
        let mut s = Scheduler::new(&q, &yarn(0, 0)).unwrap();
        s.add_node(1, "h1", "/r", Resource::new(4096, 4));
        s.add_node(2, "h2", "/r", Resource::new(8192, 2));
        assert_eq!(
            s.resolve_queue("nope"),
            Err(YarnError::UnknownQueue("nope".into()))
        );
        assert_eq!(
            s.resolve_queue("root"),
            Err(YarnError::UnknownQueue("root".into())),
            "not a leaf"
        );
        assert_eq!(s.resolve_queue("a").unwrap(), "root.a");
        let a = attempt(1);
        s.add_attempt(a, "root.a").unwrap();
        let err = s.add_ask(a, ask(1, 1, 9000, &[])).unwrap_err();
        assert!(matches!(err, YarnError::ResourceTooLarge { .. }), "{err:?}");
        let mut wide = ask(2, 1, 8000, &[]);
        wide.resource.vcores = 3;
        assert!(
            s.add_ask(a, wide).is_err(),
            "no single node has 8000 MB and 3 vcores"
        );
        assert!(s.add_ask(a, ask(3, 1, 8000, &[])).is_ok());
    }

    #[test]
    fn bad_queue_trees_are_config_errors() {
        let y = yarn(0, 0);
        assert!(Scheduler::new(
            &queues(&[("root.a", 70.0, 100.0), ("root.b", 20.0, 100.0)]),
            &y
        )
        .is_err());
        assert!(Scheduler::new(&queues(&[("root.a.b", 100.0, 100.0)]), &y).is_err());
        assert!(Scheduler::new(&queues(&[("root.a", 100.0, 50.0)]), &y).is_err());
        let nested = queues(&[
            ("root.a", 60.0, 100.0),
            ("root.b", 40.0, 100.0),
            ("root.a.x", 50.0, 100.0),
            ("root.a.y", 50.0, 100.0),
        ]);
        let s = Scheduler::new(&nested, &y).unwrap();
        assert!(s.resolve_queue("a").is_err(), "a is a parent");
        let r = s.queue_reports();
        let x = r.iter().find(|q| q.path == "root.a.x").unwrap();
        assert!((x.absolute_capacity - 30.0).abs() < 1e-9);
    }

    #[test]
    fn lost_nodes_free_their_containers() {
        let mut s = Scheduler::new(&default_queues(), &yarn(0, 0)).unwrap();
        s.add_node(1, "h1", "/r", Resource::new(2000, 2));
        s.add_node(2, "h2", "/r", Resource::new(2000, 2));
        let a = attempt(1);
        s.add_attempt(a, "root.default").unwrap();
        s.add_ask(a, ask(1, 4, 1000, &[])).unwrap();
        let placed = s.schedule();
        assert_eq!(placed.len(), 4);
        let lost = s.remove_node(1);
        assert_eq!(lost.len(), 2);
        assert_eq!(s.queue_reports()[1].used.memory_mb, 2000);
        assert_eq!(s.remove_attempt(a).len(), 2);
        assert_eq!(s.queue_reports()[0].used.memory_mb, 0);
    }
}
