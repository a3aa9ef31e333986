//! `sheaf mr-jobtracker --staging DIR`: one job's application master. It reads the submission
//! from the DFS staging directory, computes the splits from DFS block locations, registers with
//! the ResourceManager (giving its RPC address as the tracking address), then drives the
//! sans-I/O [`JobTracker`]: one tokio task owns it and feeds it events (RM allocations and
//! completed containers, task reports from the RPC service, node list changes, ticks); the
//! actions it returns become RM asks/releases/launches, DFS commits and replies.
//!
//! Output commit runs on a dedicated thread through [`OutputCommitter`] (a synchronous
//! filesystem API, which must not run on the runtime). After every task commit a recovery
//! snapshot of the job history goes to `<staging>/recovery/`; a later JobTracker attempt recovers
//! from the newest one ([`JobTracker::recover`]), or restarts the job cleanly over the same output
//! when there is none.

use super::history::{self, JobRecord};
use super::layout::{
    attempt_dir_name, attempt_output_dir, committed_dir, dfs_job_path, dfs_path_of,
    expected_outputs, output_file_name, shipped_file, staging_file,
};
use super::protocol::{JtError, JtRequest, JtResponse, TaskAssignment};
use super::splits::{job_splits, SplitError};
use super::submission::{
    env as task_env, job_id_of_application, JobProgram, JobSubmission, PLUGIN_FILE,
    PLUGIN_LINK_NAME, RECOVERY_DIR, SHUFFLE_SERVICE, SUBMISSION_FILE,
};
use crate::api::partition::{prepare_total_order, TOTAL_ORDER_SAMPLE_KEY};
use crate::api::plugin::PluginLibrary;
use crate::api::{JobConf, JobDefinition};
use crate::counters::Counters;
use crate::formats::{FormatError, InputFormat, InputSplit, OutputFormat};
use crate::fs::{DfsFs, JobFileSystem, JobPath};
use crate::jobtracker::{
    Action, AttemptId, ContainerId as JtContainerId, Event, JobConfig, JobSpec, JobState,
    JobStatus, JobTracker, MapOutputLocation, SplitLocation, TaskId, TaskKind,
};
use crate::local::{complete_job_conf, OutputCommitter, SUCCESS_MARKER, TEMPORARY_DIR};
use crate::shuffle::{JobSecret, ShuffleServiceClient};
use crate::task::settings::TaskSettings;
use sheaf_dfs::client::{DfsClient, DfsError};
use sheaf_dfs::config::DfsConfig;
use sheaf_rpc::service::{PeerInfo, RpcServer, Service, Shutdown};
use sheaf_rpc::time::{wall_clock_ms, Clock};
use sheaf_rpc::{quic, RpcError, TlsIdentity};
use sheaf_yarn::client::RmClient;
use sheaf_yarn::master::MasterClient;
use sheaf_yarn::protocol::{
    exit_status, Allocation, AppState, ApplicationReport, AttemptId as YarnAttemptId, ContainerAsk,
    ContainerId, FinalStatus, LaunchSpec, NodeReport, Resource, YarnError,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// How long one allocate call may wait for news: short, so new asks and releases reach the RM
/// promptly (asks queue while a call is in flight).
const ALLOCATE_WAIT_MS: u64 = 150;
/// The longest the tracker goes without a tick: speculation judges progress rates as time
/// passes (timeouts and preemptions tick at their own deadline, `JobTracker::next_timeout`).
const MAX_TICK_INTERVAL: Duration = Duration::from_secs(1);
/// How often the RM's node list is read (lost and returning nodes, live hosts).
const NODE_POLL: Duration = Duration::from_secs(2);
/// Consecutive failed allocate calls (about one a second) before the JobTracker gives up and
/// exits, leaving the job to its next attempt.
const MAX_ALLOCATE_FAILURES: u32 = 60;
/// File holding the job's shuffle secret in the recovery directory: map outputs registered by an
/// earlier JobTracker attempt's tasks stay under it on the shuffle services, so a recovered
/// JobTracker must keep using it.
const SECRET_FILE: &str = "shuffle.secret";
/// Bound of the command queue of the JobTracker's owning task.
const COMMAND_QUEUE: usize = 1024;
/// Deadline for telling one shuffle service that the job is over.
const REMOVE_JOB_DEADLINE: Duration = Duration::from_secs(20);
/// Why the job ends when the RM stops taking this attempt's calls.
const ENDED_BY_RM: &str =
    "the application was killed through the resourcemanager (or its attempt ended there)";
/// How long a status call waits, once the job ended, for the final status (published after the
/// history is written, which takes moments).
const FINAL_STATUS_WAIT: Duration = Duration::from_secs(15);
/// The answer to a status call when the JobTracker stops without a final status.
const STOPPING: &str = "the jobtracker is stopping";
/// NodeManager state of a live node in the RM's node list.
const NODE_RUNNING: &str = "RUNNING";

/// What the JobTracker process needs from its command line and environment.
pub struct JobTrackerSetup {
    /// The DFS staging directory of the job (absolute DFS path).
    pub staging: String,
    /// DFS configuration (the NameNode among it).
    pub dfs: DfsConfig,
    /// The cluster identity to present (RM, DFS, tasks, shuffle services).
    pub identity: TlsIdentity,
    /// The container host's identity (its NodeManager's IP): the RPC service binds it and the
    /// tracking address names it.
    pub host: IpAddr,
    /// argv of task processes (`<sheaf exe> mr-task`).
    pub task_command: Vec<String>,
}

/// How the job ended.
#[derive(Debug, Clone, PartialEq)]
pub struct JobOutcome {
    /// The job.
    pub job_id: String,
    /// SUCCEEDED, FAILED or KILLED.
    pub state: JobState,
    /// Why it failed or was killed.
    pub diagnostics: Option<String>,
}

/// Failures of the JobTracker itself (not of the job): the process exits non-zero and the RM
/// may run another attempt.
#[derive(Debug, thiserror::Error)]
pub enum JobTrackerError {
    /// Talking to the ResourceManager failed.
    #[error("resourcemanager: {0}")]
    Yarn(#[from] YarnError),
    /// The DFS failed.
    #[error("{context}: {source}")]
    Dfs {
        /// What was being done.
        context: String,
        /// What the DFS client said.
        source: DfsError,
    },
    /// The RPC service could not start.
    #[error("cannot start the jobtracker service: {0}")]
    Rpc(#[from] RpcError),
    /// Job history or snapshot I/O failed.
    #[error(transparent)]
    History(#[from] history::HistoryError),
    /// The JobTracker could not go on (a helper thread died, the RM stayed unreachable …).
    #[error("{0}")]
    Internal(String),
    /// Another JobTracker attempt runs the job: this one stopped without touching it.
    #[error("{0}")]
    Superseded(String),
}

fn dfs_failed(context: impl Into<String>) -> impl FnOnce(DfsError) -> JobTrackerError {
    let context = context.into();
    move |source| JobTrackerError::Dfs { context, source }
}

fn final_status(state: JobState) -> FinalStatus {
    match state {
        JobState::Succeeded => FinalStatus::Succeeded,
        JobState::Killed => FinalStatus::Killed,
        _ => FinalStatus::Failed,
    }
}

/// `<memory:1024, vCores:1>`, as Hadoop prints container sizes.
fn capability(memory_mb: u64, vcores: u32) -> String {
    format!("<memory:{memory_mb}, vCores:{vcores}>")
}

/// Refuses task containers larger than the largest the cluster can hold (`max`, from the RM's
/// registration answer): asks for them would never be satisfied (Hadoop's check and message).
fn check_container_sizes(config: &JobConfig, reduces: u32, max: &Resource) -> Result<(), String> {
    let kinds = [
        ("MAP", "mapResourceRequest", &config.map_resource, true),
        (
            "REDUCE",
            "reduceResourceRequest",
            &config.reduce_resource,
            reduces > 0,
        ),
    ];
    for (kind, label, r, used) in kinds {
        if used && (r.memory_mb > max.memory_mb || r.vcores > max.vcores) {
            return Err(format!(
                "{kind} capability required is more than the supported max container capability \
                 in the cluster. Killing the Job. {label}: {} maxContainerCapability:{} (lower \
                 mapreduce.{}.memory.mb / mapreduce.{}.cpu.vcores)",
                capability(r.memory_mb, r.vcores),
                capability(max.memory_mb, max.vcores),
                kind.to_lowercase(),
                kind.to_lowercase(),
            ));
        }
    }
    Ok(())
}

/// The task key of the per-task counters map (`m_000003`).
fn task_key(task: TaskId) -> String {
    task.to_string()
}

// ---------------------------------------------------------------------------------------------
// Job preparation: submission → final configuration and splits.
// ---------------------------------------------------------------------------------------------

/// A job ready to be tracked.
struct PreparedJob {
    conf: JobConf,
    config: JobConfig,
    splits: Vec<SplitLocation>,
}

/// Loads the job definition: the staged plugin (copied to a local file for the loader) or the
/// streaming commands.
async fn job_definition(
    dfs: &DfsClient,
    staging: &str,
    submission: &JobSubmission,
) -> Result<Arc<dyn JobDefinition>, String> {
    match &submission.program {
        JobProgram::Streaming { .. } => match submission.program.streaming_job() {
            Some(job) => Ok(Arc::new(job)),
            None => Err("not a streaming job".into()),
        },
        JobProgram::Plugin => {
            let staged = staging_file(staging, PLUGIN_FILE);
            let bytes = dfs
                .read_file(&staged)
                .await
                .map_err(|e| format!("cannot read the job's plugin {staged}: {e}"))?;
            tokio::task::spawn_blocking(move || {
                let dir = std::env::temp_dir().join(format!(
                    "sheaf-jobtracker-{}-{:016x}",
                    std::process::id(),
                    rand::random::<u64>()
                ));
                std::fs::create_dir_all(&dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                let local = dir.join(PLUGIN_LINK_NAME);
                let loaded = std::fs::write(&local, &bytes)
                    .map_err(|e| format!("cannot write {}: {e}", local.display()))
                    .and_then(|_| {
                        PluginLibrary::load(&local)
                            .map_err(|e| format!("cannot load the job's plugin: {e}"))
                    });
                // The loaded library stays mapped; the file is not needed any more.
                let _ = std::fs::remove_dir_all(&dir);
                loaded
            })
            .await
            .map_err(|e| format!("plugin loader panicked: {e}"))?
        }
    }
}

/// Samples total-order partition boundaries when the job asks for it, reading splits through
/// the DFS synchronously on a thread of its own (the job filesystem API must not run on the
/// runtime).
async fn sample_total_order(
    dfs: &DfsClient,
    conf: JobConf,
    job: Arc<dyn JobDefinition>,
    splits: Vec<InputSplit>,
    reducers: u32,
) -> Result<JobConf, String> {
    if reducers == 0 || conf.get(TOTAL_ORDER_SAMPLE_KEY) != Some("true") {
        return Ok(conf);
    }
    let fs = DfsFs::new(dfs.clone(), tokio::runtime::Handle::current());
    let (tx, rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("sheaf-jt-sampler".into())
        .spawn(move || {
            let mut conf = conf;
            let result = prepare_total_order(&mut conf, job.as_ref(), &splits, reducers, |s| {
                let path = JobPath::from_path(&s.path).map_err(|e| FormatError::Io(e.into_io()))?;
                fs.open(&path).map_err(|e| FormatError::Io(e.into_io()))
            });
            let _ = tx.send(
                result
                    .map(|_| conf)
                    .map_err(|e| format!("sampling the input for total order failed: {e}")),
            );
        })
        .map_err(|e| format!("cannot start the sampler thread: {e}"))?;
    rx.await
        .map_err(|_| "the sampler thread died".to_string())?
}

/// Computes the job's final configuration and splits. Errors are the job's (bad conf, missing
/// input, unloadable plugin): the job fails with them as diagnostics.
async fn prepare_job(
    dfs: &DfsClient,
    staging: &str,
    submission: &JobSubmission,
) -> Result<PreparedJob, String> {
    let job = job_definition(dfs, staging, submission).await?;
    let mut conf = JobConf {
        entries: submission.conf.clone(),
    };
    if let Some(streaming) = submission.program.streaming_job() {
        // Recorded like the local runner does, for the history.
        streaming.store_in_conf(&mut conf);
    }
    let inputs: Vec<String> = submission
        .inputs
        .iter()
        .map(|p| dfs_job_path(p).to_string())
        .collect();
    complete_job_conf(
        &mut conf,
        job.as_ref(),
        &inputs,
        &dfs_job_path(&submission.output).to_string(),
        submission.reducers,
    );
    // Refuse a configuration no task could run with now, not after every task failed 4 times.
    TaskSettings::from_conf(&conf).map_err(|e| e.to_string())?;
    InputFormat::from_conf(&conf).map_err(|e| e.to_string())?;
    OutputFormat::from_conf(&conf).map_err(|e| e.to_string())?;
    let config = JobConfig::from_conf(&conf.entries).map_err(|e| e.to_string())?;
    let splits = job_splits(dfs, &submission.inputs, submission.split_size)
        .await
        .map_err(|e| match e {
            SplitError::InputNotFound(_) | SplitError::NoInputs => e.to_string(),
            e => format!("cannot compute input splits: {e}"),
        })?;
    let conf = sample_total_order(
        dfs,
        conf,
        job,
        splits.iter().map(|s| s.split.clone()).collect(),
        submission.reducers,
    )
    .await?;
    Ok(PreparedJob {
        conf,
        config,
        splits,
    })
}

// ---------------------------------------------------------------------------------------------
// Output commit on a thread of its own.
// ---------------------------------------------------------------------------------------------

/// How the committer takes over the output directory.
#[derive(Debug, Clone)]
enum CommitterStart {
    /// First attempt: the output must not exist (Hadoop's check).
    Fresh,
    /// A later attempt recovering from a snapshot: keep the committed files of `keep` (file
    /// names), drop other committed files (commits the snapshot never recorded).
    Recover { keep: BTreeSet<String> },
    /// A later attempt without a snapshot: start over, clearing `_temporary`.
    Restart,
}

enum CommitOp {
    Start(CommitterStart),
    Task {
        attempt_dir: JobPath,
        file: String,
    },
    /// The job commit; `expected` are the output files every task together must have committed.
    Job {
        expected: BTreeSet<String>,
    },
    Abort,
}

type CommitReply = oneshot::Sender<Result<(), String>>;

/// Handle of the committer thread; operations run one at a time in the order sent.
#[derive(Clone)]
struct Committer {
    tx: std::sync::mpsc::Sender<(CommitOp, CommitReply)>,
}

impl Committer {
    fn spawn(fs: Arc<dyn JobFileSystem>, out: JobPath) -> Result<Committer, JobTrackerError> {
        let (tx, rx) = std::sync::mpsc::channel::<(CommitOp, CommitReply)>();
        std::thread::Builder::new()
            .name("sheaf-jt-commit".into())
            .spawn(move || {
                let mut committer: Option<OutputCommitter> = None;
                while let Ok((op, reply)) = rx.recv() {
                    let result = run_commit_op(&fs, &out, &mut committer, op);
                    let _ = reply.send(result);
                }
            })
            .map_err(|e| {
                JobTrackerError::Internal(format!("cannot start the committer thread: {e}"))
            })?;
        Ok(Committer { tx })
    }

    async fn call(&self, op: CommitOp) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((op, reply))
            .map_err(|_| "the committer thread is gone".to_string())?;
        rx.await
            .map_err(|_| "the committer thread died".to_string())?
    }
}

fn run_commit_op(
    fs: &Arc<dyn JobFileSystem>,
    out: &JobPath,
    committer: &mut Option<OutputCommitter>,
    op: CommitOp,
) -> Result<(), String> {
    let err = |e: crate::task::error::EngineError| e.to_string();
    match op {
        CommitOp::Start(start) => {
            let c = match start {
                CommitterStart::Fresh => OutputCommitter::setup(fs.clone(), out).map_err(err)?,
                CommitterStart::Restart => {
                    let c = OutputCommitter::resume(fs.clone(), out).map_err(err)?;
                    c.abort_job();
                    OutputCommitter::resume(fs.clone(), out).map_err(err)?
                }
                CommitterStart::Recover { keep } => {
                    let c = OutputCommitter::resume(fs.clone(), out).map_err(err)?;
                    let committed = fs
                        .list(c.committed_dir())
                        .map_err(|e| format!("listing {}: {e}", c.committed_dir()))?;
                    for entry in committed {
                        let stale = entry.path.file_name().is_some_and(|n| !keep.contains(&n));
                        if stale {
                            fs.delete(&entry.path, true)
                                .map_err(|e| format!("removing {}: {e}", entry.path))?;
                        }
                    }
                    c
                }
            };
            *committer = Some(c);
            Ok(())
        }
        CommitOp::Task { attempt_dir, file } => committer
            .as_ref()
            .ok_or("output committer not started")?
            .commit_task(&attempt_dir, &file)
            .map_err(err),
        CommitOp::Job { expected } => {
            let c = committer.as_ref().ok_or("output committer not started")?;
            // A previous JobTracker attempt may have finished the commit before it died.
            let marker = out.join(SUCCESS_MARKER);
            if fs.exists(&marker).map_err(|e| e.to_string())? {
                return Ok(());
            }
            c.check_complete(&expected).map_err(err)?;
            c.commit_job().map_err(err)
        }
        CommitOp::Abort => {
            match committer.as_ref() {
                Some(c) => c.abort_job(),
                None => {
                    let _ = fs.delete(&out.join(TEMPORARY_DIR), true);
                }
            }
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The RPC service: forwards requests to the owning task.
// ---------------------------------------------------------------------------------------------

/// What the owning task answers an RPC request with.
enum RpcAnswer {
    /// The response as is.
    Reply(JtResponse),
    /// A task assignment whose attempt directory (absolute DFS path) must be created (empty)
    /// before it is sent.
    Assign(Box<TaskAssignment>, Option<String>),
}

/// Messages to the task owning the tracker.
enum Command {
    Rpc(JtRequest, oneshot::Sender<RpcAnswer>),
    Allocation(Allocation),
    AllocateFailed(YarnError, u32),
    Nodes(Vec<NodeReport>),
    LaunchFailed(Vec<String>, String),
    TaskCommit(AttemptId, Result<(), String>),
    JobCommit(Result<(), String>),
    /// The RM's report of this application, asked when the RM stopped taking this attempt's
    /// calls.
    Application(Result<ApplicationReport, YarnError>),
}

/// What a request is answered with once the owning task is gone.
enum AfterEnd {
    Status,
    MapEvents { from: u32 },
    Other,
}

struct JtService {
    commands: mpsc::Sender<Command>,
    dfs: DfsClient,
    /// The job's last status, for clients asking after the tracker stopped; set once the
    /// history is written (a client that sees the job ended can read it).
    final_status: watch::Receiver<Option<JobStatus>>,
}

impl JtService {
    /// The answer when the owning task is gone (the job is over). A status waits (briefly) for
    /// the final one, published once the history is written.
    async fn after_end(&self, req: AfterEnd) -> JtResponse {
        match req {
            AfterEnd::Status => {
                let mut status = self.final_status.clone();
                let published =
                    tokio::time::timeout(FINAL_STATUS_WAIT, status.wait_for(|s| s.is_some())).await;
                match published {
                    Ok(Ok(s)) => match s.as_ref() {
                        Some(s) => JtResponse::Status(Box::new(s.clone())),
                        None => JtResponse::Error(JtError::Internal(STOPPING.into())),
                    },
                    _ => JtResponse::Error(JtError::Internal(STOPPING.into())),
                }
            }
            AfterEnd::MapEvents { from } => JtResponse::MapEvents {
                events: Vec::new(),
                next: from,
                proceed: false,
            },
            AfterEnd::Other => JtResponse::Ack { proceed: false },
        }
    }

    async fn create_attempt_dir(&self, dir: &str) -> Result<(), DfsError> {
        // A JobTracker attempt that died may have started this attempt number already.
        match self.dfs.delete(dir, true).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        self.dfs.mkdirs(dir, true).await
    }
}

impl Service for JtService {
    type Request = JtRequest;
    type Response = JtResponse;

    async fn handle(self: Arc<Self>, req: JtRequest, _peer: PeerInfo) -> JtResponse {
        let (tx, rx) = oneshot::channel();
        let fallback = match &req {
            JtRequest::Status => AfterEnd::Status,
            JtRequest::MapEvents { from, .. } => AfterEnd::MapEvents { from: *from },
            _ => AfterEnd::Other,
        };
        if self.commands.send(Command::Rpc(req, tx)).await.is_err() {
            return self.after_end(fallback).await;
        }
        match rx.await {
            Ok(RpcAnswer::Reply(r)) => r,
            Ok(RpcAnswer::Assign(assignment, dir)) => {
                if let Some(dir) = dir {
                    if let Err(e) = self.create_attempt_dir(&dir).await {
                        return JtResponse::Error(JtError::Internal(format!(
                            "cannot create the attempt directory {dir}: {e}"
                        )));
                    }
                }
                JtResponse::Task(assignment)
            }
            Err(_) => self.after_end(fallback).await,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// RM calls off the owning task.
// ---------------------------------------------------------------------------------------------

/// Asks, cancellations and releases waiting for the next allocate call.
#[derive(Default)]
struct AllocBatch {
    asks: Vec<ContainerAsk>,
    cancel: Vec<u64>,
    release: Vec<ContainerId>,
}

impl AllocBatch {
    fn is_empty(&self) -> bool {
        self.asks.is_empty() && self.cancel.is_empty() && self.release.is_empty()
    }

    fn append(&mut self, mut other: AllocBatch) {
        self.asks.append(&mut other.asks);
        self.cancel.append(&mut other.cancel);
        self.release.append(&mut other.release);
    }
}

/// Runs allocate calls back to back (each a short long-poll), sending what comes back.
async fn allocator(
    am: Arc<MasterClient>,
    mut batches: mpsc::UnboundedReceiver<AllocBatch>,
    commands: mpsc::Sender<Command>,
) {
    let mut pending = AllocBatch::default();
    let mut failures = 0u32;
    loop {
        loop {
            match batches.try_recv() {
                Ok(b) => pending.append(b),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return,
            }
        }
        let batch = std::mem::take(&mut pending);
        let result = am
            .allocate(
                batch.asks.clone(),
                batch.cancel.clone(),
                batch.release.clone(),
                ALLOCATE_WAIT_MS,
            )
            .await;
        let sent = match result {
            Ok(a) => {
                failures = 0;
                commands.send(Command::Allocation(a)).await
            }
            Err(e) => {
                failures += 1;
                // Not applied (or not known to be): send it again with the next call.
                let mut retry = batch;
                retry.append(std::mem::take(&mut pending));
                pending = retry;
                let sent = commands.send(Command::AllocateFailed(e, failures)).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
                sent
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The owning task.
// ---------------------------------------------------------------------------------------------

/// A container the RM gave this job.
struct Container {
    id: ContainerId,
    host: String,
    shuffle_address: Option<String>,
    attempt: Option<AttemptId>,
}

/// The state around the tracker; owned by one task.
struct Driver {
    jt: JobTracker,
    job_id: String,
    staging: String,
    submission: JobSubmission,
    conf: BTreeMap<String, String>,
    splits: Vec<InputSplit>,
    out: JobPath,
    secret: JobSecret,
    tracking_address: String,
    task_command: Vec<String>,
    am: Arc<MasterClient>,
    committer: Committer,
    commands: mpsc::Sender<Command>,
    alloc: mpsc::UnboundedSender<AllocBatch>,
    /// The newest snapshot not yet handed to a write (only the latest matters).
    pending_snapshot: Option<Arc<JobRecord>>,
    batch: AllocBatch,
    launches: Vec<(ContainerId, LaunchSpec)>,
    containers: HashMap<String, Container>,
    /// Launched attempts and their hosts.
    launched: HashMap<AttemptId, String>,
    released: HashSet<String>,
    shuffle_services: BTreeSet<String>,
    /// Task counters reported with `OutputReady`, until the task commit decides the winner.
    pending_counters: HashMap<AttemptId, Counters>,
    /// Task counters of each task's winning attempt.
    task_counters: BTreeMap<String, Counters>,
    outcome: Option<(JobState, Option<String>)>,
    /// The RM no longer takes this attempt's calls and the application is over (killed).
    not_current: bool,
    fatal: Option<String>,
    /// This JobTracker attempt, and the RM client that asks about its application.
    app_attempt: YarnAttemptId,
    rm: Arc<RmClient>,
    /// An application report is being asked for (the RM stopped taking this attempt's calls).
    report_pending: bool,
    /// Why this attempt stopped without touching the job: another attempt runs (or ran) it.
    superseded: Option<String>,
    /// Attempts whose task commit is in flight: their `pending_counters` wait for the result.
    committing: HashSet<AttemptId>,
    /// The time fed to the tracker.
    clock: Clock,
    /// When the tracker was last told time passed.
    last_tick: tokio::time::Instant,
}

impl Driver {
    fn feed(&mut self, event: Event) {
        let actions = self.jt.handle(self.clock.now(), event);
        self.apply(actions);
    }

    fn apply(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::RequestContainer(r) => self.batch.asks.push(ContainerAsk {
                    ask_id: r.ask_id,
                    count: 1,
                    resource: Resource::new(r.resource.memory_mb, r.resource.vcores),
                    priority: r.priority,
                    hosts: r.hosts,
                    racks: r.racks,
                    relax_locality: true,
                }),
                Action::CancelRequest { ask_id } => self.batch.cancel.push(ask_id),
                Action::Launch {
                    attempt,
                    container,
                    host,
                } => self.launch(attempt, container, host),
                Action::KillAttempt { container, .. } | Action::ReleaseContainer { container } => {
                    if let Some(c) = self.containers.get(&container.0) {
                        if self.released.insert(container.0.clone()) {
                            self.batch.release.push(c.id);
                        }
                    }
                }
                Action::CommitTask { attempt } => self.commit_task(attempt),
                Action::MapOutputAccepted { attempt } => {
                    if let Some(counters) = self.pending_counters.remove(&attempt) {
                        self.task_counters.insert(task_key(attempt.task), counters);
                    }
                }
                Action::CommitJob => {
                    let committer = self.committer.clone();
                    let commands = self.commands.clone();
                    let expected =
                        expected_outputs(self.splits.len() as u32, self.submission.reducers);
                    tokio::spawn(async move {
                        let r = committer.call(CommitOp::Job { expected }).await;
                        let _ = commands.send(Command::JobCommit(r)).await;
                    });
                }
                Action::JobSucceeded => self.outcome = Some((JobState::Succeeded, None)),
                Action::JobFailed { reason } => {
                    self.outcome = Some((JobState::Failed, Some(reason)))
                }
                Action::JobKilled { reason } => {
                    self.outcome = Some((JobState::Killed, Some(reason)))
                }
            }
        }
        self.flush();
    }

    /// Hands queued asks/releases to the allocator and starts queued launches.
    fn flush(&mut self) {
        if !self.batch.is_empty() {
            let _ = self.alloc.send(std::mem::take(&mut self.batch));
        }
        if !self.launches.is_empty() {
            let launches = std::mem::take(&mut self.launches);
            let am = self.am.clone();
            let commands = self.commands.clone();
            tokio::spawn(async move {
                let keys: Vec<String> = launches.iter().map(|(id, _)| id.to_string()).collect();
                if let Err(e) = am.start(launches).await {
                    let _ = commands
                        .send(Command::LaunchFailed(keys, e.to_string()))
                        .await;
                }
            });
        }
    }

    fn launch(&mut self, attempt: AttemptId, container: JtContainerId, host: String) {
        let Some(c) = self.containers.get_mut(&container.0) else {
            return;
        };
        c.attempt = Some(attempt);
        let mut env = BTreeMap::from([
            (
                task_env::JOBTRACKER_ADDRESS.to_string(),
                self.tracking_address.clone(),
            ),
            (
                task_env::TASK_ATTEMPT.to_string(),
                attempt_dir_name(attempt),
            ),
            (task_env::TASK_HOST.to_string(), host.clone()),
        ]);
        if let Some(shuffle) = &c.shuffle_address {
            env.insert(task_env::SHUFFLE_ADDRESS.to_string(), shuffle.clone());
        }
        let mut files = match self.submission.program {
            JobProgram::Plugin => BTreeMap::from([(
                PLUGIN_LINK_NAME.to_string(),
                staging_file(&self.staging, PLUGIN_FILE),
            )]),
            JobProgram::Streaming { .. } => BTreeMap::new(),
        };
        // Files shipped with `--file` (K2): localized under their own names.
        for name in &self.submission.files {
            let staged = shipped_file(&self.staging, name);
            files.insert(name.clone(), staged);
        }
        self.launches.push((
            c.id,
            LaunchSpec {
                command: self.task_command.clone(),
                env,
                files,
            },
        ));
        self.launched.insert(attempt, host);
    }

    fn attempt_dir(&self, attempt: AttemptId) -> JobPath {
        attempt_output_dir(&self.out, self.app_attempt.attempt, attempt)
    }

    fn commit_task(&mut self, attempt: AttemptId) {
        self.committing.insert(attempt);
        let op = CommitOp::Task {
            attempt_dir: self.attempt_dir(attempt),
            file: output_file_name(attempt.task),
        };
        let committer = self.committer.clone();
        let commands = self.commands.clone();
        tokio::spawn(async move {
            let r = committer.call(op).await;
            let _ = commands.send(Command::TaskCommit(attempt, r)).await;
        });
    }

    /// When the tracker must next be told time passed: its next deadline, and at least every
    /// [`MAX_TICK_INTERVAL`].
    fn next_tick(&self) -> tokio::time::Instant {
        let floor = self.last_tick + MAX_TICK_INTERVAL;
        match self.jt.next_timeout() {
            Some(at) => floor.min(tokio::time::Instant::from_std(self.clock.instant_at(at))),
            None => floor,
        }
    }

    fn tick(&mut self) {
        self.last_tick = tokio::time::Instant::now();
        self.feed(Event::Tick);
    }

    fn total_counters(&self) -> Counters {
        JobRecord::total_counters(self.jt.counters(), &self.task_counters)
    }

    fn status(&self) -> JobStatus {
        let mut status = self.jt.status();
        status.counters = self.total_counters();
        status
    }

    /// The job record with the tracker's own counters (a recovery snapshot; the finished job's
    /// history replaces them with the total).
    fn record(&self) -> JobRecord {
        JobRecord {
            history: self.jt.history(),
            name: self.submission.name.clone(),
            user: self.submission.user.clone(),
            inputs: self.submission.inputs.clone(),
            output: self.submission.output.clone(),
            submit_ms: self.submission.submit_ms,
            task_counters: self.task_counters.clone(),
        }
    }

    fn snapshot(&mut self) {
        self.pending_snapshot = Some(Arc::new(self.record()));
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Rpc(req, reply) => {
                let answer = self.on_rpc(req);
                let _ = reply.send(answer);
            }
            Command::Allocation(a) => self.on_allocation(a),
            Command::AllocateFailed(e, failures) => {
                if matches!(e, YarnError::NotCurrentMaster(_)) {
                    self.ask_for_application();
                } else if matches!(
                    e,
                    YarnError::ResourceTooLarge { .. } | YarnError::BadRequest(_)
                ) {
                    // Asking again cannot help: the job cannot get its containers.
                    self.fail_job(format!("the resourcemanager refused the job's asks: {e}"));
                } else if failures >= MAX_ALLOCATE_FAILURES {
                    self.fatal = Some(format!(
                        "the resourcemanager failed {failures} allocate calls in a row: {e}"
                    ));
                } else {
                    tracing::warn!(error = %e, failures, "allocate failed; retrying");
                }
            }
            Command::Nodes(nodes) => self.on_nodes(nodes),
            Command::LaunchFailed(keys, reason) => {
                for key in keys {
                    if let Some(c) = self.containers.get(&key) {
                        if self.released.insert(key.clone()) {
                            self.batch.release.push(c.id);
                        }
                    }
                    self.feed(Event::ContainerCompleted {
                        container: JtContainerId(key),
                        diagnostics: format!("could not be started: {reason}"),
                    });
                }
                self.flush();
            }
            Command::TaskCommit(attempt, Ok(())) => {
                self.committing.remove(&attempt);
                if let Some(counters) = self.pending_counters.remove(&attempt) {
                    self.task_counters.insert(task_key(attempt.task), counters);
                }
                self.feed(Event::TaskCommitted { attempt });
                self.snapshot();
            }
            Command::TaskCommit(attempt, Err(reason)) => {
                self.committing.remove(&attempt);
                self.pending_counters.remove(&attempt);
                self.feed(Event::TaskCommitFailed { attempt, reason });
            }
            Command::JobCommit(Ok(())) => self.feed(Event::JobCommitted),
            Command::JobCommit(Err(reason)) => self.feed(Event::JobCommitFailed { reason }),
            Command::Application(report) => {
                self.report_pending = false;
                match report {
                    Ok(report) => self.on_application(report),
                    // Asked again with the next answer that says this attempt is over.
                    Err(e) => tracing::warn!(error = %e, "cannot read the application's report"),
                }
            }
        }
    }

    /// The RM stopped taking this attempt's calls: either the application was killed (or failed)
    /// or this attempt was replaced (e.g. its node was declared lost while this process lived
    /// on). Which, only the application's report tells.
    fn ask_for_application(&mut self) {
        if self.report_pending || self.not_current || self.superseded.is_some() {
            return;
        }
        self.report_pending = true;
        let rm = self.rm.clone();
        let app = self.app_attempt.app;
        let commands = self.commands.clone();
        tokio::spawn(async move {
            let report = rm.application(app).await;
            let _ = commands.send(Command::Application(report)).await;
        });
    }

    fn on_application(&mut self, report: ApplicationReport) {
        let this = self.app_attempt.attempt;
        match end_of_attempt(this, &report) {
            AttemptEnd::Killed => {
                self.not_current = true;
                self.feed(Event::Kill {
                    reason: ENDED_BY_RM.into(),
                });
            }
            AttemptEnd::Superseded(why) => self.superseded = Some(why),
        }
    }

    /// Ends the job as FAILED with `reason`.
    fn fail_job(&mut self, reason: String) {
        self.feed(Event::Fail { reason });
    }

    fn on_allocation(&mut self, a: Allocation) {
        if a.shutdown {
            self.ask_for_application();
            return;
        }
        for c in a.allocated {
            let key = c.id.to_string();
            self.containers.insert(
                key.clone(),
                Container {
                    id: c.id,
                    host: c.host.clone(),
                    shuffle_address: c.aux_services.get(SHUFFLE_SERVICE).cloned(),
                    attempt: None,
                },
            );
            self.feed(Event::ContainerAllocated {
                container: JtContainerId(key),
                ask_id: c.ask_id,
                host: c.host,
                rack: c.rack,
            });
        }
        for status in a.completed {
            let key = status.id.to_string();
            let Some(c) = self.containers.remove(&key) else {
                continue;
            };
            let released = self.released.remove(&key);
            match status.exit_status {
                // The tracker handles a host's loss once, however many containers report it.
                exit_status::NODE_LOST => self.feed(Event::NodeLost { host: c.host }),
                exit_status::KILLED if released => {}
                exit_status::KILLED => {
                    if let Some(attempt) = c.attempt {
                        self.feed(Event::AttemptKilled {
                            attempt,
                            reason: format!("container {key} killed: {}", status.diagnostics),
                        });
                    }
                }
                code => self.feed(Event::ContainerCompleted {
                    container: JtContainerId(key),
                    diagnostics: if status.diagnostics.is_empty() {
                        format!("exit status {code}")
                    } else {
                        format!("exit status {code}: {}", status.diagnostics)
                    },
                }),
            }
        }
    }

    fn on_nodes(&mut self, nodes: Vec<NodeReport>) {
        let (running, down): (Vec<NodeReport>, Vec<NodeReport>) =
            nodes.into_iter().partition(|n| n.state == NODE_RUNNING);
        self.feed(Event::NodeList {
            running: running.into_iter().map(|n| n.host).collect(),
            down: down.into_iter().map(|n| n.host).collect(),
        });
    }

    fn on_rpc(&mut self, req: JtRequest) -> RpcAnswer {
        let reply = |r| RpcAnswer::Reply(r);
        match req {
            JtRequest::GetTask { attempt } => {
                if !self.launched.contains_key(&attempt) {
                    return reply(JtResponse::Error(JtError::UnknownAttempt(
                        attempt.to_string(),
                    )));
                }
                if !self.jt.is_live(attempt) {
                    return reply(JtResponse::Ack { proceed: false });
                }
                self.feed(Event::AttemptStarted { attempt });
                let writes_output =
                    attempt.task.kind == TaskKind::Reduce || self.submission.reducers == 0;
                let attempt_dir = dfs_path_of(&self.attempt_dir(attempt));
                let app_attempt = self.app_attempt.attempt;
                let split = match attempt.task.kind {
                    TaskKind::Map => self.splits.get(attempt.task.index as usize).cloned(),
                    TaskKind::Reduce => None,
                };
                let assignment = TaskAssignment {
                    job_id: self.job_id.clone(),
                    attempt,
                    program: self.submission.program.clone(),
                    conf: self.conf.clone(),
                    split,
                    num_maps: self.splits.len() as u32,
                    num_reduces: self.submission.reducers,
                    attempt_dir: attempt_dir.clone(),
                    output_file: output_file_name(attempt.task),
                    shuffle_secret: self.secret.as_bytes().to_vec(),
                    app_attempt,
                };
                RpcAnswer::Assign(Box::new(assignment), writes_output.then_some(attempt_dir))
            }
            JtRequest::Progress {
                attempt,
                progress,
                alive,
            } => {
                self.feed(Event::AttemptProgress {
                    attempt,
                    progress,
                    alive,
                });
                let proceed = self.jt.is_live(attempt);
                reply(JtResponse::Ack { proceed })
            }
            JtRequest::MapOutputReady {
                attempt,
                shuffle_address,
                counters,
            } => {
                let Some(host) = self.launched.get(&attempt).cloned() else {
                    return reply(JtResponse::Error(JtError::UnknownAttempt(
                        attempt.to_string(),
                    )));
                };
                self.shuffle_services.insert(shuffle_address.clone());
                self.pending_counters.insert(attempt, counters);
                self.feed(Event::AttemptSucceeded {
                    attempt,
                    output: Some(MapOutputLocation {
                        host,
                        shuffle_address,
                    }),
                });
                // Action::MapOutputAccepted took the counters if this output won its task.
                let won = self.pending_counters.remove(&attempt).is_none();
                reply(JtResponse::Ack { proceed: won })
            }
            JtRequest::OutputReady { attempt, counters } => {
                if !self.launched.contains_key(&attempt) {
                    return reply(JtResponse::Error(JtError::UnknownAttempt(
                        attempt.to_string(),
                    )));
                }
                self.pending_counters.insert(attempt, counters);
                self.feed(Event::AttemptSucceeded {
                    attempt,
                    output: None,
                });
                if !self.committing.contains(&attempt) {
                    // Lost to another attempt (or not live any more): never committed.
                    self.pending_counters.remove(&attempt);
                }
                reply(JtResponse::Ack { proceed: true })
            }
            JtRequest::Failed { attempt, reason } => {
                self.feed(Event::AttemptFailed { attempt, reason });
                reply(JtResponse::Ack { proceed: false })
            }
            JtRequest::MapEvents { reducer, from } => {
                if reducer.task.kind != TaskKind::Reduce {
                    return reply(JtResponse::Error(JtError::BadRequest(format!(
                        "{reducer} is not a reduce attempt"
                    ))));
                }
                if !self.launched.contains_key(&reducer) {
                    return reply(JtResponse::Error(JtError::UnknownAttempt(
                        reducer.to_string(),
                    )));
                }
                let events = self.jt.map_completion_events(from as usize).to_vec();
                let next = from.saturating_add(events.len() as u32);
                let proceed = self.jt.is_live(reducer);
                reply(JtResponse::MapEvents {
                    events,
                    next,
                    proceed,
                })
            }
            JtRequest::FetchFailed {
                reducer,
                map,
                reason,
            } => {
                tracing::info!(%reducer, %map, %reason, "fetch failure reported");
                self.feed(Event::FetchFailure { reducer, map });
                let proceed = self.jt.is_live(reducer);
                reply(JtResponse::Ack { proceed })
            }
            JtRequest::Status => reply(JtResponse::Status(Box::new(self.status()))),
            JtRequest::Kill { reason } => {
                self.feed(Event::Kill { reason });
                reply(JtResponse::to_kill(self.jt.state()))
            }
        }
    }
}

/// What the RM's refusal of this attempt's calls means.
#[derive(Debug, Clone, PartialEq)]
enum AttemptEnd {
    /// The application was killed (or failed) while this attempt was its newest: end the job
    /// (kill it, clean up, history).
    Killed,
    /// Another attempt runs the job (or will, or finished it): stop at once, touching nothing.
    Superseded(String),
}

/// Decides [`AttemptEnd`] for attempt `this` from its application's report.
fn end_of_attempt(this: u32, report: &ApplicationReport) -> AttemptEnd {
    if report.attempt > this {
        return AttemptEnd::Superseded(format!(
            "this jobtracker (attempt {this}) was replaced by attempt {} of {}",
            report.attempt, report.id
        ));
    }
    match report.state {
        AppState::Killed | AppState::Failed => AttemptEnd::Killed,
        AppState::Finished => AttemptEnd::Superseded(format!(
            "application {} already finished ({})",
            report.id, report.final_status
        )),
        state => AttemptEnd::Superseded(format!(
            "the resourcemanager ended this jobtracker (attempt {this}) while application {} \
             is {state}: its next attempt runs the job",
            report.id
        )),
    }
}

/// Writes recovery snapshot `seq` (owned arguments: the write runs beside the main loop).
async fn write_snapshot(dfs: DfsClient, staging: String, seq: u64, record: Arc<JobRecord>) {
    if let Err(e) = history::write_snapshot(&dfs, &staging, seq, &record).await {
        tracing::warn!(error = %e, "cannot write a recovery snapshot");
    }
}

/// The job's shuffle secret: the one an earlier attempt of this JobTracker stored (its tasks'
/// map outputs are registered under it), else a fresh one, stored for later attempts.
async fn shuffle_secret(dfs: &DfsClient, staging: &str) -> Result<JobSecret, JobTrackerError> {
    let dir = staging_file(staging, RECOVERY_DIR);
    let path = staging_file(&dir, SECRET_FILE);
    match dfs.read_file(&path).await {
        Ok(bytes) => {
            if let Some(secret) = JobSecret::from_slice(&bytes) {
                return Ok(secret);
            }
            tracing::warn!(path = %path, "ignoring a malformed shuffle secret");
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(dfs_failed(format!("reading {path}"))(e)),
    }
    let secret = JobSecret::generate();
    dfs.mkdirs(&dir, true)
        .await
        .map_err(dfs_failed(format!("creating {dir}")))?;
    dfs.write_file(&path, secret.as_bytes(), true)
        .await
        .map_err(dfs_failed(format!("writing {path}")))?;
    Ok(secret)
}

/// Runs the job of `setup.staging` as this container's application master until it ends.
pub async fn run(setup: JobTrackerSetup) -> Result<JobOutcome, JobTrackerError> {
    let am = Arc::new(MasterClient::from_env(&setup.identity, setup.host)?);
    let rm = Arc::new(rm_client(&setup)?);
    let app_attempt = am.attempt();
    let job_id = job_id_of_application(&app_attempt.app.to_string());
    let dfs = DfsClient::connect_from(&setup.dfs, setup.identity.clone(), Some(setup.host))
        .await
        .map_err(dfs_failed("connecting to the NameNode"))?;
    let staging = setup.staging.trim_end_matches('/').to_string();

    // The RPC service first, so the RM can show where to ask for the job's status.
    let endpoint = quic::server_endpoint(SocketAddr::new(setup.host, 0), &setup.identity)?;
    let tracking_address = endpoint
        .local_addr()
        .map_err(|e| JobTrackerError::Internal(format!("jobtracker endpoint: {e}")))?
        .to_string();
    let (commands_tx, mut commands) = mpsc::channel(COMMAND_QUEUE);
    let (final_status, final_status_rx) = watch::channel(None);
    let service = Arc::new(JtService {
        commands: commands_tx.clone(),
        dfs: dfs.clone(),
        final_status: final_status_rx,
    });
    let (stop_server, server_shutdown) = Shutdown::new();
    let server = tokio::spawn(RpcServer::serve(endpoint, service, server_shutdown));
    let max_container = am.register(Some(tracking_address.clone())).await?;
    tracing::info!(job = %job_id, attempt = %app_attempt, address = %tracking_address, "jobtracker registered");

    let submission_path = staging_file(&staging, SUBMISSION_FILE);
    let submission: JobSubmission = {
        let bytes = match dfs.read_file(&submission_path).await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => {
                // The previous attempt ended the job and removed its staging directory, then
                // died before telling the RM: repeat only that.
                let outcome = finish_ended_job(&dfs, &am, &job_id).await;
                stop_server.trigger();
                let _ = server.await;
                return outcome;
            }
            Err(e) => return Err(dfs_failed(format!("reading {submission_path}"))(e)),
        };
        match rmp_serde::from_slice(&bytes) {
            Ok(s) => s,
            Err(e) => {
                let reason = format!("{submission_path} is not a job submission: {e}");
                am.finish(FinalStatus::Failed, reason.clone()).await?;
                stop_server.trigger();
                let _ = server.await;
                return Ok(JobOutcome {
                    job_id,
                    state: JobState::Failed,
                    diagnostics: Some(reason),
                });
            }
        }
    };

    // What an earlier attempt left: whether it took over the output, and its newest snapshot.
    // A DFS failure reading them ends this attempt (the next one tries again): taking it for
    // "nothing there" would start the job over and drop committed work.
    let later_attempt = app_attempt.attempt > 1;
    let claimed = later_attempt && history::output_claimed(&dfs, &staging).await?;
    let snapshot = if claimed {
        history::latest_snapshot(&dfs, &staging).await?
    } else {
        None
    };
    if let Some((_, record)) = snapshot
        .as_ref()
        .filter(|(_, r)| r.history.state.is_terminal())
    {
        // The job ended under an earlier attempt, which died before the last steps: repeat
        // only those (no preparation, no tasks).
        let outcome = repeat_ending(&dfs, &am, &staging, record.clone()).await;
        stop_server.trigger();
        let _ = server.await;
        return outcome;
    }

    let nodes = am.nodes().await?;
    let prepared = match prepare_job(&dfs, &staging, &submission)
        .await
        .and_then(|p| {
            check_container_sizes(&p.config, submission.reducers, &max_container)?;
            Ok(p)
        }) {
        Ok(p) => p,
        Err(reason) => {
            let outcome = fail_before_start(&dfs, &am, &job_id, &submission, reason).await?;
            stop_server.trigger();
            let _ = server.await;
            return Ok(outcome);
        }
    };
    let host_racks: BTreeMap<String, String> = nodes
        .iter()
        .map(|n| (n.host.clone(), n.rack.clone()))
        .collect();
    let spec = JobSpec {
        job_id: job_id.clone(),
        splits: prepared.splits.clone(),
        num_reduces: submission.reducers,
        host_racks,
        conf: prepared.conf.entries.clone(),
    };

    // A later attempt continues from the newest snapshot, or starts over (over an output the
    // first attempt claimed; one that never claimed it sets it up like a first attempt).
    let clock = Clock::new();
    let now = clock.now();
    let mut recovered = None;
    if let Some((seq, mut record)) = snapshot {
        // A task counts as committed only if its file really is: in the committed area, or
        // already promoted into the output by an interrupted job commit.
        let present = committed_outputs(&dfs, &submission.output).await?;
        let lost = forget_missing_commits(&mut record, &present);
        if !lost.is_empty() {
            tracing::warn!(tasks = ?lost, "committed outputs missing: running those tasks again");
        }
        match JobTracker::recover(spec.clone(), prepared.config.clone(), &record.history, now) {
            Ok(jt) => recovered = Some((seq, jt, record)),
            Err(e) => tracing::warn!(error = %e, "cannot recover; starting the job over"),
        }
    } else if claimed {
        tracing::info!("no recovery snapshot; starting the job over");
    }
    let out = dfs_job_path(&submission.output);
    let fs: Arc<dyn JobFileSystem> =
        Arc::new(DfsFs::new(dfs.clone(), tokio::runtime::Handle::current()));
    let committer = Committer::spawn(fs, out.clone())?;
    let (jt, first_seq, task_counters, start) = match recovered {
        Some((seq, jt, record)) => {
            let keep = record
                .history
                .attempts
                .iter()
                .filter(|a| a.committed)
                .map(|a| output_file_name(a.attempt.task))
                .collect();
            (
                jt,
                seq,
                record.task_counters,
                CommitterStart::Recover { keep },
            )
        }
        None => {
            let jt = JobTracker::new(spec, prepared.config.clone(), now);
            // Snapshots of an abandoned run must never be recovered from later: gone, and new
            // ones are numbered past them.
            let seq = if later_attempt {
                history::clear_snapshots(&dfs, &staging).await?
            } else {
                0
            };
            let start = if claimed {
                CommitterStart::Restart
            } else {
                CommitterStart::Fresh
            };
            (jt, seq, BTreeMap::new(), start)
        }
    };
    let fresh = matches!(start, CommitterStart::Fresh);
    if let Err(reason) = committer.call(CommitOp::Start(start)).await {
        let outcome = fail_before_start(&dfs, &am, &job_id, &submission, reason).await?;
        stop_server.trigger();
        let _ = server.await;
        return Ok(outcome);
    }
    if fresh {
        // From now on a later attempt may take over the existing output directory.
        history::mark_output_claimed(&dfs, &staging).await?;
    }
    let secret = shuffle_secret(&dfs, &staging).await?;

    let (alloc_tx, alloc_rx) = mpsc::unbounded_channel();
    let allocator_task = tokio::spawn(allocator(am.clone(), alloc_rx, commands_tx.clone()));
    let mut driver = Driver {
        jt,
        job_id: job_id.clone(),
        staging: staging.clone(),
        submission,
        conf: prepared.conf.entries,
        splits: prepared.splits.into_iter().map(|s| s.split).collect(),
        out,
        secret,
        tracking_address,
        task_command: setup.task_command,
        am: am.clone(),
        committer,
        commands: commands_tx.clone(),
        alloc: alloc_tx,
        pending_snapshot: None,
        batch: AllocBatch::default(),
        launches: Vec::new(),
        containers: HashMap::new(),
        launched: HashMap::new(),
        released: HashSet::new(),
        shuffle_services: BTreeSet::new(),
        pending_counters: HashMap::new(),
        task_counters,
        outcome: None,
        not_current: false,
        fatal: None,
        app_attempt,
        rm,
        report_pending: false,
        superseded: None,
        committing: HashSet::new(),
        clock,
        last_tick: tokio::time::Instant::now(),
    };
    drop(commands_tx);

    let actions = driver.jt.start(clock.now());
    driver.apply(actions);
    driver.on_nodes(nodes);
    let mut node_poll = tokio::time::interval(NODE_POLL);
    node_poll.reset();
    // The NodeManager stops this container with SIGTERM (SIGKILL after a grace period) when the
    // application is killed: keep running so the RM's answer (`shutdown`) ends the job cleanly
    // (no `_temporary` left, history written). Any other stop leaves the job to the next attempt.
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let mut snapshot_seq = first_seq;
    // The snapshot write in flight: one at a time, in order (DFS writes are not `Send`, so it
    // runs in this task rather than spawned).
    let mut snapshot_write: Option<Pin<Box<dyn Future<Output = ()>>>> = None;
    while driver.outcome.is_none() && driver.fatal.is_none() && driver.superseded.is_none() {
        // No snapshot while the RM's refusal is being looked into: if another attempt owns
        // the job now, its recovery directory is not this one's to write.
        if snapshot_write.is_none() && !driver.report_pending {
            if let Some(record) = driver.pending_snapshot.take() {
                snapshot_seq += 1;
                snapshot_write = Some(Box::pin(write_snapshot(
                    dfs.clone(),
                    staging.clone(),
                    snapshot_seq,
                    record,
                )));
            }
        }
        tokio::select! {
            _ = async { if let Some(w) = snapshot_write.as_mut() { w.await } }, if snapshot_write.is_some() => {
                snapshot_write = None;
            }
            command = commands.recv() => match command {
                Some(c) => driver.on_command(c),
                None => break,
            },
            _ = async {
                match terminate.as_mut() {
                    Some(t) => { t.recv().await; }
                    None => std::future::pending::<()>().await,
                }
            } => {
                tracing::info!("SIGTERM: ending only if the resourcemanager ended this attempt");
            }
            _ = tokio::time::sleep_until(driver.next_tick()) => driver.tick(),
            _ = node_poll.tick() => {
                let am = am.clone();
                let tx = driver.commands.clone();
                tokio::spawn(async move {
                    match am.nodes().await {
                        Ok(nodes) => { let _ = tx.send(Command::Nodes(nodes)).await; }
                        Err(e) => tracing::warn!(error = %e, "cannot list the nodes"),
                    }
                });
            }
        }
    }
    allocator_task.abort();
    // Nobody answers commands any more: requests queued or arriving now get the service's
    // answer for a finished job at once instead of waiting for the ending below.
    let status = driver.status();
    drop(commands);
    if let Some(why) = driver.superseded.take() {
        // Another attempt owns the job now: its output, snapshots and staging are not ours.
        stop_server.trigger();
        return Err(JobTrackerError::Superseded(why));
    }
    if let Some(reason) = driver.fatal.take() {
        stop_server.trigger();
        return Err(JobTrackerError::Internal(reason));
    }
    let (state, diagnostics) = driver.outcome.clone().unwrap_or((
        JobState::Failed,
        Some("the jobtracker stopped unexpectedly".into()),
    ));

    // The end: no _temporary left by a failed or killed job, history, shuffle cleanup, RM.
    if state != JobState::Succeeded {
        if let Err(e) = driver.committer.call(CommitOp::Abort).await {
            tracing::warn!(error = %e, "cannot remove the output's _temporary");
        }
    }
    if let Some(w) = snapshot_write.take() {
        w.await;
    }
    let final_record = driver.record();
    // A terminal snapshot: an attempt started after this one died repeats only the ending.
    write_snapshot(
        dfs.clone(),
        staging.clone(),
        snapshot_seq + 1,
        Arc::new(final_record.clone()),
    )
    .await;
    let mut history_record = final_record;
    history_record.history.counters = driver.total_counters();
    match history::write_history(&dfs, &history_record).await {
        Ok(path) => tracing::info!(path = %path, "job history written"),
        Err(e) => tracing::warn!(error = %e, "cannot write the job history"),
    }
    final_status.send_replace(Some(status));
    remove_from_shuffle_services(&setup.identity, setup.host, &driver).await;
    // The job is over and its history written: the staging directory (plugin, submission,
    // snapshots) is not needed any more, as in Hadoop. Removed before telling the RM, which
    // stops this container right after.
    if let Err(e) = dfs.delete(&staging, true).await {
        tracing::warn!(error = %e, "cannot remove the staging directory");
    }
    if !driver.not_current {
        am.finish(
            self::final_status(state),
            diagnostics.clone().unwrap_or_default(),
        )
        .await?;
    }
    stop_server.trigger();
    let _ = server.await;
    Ok(JobOutcome {
        job_id,
        state,
        diagnostics,
    })
}

/// A client of the RM (the address the RM gives master containers), for application reports.
fn rm_client(setup: &JobTrackerSetup) -> Result<RmClient, JobTrackerError> {
    let var = sheaf_yarn::resourcemanager::state::env::RM_ADDRESS;
    let addr: SocketAddr = std::env::var(var)
        .ok()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| JobTrackerError::Internal(format!("${var} is not an address")))?;
    Ok(RmClient::new(addr, &setup.identity, setup.host)?)
}

/// The output files of a job's output directory `out` that tasks committed: those in the
/// committed area and those an interrupted job commit already moved into `out`.
async fn committed_outputs(
    dfs: &DfsClient,
    out: &str,
) -> Result<BTreeSet<String>, JobTrackerError> {
    let committed = committed_dir(out);
    let mut names = BTreeSet::new();
    for dir in [committed.as_str(), out] {
        match dfs.list(dir).await {
            Ok(entries) => names.extend(
                entries
                    .into_iter()
                    .filter_map(|e| e.path.rsplit('/').next().map(str::to_string)),
            ),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(dfs_failed(format!("listing {dir}"))(e)),
        }
    }
    Ok(names)
}

/// Clears the committed flag of every attempt of `record` whose output file is not in
/// `present` (so recovery runs the task again); returns those tasks.
fn forget_missing_commits(record: &mut JobRecord, present: &BTreeSet<String>) -> Vec<TaskId> {
    let mut lost = Vec::new();
    for a in record.history.attempts.iter_mut().filter(|a| a.committed) {
        if !present.contains(&output_file_name(a.attempt.task)) {
            a.committed = false;
            lost.push(a.attempt.task);
        }
    }
    lost
}

/// Repeats the last steps of a job an earlier attempt ended (its terminal snapshot): no
/// `_temporary` left by a failed or killed job, the history, the staging directory, the RM.
async fn repeat_ending(
    dfs: &DfsClient,
    am: &MasterClient,
    staging: &str,
    mut record: JobRecord,
) -> Result<JobOutcome, JobTrackerError> {
    let state = record.history.state;
    let diagnostics = record.history.diagnostics.clone();
    tracing::info!(%state, "the job ended under an earlier attempt: repeating its ending");
    if state != JobState::Succeeded {
        let temporary = staging_file(&record.output, TEMPORARY_DIR);
        match dfs.delete(&temporary, true).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => tracing::warn!(error = %e, "cannot remove the output's _temporary"),
        }
    }
    record.history.counters =
        JobRecord::total_counters(&record.history.counters, &record.task_counters);
    match history::write_history(dfs, &record).await {
        Ok(path) => tracing::info!(path = %path, "job history written"),
        Err(e) => tracing::warn!(error = %e, "cannot write the job history"),
    }
    if let Err(e) = dfs.delete(staging, true).await {
        tracing::warn!(error = %e, "cannot remove the staging directory");
    }
    am.finish(final_status(state), diagnostics.clone().unwrap_or_default())
        .await?;
    Ok(JobOutcome {
        job_id: record.history.job_id,
        state,
        diagnostics,
    })
}

/// Ends the application of a job whose staging directory is gone: a previous attempt finished
/// the job (its history says how) and died before telling the RM.
async fn finish_ended_job(
    dfs: &DfsClient,
    am: &MasterClient,
    job_id: &str,
) -> Result<JobOutcome, JobTrackerError> {
    let (state, diagnostics) = match history::read_history(dfs, job_id).await? {
        Some(record) if record.history.state.is_terminal() => {
            (record.history.state, record.history.diagnostics)
        }
        _ => (
            JobState::Failed,
            Some("the job's staging directory is gone (it was removed while the job ran)".into()),
        ),
    };
    am.finish(final_status(state), diagnostics.clone().unwrap_or_default())
        .await?;
    Ok(JobOutcome {
        job_id: job_id.to_string(),
        state,
        diagnostics,
    })
}

/// Tells every shuffle service that served the job's map outputs that the job is over.
async fn remove_from_shuffle_services(identity: &TlsIdentity, host: IpAddr, driver: &Driver) {
    if driver.shuffle_services.is_empty() {
        return;
    }
    let client = match ShuffleServiceClient::new(identity, host) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "cannot reach the shuffle services to remove the job");
            return;
        }
    };
    let calls = driver.shuffle_services.iter().filter_map(|addr| {
        let addr: SocketAddr = addr.parse().ok()?;
        let client = &client;
        Some(async move {
            let call = client.remove_job(addr, &driver.job_id, &driver.secret);
            match tokio::time::timeout(REMOVE_JOB_DEADLINE, call).await {
                Ok(Ok(files)) => tracing::debug!(%addr, files, "job removed from shuffle service"),
                Ok(Err(e)) => tracing::warn!(%addr, error = %e, "shuffle service kept the job"),
                Err(_) => tracing::warn!(%addr, "shuffle service did not answer the removal"),
            }
        })
    });
    futures::future::join_all(calls).await;
    client.close();
}

/// Ends a job that could not start (bad configuration, missing input, existing output …): a
/// history saying why, and FAILED to the RM.
async fn fail_before_start(
    dfs: &DfsClient,
    am: &MasterClient,
    job_id: &str,
    submission: &JobSubmission,
    reason: String,
) -> Result<JobOutcome, JobTrackerError> {
    let now = wall_clock_ms();
    let record = JobRecord {
        history: crate::jobtracker::JobHistory {
            job_id: job_id.to_string(),
            conf: submission.conf.clone(),
            settings: JobConfig::default(),
            start_ms: now,
            finish_ms: Some(now),
            state: JobState::Failed,
            diagnostics: Some(reason.clone()),
            maps_total: 0,
            reduces_total: submission.reducers,
            counters: Counters::new(),
            attempts: Vec::new(),
        },
        name: submission.name.clone(),
        user: submission.user.clone(),
        inputs: submission.inputs.clone(),
        output: submission.output.clone(),
        submit_ms: submission.submit_ms,
        task_counters: BTreeMap::new(),
    };
    if let Err(e) = history::write_history(dfs, &record).await {
        tracing::warn!(error = %e, "cannot write the job history");
    }
    am.finish(FinalStatus::Failed, reason.clone()).await?;
    Ok(JobOutcome {
        job_id: job_id.to_string(),
        state: JobState::Failed,
        diagnostics: Some(reason),
    })
}

/// The default argv of task processes: this executable with the task subcommand.
pub fn default_task_command() -> Result<Vec<String>, JobTrackerError> {
    let exe: PathBuf = std::env::current_exe().map_err(|e| {
        JobTrackerError::Internal(format!("cannot locate the sheaf executable: {e}"))
    })?;
    Ok(vec![
        exe.display().to_string(),
        super::submission::TASK_COMMAND.to_string(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(fs: &Arc<dyn JobFileSystem>, path: &JobPath, text: &str) {
        let mut w = fs.create(path).expect("create");
        std::io::Write::write_all(&mut w, text.as_bytes()).expect("write");
        w.close().expect("close");
    }

    fn names(fs: &Arc<dyn JobFileSystem>, dir: &JobPath) -> Vec<String> {
        let mut n: Vec<String> = fs
            .list(dir)
            .expect("list")
            .into_iter()
            .filter_map(|e| e.path.file_name())
            .collect();
        n.sort();
        n
    }

    #[test]
    fn committer_starts_fresh_recovers_or_restarts_and_commits_idempotently() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fs: Arc<dyn JobFileSystem> = Arc::new(crate::fs::LocalFs);
        let out = JobPath::Local(dir.path().join("out"));
        let mut c = None;
        let run = |c: &mut Option<OutputCommitter>, op| run_commit_op(&fs, &out, c, op);
        run(&mut c, CommitOp::Start(CommitterStart::Fresh)).expect("fresh");
        for (task, text) in [(TaskId::reduce(0), "a"), (TaskId::reduce(1), "b")] {
            let attempt = AttemptId { task, number: 0 };
            let adir = attempt_output_dir(&out, 1, attempt);
            fs.mkdirs(&adir).expect("mkdirs");
            write(&fs, &adir.join(&output_file_name(task)), text);
            run(
                &mut c,
                CommitOp::Task {
                    attempt_dir: adir,
                    file: output_file_name(task),
                },
            )
            .expect("commit task");
        }
        // A second first attempt over the same output is refused, as in Hadoop.
        let err = run(&mut None, CommitOp::Start(CommitterStart::Fresh)).expect_err("exists");
        assert!(err.contains("already exists"), "{err}");

        // A recovered attempt keeps what its snapshot committed and drops the rest.
        let keep = BTreeSet::from([output_file_name(TaskId::reduce(0))]);
        let mut recovered = None;
        run(
            &mut recovered,
            CommitOp::Start(CommitterStart::Recover { keep }),
        )
        .expect("recover");
        let committed = out.join(TEMPORARY_DIR).join("committed");
        assert_eq!(names(&fs, &committed), vec!["part-r-00000"]);

        // The snapshot's commit of part-r-00001 was not kept: a job commit expecting it fails.
        let both = expected_outputs(1, 2);
        let err = run(&mut recovered, CommitOp::Job { expected: both }).expect_err("incomplete");
        assert!(err.contains("missing part-r-00001"), "{err}");
        assert!(!fs.exists(&out.join(SUCCESS_MARKER)).expect("exists"));
        let only = BTreeSet::from([output_file_name(TaskId::reduce(0))]);
        run(&mut recovered, CommitOp::Job { expected: only }).expect("commit job");
        assert_eq!(names(&fs, &out), vec!["_SUCCESS", "part-r-00000"]);
        // A repeated job commit (an attempt that died after committing) succeeds again.
        let mut again = None;
        run(
            &mut again,
            CommitOp::Start(CommitterStart::Recover {
                keep: BTreeSet::new(),
            }),
        )
        .expect("resume");
        run(
            &mut again,
            CommitOp::Job {
                expected: expected_outputs(1, 2),
            },
        )
        .expect("idempotent commit");
        run(&mut again, CommitOp::Abort).expect("abort");
        assert_eq!(names(&fs, &out), vec!["_SUCCESS", "part-r-00000"]);

        // A restart without a snapshot clears _temporary.
        let other = JobPath::Local(dir.path().join("other"));
        let tmp = other.join(TEMPORARY_DIR).join("attempt_r_000000_0");
        fs.mkdirs(&tmp).expect("mkdirs");
        write(&fs, &tmp.join("part-r-00000"), "stale");
        let mut restarted = None;
        run_commit_op(
            &fs,
            &other,
            &mut restarted,
            CommitOp::Start(CommitterStart::Restart),
        )
        .expect("restart");
        assert_eq!(names(&fs, &other.join(TEMPORARY_DIR)), vec!["committed"]);
    }

    fn report(attempt: u32, state: AppState) -> ApplicationReport {
        ApplicationReport {
            id: sheaf_yarn::protocol::AppId {
                cluster_ts: 17,
                seq: 2,
            },
            name: "MAPREDUCE wc".into(),
            user: "alice".into(),
            queue: "default".into(),
            state,
            final_status: FinalStatus::Undefined,
            attempt,
            max_attempts: 2,
            diagnostics: String::new(),
            submit_ms: 1,
            finish_ms: 0,
            master_host: None,
            tracking_address: None,
            containers: Vec::new(),
        }
    }

    #[test]
    fn an_rm_refusal_ends_the_job_only_when_the_application_itself_was_killed() {
        // Killed (or failed) while this attempt was the newest: the kill cleanup is ours.
        assert_eq!(
            end_of_attempt(1, &report(1, AppState::Killed)),
            AttemptEnd::Killed
        );
        assert_eq!(
            end_of_attempt(2, &report(2, AppState::Failed)),
            AttemptEnd::Killed
        );
        // A newer attempt exists (this one's node was declared lost while it lived on): touch
        // nothing, whatever the application's state.
        for state in [AppState::Running, AppState::Killed, AppState::Finished] {
            let end = end_of_attempt(1, &report(2, state));
            assert!(
                matches!(&end, AttemptEnd::Superseded(why) if why.contains("replaced by attempt 2")),
                "{state}: {end:?}"
            );
        }
        // Still running with this attempt number (its successor not created yet), or finished
        // by someone else: not ours to end either.
        for state in [AppState::Running, AppState::Accepted, AppState::Finished] {
            let end = end_of_attempt(1, &report(1, state));
            assert!(matches!(end, AttemptEnd::Superseded(_)), "{state}: {end:?}");
        }
    }

    #[test]
    fn containers_larger_than_the_cluster_allows_fail_the_job_with_hadoops_message() {
        let mut config = JobConfig::default();
        let max = Resource::new(2048, 4);
        check_container_sizes(&config, 1, &max).expect("defaults fit");
        config.map_resource.memory_mb = 4096;
        let err = check_container_sizes(&config, 1, &max).expect_err("map too large");
        assert!(
            err.starts_with(
                "MAP capability required is more than the supported max container capability \
                 in the cluster"
            ),
            "{err}"
        );
        assert!(
            err.contains("mapResourceRequest: <memory:4096, vCores:1>"),
            "{err}"
        );
        assert!(
            err.contains("maxContainerCapability:<memory:2048, vCores:4>"),
            "{err}"
        );
        config.map_resource.memory_mb = 1024;
        config.reduce_resource.vcores = 8;
        let err = check_container_sizes(&config, 1, &max).expect_err("reduce too large");
        assert!(err.starts_with("REDUCE capability required"), "{err}");
        // A map-only job asks for no reduce containers.
        check_container_sizes(&config, 0, &max).expect("no reduces");
    }

    #[test]
    fn recovery_keeps_only_commits_whose_files_are_there() {
        use crate::jobtracker::{AttemptRecord, AttemptState, JobHistory};
        let attempt = |task: TaskId, committed: bool| AttemptRecord {
            attempt: AttemptId { task, number: 0 },
            state: AttemptState::Succeeded,
            speculative: false,
            host: None,
            rack: None,
            locality: None,
            start_ms: Some(1),
            end_ms: Some(2),
            progress: 1.0,
            error: None,
            committed,
        };
        let mut record = JobRecord {
            history: JobHistory {
                job_id: "job_17_0002".into(),
                conf: BTreeMap::new(),
                settings: JobConfig::default(),
                start_ms: 1,
                finish_ms: None,
                state: JobState::Running,
                diagnostics: None,
                maps_total: 3,
                reduces_total: 0,
                counters: Counters::new(),
                attempts: vec![
                    attempt(TaskId::map(0), true),
                    attempt(TaskId::map(1), true),
                    attempt(TaskId::map(2), false),
                ],
            },
            name: "wc".into(),
            user: "alice".into(),
            inputs: vec!["/in".into()],
            output: "/out".into(),
            submit_ms: 1,
            task_counters: BTreeMap::new(),
        };
        // part-m-00000 is committed (or promoted); part-m-00001's file is gone.
        let present = BTreeSet::from(["part-m-00000".to_string(), "_SUCCESS".to_string()]);
        assert_eq!(
            forget_missing_commits(&mut record, &present),
            vec![TaskId::map(1)]
        );
        let committed: Vec<bool> = record
            .history
            .attempts
            .iter()
            .map(|a| a.committed)
            .collect();
        assert_eq!(committed, vec![true, false, false]);
    }

    #[test]
    fn alloc_batches_append_in_order() {
        let mut a = AllocBatch::default();
        assert!(a.is_empty());
        a.append(AllocBatch {
            asks: vec![],
            cancel: vec![1, 2],
            release: vec![],
        });
        a.append(AllocBatch {
            asks: vec![],
            cancel: vec![3],
            release: vec![],
        });
        assert_eq!(a.cancel, vec![1, 2, 3]);
        assert!(!a.is_empty());
    }
}
