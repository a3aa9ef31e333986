//! `sheaf sql-master`: the query master of one SQL session, run by the ResourceManager in the
//! application's master container. It keeps one executor container per node, serves the client
//! (statements in, rows out) and the executors (tasks out, outcomes in), schedules every query's
//! producer stages with a [`QueryScheduler`], runs the final stage itself, and removes each
//! query's stage outputs from every node when the query ends, whatever its outcome.

use super::protocol::*;
use super::scheduler::{LocalityView, QueryScheduler, StageShape};
use super::shuffle_source::{LostInputs, ShuffleStageSource};
use crate::catalog::Metastore;
use crate::error::{SqlError, SqlResult};
use crate::executor::{self, StageProgress, StageStats};
use crate::history::{SessionHistory, StatementRecord};
use crate::session::{
    DistributedQuery, DistributedRunner, SqlSession, SqlSettings, StatementOutcome,
};
use crate::stage_store::{LocalStageDir, StageInputs};
use datafusion::arrow::array::RecordBatch;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::execution_plan::reset_plan_states;
use sheaf_dfs::client::DfsClient;
use sheaf_dfs::config::DfsConfig;
use sheaf_mapreduce::attempts::AttemptPolicy;
use sheaf_mapreduce::shuffle::fetcher::ShuffleJob;
use sheaf_mapreduce::shuffle::{JobSecret, ShuffleFetcher, ShuffleServiceClient, ShuffleSettings};
use sheaf_rpc::service::{PeerInfo, RpcServer, Service, Shutdown};
use sheaf_rpc::time::Clock;
use sheaf_rpc::{quic, TlsIdentity};
use sheaf_yarn::master::MasterClient;
use sheaf_yarn::protocol::{
    exit_status, ContainerAsk, FinalStatus, LaunchSpec, Resource, YarnError,
};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

mod runner;
mod service;

use runner::ClusterRunner;
use service::MasterService;

/// How long a long-poll (`NextTask`, `Poll`) waits for news.
const LONG_POLL: Duration = Duration::from_millis(1000);
/// A session whose client sent nothing for this long is over (the client died).
const CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Executor containers replaced after they were lost, at most this many times the executors.
const REPLACEMENTS_PER_EXECUTOR: u32 = 3;
/// A query starts once this share of the wanted executors has registered, or after
/// [`EXECUTORS_WAIT`] (Spark's `minRegisteredResourcesRatio` 0.8 on YARN): scheduled on the
/// first executor alone, scan tasks would run far from their blocks.
const EXECUTORS_RATIO: f64 = 0.8;
/// See [`EXECUTORS_RATIO`]. Spark waits 30 s; containers start here in well under a second, and
/// a node too small for an executor beside the master container (one vcore per NodeManager on
/// a 2-core pseudo-cluster) never gets one: the first query must not pay 30 s for it (measured:
/// TPC-H Q1 took 30.5 s on the cluster with a 30 s wait, 1.0 s locally).
const EXECUTORS_WAIT: Duration = Duration::from_secs(3);

/// What the query master needs.
pub struct MasterSetup {
    /// The DFS (tables, catalog, outputs).
    pub dfs: DfsConfig,
    /// The identity to present.
    pub identity: TlsIdentity,
    /// This container's node.
    pub host: IpAddr,
    /// argv of an executor (`sheaf sql-executor`).
    pub executor_command: Vec<String>,
    /// The client's token.
    pub client_token: Vec<u8>,
    /// The session's settings (`-D`).
    pub settings: Vec<(String, String)>,
    /// The submitting user.
    pub user: String,
    /// Executors to keep (0: one per node).
    pub executors: u32,
    /// Size of each executor container.
    pub executor_resource: Resource,
    /// Scratch space (spills, fetched partitions), in the container's working dir.
    pub scratch: PathBuf,
}

#[derive(Debug, Clone)]
struct ExecutorInfo {
    container: String,
    host: String,
    shuffle: SocketAddr,
    alive: bool,
}

struct RunningQuery {
    scheduler: QueryScheduler,
    template: TaskSpec,
}

#[derive(Default)]
struct StatementState {
    progress: BTreeMap<usize, StageProgress>,
    outcome: Option<WireOutcome>,
}

#[derive(Default)]
struct MasterState {
    executors: BTreeMap<u32, ExecutorInfo>,
    next_executor: u32,
    queries: BTreeMap<u64, RunningQuery>,
    next_query: u64,
    statements: BTreeMap<u64, StatementState>,
    next_statement: u64,
    closed: bool,
    last_client: Option<Instant>,
    /// The rack of every node the ResourceManager reported.
    rack_of: BTreeMap<String, String>,
    /// Executors the session keeps.
    wanted_executors: u32,
    /// Every statement run so far (the session history).
    history: Vec<StatementRecord>,
}

impl MasterState {
    /// Where executors are, for delay scheduling.
    fn locality_view(&self) -> LocalityView {
        LocalityView {
            executor_hosts: self
                .executors
                .values()
                .filter(|e| e.alive)
                .map(|e| e.host.clone())
                .collect(),
            rack_of: self.rack_of.clone(),
        }
    }

    /// Tells every running query where executors are now.
    fn update_views(&mut self) {
        let view = self.locality_view();
        for q in self.queries.values_mut() {
            q.scheduler.set_view(view.clone());
        }
    }
}

/// The state every part of the master shares.
struct MasterCore {
    state: Mutex<MasterState>,
    changed: Notify,
    clock: Clock,
    executor_token: Vec<u8>,
    client_token: Vec<u8>,
    job_id: String,
    secret: JobSecret,
    fetcher: Arc<ShuffleFetcher>,
    service: ShuffleServiceClient,
    scratch: PathBuf,
    started: Instant,
}

impl MasterCore {
    fn lock(&self) -> std::sync::MutexGuard<'_, MasterState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn shuffle_addresses(&self) -> Vec<SocketAddr> {
        let mut v: Vec<SocketAddr> = self.lock().executors.values().map(|e| e.shuffle).collect();
        v.sort();
        v.dedup();
        v
    }

    /// Waits until [`EXECUTORS_RATIO`] of the wanted executors are registered, at most
    /// [`EXECUTORS_WAIT`] since the session started.
    async fn wait_for_executors(&self) {
        loop {
            let signal = self.next_change();
            {
                let st = self.lock();
                let alive = st.executors.values().filter(|e| e.alive).count() as f64;
                let wanted = (st.wanted_executors as f64 * EXECUTORS_RATIO).ceil();
                if (st.wanted_executors > 0 && alive >= wanted)
                    || self.started.elapsed() >= EXECUTORS_WAIT
                {
                    return;
                }
            }
            wait_change(signal, Duration::from_millis(200)).await;
        }
    }

    /// A signal of the next change, armed now: take it *before* looking at the state, so a
    /// change made between the look and the wait is not missed.
    fn next_change(&self) -> ChangeSignal<'_> {
        let mut signal = Box::pin(self.changed.notified());
        signal.as_mut().enable();
        signal
    }
}

/// An armed wait for the next change of [`MasterCore`]'s state.
type ChangeSignal<'a> = std::pin::Pin<Box<tokio::sync::futures::Notified<'a>>>;

/// Waits until `signal` fires or `timeout` passes.
async fn wait_change(signal: ChangeSignal<'_>, timeout: Duration) {
    let _ = tokio::time::timeout(timeout, signal).await;
}

/// How many executors of `each` fit in what a node has left.
fn fits(capability: &Resource, used: &Resource, each: &Resource) -> u64 {
    let memory = capability.memory_mb.saturating_sub(used.memory_mb) / each.memory_mb.max(1);
    let vcores = capability.vcores.saturating_sub(used.vcores) / each.vcores.max(1);
    memory.min(u64::from(vcores))
}

/// Runs the session's application to its end.
pub async fn run_master(setup: MasterSetup) -> SqlResult<FinalStatus> {
    let am = MasterClient::from_env(&setup.identity, setup.host)
        .map_err(|e| SqlError::Cluster(e.to_string()))?;
    let app = am.attempt().app.to_string();
    let job_id = sheaf_mapreduce::cluster::submission::job_id_of_application(&app);
    let fetcher = ShuffleFetcher::new(&setup.identity, setup.host, ShuffleSettings::default())
        .map_err(|e| SqlError::Cluster(format!("shuffle fetcher: {e}")))?;
    let service = ShuffleServiceClient::new(&setup.identity, setup.host)
        .map_err(|e| SqlError::Cluster(format!("shuffle service client: {e}")))?;
    let core = Arc::new(MasterCore {
        state: Mutex::new(MasterState {
            next_query: 1,
            next_statement: 1,
            last_client: Some(Instant::now()),
            ..MasterState::default()
        }),
        changed: Notify::new(),
        clock: Clock::new(),
        executor_token: super::new_token(),
        client_token: setup.client_token.clone(),
        job_id,
        secret: JobSecret::generate(),
        fetcher,
        service,
        scratch: setup.scratch.clone(),
        started: Instant::now(),
    });
    let dfs = DfsClient::connect(&setup.dfs, setup.identity.clone())
        .await
        .map_err(|e| SqlError::Cluster(format!("connecting to the DFS: {e}")))?;
    let mut settings = SqlSettings::default();
    for (k, v) in &setup.settings {
        settings.set(k, v)?;
    }
    settings.scratch_dir = setup.scratch.clone();
    let history_dfs = dfs.clone();
    let session_start_ms = sheaf_rpc::time::wall_clock_ms();
    let session = SqlSession::new(
        Some(dfs.clone()),
        Metastore::Dfs(dfs),
        settings,
        setup.user.clone(),
    )
    .await?
    .with_runner(Arc::new(ClusterRunner {
        core: Arc::clone(&core),
    }));
    let service = Arc::new(MasterService {
        core: Arc::clone(&core),
        session: Arc::new(session),
    });
    let endpoint = quic::server_endpoint(SocketAddr::new(setup.host, 0), &setup.identity)
        .map_err(|e| SqlError::Cluster(format!("master endpoint: {e}")))?;
    let address = endpoint
        .local_addr()
        .map_err(|e| SqlError::io("master endpoint address", e))?;
    let (trigger, shutdown) = Shutdown::new();
    let server = tokio::spawn(RpcServer::serve(endpoint, service, shutdown));
    let result = drive(&am, &core, &setup, address).await;
    // Tell executors to stop, give their slots one poll to hear it, then stop serving.
    core.lock().closed = true;
    core.changed.notify_waiters();
    tokio::time::sleep(LONG_POLL + Duration::from_millis(200)).await;
    trigger.trigger();
    let _ = server.await;
    let history = SessionHistory {
        job_id: core.job_id.clone(),
        user: setup.user.clone(),
        start_ms: session_start_ms,
        finish_ms: sheaf_rpc::time::wall_clock_ms(),
        statements: std::mem::take(&mut core.lock().history),
    };
    match crate::history::write(&history_dfs, &history).await {
        Ok(path) => tracing::info!(%path, "session history written"),
        Err(e) => tracing::warn!(error = %e, "cannot write the session history"),
    }
    let (status, diagnostics) = match &result {
        Ok(n) => (FinalStatus::Succeeded, format!("{n} statements run")),
        Err(e) => (FinalStatus::Failed, e.to_string()),
    };
    am.finish(status, diagnostics)
        .await
        .map_err(|e| SqlError::Cluster(e.to_string()))?;
    core.fetcher.close();
    core.service.close();
    result.map(|_| status)
}

fn yarn_err(e: YarnError) -> SqlError {
    SqlError::Cluster(e.to_string())
}

/// Registers, keeps the executors running, and returns when the session is over (the number
/// of statements run).
async fn drive(
    am: &MasterClient,
    core: &Arc<MasterCore>,
    setup: &MasterSetup,
    address: SocketAddr,
) -> SqlResult<u64> {
    am.register(Some(address.to_string()))
        .await
        .map_err(yarn_err)?;
    let reports: Vec<_> = am
        .nodes()
        .await
        .map_err(yarn_err)?
        .into_iter()
        .filter(|n| n.state == "RUNNING")
        .collect();
    let nodes: Vec<String> = reports.iter().map(|n| n.host.clone()).collect();
    core.lock().rack_of = reports
        .iter()
        .map(|n| (n.host.clone(), n.rack.clone()))
        .collect();
    // An executor no node can hold would never start: shrink it to the biggest node.
    let mut executor_resource = setup.executor_resource;
    if let Some(vcores) = reports.iter().map(|n| n.capability.vcores).max() {
        executor_resource.vcores = executor_resource.vcores.min(vcores.max(1));
    }
    if let Some(mb) = reports.iter().map(|n| n.capability.memory_mb).max() {
        executor_resource.memory_mb = executor_resource.memory_mb.min(mb.max(64));
    }
    let wanted = if setup.executors == 0 {
        nodes.len().max(1) as u32
    } else {
        setup.executors
    };
    // Queries wait for the executors that can start now: on a small cluster some asks never
    // fit (the master's own container takes a node's only core), and waiting for them would
    // cost every session's first query the whole of EXECUTORS_WAIT.
    let placeable: u64 = reports
        .iter()
        .map(|n| fits(&n.capability, &n.used, &executor_resource))
        .sum();
    core.lock().wanted_executors = wanted.min(placeable.min(u64::from(u32::MAX)) as u32).max(1);
    core.changed.notify_waiters();
    let mut next_ask = 1u64;
    let mut asks: Vec<ContainerAsk> = (0..wanted)
        .map(|i| {
            let id = next_ask;
            next_ask += 1;
            ContainerAsk {
                ask_id: id,
                count: 1,
                resource: executor_resource,
                priority: 1,
                hosts: nodes
                    .get(i as usize % nodes.len().max(1))
                    .cloned()
                    .into_iter()
                    .collect(),
                racks: vec![],
                relax_locality: true,
            }
        })
        .collect();
    let mut replacements = 0u32;
    let slots = executor_resource.vcores.max(1);
    // Half the container for operators; the rest is the process, its buffers and fetches.
    let memory = (executor_resource.memory_mb as usize * (1 << 20)) / 2;
    loop {
        let allocation = am
            .allocate(std::mem::take(&mut asks), vec![], vec![], 500)
            .await
            .map_err(yarn_err)?;
        if allocation.shutdown {
            return Err(SqlError::Cluster(
                "the ResourceManager ended this session's application".into(),
            ));
        }
        if !allocation.allocated.is_empty() {
            let launches = allocation
                .allocated
                .iter()
                .map(|c| {
                    let mut env = BTreeMap::new();
                    env.insert(super::env::MASTER_ADDRESS.into(), address.to_string());
                    env.insert(
                        super::env::EXECUTOR_TOKEN.into(),
                        super::to_hex(&core.executor_token),
                    );
                    env.insert(super::env::SLOTS.into(), slots.to_string());
                    env.insert(super::env::TASK_MEMORY.into(), memory.to_string());
                    env.insert(
                        sheaf_mapreduce::cluster::submission::env::TASK_HOST.into(),
                        c.host.clone(),
                    );
                    if let Some(s) = c
                        .aux_services
                        .get(sheaf_mapreduce::cluster::submission::SHUFFLE_SERVICE)
                    {
                        env.insert(
                            sheaf_mapreduce::cluster::submission::env::SHUFFLE_ADDRESS.into(),
                            s.clone(),
                        );
                    }
                    let spec = LaunchSpec {
                        command: setup.executor_command.clone(),
                        env,
                        ..LaunchSpec::default()
                    };
                    (c.id, spec)
                })
                .collect();
            am.start(launches).await.map_err(yarn_err)?;
        }
        for c in allocation.completed {
            let container = c.id.to_string();
            let now = core.clock.now();
            let lost = {
                let mut st = core.lock();
                let lost: Vec<u32> = st
                    .executors
                    .iter()
                    .filter(|(_, e)| e.container == container && e.alive)
                    .map(|(id, _)| *id)
                    .collect();
                for id in &lost {
                    if let Some(e) = st.executors.get_mut(id) {
                        e.alive = false;
                    }
                    st.update_views();
                    for q in st.queries.values_mut() {
                        q.scheduler.executor_lost(
                            *id,
                            c.exit_status == exit_status::NODE_LOST,
                            &format!("executor container {container} ended: {}", c.diagnostics),
                            now,
                        );
                    }
                }
                lost
            };
            tracing::info!(%container, exit = c.exit_status, executors = ?lost, "executor container ended");
            core.changed.notify_waiters();
            let closed = core.lock().closed;
            if !closed
                && c.exit_status != exit_status::KILLED
                && replacements < wanted * REPLACEMENTS_PER_EXECUTOR
            {
                replacements += 1;
                asks.push(ContainerAsk {
                    ask_id: next_ask,
                    count: 1,
                    resource: executor_resource,
                    priority: 1,
                    hosts: vec![],
                    racks: vec![],
                    relax_locality: true,
                });
                next_ask += 1;
            }
        }
        {
            let st = core.lock();
            if st.closed {
                return Ok(st.next_statement - 1);
            }
            let idle = st
                .last_client
                .map(|t| t.elapsed() > CLIENT_IDLE_TIMEOUT)
                .unwrap_or(false);
            let running = st.statements.values().any(|s| s.outcome.is_none());
            if idle && !running {
                return Err(SqlError::Cluster(format!(
                    "the client sent nothing for {} s; session abandoned",
                    CLIENT_IDLE_TIMEOUT.as_secs()
                )));
            }
        }
        let now = core.clock.now();
        let timed_out = {
            let mut st = core.lock();
            for q in st.queries.values_mut() {
                q.scheduler.time_out(now);
            }
            !st.queries.is_empty()
        };
        if timed_out {
            core.changed.notify_waiters();
        }
    }
}
