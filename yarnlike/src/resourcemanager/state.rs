//! The ResourceManager's decisions as a sans-I/O state machine: applications and their attempts
//! (NEW → ACCEPTED → RUNNING → FINISHED / FAILED / KILLED), NodeManager liveness, and the
//! containers between them. Every method takes the current time; the daemon feeds it requests and
//! timer ticks, drains [`RmState::take_store_ops`] into the sled store and wakes long-polls.

use crate::config::{QueueConfig, ResourceManagerConfig, YarnConfig};
use crate::protocol::*;
use crate::resourcemanager::scheduler::Scheduler;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// The ask id the RM uses for an attempt's own master container.
pub const MASTER_ASK: u64 = u64::MAX;

/// Environment variables every container gets (besides those of its launch spec).
pub mod env {
    /// The container's id.
    pub const CONTAINER_ID: &str = "SHEAF_CONTAINER_ID";
    /// The application's id.
    pub const APPLICATION_ID: &str = "SHEAF_APPLICATION_ID";
    /// The attempt number (1-based).
    pub const ATTEMPT: &str = "SHEAF_APP_ATTEMPT";
    /// The memory limit, MB.
    pub const MEMORY_MB: &str = "SHEAF_CONTAINER_MEMORY_MB";
    /// The RM address (also the `[resourcemanager] address` override).
    pub const RM_ADDRESS: &str = "SHEAF_RESOURCEMANAGER_ADDRESS";
    /// The master's secret for RM calls (master containers only).
    pub const AM_TOKEN: &str = "SHEAF_AM_TOKEN";
    /// The host identity of the container's NodeManager (the IP it advertises; set by the
    /// NodeManager): what a process in the container binds to and advertises.
    pub const NM_HOST: &str = "SHEAF_NM_HOST";
}

/// An application as the RM persists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppRecord {
    /// What was submitted.
    pub submission: SubmitApplication,
    /// The report clients see.
    pub report: ApplicationReport,
    /// The current attempt's secret.
    pub token: u64,
    /// The current attempt's master container.
    pub master: Option<ContainerId>,
}

/// A write the daemon must make durable.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreOp {
    /// Insert or replace an application record.
    Put(Box<AppRecord>),
    /// Forget an application (retention).
    Delete(AppId),
}

#[derive(Debug, Clone)]
struct LiveContainer {
    node_id: u64,
    is_master: bool,
    resource: Resource,
}

#[derive(Debug, Default)]
struct AttemptNews {
    allocated: Vec<AllocatedContainer>,
    completed: Vec<ContainerStatus>,
}

#[derive(Debug)]
struct NodeEntry {
    host: String,
    rack: String,
    capability: Resource,
    aux_services: BTreeMap<String, String>,
    last_seen: Instant,
    lost: bool,
    commands: NodeCommands,
}

/// The ResourceManager's whole in-memory state.
pub struct RmState {
    cluster_ts: u64,
    epoch_base: (Instant, u64),
    next_seq: u32,
    scheduler: Scheduler,
    apps: BTreeMap<AppId, AppRecord>,
    news: HashMap<AppId, AttemptNews>,
    containers: HashMap<ContainerId, LiveContainer>,
    nodes: BTreeMap<u64, NodeEntry>,
    next_node_id: u64,
    rm_address: String,
    node_timeout: Duration,
    max_attempts: u32,
    max_completed_apps: usize,
    store_ops: Vec<StoreOp>,
    /// Source of the attempts' secrets, seeded by the caller (so a replay is identical).
    tokens: StdRng,
}

impl RmState {
    /// A fresh RM state. `now_ms` is the wall clock at `now` (ids and report times use it);
    /// `token_seed` seeds the attempts' secrets (the daemon passes a random one, tests a fixed one).
    pub fn new(
        rm: &ResourceManagerConfig,
        yarn: &YarnConfig,
        queues: &[QueueConfig],
        now: Instant,
        now_ms: u64,
        token_seed: u64,
    ) -> Result<RmState, YarnError> {
        Ok(RmState {
            cluster_ts: now_ms,
            epoch_base: (now, now_ms),
            next_seq: 1,
            scheduler: Scheduler::new(queues, yarn)?,
            apps: BTreeMap::new(),
            news: HashMap::new(),
            containers: HashMap::new(),
            nodes: BTreeMap::new(),
            // Node ids are never reused across RM restarts: a NodeManager still heartbeating
            // with the previous RM's id must be told to re-register, not be taken for
            // whichever node got that id first from the new RM.
            next_node_id: (now_ms << 16).max(1),
            rm_address: rm.address.to_string(),
            node_timeout: Duration::from_millis(rm.node_timeout_ms),
            max_attempts: rm.max_attempts.max(1),
            max_completed_apps: rm.max_completed_apps.max(1),
            store_ops: Vec::new(),
            tokens: StdRng::seed_from_u64(token_seed),
        })
    }

    fn epoch_ms(&self, now: Instant) -> u64 {
        self.epoch_base.1 + now.saturating_duration_since(self.epoch_base.0).as_millis() as u64
    }

    /// Loads records of a previous RM run. Applications that were not final are failed: running
    /// applications are not recovered (their masters cannot re-attach), and saying so beats hanging.
    pub fn recover(&mut self, records: Vec<AppRecord>, now: Instant) {
        let now_ms = self.epoch_ms(now);
        for mut r in records {
            self.cluster_ts = self.cluster_ts.max(r.report.id.cluster_ts + 1);
            if !r.report.state.is_final() {
                r.report.diagnostics = format!(
                    "the resourcemanager restarted while the application was {}; running applications are not recovered (resubmit it)",
                    r.report.state
                );
                r.report.state = AppState::Failed;
                r.report.final_status = FinalStatus::Failed;
                r.report.finish_ms = now_ms;
                for c in r
                    .report
                    .containers
                    .iter_mut()
                    .filter(|c| c.state != ContainerState::Complete)
                {
                    c.state = ContainerState::Complete;
                    c.exit_status = exit_status::KILLED;
                    c.diagnostics = "resourcemanager restarted".into();
                }
                self.store_ops.push(StoreOp::Put(Box::new(r.clone())));
            }
            self.apps.insert(r.report.id, r);
        }
    }

    /// Writes to make durable, in order.
    pub fn take_store_ops(&mut self) -> Vec<StoreOp> {
        std::mem::take(&mut self.store_ops)
    }

    fn persist(&mut self, app: AppId) {
        if let Some(r) = self.apps.get(&app) {
            self.store_ops.push(StoreOp::Put(Box::new(r.clone())));
        }
    }

    // ---- clients -------------------------------------------------------------------------

    /// Accepts an application into a queue and asks for its first master container.
    pub fn submit(&mut self, sub: SubmitApplication, now: Instant) -> Result<AppId, YarnError> {
        let queue = self.scheduler.resolve_queue(&sub.queue)?;
        self.scheduler.normalize(sub.am_resource)?;
        if sub.am_spec.command.first().is_none_or(|c| c.is_empty()) {
            return Err(YarnError::BadRequest(
                "the master's command is empty".into(),
            ));
        }
        let id = AppId {
            cluster_ts: self.cluster_ts,
            seq: self.next_seq,
        };
        self.next_seq += 1;
        let max_attempts = if sub.max_attempts == 0 {
            self.max_attempts
        } else {
            sub.max_attempts
        };
        let report = ApplicationReport {
            id,
            name: sub.name.clone(),
            user: sub.user.clone(),
            queue,
            state: AppState::New,
            final_status: FinalStatus::Undefined,
            attempt: 0,
            max_attempts,
            diagnostics: String::new(),
            submit_ms: self.epoch_ms(now),
            finish_ms: 0,
            master_host: None,
            tracking_address: None,
            containers: Vec::new(),
        };
        self.apps.insert(
            id,
            AppRecord {
                submission: sub,
                report,
                token: 0,
                master: None,
            },
        );
        self.start_attempt(id, now);
        self.prune_completed();
        Ok(id)
    }

    fn start_attempt(&mut self, app: AppId, now: Instant) {
        let Some(r) = self.apps.get_mut(&app) else {
            return;
        };
        r.report.attempt += 1;
        r.report.state = AppState::Accepted;
        r.report.master_host = None;
        r.report.tracking_address = None;
        r.master = None;
        r.token = self.tokens.gen();
        let attempt = AttemptId {
            app,
            attempt: r.report.attempt,
        };
        let ask = ContainerAsk {
            ask_id: MASTER_ASK,
            count: 1,
            resource: r.submission.am_resource,
            priority: 0,
            hosts: vec![],
            racks: vec![],
            relax_locality: true,
        };
        let queue = r.report.queue.clone();
        let started = self
            .scheduler
            .add_attempt(attempt, &queue)
            .and_then(|_| self.scheduler.add_ask(attempt, ask));
        self.news.insert(app, AttemptNews::default());
        if let Err(e) = started {
            self.end_app(
                app,
                AppState::Failed,
                FinalStatus::Failed,
                format!("cannot schedule the master: {e}"),
                now,
            );
        } else {
            self.persist(app);
        }
    }

    /// Moves an application to a final state and frees everything it holds.
    fn end_app(
        &mut self,
        app: AppId,
        state: AppState,
        status: FinalStatus,
        diagnostics: String,
        now: Instant,
    ) {
        let finish_ms = self.epoch_ms(now);
        let Some(r) = self.apps.get_mut(&app) else {
            return;
        };
        let attempt = AttemptId {
            app,
            attempt: r.report.attempt,
        };
        r.report.state = state;
        r.report.final_status = status;
        r.report.diagnostics = diagnostics;
        r.report.finish_ms = finish_ms;
        // A master that declared the end (or already died) exits by itself; a kill stops everything.
        let master = if state == AppState::Killed {
            None
        } else {
            r.master
        };
        for id in self.scheduler.remove_attempt(attempt) {
            if Some(id) != master {
                self.stop_container(id);
            }
        }
        self.news.remove(&app);
        for n in self.nodes.values_mut().filter(|n| !n.lost) {
            n.commands.finished_apps.push(app);
        }
        self.persist(app);
    }

    fn stop_container(&mut self, id: ContainerId) {
        if let Some(c) = self.containers.get(&id) {
            if let Some(n) = self.nodes.get_mut(&c.node_id) {
                n.commands.stop.push(id);
            }
        }
    }

    /// Kills an application (an error when it is already final).
    pub fn kill(&mut self, app: AppId, now: Instant) -> Result<(), YarnError> {
        let r = self
            .apps
            .get(&app)
            .ok_or_else(|| YarnError::UnknownApplication(app.to_string()))?;
        if r.report.state.is_final() {
            return Err(YarnError::AlreadyFinal {
                app: app.to_string(),
                state: r.report.state.to_string(),
            });
        }
        self.end_app(
            app,
            AppState::Killed,
            FinalStatus::Killed,
            "killed by user".into(),
            now,
        );
        Ok(())
    }

    /// One application's report.
    pub fn report(&self, app: AppId) -> Result<ApplicationReport, YarnError> {
        self.apps
            .get(&app)
            .map(|r| r.report.clone())
            .ok_or_else(|| YarnError::UnknownApplication(app.to_string()))
    }

    /// Reports of applications in `states` (all when empty).
    pub fn list(&self, states: &[AppState]) -> Vec<ApplicationReport> {
        self.apps
            .values()
            .filter(|r| states.is_empty() || states.contains(&r.report.state))
            .map(|r| r.report.clone())
            .collect()
    }

    /// The queue tree.
    pub fn queues(&self) -> Vec<QueueReport> {
        self.scheduler.queue_reports()
    }

    /// Every node the RM has seen.
    pub fn node_reports(&self, now: Instant) -> Vec<NodeReport> {
        self.nodes
            .iter()
            .map(|(id, n)| {
                let usage = self.scheduler.node_usage(*id);
                NodeReport {
                    host: n.host.clone(),
                    rack: n.rack.clone(),
                    state: if n.lost { "LOST" } else { "RUNNING" }.into(),
                    capability: n.capability,
                    used: usage.as_ref().map(|u| u.used).unwrap_or_default(),
                    containers: usage.map(|u| u.containers).unwrap_or(0),
                    aux_services: n.aux_services.clone(),
                    last_heartbeat_ago_ms: now.saturating_duration_since(n.last_seen).as_millis()
                        as u64,
                }
            })
            .collect()
    }

    fn prune_completed(&mut self) {
        let finals: Vec<AppId> = self
            .apps
            .values()
            .filter(|r| r.report.state.is_final())
            .map(|r| r.report.id)
            .collect();
        if finals.len() > self.max_completed_apps {
            for id in &finals[..finals.len() - self.max_completed_apps] {
                self.apps.remove(id);
                self.store_ops.push(StoreOp::Delete(*id));
            }
        }
    }

    // ---- application masters -------------------------------------------------------------

    fn current(&self, attempt: AttemptId, token: u64) -> Result<&AppRecord, YarnError> {
        match self.apps.get(&attempt.app) {
            Some(r)
                if r.report.attempt == attempt.attempt
                    && r.token == token
                    && !r.report.state.is_final() =>
            {
                Ok(r)
            }
            _ => Err(YarnError::NotCurrentMaster(attempt.to_string())),
        }
    }

    /// A master registers: the application is RUNNING.
    pub fn register_master(
        &mut self,
        attempt: AttemptId,
        token: u64,
        tracking_address: Option<String>,
    ) -> Result<Resource, YarnError> {
        self.current(attempt, token)?;
        if let Some(r) = self.apps.get_mut(&attempt.app) {
            r.report.state = AppState::Running;
            r.report.tracking_address = tracking_address;
        }
        self.persist(attempt.app);
        Ok(self.scheduler.largest_node())
    }

    /// Applies a master's asks, cancellations and releases (schedule and take news afterwards).
    pub fn allocate(&mut self, req: &Allocate) -> Result<(), YarnError> {
        self.current(req.attempt, req.token)?;
        for ask in &req.asks {
            if ask.ask_id == MASTER_ASK {
                return Err(YarnError::BadRequest(format!(
                    "ask id {MASTER_ASK} is reserved"
                )));
            }
            self.scheduler.add_ask(req.attempt, ask.clone())?;
        }
        for id in &req.cancel_asks {
            self.scheduler.cancel_ask(req.attempt, *id);
        }
        for id in &req.release {
            if id.attempt == req.attempt && self.containers.get(id).is_some_and(|c| !c.is_master) {
                self.stop_container(*id);
            }
        }
        Ok(())
    }

    /// News for a master since its last call; `shutdown` when the attempt is no longer current.
    pub fn take_allocation(&mut self, attempt: AttemptId, token: u64) -> Allocation {
        if self.current(attempt, token).is_err() {
            return Allocation {
                shutdown: true,
                ..Allocation::default()
            };
        }
        let pending = self.scheduler.pending(attempt);
        let news = self.news.entry(attempt.app).or_default();
        Allocation {
            allocated: std::mem::take(&mut news.allocated),
            completed: std::mem::take(&mut news.completed),
            pending,
            shutdown: false,
        }
    }

    /// Queues launches of allocated containers on their nodes.
    pub fn start_containers(
        &mut self,
        attempt: AttemptId,
        token: u64,
        launches: Vec<(ContainerId, LaunchSpec)>,
    ) -> Result<(), YarnError> {
        let user = self.current(attempt, token)?.report.user.clone();
        for (id, spec) in launches {
            let Some(c) = self
                .containers
                .get(&id)
                .filter(|c| id.attempt == attempt && !c.is_master)
            else {
                return Err(YarnError::BadRequest(format!(
                    "{id} is not a live container of {attempt}"
                )));
            };
            let (node_id, resource) = (c.node_id, c.resource);
            let launch = self.launch_for(id, &user, resource, spec, None);
            if let Some(n) = self.nodes.get_mut(&node_id) {
                n.commands.launch.push(launch);
            }
        }
        Ok(())
    }

    fn launch_for(
        &self,
        id: ContainerId,
        user: &str,
        resource: Resource,
        mut spec: LaunchSpec,
        token: Option<u64>,
    ) -> ContainerLaunch {
        spec.env.insert(env::CONTAINER_ID.into(), id.to_string());
        spec.env
            .insert(env::APPLICATION_ID.into(), id.attempt.app.to_string());
        spec.env
            .insert(env::ATTEMPT.into(), id.attempt.attempt.to_string());
        spec.env
            .insert(env::MEMORY_MB.into(), resource.memory_mb.to_string());
        spec.env
            .insert(env::RM_ADDRESS.into(), self.rm_address.clone());
        if let Some(t) = token {
            spec.env.insert(env::AM_TOKEN.into(), t.to_string());
        }
        ContainerLaunch {
            id,
            user: user.to_string(),
            resource,
            spec,
        }
    }

    /// The master declares the application over.
    pub fn finish_master(
        &mut self,
        attempt: AttemptId,
        token: u64,
        status: FinalStatus,
        diagnostics: String,
        now: Instant,
    ) -> Result<(), YarnError> {
        self.current(attempt, token)?;
        let state = match status {
            FinalStatus::Killed => AppState::Killed,
            _ => AppState::Finished,
        };
        let status = if status == FinalStatus::Undefined {
            FinalStatus::Failed
        } else {
            status
        };
        self.end_app(attempt.app, state, status, diagnostics, now);
        Ok(())
    }

    // ---- scheduling ----------------------------------------------------------------------

    /// Runs a scheduling pass; launches masters and hands other containers to their masters.
    /// Returns true when something was allocated.
    pub fn schedule(&mut self) -> bool {
        let placements = self.scheduler.schedule();
        let any = !placements.is_empty();
        for p in placements {
            let app = p.container.attempt.app;
            let Some(node) = self.nodes.get(&p.node_id) else {
                continue;
            };
            let (host, rack, aux) = (
                node.host.clone(),
                node.rack.clone(),
                node.aux_services.clone(),
            );
            let is_master = p.ask_id == MASTER_ASK;
            self.containers.insert(
                p.container,
                LiveContainer {
                    node_id: p.node_id,
                    is_master,
                    resource: p.resource,
                },
            );
            let Some(r) = self.apps.get_mut(&app) else {
                continue;
            };
            r.report.containers.push(ContainerReport {
                id: p.container,
                host: host.clone(),
                is_master,
                locality: p.locality,
                state: ContainerState::New,
                exit_status: 0,
                diagnostics: String::new(),
            });
            if is_master {
                r.master = Some(p.container);
                r.report.master_host = Some(host);
                let (spec, user, token) =
                    (r.submission.am_spec.clone(), r.report.user.clone(), r.token);
                let launch = self.launch_for(p.container, &user, p.resource, spec, Some(token));
                if let Some(n) = self.nodes.get_mut(&p.node_id) {
                    n.commands.launch.push(launch);
                }
                self.persist(app);
            } else {
                self.news
                    .entry(app)
                    .or_default()
                    .allocated
                    .push(AllocatedContainer {
                        id: p.container,
                        ask_id: p.ask_id,
                        host,
                        rack,
                        resource: p.resource,
                        locality: p.locality,
                        aux_services: aux,
                    });
            }
        }
        any
    }

    // ---- node managers -------------------------------------------------------------------

    /// A NodeManager (re-)registers. A previous registration of the same host is replaced; its
    /// containers that the NM no longer reports are lost, those it reports are adopted if the RM
    /// still wants them and stopped otherwise.
    pub fn register_node(&mut self, reg: RegisterNode, now: Instant) -> u64 {
        let previous: Vec<u64> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.host == reg.host)
            .map(|(id, _)| *id)
            .collect();
        let still_running: BTreeSet<ContainerId> = reg.running.iter().map(|c| c.id).collect();
        for old in previous {
            let carried: Vec<ContainerId> = self
                .containers
                .iter()
                .filter(|(id, c)| c.node_id == old && still_running.contains(id))
                .map(|(id, _)| *id)
                .collect();
            self.lose_node(
                old,
                &format!("node {} re-registered without it", reg.host),
                now,
                &carried,
            );
            self.nodes.remove(&old);
        }
        let node_id = self.next_node_id;
        self.next_node_id += 1;
        self.scheduler
            .add_node(node_id, &reg.host, &reg.rack, reg.capability);
        let mut commands = NodeCommands::default();
        for status in &reg.running {
            let wanted = self.containers.get(&status.id).map(|c| c.resource);
            match wanted {
                Some(resource) if self.scheduler.adopt(status.id, node_id, resource) => {
                    if let Some(c) = self.containers.get_mut(&status.id) {
                        c.node_id = node_id;
                    }
                }
                _ => commands.stop.push(status.id),
            }
        }
        self.nodes.insert(
            node_id,
            NodeEntry {
                host: reg.host,
                rack: reg.rack,
                capability: reg.capability,
                aux_services: reg.aux_services,
                last_seen: now,
                lost: false,
                commands,
            },
        );
        node_id
    }

    /// A heartbeat: records container statuses. `None` means the node must register again.
    pub fn node_heartbeat(
        &mut self,
        node_id: u64,
        statuses: &[ContainerStatus],
        now: Instant,
    ) -> Option<()> {
        let node = self.nodes.get_mut(&node_id).filter(|n| !n.lost)?;
        node.last_seen = now;
        for s in statuses {
            match s.state {
                ContainerState::Complete => {
                    self.complete_container(s.clone(), now);
                    if let Some(n) = self.nodes.get_mut(&node_id) {
                        n.commands.acknowledged.push(s.id);
                    }
                }
                _ => {
                    if self.containers.contains_key(&s.id) {
                        self.set_container_running(s.id);
                    } else if let Some(n) = self.nodes.get_mut(&node_id) {
                        n.commands.stop.push(s.id);
                    }
                }
            }
        }
        Some(())
    }

    /// Takes the commands waiting for a node (empty when there are none).
    pub fn take_node_commands(&mut self, node_id: u64) -> NodeCommands {
        match self.nodes.get_mut(&node_id) {
            Some(n) if !n.lost => std::mem::take(&mut n.commands),
            _ => NodeCommands {
                reregister: true,
                ..NodeCommands::default()
            },
        }
    }

    /// True when a node has commands waiting.
    pub fn has_node_commands(&self, node_id: u64) -> bool {
        self.nodes
            .get(&node_id)
            .is_none_or(|n| n.lost || n.commands != NodeCommands::default())
    }

    fn set_container_running(&mut self, id: ContainerId) {
        if let Some(r) = self.apps.get_mut(&id.attempt.app) {
            if let Some(c) = r
                .report
                .containers
                .iter_mut()
                .find(|c| c.id == id && c.state == ContainerState::New)
            {
                c.state = ContainerState::Running;
            }
        }
    }

    fn complete_container(&mut self, status: ContainerStatus, now: Instant) {
        let Some(live) = self.containers.remove(&status.id) else {
            return;
        };
        self.scheduler.release(status.id);
        let app = status.id.attempt.app;
        let Some(r) = self.apps.get_mut(&app) else {
            return;
        };
        if let Some(c) = r.report.containers.iter_mut().find(|c| c.id == status.id) {
            c.state = ContainerState::Complete;
            c.exit_status = status.exit_status;
            c.diagnostics = status.diagnostics.clone();
        }
        let current = r.report.attempt == status.id.attempt.attempt && !r.report.state.is_final();
        if live.is_master && current {
            let diag = format!(
                "attempt {} failed: its master exited with status {}{}",
                status.id.attempt.attempt,
                status.exit_status,
                if status.diagnostics.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", status.diagnostics)
                }
            );
            if r.report.attempt < r.report.max_attempts {
                r.report.diagnostics = diag;
                for id in self.scheduler.remove_attempt(status.id.attempt) {
                    self.stop_container(id);
                }
                self.start_attempt(app, now);
            } else {
                self.end_app(app, AppState::Failed, FinalStatus::Failed, diag, now);
            }
        } else if current {
            self.news.entry(app).or_default().completed.push(status);
            self.persist(app);
        } else {
            self.persist(app);
        }
    }

    /// Declares silent nodes lost. Returns true when any was.
    pub fn tick(&mut self, now: Instant) -> bool {
        let silent: Vec<u64> = self
            .nodes
            .iter()
            .filter(|(_, n)| {
                !n.lost && now.saturating_duration_since(n.last_seen) > self.node_timeout
            })
            .map(|(id, _)| *id)
            .collect();
        for id in &silent {
            let host = self
                .nodes
                .get(id)
                .map(|n| n.host.clone())
                .unwrap_or_default();
            tracing::warn!(host, "nodemanager lost: no heartbeat within the timeout");
            self.lose_node(
                *id,
                &format!("node lost: {host} stopped heartbeating"),
                now,
                &[],
            );
        }
        !silent.is_empty()
    }

    /// Marks a node lost; its containers (except `keep`) complete with "node lost".
    fn lose_node(&mut self, node_id: u64, why: &str, now: Instant, keep: &[ContainerId]) {
        let on_node: Vec<ContainerId> = self
            .containers
            .iter()
            .filter(|(id, c)| c.node_id == node_id && !keep.contains(id))
            .map(|(id, _)| *id)
            .collect();
        for id in on_node {
            let status = ContainerStatus {
                id,
                state: ContainerState::Complete,
                exit_status: exit_status::NODE_LOST,
                diagnostics: why.to_string(),
            };
            self.complete_container(status, now);
        }
        for id in keep {
            self.scheduler.release(*id);
        }
        self.scheduler.remove_node(node_id);
        if let Some(n) = self.nodes.get_mut(&node_id) {
            n.lost = true;
            n.commands = NodeCommands::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rm(timeout_ms: u64) -> (RmState, Instant) {
        let cfg = ResourceManagerConfig {
            node_timeout_ms: timeout_ms,
            ..ResourceManagerConfig::default()
        };
        let now = Instant::now();
        let s = RmState::new(
            &cfg,
            &YarnConfig::default(),
            &crate::resourcemanager::scheduler::default_queues(),
            now,
            1_000,
            7,
        )
        .unwrap();
        (s, now)
    }

    fn node(s: &mut RmState, host: &str, now: Instant) -> u64 {
        s.register_node(
            RegisterNode {
                host: host.into(),
                rack: "/r".into(),
                capability: Resource::new(4096, 4),
                aux_services: BTreeMap::new(),
                running: vec![],
            },
            now,
        )
    }

    fn submission() -> SubmitApplication {
        SubmitApplication {
            name: "t".into(),
            user: "u".into(),
            queue: "default".into(),
            am_resource: Resource::new(512, 1),
            am_spec: LaunchSpec {
                command: vec!["am".into()],
                ..LaunchSpec::default()
            },
            max_attempts: 0,
        }
    }

    fn done(id: ContainerId, code: i32) -> ContainerStatus {
        ContainerStatus {
            id,
            state: ContainerState::Complete,
            exit_status: code,
            diagnostics: String::new(),
        }
    }

    /// Submits and returns (app, master container, node, token).
    fn launched_master(s: &mut RmState, now: Instant) -> (AppId, ContainerLaunch, u64) {
        let n = node(s, "10.0.0.1", now);
        let app = s.submit(submission(), now).unwrap();
        assert_eq!(s.report(app).unwrap().state, AppState::Accepted);
        assert!(s.schedule());
        let cmds = s.take_node_commands(n);
        assert_eq!(cmds.launch.len(), 1);
        (app, cmds.launch[0].clone(), n)
    }

    fn token_of(l: &ContainerLaunch) -> u64 {
        l.spec.env[env::AM_TOKEN].parse().unwrap()
    }

    #[test]
    fn application_runs_through_its_states_and_containers_reach_the_master() {
        let (mut s, now) = rm(10_000);
        let (app, master, n) = launched_master(&mut s, now);
        assert_eq!(master.spec.env[env::APPLICATION_ID], app.to_string());
        let attempt = master.id.attempt;
        let token = token_of(&master);
        assert!(
            s.register_master(attempt, token.wrapping_add(1), None)
                .is_err(),
            "wrong token refused"
        );
        s.register_master(attempt, token, Some("127.0.0.1:4242".into()))
            .unwrap();
        assert_eq!(s.report(app).unwrap().state, AppState::Running);
        assert_eq!(
            s.report(app).unwrap().tracking_address.as_deref(),
            Some("127.0.0.1:4242")
        );
        let ask = ContainerAsk {
            ask_id: 1,
            count: 2,
            resource: Resource::new(1024, 1),
            priority: 1,
            hosts: vec![],
            racks: vec![],
            relax_locality: true,
        };
        let req = Allocate {
            attempt,
            token,
            asks: vec![ask],
            cancel_asks: vec![],
            release: vec![],
            wait_ms: 0,
        };
        s.allocate(&req).unwrap();
        s.schedule();
        let a = s.take_allocation(attempt, token);
        assert_eq!(a.allocated.len(), 2);
        let launches = a.allocated.iter().map(|c| {
            (
                c.id,
                LaunchSpec {
                    command: vec!["true".into()],
                    ..Default::default()
                },
            )
        });
        s.start_containers(attempt, token, launches.collect())
            .unwrap();
        assert_eq!(s.take_node_commands(n).launch.len(), 2);
        s.node_heartbeat(
            n,
            &[done(a.allocated[0].id, 0), done(a.allocated[1].id, 3)],
            now,
        )
        .unwrap();
        let a2 = s.take_allocation(attempt, token);
        assert_eq!(
            a2.completed
                .iter()
                .map(|c| c.exit_status)
                .collect::<Vec<_>>(),
            vec![0, 3]
        );
        s.finish_master(
            attempt,
            token,
            FinalStatus::Failed,
            "one failed".into(),
            now,
        )
        .unwrap();
        let r = s.report(app).unwrap();
        assert_eq!(
            (r.state, r.final_status),
            (AppState::Finished, FinalStatus::Failed)
        );
        assert_eq!(r.containers.len(), 3);
        assert!(matches!(
            s.kill(app, now),
            Err(YarnError::AlreadyFinal { .. })
        ));
        assert!(s
            .take_store_ops()
            .iter()
            .any(|op| matches!(op, StoreOp::Put(r) if r.report.state == AppState::Finished)));
    }

    #[test]
    fn a_failed_master_is_retried_then_the_application_fails() {
        let (mut s, now) = rm(10_000);
        let (app, master, n) = launched_master(&mut s, now);
        s.node_heartbeat(n, &[done(master.id, 1)], now).unwrap();
        let r = s.report(app).unwrap();
        assert_eq!((r.state, r.attempt), (AppState::Accepted, 2));
        assert!(
            r.diagnostics.contains("attempt 1 failed"),
            "{}",
            r.diagnostics
        );
        s.schedule();
        let second = s.take_node_commands(n).launch.remove(0);
        assert_eq!(second.id.attempt.attempt, 2);
        assert!(
            s.register_master(master.id.attempt, token_of(&master), None)
                .is_err(),
            "old attempt is not current"
        );
        s.node_heartbeat(n, &[done(second.id, 1)], now).unwrap();
        let r = s.report(app).unwrap();
        assert_eq!(
            (r.state, r.final_status),
            (AppState::Failed, FinalStatus::Failed)
        );
    }

    #[test]
    fn a_silent_node_is_lost_and_its_containers_complete_with_node_lost() {
        let (mut s, now) = rm(1_000);
        let (app, master, n) = launched_master(&mut s, now);
        let other = node(&mut s, "10.0.0.2", now);
        let later = now + Duration::from_millis(800);
        s.node_heartbeat(other, &[], later).unwrap();
        assert!(!s.tick(later));
        let much_later = now + Duration::from_millis(1_500);
        assert!(s.tick(much_later), "node 1 silent for 1.5 s > 1 s");
        let r = s.report(app).unwrap();
        let c = r.containers.iter().find(|c| c.id == master.id).unwrap();
        assert_eq!(c.exit_status, exit_status::NODE_LOST);
        assert!(c.diagnostics.contains("node lost"), "{}", c.diagnostics);
        assert_eq!(r.attempt, 2, "the master was retried");
        assert!(
            s.node_heartbeat(n, &[], much_later).is_none(),
            "lost node must re-register"
        );
        s.schedule();
        let relaunch = s.take_node_commands(other).launch;
        assert_eq!(
            relaunch.len(),
            1,
            "second attempt runs on the surviving node"
        );
        assert!(s.node_reports(much_later).iter().any(|n| n.state == "LOST"));
    }

    #[test]
    fn bad_submissions_are_rejected_at_once() {
        let (mut s, now) = rm(10_000);
        node(&mut s, "10.0.0.1", now);
        let mut sub = submission();
        sub.queue = "nope".into();
        assert_eq!(
            s.submit(sub, now),
            Err(YarnError::UnknownQueue("nope".into()))
        );
        let mut sub = submission();
        sub.am_resource = Resource::new(1 << 20, 1);
        assert!(matches!(
            s.submit(sub, now),
            Err(YarnError::ResourceTooLarge { .. })
        ));
        assert!(s.list(&[]).is_empty());
    }

    #[test]
    fn a_node_heartbeating_with_a_previous_rms_id_must_register_again() {
        let cfg = ResourceManagerConfig::default();
        let queues = crate::resourcemanager::scheduler::default_queues();
        let now = Instant::now();
        let mut before =
            RmState::new(&cfg, &YarnConfig::default(), &queues, now, 1_000, 1).unwrap();
        let old_a = node(&mut before, "127.0.0.2", now);
        let _old_b = node(&mut before, "127.0.0.3", now);
        // The RM restarts; node b happens to register first.
        let mut after = RmState::new(&cfg, &YarnConfig::default(), &queues, now, 2_000, 2).unwrap();
        let new_b = node(&mut after, "127.0.0.3", now);
        assert_ne!(
            new_b, old_a,
            "a new RM must not hand out an id the old one used"
        );
        assert!(
            after.node_heartbeat(old_a, &[], now).is_none(),
            "node a must be told to re-register, not be taken for node b"
        );
    }

    #[test]
    fn records_of_a_previous_run_are_kept_and_unfinished_ones_failed() {
        let (mut s, now) = rm(10_000);
        let (app, _master, _n) = launched_master(&mut s, now);
        let finished = s.submit(submission(), now).unwrap();
        s.kill(finished, now).unwrap();
        let records: Vec<AppRecord> = s.apps.values().cloned().collect();
        let (mut restarted, now2) = rm(10_000);
        restarted.recover(records, now2);
        assert_eq!(restarted.report(finished).unwrap().state, AppState::Killed);
        let r = restarted.report(app).unwrap();
        assert_eq!(r.state, AppState::Failed);
        assert!(r.diagnostics.contains("restarted"), "{}", r.diagnostics);
        let new = restarted.submit(submission(), now2).unwrap();
        assert!(
            new.cluster_ts > app.cluster_ts,
            "ids never repeat across restarts"
        );
    }
}
