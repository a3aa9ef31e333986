//! `sheaf sql-executor`: a long-lived executor of a SQL session, one per node (Spark's executors).
//! Each of its slots asks the query master for a task, plans the task's statement again (once
//! per statement: the plan is cached by its fingerprint), runs one partition of one stage with
//! its inputs fetched from the shuffle services, writes the output partitions under the node's
//! shuffle directory, registers them with the node's shuffle service and reports the manifest.

use super::cluster_err;
use super::protocol::{QmRequest, QmResponse, TaskOutcome, TaskSpec};
use super::shuffle_source::{map_id, LocalOutputs, LostInputs, ShuffleStageSource};
use crate::catalog::Metastore;
use crate::error::{SqlError, SqlResult};
use crate::executor::spilled_bytes;
use crate::scan_caches::ScanCaches;
use crate::session::{SqlSession, SqlSettings};
use crate::stage_store::{LocalStageDir, StageInputs};
use crate::stages::StagePlan;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::execution_plan::reset_plan_states;
use sheaf_dfs::client::DfsClient;
use sheaf_dfs::config::DfsConfig;
use sheaf_mapreduce::shuffle::fetcher::ShuffleJob;
use sheaf_mapreduce::shuffle::{
    JobSecret, MapAttemptId, ShuffleFetcher, ShuffleServiceClient, ShuffleSettings,
};
use sheaf_mapreduce::task::run_file::SegmentIndexEntry;
use sheaf_rpc::{quic, RpcClient, TlsIdentity};
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Plans kept per executor (one per recent statement).
const PLAN_CACHE: usize = 8;
/// How long an executor keeps trying to reach a master that stopped answering.
const MASTER_PATIENCE: Duration = Duration::from_secs(30);

/// What an executor process needs.
pub struct ExecutorSetup {
    /// The query master.
    pub master: SocketAddr,
    /// The executors' token.
    pub token: Vec<u8>,
    /// This container.
    pub container: String,
    /// This node's host identity (client endpoints bind to it).
    pub host: IpAddr,
    /// This node's shuffle service.
    pub shuffle: SocketAddr,
    /// This node's shuffle root (`$SHEAF_SHUFFLE_DIR`).
    pub shuffle_dir: PathBuf,
    /// Scratch space (spills, plan sessions), in the container's working dir.
    pub scratch: PathBuf,
    /// Tasks at once.
    pub slots: usize,
    /// Operator memory of the whole executor, bytes.
    pub memory: usize,
    /// The DFS, for table scans.
    pub dfs: DfsConfig,
    /// The identity to present.
    pub identity: TlsIdentity,
}

struct Planned {
    fingerprint: u64,
    session: Arc<SqlSession>,
    plan: StagePlan,
}

/// Sessions kept per executor (one per set of tables and settings: a whole `sheaf sql` script
/// usually needs one).
const SESSION_CACHE: usize = 4;

struct Executor {
    setup: ExecutorSetup,
    id: u32,
    rpc: RpcClient,
    dfs: DfsClient,
    fetcher: Arc<ShuffleFetcher>,
    service: ShuffleServiceClient,
    plans: tokio::sync::Mutex<VecDeque<Arc<Planned>>>,
    /// Footers and statistics the statements' sessions read, shared by the next ones.
    caches: Mutex<ScanCaches>,
    /// Sessions by the hash of their tables and settings: a statement over the same tables
    /// with the same settings is planned in the session the previous one used (its tables
    /// registered once, not once per statement).
    sessions: tokio::sync::Mutex<VecDeque<(u64, Arc<SqlSession>)>>,
    tasks_run: Mutex<u64>,
}

/// Runs the executor until the master says the session is over (or is gone); returns the
/// number of tasks run.
pub async fn run_executor(setup: ExecutorSetup) -> SqlResult<u64> {
    let endpoint = quic::client_endpoint(setup.host, &setup.identity)
        .map_err(|e| cluster_err("client endpoint", e))?;
    let mut rpc = RpcClient::new(endpoint);
    rpc.call_timeout = Duration::from_secs(20);
    let request = QmRequest::RegisterExecutor {
        token: setup.token.clone(),
        container: setup.container.clone(),
        host: setup.host.to_string(),
        shuffle: setup.shuffle,
    };
    let id = match call_patiently(&rpc, setup.master, &request).await? {
        QmResponse::Registered { executor } => executor,
        QmResponse::Refused(why) => {
            return Err(SqlError::Cluster(format!("master refused: {why}")))
        }
        other => return Err(SqlError::Cluster(format!("unexpected answer {other:?}"))),
    };
    let dfs = DfsClient::connect(&setup.dfs, setup.identity.clone())
        .await
        .map_err(|e| cluster_err("connecting to the DFS", e))?;
    let fetcher = ShuffleFetcher::new(&setup.identity, setup.host, ShuffleSettings::default())
        .map_err(|e| cluster_err("shuffle fetcher", e))?;
    let service = ShuffleServiceClient::new(&setup.identity, setup.host)
        .map_err(|e| cluster_err("shuffle service client", e))?;
    let slots = setup.slots.max(1);
    let executor = Arc::new(Executor {
        setup,
        id,
        rpc,
        dfs,
        fetcher,
        service,
        plans: tokio::sync::Mutex::new(VecDeque::new()),
        caches: Mutex::new(ScanCaches::default()),
        sessions: tokio::sync::Mutex::new(VecDeque::new()),
        tasks_run: Mutex::new(0),
    });
    let mut loops = tokio::task::JoinSet::new();
    for _ in 0..slots {
        loops.spawn(Arc::clone(&executor).slot());
    }
    let mut first_error = None;
    while let Some(r) = loops.join_next().await {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(SqlError::Cluster(format!("executor slot: {e}")));
            }
        }
    }
    executor.fetcher.close();
    executor.service.close();
    let n = executor.tasks_run.lock().map(|n| *n).unwrap_or(0);
    match first_error {
        Some(e) => Err(e),
        None => Ok(n),
    }
}

/// One call, retried while the master is unreachable for up to [`MASTER_PATIENCE`].
async fn call_patiently(
    rpc: &RpcClient,
    master: SocketAddr,
    req: &QmRequest,
) -> SqlResult<QmResponse> {
    let started = Instant::now();
    loop {
        match rpc.call::<_, QmResponse>(master, req).await {
            Ok(r) => return Ok(r),
            Err(e) if started.elapsed() < MASTER_PATIENCE => {
                tracing::debug!(error = %e, "query master unreachable; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(cluster_err("the query master stopped answering", e)),
        }
    }
}

impl Executor {
    async fn slot(self: Arc<Self>) -> SqlResult<()> {
        let next = QmRequest::NextTask {
            token: self.setup.token.clone(),
            executor: self.id,
        };
        loop {
            match call_patiently(&self.rpc, self.setup.master, &next).await? {
                QmResponse::Task(spec) => {
                    let attempt = spec.attempt;
                    let outcome = self.run_task(*spec).await;
                    if let TaskOutcome::Failed { error } | TaskOutcome::OutOfMemory { error } =
                        &outcome
                    {
                        tracing::warn!(%attempt, %error, "task failed");
                    }
                    if let Ok(mut n) = self.tasks_run.lock() {
                        *n += 1;
                    }
                    let report = QmRequest::TaskEnded {
                        token: self.setup.token.clone(),
                        executor: self.id,
                        attempt,
                        outcome,
                    };
                    call_patiently(&self.rpc, self.setup.master, &report).await?;
                }
                QmResponse::NoTask => {}
                QmResponse::Shutdown => return Ok(()),
                QmResponse::Refused(why) => {
                    return Err(SqlError::Cluster(format!("master refused: {why}")))
                }
                other => return Err(SqlError::Cluster(format!("unexpected answer {other:?}"))),
            }
        }
    }

    /// The plan of `spec`'s statement, planned here once per fingerprint.
    async fn planned(&self, spec: &TaskSpec) -> SqlResult<Arc<Planned>> {
        let mut plans = self.plans.lock().await;
        if let Some(p) = plans.iter().find(|p| p.fingerprint == spec.fingerprint) {
            return Ok(Arc::clone(p));
        }
        let session = self.session_for(spec).await?;
        let plan = session
            .stage_plan(&spec.statement, spec.start_time_ns)
            .await?;
        let fingerprint = super::fingerprint(&plan);
        if fingerprint != spec.fingerprint {
            return Err(SqlError::Cluster(format!(
                "the executor on {} planned the statement differently from the master (the tables' files or settings changed while it ran?): {}",
                self.setup.host, spec.statement
            )));
        }
        let planned = Arc::new(Planned {
            fingerprint,
            session,
            plan,
        });
        plans.push_front(Arc::clone(&planned));
        plans.truncate(PLAN_CACHE);
        Ok(planned)
    }

    /// A session with `spec`'s tables and settings: the one an earlier statement used, or a new
    /// one.
    async fn session_for(&self, spec: &TaskSpec) -> SqlResult<Arc<SqlSession>> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&spec.tables, &spec.settings).hash(&mut h);
        let key = h.finish();
        let mut sessions = self.sessions.lock().await;
        if let Some((_, s)) = sessions.iter().find(|(k, _)| *k == key) {
            return Ok(Arc::clone(s));
        }
        let mut settings = SqlSettings::default();
        for (k, v) in &spec.settings {
            settings.set(k, v)?;
        }
        settings.scratch_dir = self.setup.scratch.clone();
        // The executor's pool is shared by its slots: the container's share, or less when the
        // session asked for a smaller per-task budget.
        let asked = spec
            .settings
            .iter()
            .any(|(k, _)| k == "sheaf.sql.task-memory");
        settings.task_memory = if asked {
            self.setup
                .memory
                .min(settings.task_memory.saturating_mul(self.setup.slots.max(1)))
        } else {
            self.setup.memory
        };
        let empty_catalog = self.setup.scratch.join("no-metastore");
        let caches = self.caches.lock().map(|c| c.clone()).unwrap_or_default();
        let session = SqlSession::new_sharing(
            Some(self.dfs.clone()),
            Metastore::Local(empty_catalog),
            settings,
            String::new(),
            &caches,
        )
        .await?;
        if let Ok(mut c) = self.caches.lock() {
            *c = session.scan_caches();
        }
        session.register_tables(&spec.tables).await?;
        let session = Arc::new(session);
        sessions.push_front((key, Arc::clone(&session)));
        sessions.truncate(SESSION_CACHE);
        Ok(session)
    }

    async fn run_task(&self, spec: TaskSpec) -> TaskOutcome {
        let lost = LostInputs::default();
        match self.try_run_task(&spec, lost.clone()).await {
            Ok(outcome) => outcome,
            Err(e) => match lost.first() {
                Some(((stage, task), why)) => TaskOutcome::FetchFailed {
                    stage,
                    task,
                    error: why,
                },
                None if e.is_out_of_memory() => TaskOutcome::OutOfMemory {
                    error: e.to_string(),
                },
                None => TaskOutcome::Failed {
                    error: e.to_string(),
                },
            },
        }
    }

    async fn try_run_task(&self, spec: &TaskSpec, lost: LostInputs) -> SqlResult<TaskOutcome> {
        let planned = self.planned(spec).await?;
        let a = spec.attempt;
        let stage =
            planned.plan.stages.get(a.stage as usize).ok_or_else(|| {
                SqlError::Cluster(format!("stage {} is not in the plan", a.stage))
            })?;
        // A fresh copy of the fragment: operators that keep state between executions (a
        // broadcast join's build side) must not carry it from an earlier task or a failure.
        let mut stage = stage.clone();
        stage.plan = reset_plan_states(stage.plan)?;
        let secret = JobSecret::from_slice(&spec.shuffle_secret)
            .ok_or_else(|| SqlError::Cluster("malformed shuffle secret".into()))?;
        let job = ShuffleJob {
            job_id: spec.shuffle_job.clone(),
            secret: secret.clone(),
        };
        let spill = self.setup.scratch.join("fetch").join(a.to_string());
        let dir = LocalStageDir::new(self.setup.shuffle_dir.join(&spec.shuffle_job));
        let source = ShuffleStageSource::new(
            Arc::clone(&self.fetcher),
            job,
            &spec.inputs,
            spill.clone(),
            lost,
        )
        .with_local(LocalOutputs {
            shuffle: self.setup.shuffle,
            dir: dir.clone(),
        });
        let state = planned.session.context().state();
        let config = state
            .config()
            .clone()
            .with_extension(Arc::new(StageInputs::new(Arc::new(source))));
        let ctx = Arc::new(TaskContext::from(&state).with_session_config(config));
        let result = dir.run_task(&stage, a.task as usize, a.attempt, ctx).await;
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(spill)).await;
        let manifest = result?;
        let index: Vec<SegmentIndexEntry> = manifest
            .partitions
            .iter()
            .map(|p| SegmentIndexEntry {
                offset: p.offset,
                raw_len: p.bytes,
                compressed_len: p.bytes,
                records: p.rows,
            })
            .collect();
        self.service
            .register_map_output(
                self.setup.shuffle,
                &spec.shuffle_job,
                &secret,
                MapAttemptId::new(map_id(a.stage, a.task), a.attempt),
                &dir.data_path(a.stage as usize, a.task as usize),
                &index,
            )
            .await
            .map_err(|e| cluster_err("registering the output with the shuffle service", e))?;
        Ok(TaskOutcome::Succeeded {
            partitions: manifest.partitions,
            spilled_bytes: spilled_bytes(&stage.plan),
        })
    }
}
