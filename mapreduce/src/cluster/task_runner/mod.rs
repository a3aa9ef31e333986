//! The task process of a cluster job (`sheaf mr-task`, one per container): asks the JobTracker
//! what its attempt runs, runs it with the same engine as the local runner, and reports.
//!
//! - a map of a job with reducers reads its split through the DFS (as a client on its node, so
//!   the local replica comes first), writes its partitioned output under
//!   `$SHEAF_SHUFFLE_DIR/<job>/<attempt>/`, registers it with the node's shuffle service and
//!   reports `MapOutputReady` ([`map`]);
//! - a map of a map-only job writes its output file into its attempt directory on the DFS and
//!   reports `OutputReady` ([`map`]);
//! - a reduce follows the map completion events, fetches map outputs over the QUIC shuffle,
//!   runs the reducer into its attempt directory and reports `OutputReady` ([`reduce`]).
//!
//! Threads: the work (plugin code, sort, merge, the blocking DFS job filesystem) runs on a plain
//! thread; network calls run on a small tokio runtime; a heartbeat on that runtime reports
//! progress every second ([`umbilical`]). The main thread waits for whichever ends first: the
//! work, a `proceed: false` (the attempt is no longer wanted: return at once, report nothing),
//! or a JobTracker unreachable for longer than the patience limit.

pub mod map;
pub mod map_events;
pub mod progress;
pub mod reduce;
pub mod umbilical;

use std::net::{IpAddr, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use sheaf_dfs::config::DfsConfig;
use sheaf_rpc::{quic, RpcError, TlsIdentity};

use crate::api::plugin::{PluginError, PluginLibrary};
use crate::api::{JobConf, JobDefinition};
use crate::cluster::protocol::TaskAssignment;
use crate::cluster::submission::{env, PLUGIN_LINK_NAME};
use crate::counters::Counters;
use crate::fs::{DfsAccess, FsError, JobFileSystems, JobPath, DFS_SCHEME};
use crate::jobtracker::{AttemptId, TaskKind};
use crate::shuffle::ShuffleError;
use crate::task::EngineError;

use progress::TaskProgress;
use umbilical::{spawn_heartbeat, HeartbeatStop, Umbilical};

/// Conf key set in every task's configuration: the attempt, Hadoop style
/// (`attempt_<cluster>_<seq>_m_000003_0`).
pub const TASK_ATTEMPT_ID_KEY: &str = "mapreduce.task.attempt.id";
/// Conf key set in every task's configuration: the map or reduce index.
pub const TASK_PARTITION_KEY: &str = "mapreduce.task.partition";
/// Conf key set in every task's configuration: `true` in maps, `false` in reduces.
pub const TASK_IS_MAP_KEY: &str = "mapreduce.task.ismap";
/// Conf key set in every task's configuration: the job id.
pub const JOB_ID_KEY: &str = "mapreduce.job.id";
/// Network threads of a task process: the heartbeat, JobTracker calls and shuffle fetches.
const NETWORK_THREADS: usize = 2;
/// How long the network runtime may take to wind down when the process is done.
const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(1);

/// Why a task attempt could not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum TaskRunnerError {
    /// The container's environment lacks a variable or holds a malformed one.
    #[error("{0}")]
    Environment(String),
    /// The JobTracker stayed unreachable (or kept failing) past the patience limit.
    #[error("the jobtracker at {address} was unreachable for {secs} s ({last})")]
    JobTrackerLost {
        /// Where it was called.
        address: SocketAddr,
        /// How long the task tried.
        secs: u64,
        /// The last failure.
        last: String,
    },
    /// The JobTracker refused or answered something this task cannot act on.
    #[error("jobtracker: {0}")]
    JobTracker(String),
    /// The JobTracker no longer wants this attempt.
    #[error("the jobtracker no longer wants this attempt")]
    Stopped,
    /// The assignment does not fit this kind of task (no split for a map …).
    #[error("bad assignment: {0}")]
    BadAssignment(String),
    /// Loading the job's plugin failed.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The engine failed: user code, I/O, corrupt data, bad settings.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The shuffle failed locally (spill dir, registration with the shuffle service).
    #[error(transparent)]
    Shuffle(#[from] ShuffleError),
    /// The job filesystem failed.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// The wire layer failed (endpoint set-up).
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The task's work thread died without an answer (a panic outside the plugin boundary).
    #[error("{0}")]
    Panic(String),
}

/// How a task process ends; [`TaskExit::exit_code`] is its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskExit {
    /// The output was reported to the JobTracker.
    Succeeded,
    /// The JobTracker no longer wants the attempt; nothing more was reported.
    Stopped,
    /// The attempt failed (reported to the JobTracker when it could be).
    Failed(String),
    /// The JobTracker stayed unreachable; the attempt gave up.
    JobTrackerLost(String),
}

impl TaskExit {
    /// The process exit status: 0 for success and for a stop requested by the JobTracker.
    pub fn exit_code(&self) -> u8 {
        match self {
            TaskExit::Succeeded | TaskExit::Stopped => 0,
            TaskExit::Failed(_) => 1,
            TaskExit::JobTrackerLost(_) => 2,
        }
    }
}

/// What the JobTracker put into the container's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEnvironment {
    /// The JobTracker service.
    pub jobtracker: SocketAddr,
    /// The attempt to run.
    pub attempt: AttemptId,
    /// The node's shuffle service (maps of jobs with reducers register their output there).
    pub shuffle_address: Option<SocketAddr>,
    /// The node's host identity: client endpoints bind to it.
    pub host: IpAddr,
    /// Where map outputs go for the node's shuffle service.
    pub shuffle_dir: Option<PathBuf>,
}

impl TaskEnvironment {
    /// Reads the environment of the current process.
    pub fn from_env() -> Result<Self, TaskRunnerError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the variables through `get` (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, TaskRunnerError> {
        let required = |key: &str| {
            get(key).filter(|v| !v.trim().is_empty()).ok_or_else(|| {
                TaskRunnerError::Environment(format!(
                    "{key} is not set (mr-task runs in containers the jobtracker launches)"
                ))
            })
        };
        let bad = |key: &str, value: &str, what: &str| {
            TaskRunnerError::Environment(format!("{key}={value:?} is not {what}"))
        };
        let jt = required(env::JOBTRACKER_ADDRESS)?;
        let jobtracker = jt
            .trim()
            .parse()
            .map_err(|_| bad(env::JOBTRACKER_ADDRESS, &jt, "an IP:PORT address"))?;
        let attempt_text = required(env::TASK_ATTEMPT)?;
        let trimmed = attempt_text.trim();
        let attempt = trimmed
            .strip_prefix("attempt_")
            .unwrap_or(trimmed)
            .parse::<AttemptId>()
            .map_err(|e| TaskRunnerError::Environment(format!("{}: {e}", env::TASK_ATTEMPT)))?;
        let host_text = required(env::TASK_HOST)?;
        let host = host_text
            .trim()
            .parse()
            .map_err(|_| bad(env::TASK_HOST, &host_text, "an IP address"))?;
        let shuffle_address = match get(env::SHUFFLE_ADDRESS).filter(|v| !v.trim().is_empty()) {
            None => None,
            Some(v) => Some(
                v.trim()
                    .parse()
                    .map_err(|_| bad(env::SHUFFLE_ADDRESS, &v, "an IP:PORT address"))?,
            ),
        };
        let shuffle_dir = get(env::SHUFFLE_DIR)
            .filter(|v| !v.trim().is_empty())
            .map(PathBuf::from);
        Ok(TaskEnvironment {
            jobtracker,
            attempt,
            shuffle_address,
            host,
            shuffle_dir,
        })
    }
}

/// Everything a task process starts from.
pub struct TaskSetup {
    /// The container's environment.
    pub env: TaskEnvironment,
    /// The cluster identity the task presents (JobTracker, shuffle, DFS).
    pub identity: TlsIdentity,
    /// The DFS configuration (the NameNode of the job's input and output).
    pub dfs: DfsConfig,
    /// The container's working directory: holds the localized plugin and the task's scratch.
    pub work_dir: PathBuf,
    /// How long the JobTracker may stay unreachable.
    pub patience: Duration,
}

/// What a finished attempt reports.
#[derive(Debug)]
pub enum Finished {
    /// A map of a job with reducers: its output is registered with `shuffle_address`.
    MapOutput {
        /// The shuffle service serving it.
        shuffle_address: String,
        /// The attempt's counters.
        counters: Counters,
    },
    /// A reduce or a map-only map: its output file is complete in the attempt directory.
    Output {
        /// The attempt's counters.
        counters: Counters,
    },
}

/// What the work thread of an attempt has at hand.
pub struct AttemptContext {
    /// The container's environment.
    pub env: TaskEnvironment,
    /// The assignment from the JobTracker.
    pub assignment: TaskAssignment,
    /// The job.
    pub job: Arc<dyn JobDefinition>,
    /// The job configuration plus the task keys.
    pub conf: Arc<JobConf>,
    /// The job's filesystems (DFS clients bound to the task's host).
    pub filesystems: JobFileSystems,
    /// The attempt's progress, read by the heartbeat.
    pub progress: Arc<TaskProgress>,
    /// Raised when the attempt should stop early.
    pub cancel: Arc<AtomicBool>,
    /// The network runtime.
    pub handle: tokio::runtime::Handle,
    /// The JobTracker client.
    pub umbilical: Arc<Umbilical>,
    /// The identity for shuffle connections.
    pub identity: TlsIdentity,
    /// The container's working directory.
    pub work_dir: PathBuf,
}

impl AttemptContext {
    /// A private local scratch directory of the attempt (fresh).
    pub fn scratch_dir(&self, name: &str) -> Result<PathBuf, TaskRunnerError> {
        let dir = self
            .work_dir
            .join(format!("{}-{name}", self.assignment.attempt));
        fresh_dir(&dir)?;
        Ok(dir)
    }

    /// The attempt's output file on the DFS (`attempt_dir/output_file`).
    pub fn output_path(&self) -> Result<JobPath, TaskRunnerError> {
        let dir = &self.assignment.attempt_dir;
        let text = if dir.starts_with(DFS_SCHEME) {
            dir.clone()
        } else if dir.starts_with('/') {
            format!("{DFS_SCHEME}{dir}")
        } else {
            return Err(TaskRunnerError::BadAssignment(format!(
                "attempt directory {dir:?} is not an absolute DFS path"
            )));
        };
        if self.assignment.output_file.is_empty() || self.assignment.output_file.contains('/') {
            return Err(TaskRunnerError::BadAssignment(format!(
                "output file name {:?} is not a plain file name",
                self.assignment.output_file
            )));
        }
        Ok(JobPath::parse(&text)?.join(&self.assignment.output_file))
    }
}

/// Removes and recreates a local directory.
pub(crate) fn fresh_dir(dir: &Path) -> Result<(), TaskRunnerError> {
    let io = |e| EngineError::io(format!("creating {}", dir.display()), e);
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io)?;
    }
    std::fs::create_dir_all(dir).map_err(io)?;
    Ok(())
}

/// The job's configuration as a task sees it: the assignment's (final) configuration plus
/// Hadoop's per-task keys, so user code can tell which attempt it runs in.
pub fn task_conf(assignment: &TaskAssignment) -> JobConf {
    let mut conf = JobConf {
        entries: assignment.conf.clone(),
    };
    let attempt = assignment.attempt;
    let job_suffix = assignment
        .job_id
        .strip_prefix("job_")
        .unwrap_or(&assignment.job_id);
    conf.set(
        TASK_ATTEMPT_ID_KEY,
        format!("attempt_{job_suffix}_{attempt}"),
    );
    conf.set(TASK_PARTITION_KEY, attempt.task.index.to_string());
    conf.set(
        TASK_IS_MAP_KEY,
        (attempt.task.kind == TaskKind::Map).to_string(),
    );
    conf.set(JOB_ID_KEY, assignment.job_id.clone());
    conf
}

/// The job an assignment runs: the localized plugin or the streaming commands.
fn load_job(
    assignment: &TaskAssignment,
    work_dir: &Path,
    conf: &mut JobConf,
) -> Result<Arc<dyn JobDefinition>, TaskRunnerError> {
    Ok(match assignment.program.streaming_job() {
        None => PluginLibrary::load(&work_dir.join(PLUGIN_LINK_NAME))?,
        Some(job) => {
            job.store_in_conf(conf);
            Arc::new(job)
        }
    })
}

/// A failure as the one line the JobTracker (and the user) reads.
pub fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string()
        .split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Runs the attempt described by `setup` to its end. Never panics; the caller exits with
/// [`TaskExit::exit_code`]. When it returns [`TaskExit::Stopped`] the work thread may still
/// be running: the caller must end the process promptly.
pub fn run_task(setup: TaskSetup) -> TaskExit {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(NETWORK_THREADS)
        .thread_name("sheaf-task-net")
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return TaskExit::Failed(format!("cannot start the network runtime: {e}")),
    };
    let exit = drive(&runtime, setup);
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    exit
}

/// What the main thread hears first.
enum Signal {
    Finished(Result<Finished, TaskRunnerError>),
    Heartbeat(HeartbeatStop),
}

fn drive(runtime: &tokio::runtime::Runtime, setup: TaskSetup) -> TaskExit {
    let handle = runtime.handle().clone();
    let endpoint = {
        let _inside = runtime.enter();
        quic::client_endpoint(setup.env.host, &setup.identity)
    };
    let endpoint = match endpoint {
        Ok(e) => e,
        Err(e) => return TaskExit::Failed(format!("cannot open a client endpoint: {e}")),
    };
    let umbilical = Arc::new(
        Umbilical::new(endpoint, setup.env.jobtracker, setup.env.attempt)
            .with_patience(setup.patience),
    );
    let assignment = match runtime.block_on(umbilical.get_task()) {
        Ok(a) => a,
        Err(e) => return exit_for(e),
    };
    tracing::info!(attempt = %assignment.attempt, job = %assignment.job_id, "task assigned");
    let progress = Arc::new(match assignment.attempt.task.kind {
        TaskKind::Map => TaskProgress::map(assignment.split.as_ref().map_or(0, |s| s.length)),
        TaskKind::Reduce => TaskProgress::reduce(assignment.num_maps),
    });
    let (tx, rx) = mpsc::channel::<Signal>();
    let heartbeat_tx = tx.clone();
    let heartbeat = spawn_heartbeat(&handle, umbilical.clone(), progress.clone(), move |s| {
        let _ = heartbeat_tx.send(Signal::Heartbeat(s));
    });
    let cancel = Arc::new(AtomicBool::new(false));
    let work = WorkInput {
        env: setup.env,
        assignment,
        dfs: setup.dfs,
        identity: setup.identity,
        work_dir: setup.work_dir,
        progress,
        cancel: cancel.clone(),
        handle: handle.clone(),
        umbilical: umbilical.clone(),
    };
    let spawned = std::thread::Builder::new()
        .name("sheaf-task".into())
        .spawn(move || {
            let result = catch_unwind(AssertUnwindSafe(|| run_attempt(work))).unwrap_or_else(|p| {
                Err(TaskRunnerError::Panic(format!(
                    "task panicked: {}",
                    crate::local::panic_message(p)
                )))
            });
            let _ = tx.send(Signal::Finished(result));
        });
    if let Err(e) = spawned {
        heartbeat.abort();
        let reason = format!("cannot start the task thread: {e}");
        return report_failure(runtime, &umbilical, reason);
    }
    let signal = rx
        .recv()
        .unwrap_or(Signal::Finished(Err(TaskRunnerError::Panic(
            "the task thread ended without a result".into(),
        ))));
    heartbeat.abort();
    match signal {
        Signal::Heartbeat(HeartbeatStop::NotWanted) => {
            cancel.store(true, Ordering::Relaxed);
            TaskExit::Stopped
        }
        Signal::Heartbeat(HeartbeatStop::Lost(e)) => {
            cancel.store(true, Ordering::Relaxed);
            exit_for(e)
        }
        Signal::Finished(Ok(finished)) => {
            let reported = runtime.block_on(async {
                match finished {
                    Finished::MapOutput {
                        shuffle_address,
                        counters,
                    } => umbilical.map_output_ready(shuffle_address, counters).await,
                    Finished::Output { counters } => umbilical.output_ready(counters).await,
                }
            });
            match reported {
                // Whether the JobTracker commits this attempt is its call; the task is done.
                Ok(_) => TaskExit::Succeeded,
                Err(e) => exit_for(e),
            }
        }
        Signal::Finished(Err(
            e @ (TaskRunnerError::Stopped | TaskRunnerError::JobTrackerLost { .. }),
        )) => exit_for(e),
        Signal::Finished(Err(e)) => report_failure(runtime, &umbilical, one_line(&e)),
    }
}

/// Reports the failure and returns the matching exit.
fn report_failure(
    runtime: &tokio::runtime::Runtime,
    umbilical: &Umbilical,
    reason: String,
) -> TaskExit {
    tracing::debug!(attempt = %umbilical.attempt(), %reason, "task failed");
    if let Err(e) = runtime.block_on(umbilical.failed(reason.clone())) {
        tracing::error!(error = %e, "cannot report the failure to the jobtracker");
    }
    TaskExit::Failed(reason)
}

/// The exit for an error that is not reported to the JobTracker.
fn exit_for(e: TaskRunnerError) -> TaskExit {
    match e {
        TaskRunnerError::Stopped => TaskExit::Stopped,
        e @ TaskRunnerError::JobTrackerLost { .. } => TaskExit::JobTrackerLost(one_line(&e)),
        e => TaskExit::Failed(one_line(&e)),
    }
}

/// What the work thread gets.
struct WorkInput {
    env: TaskEnvironment,
    assignment: TaskAssignment,
    dfs: DfsConfig,
    identity: TlsIdentity,
    work_dir: PathBuf,
    progress: Arc<TaskProgress>,
    cancel: Arc<AtomicBool>,
    handle: tokio::runtime::Handle,
    umbilical: Arc<Umbilical>,
}

/// Runs the attempt on the work thread.
fn run_attempt(input: WorkInput) -> Result<Finished, TaskRunnerError> {
    let mut conf = task_conf(&input.assignment);
    let job = load_job(&input.assignment, &input.work_dir, &mut conf)?;
    let access = DfsAccess {
        config: input.dfs,
        identity: input.identity.clone(),
    };
    let ctx = AttemptContext {
        filesystems: JobFileSystems::new(Some(access)).bound_to(input.env.host),
        env: input.env,
        assignment: input.assignment,
        job,
        conf: Arc::new(conf),
        progress: input.progress,
        cancel: input.cancel,
        handle: input.handle,
        umbilical: input.umbilical,
        identity: input.identity,
        work_dir: input.work_dir,
    };
    let finished = match ctx.assignment.attempt.task.kind {
        TaskKind::Map if ctx.assignment.num_reduces == 0 => map::run_map_only(&ctx)?,
        TaskKind::Map => map::run_map_with_reducers(&ctx)?,
        TaskKind::Reduce => reduce::run_reduce(&ctx)?,
    };
    ctx.progress.set_done();
    Ok(finished)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::submission::JobProgram;
    use crate::jobtracker::TaskId;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn environment_is_parsed_and_missing_variables_are_named() {
        let vars = [
            (env::JOBTRACKER_ADDRESS, "127.0.7.1:4000"),
            (env::TASK_ATTEMPT, "attempt_m_000003_1"),
            (env::TASK_HOST, "127.0.7.2"),
            (env::SHUFFLE_ADDRESS, "127.0.7.2:5000"),
            (env::SHUFFLE_DIR, "/tmp/nm/shuffle"),
        ];
        let e = TaskEnvironment::from_lookup(lookup(&vars)).expect("parse");
        assert_eq!(
            e.attempt,
            AttemptId {
                task: TaskId::map(3),
                number: 1
            }
        );
        assert_eq!(e.jobtracker, "127.0.7.1:4000".parse().expect("addr"));
        assert_eq!(
            e.shuffle_address,
            Some("127.0.7.2:5000".parse().expect("addr"))
        );
        assert_eq!(e.shuffle_dir, Some(PathBuf::from("/tmp/nm/shuffle")));
        // The bare form parses too; shuffle variables are optional (reduces, map-only maps).
        let e = TaskEnvironment::from_lookup(lookup(&[
            (env::JOBTRACKER_ADDRESS, "127.0.7.1:4000"),
            (env::TASK_ATTEMPT, "r_000000_0"),
            (env::TASK_HOST, "127.0.7.2"),
        ]))
        .expect("parse");
        assert_eq!(e.attempt.task, TaskId::reduce(0));
        assert_eq!(e.shuffle_address, None);
        let err = TaskEnvironment::from_lookup(lookup(&vars[1..])).expect_err("no jobtracker");
        assert!(err.to_string().contains(env::JOBTRACKER_ADDRESS), "{err}");
        let mut bad = vars;
        bad[1] = (env::TASK_ATTEMPT, "x_1");
        let err = TaskEnvironment::from_lookup(lookup(&bad)).expect_err("bad attempt");
        assert!(err.to_string().contains(env::TASK_ATTEMPT), "{err}");
    }

    #[test]
    fn task_conf_adds_hadoop_task_keys_and_one_line_joins_lines() {
        let assignment = TaskAssignment {
            job_id: "job_17_0002".into(),
            attempt: AttemptId {
                task: TaskId::reduce(4),
                number: 2,
            },
            program: JobProgram::Plugin,
            conf: [("a".to_string(), "1".to_string())].into(),
            split: None,
            num_maps: 3,
            num_reduces: 5,
            attempt_dir: "/out/_temporary/attempt_r_000004_2".into(),
            output_file: "part-r-00004".into(),
            shuffle_secret: vec![0; 32],
            app_attempt: 1,
        };
        let conf = task_conf(&assignment);
        assert_eq!(conf.get("a"), Some("1"));
        assert_eq!(
            conf.get(TASK_ATTEMPT_ID_KEY),
            Some("attempt_17_0002_r_000004_2")
        );
        assert_eq!(conf.get(TASK_PARTITION_KEY), Some("4"));
        assert_eq!(conf.get(TASK_IS_MAP_KEY), Some("false"));
        assert_eq!(one_line(&"boom\n  at line 2\n"), "boom | at line 2");
        assert_eq!(TaskExit::Stopped.exit_code(), 0);
        assert_eq!(TaskExit::Failed("x".into()).exit_code(), 1);
        assert_ne!(TaskExit::JobTrackerLost("x".into()).exit_code(), 0);
    }
}
