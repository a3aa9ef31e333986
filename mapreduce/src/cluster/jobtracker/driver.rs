//! The driver: the one task that owns the sans-I/O [`JobTracker`]. It turns commands (RM
//! allocations, task and client requests, commit results, node lists) and ticks into events, and
//! the tracker's actions into RM asks, releases and launches, commits and snapshots.

use super::allocator::{allocator, AllocBatch};
use super::committer::{CommitOp, Committer};
use super::preparation::{Master, PreparedJob};
use super::recovery::{end_of_attempt, write_snapshot, AttemptEnd};
use super::service::RpcAnswer;
use crate::cluster::history::JobRecord;
use crate::cluster::layout::{
    attempt_dir_name, attempt_output_dir, expected_outputs, output_file_name, plugin_file,
    shipped_file,
};
use crate::cluster::protocol::JtRequest;
use crate::cluster::submission::{
    env as task_env, JobProgram, JobSubmission, PLUGIN_LINK_NAME, SHUFFLE_SERVICE,
};
use crate::counters::Counters;
use crate::formats::InputSplit;
use crate::fs::JobPath;
use crate::jobtracker::{
    Action, AttemptId, ContainerId as JtContainerId, Event, JobState, JobStatus, JobTracker, TaskId,
};
use crate::shuffle::JobSecret;
use sheaf_dfs::client::DfsClient;
use sheaf_rpc::time::Clock;
use sheaf_yarn::client::RmClient;
use sheaf_yarn::master::MasterClient;
use sheaf_yarn::protocol::{
    exit_status, Allocation, ApplicationReport, AttemptId as YarnAttemptId, ContainerAsk,
    ContainerId, LaunchSpec, NodeReport, Resource, YarnError,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// The longest the tracker goes without a tick: speculation judges progress rates as time
/// passes (timeouts and preemptions tick at their own deadline, `JobTracker::next_timeout`).
const MAX_TICK_INTERVAL: Duration = Duration::from_secs(1);
/// How often the RM's node list is read (lost and returning nodes, live hosts).
const NODE_POLL: Duration = Duration::from_secs(2);
/// Consecutive failed allocate calls (about one a second) before the JobTracker gives up and
/// exits, leaving the job to its next attempt.
const MAX_ALLOCATE_FAILURES: u32 = 60;
/// Bound of the command queue of the JobTracker's owning task.
const COMMAND_QUEUE: usize = 1024;
/// Why the job ends when the RM stops taking this attempt's calls.
const ENDED_BY_RM: &str =
    "the application was killed through the resourcemanager (or its attempt ended there)";
/// NodeManager state of a live node in the RM's node list.
const NODE_RUNNING: &str = "RUNNING";

/// The task key of the per-task counters map (`m_000003`).
fn task_key(task: TaskId) -> String {
    task.to_string()
}

/// Messages to the task owning the tracker.
pub(super) enum Command {
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

/// A container the RM gave this job.
struct Container {
    id: ContainerId,
    host: String,
    shuffle_address: Option<String>,
    attempt: Option<AttemptId>,
}

/// The state around the tracker; owned by one task.
pub(super) struct Driver {
    pub(super) jt: JobTracker,
    pub(super) job_id: String,
    staging: String,
    pub(super) submission: JobSubmission,
    pub(super) conf: BTreeMap<String, String>,
    pub(super) splits: Vec<InputSplit>,
    out: JobPath,
    pub(super) secret: JobSecret,
    tracking_address: String,
    task_command: Vec<String>,
    am: Arc<MasterClient>,
    pub(super) committer: Committer,
    commands: mpsc::Sender<Command>,
    alloc: mpsc::UnboundedSender<AllocBatch>,
    /// The newest snapshot not yet handed to a write (only the latest matters).
    pending_snapshot: Option<Arc<JobRecord>>,
    batch: AllocBatch,
    launches: Vec<(ContainerId, LaunchSpec)>,
    containers: HashMap<String, Container>,
    /// Launched attempts and their hosts.
    pub(super) launched: HashMap<AttemptId, String>,
    released: HashSet<String>,
    pub(super) shuffle_services: BTreeSet<String>,
    /// Task counters reported with `OutputReady`, until the task commit decides the winner.
    pub(super) pending_counters: HashMap<AttemptId, Counters>,
    /// Task counters of each task's winning attempt.
    task_counters: BTreeMap<String, Counters>,
    pub(super) outcome: Option<(JobState, Option<String>)>,
    /// The RM no longer takes this attempt's calls and the application is over (killed).
    pub(super) not_current: bool,
    pub(super) fatal: Option<String>,
    /// This JobTracker attempt, and the RM client that asks about its application.
    pub(super) app_attempt: YarnAttemptId,
    rm: Arc<RmClient>,
    /// An application report is being asked for (the RM stopped taking this attempt's calls).
    report_pending: bool,
    /// Why this attempt stopped without touching the job: another attempt runs (or ran) it.
    pub(super) superseded: Option<String>,
    /// Attempts whose task commit is in flight: their `pending_counters` wait for the result.
    pub(super) committing: HashSet<AttemptId>,
    /// The time fed to the tracker.
    clock: Clock,
    /// When the tracker was last told time passed.
    last_tick: tokio::time::Instant,
    /// Sequence number of the newest recovery snapshot written (or cleared) so far.
    pub(super) snapshot_seq: u64,
    /// The allocate loop, stopped when the loop ends.
    allocator: JoinHandle<()>,
}

/// What the driver starts from: the prepared job and the tracker (new or recovered).
pub(super) struct DriverStart {
    /// The tracker, new or recovered.
    pub(super) jt: JobTracker,
    /// The job as submitted.
    pub(super) submission: JobSubmission,
    /// Its final configuration and splits.
    pub(super) prepared: PreparedJob,
    /// The output directory.
    pub(super) out: JobPath,
    /// The job's shuffle secret.
    pub(super) secret: JobSecret,
    /// The committer thread, started over the output.
    pub(super) committer: Committer,
    /// Task counters of the tasks a recovered tracker had committed.
    pub(super) task_counters: BTreeMap<String, Counters>,
    /// Sequence number of the newest snapshot so far.
    pub(super) snapshot_seq: u64,
    /// The clock the tracker was created with.
    pub(super) clock: Clock,
    /// The RM's node list at startup.
    pub(super) nodes: Vec<NodeReport>,
    /// argv of task processes.
    pub(super) task_command: Vec<String>,
}

/// The command channel of the driver's task (the RPC service and the helper tasks send).
pub(super) fn command_channel() -> (mpsc::Sender<Command>, mpsc::Receiver<Command>) {
    mpsc::channel(COMMAND_QUEUE)
}

/// A recovery snapshot write in flight.
pub(super) type SnapshotWrite = Pin<Box<dyn Future<Output = ()>>>;

impl Driver {
    /// Starts the allocate loop and the tracker; `commands` is the sending side of the driver's
    /// command channel.
    pub(super) fn start(
        master: &Master,
        start: DriverStart,
        commands: mpsc::Sender<Command>,
    ) -> Driver {
        let (alloc_tx, alloc_rx) = mpsc::unbounded_channel();
        let allocator = tokio::spawn(allocator(master.am.clone(), alloc_rx, commands.clone()));
        let mut driver = Driver {
            jt: start.jt,
            job_id: master.job_id.clone(),
            staging: master.staging.clone(),
            submission: start.submission,
            conf: start.prepared.conf.entries,
            splits: start.prepared.splits.into_iter().map(|s| s.split).collect(),
            out: start.out,
            secret: start.secret,
            tracking_address: master.tracking_address.clone(),
            task_command: start.task_command,
            am: master.am.clone(),
            committer: start.committer,
            commands,
            alloc: alloc_tx,
            pending_snapshot: None,
            batch: AllocBatch::default(),
            launches: Vec::new(),
            containers: HashMap::new(),
            launched: HashMap::new(),
            released: HashSet::new(),
            shuffle_services: BTreeSet::new(),
            pending_counters: HashMap::new(),
            task_counters: start.task_counters,
            outcome: None,
            not_current: false,
            fatal: None,
            app_attempt: master.app_attempt,
            rm: master.rm.clone(),
            report_pending: false,
            superseded: None,
            committing: HashSet::new(),
            clock: start.clock,
            last_tick: tokio::time::Instant::now(),
            snapshot_seq: start.snapshot_seq,
            allocator,
        };
        let actions = driver.jt.start(driver.clock.now());
        driver.apply(actions);
        driver.on_nodes(start.nodes);
        driver
    }

    /// The main loop: feeds the tracker commands, ticks and node lists, and writes recovery
    /// snapshots, until the job has an outcome, the JobTracker cannot go on or another attempt
    /// took over. Returns the snapshot write still in flight.
    pub(super) async fn run_loop(
        &mut self,
        dfs: &DfsClient,
        mut commands: mpsc::Receiver<Command>,
    ) -> Option<SnapshotWrite> {
        let mut node_poll = tokio::time::interval(NODE_POLL);
        node_poll.reset();
        // The NodeManager stops this container with SIGTERM (SIGKILL after a grace period) when
        // the application is killed: keep running so the RM's answer (`shutdown`) ends the job
        // cleanly (no `_temporary` left, history written). Any other stop leaves the job to the
        // next attempt.
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        // The snapshot write in flight: one at a time, in order (DFS writes are not `Send`, so
        // it runs in this task rather than spawned).
        let mut snapshot_write: Option<SnapshotWrite> = None;
        while self.outcome.is_none() && self.fatal.is_none() && self.superseded.is_none() {
            // No snapshot while the RM's refusal is being looked into: if another attempt owns
            // the job now, its recovery directory is not this one's to write.
            if snapshot_write.is_none() && !self.report_pending {
                if let Some(record) = self.pending_snapshot.take() {
                    self.snapshot_seq += 1;
                    snapshot_write = Some(Box::pin(write_snapshot(
                        dfs.clone(),
                        self.staging.clone(),
                        self.snapshot_seq,
                        record,
                    )));
                }
            }
            tokio::select! {
                _ = async { if let Some(w) = snapshot_write.as_mut() { w.await } }, if snapshot_write.is_some() => {
                    snapshot_write = None;
                }
                command = commands.recv() => match command {
                    Some(c) => self.on_command(c),
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
                _ = tokio::time::sleep_until(self.next_tick()) => self.tick(),
                _ = node_poll.tick() => {
                    let am = self.am.clone();
                    let tx = self.commands.clone();
                    tokio::spawn(async move {
                        match am.nodes().await {
                            Ok(nodes) => { let _ = tx.send(Command::Nodes(nodes)).await; }
                            Err(e) => tracing::warn!(error = %e, "cannot list the nodes"),
                        }
                    });
                }
            }
        }
        self.allocator.abort();
        // Nobody answers commands any more: requests queued or arriving now get the service's
        // answer for a finished job at once instead of waiting for the ending.
        drop(commands);
        snapshot_write
    }

    /// Hands `event` to the tracker and carries out its actions.
    pub(super) fn feed(&mut self, event: Event) {
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
            JobProgram::Plugin => {
                BTreeMap::from([(PLUGIN_LINK_NAME.to_string(), plugin_file(&self.staging))])
            }
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

    /// The output directory of `attempt` in this JobTracker attempt.
    pub(super) fn attempt_dir(&self, attempt: AttemptId) -> JobPath {
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

    /// The job's counters with those of every task's winning attempt.
    pub(super) fn total_counters(&self) -> Counters {
        JobRecord::total_counters(self.jt.counters(), &self.task_counters)
    }

    /// The job's status, with the total counters.
    pub(super) fn status(&self) -> JobStatus {
        let mut status = self.jt.status();
        status.counters = self.total_counters();
        status
    }

    /// The job record with the tracker's own counters (a recovery snapshot; the finished job's
    /// history replaces them with the total).
    pub(super) fn record(&self) -> JobRecord {
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

    /// Tells the tracker the RM's node list.
    pub(super) fn on_nodes(&mut self, nodes: Vec<NodeReport>) {
        let (running, down): (Vec<NodeReport>, Vec<NodeReport>) =
            nodes.into_iter().partition(|n| n.state == NODE_RUNNING);
        self.feed(Event::NodeList {
            running: running.into_iter().map(|n| n.host).collect(),
            down: down.into_iter().map(|n| n.host).collect(),
        });
    }
}
