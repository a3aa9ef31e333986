//! The job client behind `sheaf job submit|status|counters|kill|list|history`: stages a job in
//! the DFS and submits its JobTracker to the ResourceManager as an application master, then
//! answers questions about jobs from the best source still there:
//!
//! 1. the job's JobTracker (`JtRequest::Status` at the application's tracking address) while the
//!    job runs;
//! 2. the job's history file (`HISTORY_DIR/<job>.json`, JSON of [`JobHistory`]) once it ended, also
//!    after the JobTracker is gone;
//! 3. the ResourceManager's application report when neither is there (the JobTracker has not
//!    registered yet, or died without writing its history).
//!
//! The JobTracker's command line is `<sheaf binary> mr-jobtracker --staging <dir>`: the binary is
//! the submitting CLI's own executable by default, which is right on the pseudo-distributed
//! cluster (every NodeManager runs on the same machine); a real multi-machine cluster sets
//! [`BINARY_KEY`] to where the binary lives on the workers.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use sheaf_dfs::client::{current_user, DfsClient, DfsError};
use sheaf_dfs::config::DfsConfig;
use sheaf_dfs::protocol::FileKind;
use sheaf_dfs::uri::DfsUri;
use sheaf_rpc::{quic, RpcClient, TlsIdentity};
use sheaf_yarn::client::RmClient;
use sheaf_yarn::protocol::{
    AppId, AppState, ApplicationReport, FinalStatus, LaunchSpec, Resource, SubmitApplication,
    YarnError,
};

use super::protocol::{JtRequest, JtResponse};
use super::submission::{
    application_of_job_id, history_file, job_id_of_application, shipped_file, staging_file,
    JobProgram, JobSubmission, APPLICATION_NAME_PREFIX, FILES_DIR, HISTORY_DIR, JOBTRACKER_COMMAND,
    PLUGIN_FILE, PLUGIN_LINK_NAME, SHIPPED_FILES_KEY, STAGING_ROOT, SUBMISSION_FILE,
};
use crate::counters::Counters;
use crate::jobtracker::{AttemptRecord, AttemptState, JobHistory, JobState, JobStatus, TaskKind};

/// Memory of the JobTracker's container, MB (Hadoop's key; default 512).
pub const AM_MEMORY_KEY: &str = "yarn.app.mapreduce.am.resource.mb";
/// Vcores of the JobTracker's container (Hadoop's key; default 1).
pub const AM_VCORES_KEY: &str = "yarn.app.mapreduce.am.resource.cpu-vcores";
/// JobTracker attempts before the job fails (Hadoop's key; default 2).
pub const AM_MAX_ATTEMPTS_KEY: &str = "mapreduce.am.max-attempts";
/// The job's name (Hadoop's key).
pub const JOB_NAME_KEY: &str = "mapreduce.job.name";
/// The submitting user, recorded in the submitted configuration (Hadoop's key).
pub const USER_KEY: &str = "mapreduce.job.user.name";
/// The queue the job is submitted to (Hadoop's key; default "default").
pub const QUEUE_KEY: &str = "mapreduce.job.queuename";
/// The `sheaf` binary the JobTracker container runs (default: the submitting process's own).
pub const BINARY_KEY: &str = "sheaf.job.binary";

/// Default JobTracker container memory, MB.
pub const DEFAULT_AM_MEMORY_MB: u64 = 512;
/// Default JobTracker attempts.
pub const DEFAULT_AM_MAX_ATTEMPTS: u32 = 2;
/// Default queue.
pub const DEFAULT_QUEUE: &str = "default";

/// How long a status call may wait for a JobTracker before the client falls back to the history
/// and the ResourceManager: a JobTracker that is gone must not stall `sheaf job status`.
const JOBTRACKER_CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Connection deadline to a JobTracker (same reason).
const JOBTRACKER_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long `kill` waits for the JobTracker to wind the job down before it asks the
/// ResourceManager to kill the application outright.
const KILL_GRACE: Duration = Duration::from_secs(15);
/// Poll interval while waiting for a killed job to end.
const KILL_POLL: Duration = Duration::from_millis(200);
/// How long `kill` waits for a job that refused the kill (it is committing) to end before it
/// leaves it to finish on its own; the ResourceManager is never asked to kill such a job.
const COMMIT_WAIT: Duration = Duration::from_secs(120);

/// Why a job client operation failed. Messages are Hadoop's where Hadoop has one.
#[derive(Debug, thiserror::Error)]
pub enum JobClientError {
    /// An input of the job is not in the DFS.
    #[error("Input path does not exist: {0}")]
    InputMissing(String),
    /// The job's output directory is already there.
    #[error("Output directory {0} already exists (remove it or choose another)")]
    OutputExists(String),
    /// A path argument cannot name a DFS path of this cluster.
    #[error("{0}")]
    BadPath(String),
    /// A job configuration value is unusable.
    #[error("job configuration {key}={value}: {expected}")]
    BadConf {
        /// The key.
        key: String,
        /// Its value.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// Not a job id at all.
    #[error("{0} is not a job id (expected job_<cluster>_<seq>, as `sheaf job list` shows)")]
    BadJobId(String),
    /// Neither the ResourceManager nor the job history knows the job.
    #[error("Could not find job {0}")]
    UnknownJob(String),
    /// The job has ended: there is nothing to kill.
    #[error("job {job} is already {state}")]
    AlreadyOver {
        /// The job.
        job: String,
        /// Its final state.
        state: JobRunState,
    },
    /// The JobTracker refused the kill: the job was committing its output, which a kill does
    /// not interrupt (stopping a commit half way could leave the output neither complete nor
    /// cleanly absent). `ended` is the state it ended in while `kill` waited, if it did.
    #[error("{}", kill_refused_message(job, ended))]
    KillRefused {
        /// The job.
        job: String,
        /// Its final state, if it ended while the client waited.
        ended: Option<JobRunState>,
    },
    /// A file to ship cannot be (not a regular file, no usable name, a name twice).
    #[error("--file {path}: {reason}")]
    BadShippedFile {
        /// The file as given.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A streaming command starts with a relative path that is not shipped with the job: task
    /// containers run in their own working directories, where it does not exist.
    #[error(
        "the {role} command runs {word:?}, a relative path that task containers do not have \
         (ship it with --file and run it as ./NAME, or give an absolute path present on every node)"
    )]
    UnshippedCommand {
        /// mapper, combiner or reducer.
        role: &'static str,
        /// The command's first word.
        word: String,
    },
    /// The job's history is not (yet) in the DFS.
    #[error("no history for job {job} ({why})")]
    NoHistory {
        /// The job.
        job: String,
        /// Why.
        why: String,
    },
    /// A history file that cannot be decoded.
    #[error("history file {path}: {reason}")]
    BadHistory {
        /// The file.
        path: String,
        /// The decoder's message.
        reason: String,
    },
    /// A DFS operation failed.
    #[error("{context}: {source}")]
    Dfs {
        /// What was being done.
        context: String,
        /// The DFS error.
        source: DfsError,
    },
    /// The ResourceManager refused or could not be reached.
    #[error("resourcemanager: {0}")]
    Yarn(#[from] YarnError),
    /// The JobTracker refused a request or could not be reached.
    #[error("jobtracker {addr}: {reason}")]
    JobTracker {
        /// Its address.
        addr: String,
        /// What went wrong.
        reason: String,
    },
    /// The submission could not be encoded.
    #[error("cannot encode the job submission: {0}")]
    Encode(String),
    /// The client's endpoint could not be set up.
    #[error("cannot set up the client endpoint: {0}")]
    Endpoint(String),
}

fn kill_refused_message(job: &str, ended: &Option<JobRunState>) -> String {
    match ended {
        Some(state) => format!(
            "job {job} was committing its output, which a kill does not interrupt; it ended {state}"
        ),
        None => format!(
            "job {job} is committing its output, which a kill does not interrupt; it will finish \
             (see `sheaf job status {job}`)"
        ),
    }
}

/// What a JobTracker's answer to `Kill` means for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KillAnswer {
    /// The kill is under way (or the job is over already): wait for the job to end.
    Accepted,
    /// The job is committing: it will end on its own; do not escalate.
    Refused(String),
}

impl KillAnswer {
    /// Reads the answer to `JtRequest::Kill`; `None` for an answer that is no answer to it.
    pub fn of(response: &JtResponse) -> Option<KillAnswer> {
        match response {
            JtResponse::Ack { .. } => Some(KillAnswer::Accepted),
            JtResponse::KillRefused { reason } => Some(KillAnswer::Refused(reason.clone())),
            _ => None,
        }
    }
}

/// The names shipped files get in the containers (their file names); each must be a regular
/// local file and the names distinct.
pub fn shipped_names(files: &[PathBuf]) -> JobClientResult<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    for path in files {
        let bad = |reason: &str| JobClientError::BadShippedFile {
            path: path.display().to_string(),
            reason: reason.to_string(),
        };
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.is_empty() && !n.starts_with('.') && !n.contains(','))
            .ok_or_else(|| bad("needs a plain UTF-8 file name not starting with '.'"))?;
        if !path.is_file() {
            return Err(bad("not a regular file"));
        }
        if names.iter().any(|n| n == name) {
            return Err(bad("another shipped file has the same name"));
        }
        if name == PLUGIN_LINK_NAME {
            return Err(bad("the name is the job's plugin's"));
        }
        names.push(name.to_string());
    }
    Ok(names)
}

/// Refuses streaming commands whose first word is a relative path (`./map.py`, `bin/map`)
/// other than `./NAME` of a shipped file: task containers run in their own working dirs.
/// Bare words (`cat`, `python3`) are looked up on the nodes' `PATH` and left alone.
pub fn check_streaming_commands(program: &JobProgram, shipped: &[String]) -> JobClientResult<()> {
    let JobProgram::Streaming {
        mapper,
        combiner,
        reducer,
    } = program
    else {
        return Ok(());
    };
    let commands = [
        ("mapper", Some(mapper)),
        ("combiner", combiner.as_ref()),
        ("reducer", Some(reducer)),
    ];
    for (role, command) in commands {
        let Some(word) = command.and_then(|c| c.split_whitespace().next()) else {
            continue;
        };
        if word.starts_with('/') || !word.contains('/') {
            continue;
        }
        let shipped_here = word
            .strip_prefix("./")
            .is_some_and(|name| shipped.iter().any(|s| s == name));
        if !shipped_here {
            return Err(JobClientError::UnshippedCommand {
                role,
                word: word.to_string(),
            });
        }
    }
    Ok(())
}

fn dfs_err(context: impl Into<String>) -> impl FnOnce(DfsError) -> JobClientError {
    let context = context.into();
    move |source| JobClientError::Dfs { context, source }
}

/// Result of job client operations.
pub type JobClientResult<T> = Result<T, JobClientError>;

/// A job's state as users see it (Hadoop's `JobStatus.State`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobRunState {
    /// Submitted; its JobTracker is not running yet.
    Prep,
    /// Running (including the output commit).
    Running,
    /// Done, output committed.
    Succeeded,
    /// Failed.
    Failed,
    /// Killed.
    Killed,
}

impl JobRunState {
    /// True for SUCCEEDED, FAILED and KILLED.
    pub fn is_over(self) -> bool {
        matches!(
            self,
            JobRunState::Succeeded | JobRunState::Failed | JobRunState::Killed
        )
    }

    /// The user-visible state of a JobTracker state.
    pub fn of_job(state: JobState) -> JobRunState {
        match state {
            JobState::Running | JobState::Committing => JobRunState::Running,
            JobState::Succeeded => JobRunState::Succeeded,
            JobState::Failed => JobRunState::Failed,
            JobState::Killed => JobRunState::Killed,
        }
    }

    /// The user-visible state implied by the ResourceManager's view of the application.
    pub fn of_application(state: AppState, final_status: FinalStatus) -> JobRunState {
        match state {
            AppState::New | AppState::Accepted => JobRunState::Prep,
            AppState::Running => JobRunState::Running,
            AppState::Finished => match final_status {
                FinalStatus::Succeeded => JobRunState::Succeeded,
                FinalStatus::Killed => JobRunState::Killed,
                FinalStatus::Failed | FinalStatus::Undefined => JobRunState::Failed,
            },
            AppState::Failed => JobRunState::Failed,
            AppState::Killed => JobRunState::Killed,
        }
    }
}

impl fmt::Display for JobRunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            JobRunState::Prep => "PREP",
            JobRunState::Running => "RUNNING",
            JobRunState::Succeeded => "SUCCEEDED",
            JobRunState::Failed => "FAILED",
            JobRunState::Killed => "KILLED",
        })
    }
}

/// Where a [`JobReport`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportSource {
    /// The running JobTracker.
    JobTracker,
    /// The job's history file.
    History,
    /// Only the ResourceManager's application report.
    ResourceManager,
}

/// What is known about one job, from whichever source answered.
#[derive(Debug, Clone, PartialEq)]
pub struct JobReport {
    /// The job (`job_<cluster>_<seq>`).
    pub job_id: String,
    /// Its name.
    pub name: String,
    /// Submitting user.
    pub user: String,
    /// Queue.
    pub queue: String,
    /// State.
    pub state: JobRunState,
    /// Maps done (output available) and in the job (0 while unknown).
    pub maps_done: u32,
    /// Maps in the job.
    pub maps_total: u32,
    /// Reduces committed.
    pub reduces_done: u32,
    /// Reduces in the job.
    pub reduces_total: u32,
    /// Map phase progress, 0.0 ..= 1.0 (counts running attempts' progress).
    pub map_progress: f64,
    /// Reduce phase progress, 0.0 ..= 1.0.
    pub reduce_progress: f64,
    /// Submission (or start) time, ms since the epoch.
    pub start_ms: u64,
    /// End time, ms since the epoch, once over.
    pub finish_ms: Option<u64>,
    /// Why it failed or was killed.
    pub diagnostics: Option<String>,
    /// Job counters (empty when only the ResourceManager answered).
    pub counters: Counters,
    /// Every attempt (empty when only the ResourceManager answered).
    pub attempts: Vec<AttemptRecord>,
    /// The JobTracker's address, while it runs.
    pub tracking_address: Option<String>,
    /// Which source answered.
    pub source: ReportSource,
}

impl JobReport {
    /// The report of a running JobTracker, with the application's metadata.
    pub fn from_status(status: &JobStatus, app: &ApplicationReport) -> JobReport {
        let mut r = JobReport::from_application(app);
        r.state = JobRunState::of_job(status.state);
        r.maps_done = status.maps_done;
        r.maps_total = status.maps_total;
        r.reduces_done = status.reduces_done;
        r.reduces_total = status.reduces_total;
        r.map_progress = phase_progress(
            &status.attempts,
            TaskKind::Map,
            status.maps_done,
            status.maps_total,
        );
        r.reduce_progress = phase_progress(
            &status.attempts,
            TaskKind::Reduce,
            status.reduces_done,
            status.reduces_total,
        );
        r.diagnostics = status.diagnostics.clone();
        r.counters = status.counters.clone();
        r.attempts = status.attempts.clone();
        r.source = ReportSource::JobTracker;
        r
    }

    /// The report kept in a history file; `app` (when the RM still knows it) fills what the
    /// history lacks.
    pub fn from_history(h: &JobHistory, app: Option<&ApplicationReport>) -> JobReport {
        let conf = |k: &str| h.conf.get(k).cloned().filter(|v| !v.is_empty());
        let (maps_done, reduces_done) = done_tasks(&h.attempts, h.maps_total, h.reduces_total);
        JobReport {
            job_id: h.job_id.clone(),
            name: conf(JOB_NAME_KEY)
                .or_else(|| app.map(|a| job_name_of_application(&a.name).to_string()))
                .unwrap_or_default(),
            user: conf(USER_KEY)
                .or_else(|| app.map(|a| a.user.clone()))
                .unwrap_or_default(),
            // The RM's name for the queue first, so `status` and `list` agree.
            queue: app
                .map(|a| a.queue.clone())
                .or_else(|| conf(QUEUE_KEY))
                .unwrap_or_else(|| DEFAULT_QUEUE.to_string()),
            state: JobRunState::of_job(h.state),
            maps_done,
            maps_total: h.maps_total,
            reduces_done,
            reduces_total: h.reduces_total,
            map_progress: phase_progress(&h.attempts, TaskKind::Map, maps_done, h.maps_total),
            reduce_progress: phase_progress(
                &h.attempts,
                TaskKind::Reduce,
                reduces_done,
                h.reduces_total,
            ),
            start_ms: app.map(|a| a.submit_ms).unwrap_or(h.start_ms),
            finish_ms: h.finish_ms,
            diagnostics: h.diagnostics.clone(),
            counters: h.counters.clone(),
            attempts: h.attempts.clone(),
            tracking_address: None,
            source: ReportSource::History,
        }
    }

    /// What the ResourceManager alone tells about the job's application.
    pub fn from_application(app: &ApplicationReport) -> JobReport {
        let state = JobRunState::of_application(app.state, app.final_status);
        JobReport {
            job_id: job_id_of_application(&app.id.to_string()),
            name: job_name_of_application(&app.name).to_string(),
            user: app.user.clone(),
            queue: app.queue.clone(),
            state,
            maps_done: 0,
            maps_total: 0,
            reduces_done: 0,
            reduces_total: 0,
            map_progress: 0.0,
            reduce_progress: 0.0,
            start_ms: app.submit_ms,
            finish_ms: (app.finish_ms > 0).then_some(app.finish_ms),
            diagnostics: (!app.diagnostics.is_empty() && state != JobRunState::Succeeded)
                .then(|| app.diagnostics.clone()),
            counters: Counters::new(),
            attempts: Vec::new(),
            tracking_address: application_tracking_address(app),
            source: ReportSource::ResourceManager,
        }
    }
}

/// A row of `sheaf job list`.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSummary {
    /// The job.
    pub job_id: String,
    /// Its name.
    pub name: String,
    /// State.
    pub state: JobRunState,
    /// Submission time, ms since the epoch.
    pub start_ms: u64,
    /// Submitting user.
    pub user: String,
    /// Queue.
    pub queue: String,
}

/// A job accepted by the ResourceManager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmittedJob {
    /// The job id (`job_<cluster>_<seq>`).
    pub job_id: String,
    /// Its application.
    pub application: AppId,
    /// The DFS staging directory holding the submission.
    pub staging_dir: String,
}

/// How to submit, besides the [`JobSubmission`] itself.
#[derive(Debug, Clone)]
pub struct SubmitOptions {
    /// Queue; `None`: `mapreduce.job.queuename` of the job's configuration, else "default".
    pub queue: Option<String>,
    /// The plugin library to stage as `job.so` (plugin jobs only).
    pub plugin: Option<PathBuf>,
    /// The `sheaf` binary the JobTracker container runs (overridden by [`BINARY_KEY`]).
    pub sheaf_binary: PathBuf,
    /// Local files to ship with the job (`--file`): staged, and localized into every task
    /// container's working dir under their file names.
    pub files: Vec<PathBuf>,
}

/// A client of the cluster for MapReduce jobs.
pub struct JobClient {
    dfs: DfsClient,
    rm: RmClient,
    jobtrackers: RpcClient,
    user: String,
}

impl JobClient {
    /// Connects to the DFS of `dfs_config` and the ResourceManager at `rm_address`, presenting
    /// `identity` (the `user` role). Nothing is sent until the first operation.
    pub async fn connect(
        dfs_config: &DfsConfig,
        identity: TlsIdentity,
        rm_address: SocketAddr,
    ) -> JobClientResult<JobClient> {
        let local_ip = client_ip_for(rm_address);
        let rm = RmClient::new(rm_address, &identity, local_ip)?;
        let endpoint = quic::client_endpoint(local_ip, &identity)
            .map_err(|e| JobClientError::Endpoint(e.to_string()))?;
        let mut jobtrackers = RpcClient::new(endpoint);
        jobtrackers.connect_timeout = JOBTRACKER_CONNECT_TIMEOUT;
        jobtrackers.call_timeout = JOBTRACKER_CALL_TIMEOUT;
        let dfs = DfsClient::connect(dfs_config, identity)
            .await
            .map_err(dfs_err("connecting to the DFS"))?;
        Ok(JobClient {
            dfs,
            rm,
            jobtrackers,
            user: current_user(),
        })
    }

    /// The submitting user (`$USER`, as the DFS client names file owners).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The DFS client (for callers that read job output).
    pub fn dfs(&self) -> &DfsClient {
        &self.dfs
    }

    /// Refuses a job whose inputs are missing or whose output exists (Hadoop's checks, before
    /// anything is staged).
    pub async fn check_paths(&self, inputs: &[String], output: &str) -> JobClientResult<()> {
        for input in inputs {
            let found = self
                .dfs
                .status(input)
                .await
                .map_err(dfs_err(format!("checking input {input}")))?;
            if found.is_none() {
                return Err(JobClientError::InputMissing(input.clone()));
            }
        }
        let out = self
            .dfs
            .status(output)
            .await
            .map_err(dfs_err(format!("checking output {output}")))?;
        if out.is_some() {
            return Err(JobClientError::OutputExists(output.to_string()));
        }
        Ok(())
    }

    /// Checks the paths, stages the submission (and the plugin) under
    /// `STAGING_ROOT/<user>/<unique>/` and submits the JobTracker to the ResourceManager.
    /// The staging directory is removed again when the submission fails.
    pub async fn submit(
        &self,
        mut submission: JobSubmission,
        options: &SubmitOptions,
    ) -> JobClientResult<SubmittedJob> {
        submission.files = shipped_names(&options.files)?;
        check_streaming_commands(&submission.program, &submission.files)?;
        self.check_paths(&submission.inputs, &submission.output)
            .await?;
        let queue = options
            .queue
            .clone()
            .or_else(|| submission.conf.get(QUEUE_KEY).cloned())
            .filter(|q| !q.is_empty())
            .unwrap_or_else(|| DEFAULT_QUEUE.to_string());
        let (am_resource, max_attempts) = am_settings(&submission.conf)?;
        let binary = submission
            .conf
            .get(BINARY_KEY)
            .map(PathBuf::from)
            .unwrap_or_else(|| options.sheaf_binary.clone());
        // Recorded in the configuration so the history is self-describing (Hadoop does the same).
        submission
            .conf
            .insert(JOB_NAME_KEY.into(), submission.name.clone());
        submission
            .conf
            .insert(USER_KEY.into(), submission.user.clone());
        submission.conf.insert(QUEUE_KEY.into(), queue.clone());
        if !submission.files.is_empty() {
            submission
                .conf
                .insert(SHIPPED_FILES_KEY.into(), submission.files.join(","));
        }

        let staging = staging_dir_for(&submission.user, submission.submit_ms);
        let staged = self.stage(&staging, &submission, options).await;
        let result = match staged {
            Ok(()) => self
                .rm
                .submit(SubmitApplication {
                    name: format!("{APPLICATION_NAME_PREFIX} {}", submission.name),
                    user: submission.user.clone(),
                    queue,
                    am_resource,
                    am_spec: LaunchSpec {
                        command: vec![
                            binary.display().to_string(),
                            JOBTRACKER_COMMAND.to_string(),
                            "--staging".to_string(),
                            staging.clone(),
                        ],
                        ..LaunchSpec::default()
                    },
                    max_attempts,
                })
                .await
                .map_err(JobClientError::from),
            Err(e) => Err(e),
        };
        match result {
            Ok(application) => Ok(SubmittedJob {
                job_id: job_id_of_application(&application.to_string()),
                application,
                staging_dir: staging,
            }),
            Err(e) => {
                // Best effort: the submission failed already, a failed cleanup adds nothing.
                let _ = self.dfs.delete(&staging, true).await;
                Err(e)
            }
        }
    }

    async fn stage(
        &self,
        staging: &str,
        submission: &JobSubmission,
        options: &SubmitOptions,
    ) -> JobClientResult<()> {
        self.dfs
            .mkdirs(staging, true)
            .await
            .map_err(dfs_err(format!("creating the staging directory {staging}")))?;
        if !options.files.is_empty() {
            let dir = staging_file(staging, FILES_DIR);
            self.dfs
                .mkdirs(&dir, true)
                .await
                .map_err(dfs_err(format!("creating {dir}")))?;
        }
        // `submit` named the files after these paths, in this order.
        for (path, name) in options.files.iter().zip(&submission.files) {
            let target = shipped_file(staging, name);
            self.dfs
                .copy_from_local(path, &target, false, None)
                .await
                .map_err(dfs_err(format!("uploading {} to {target}", path.display())))?;
        }
        if let Some(plugin) = options.plugin.as_deref() {
            let target = staging_file(staging, PLUGIN_FILE);
            self.dfs
                .copy_from_local(plugin, &target, false, None)
                .await
                .map_err(dfs_err(format!(
                    "uploading the plugin {} to {target}",
                    plugin.display()
                )))?;
        }
        let bytes = rmp_serde::to_vec_named(submission)
            .map_err(|e| JobClientError::Encode(e.to_string()))?;
        let target = staging_file(staging, SUBMISSION_FILE);
        self.dfs
            .write_file(&target, &bytes, false)
            .await
            .map_err(dfs_err(format!("writing {target}")))?;
        Ok(())
    }

    /// The job's status: from its JobTracker while it runs, else its history, else the
    /// ResourceManager's report.
    pub async fn status(&self, job_id: &str) -> JobClientResult<JobReport> {
        let app_id = parse_job_id(job_id)?;
        let app = match self.rm.application(app_id).await {
            Ok(app) => Some(app),
            // An RM restarted since (new ids) or one that cannot be reached: the history may
            // still know the job.
            Err(YarnError::UnknownApplication(_)) => None,
            Err(e) => {
                return match self.read_history(job_id).await {
                    Ok(Some(h)) => Ok(JobReport::from_history(&h, None)),
                    _ => Err(e.into()),
                }
            }
        };
        let Some(app) = app else {
            return match self.read_history(job_id).await? {
                Some(h) => Ok(JobReport::from_history(&h, None)),
                None => Err(JobClientError::UnknownJob(job_id.to_string())),
            };
        };
        // A SQL session's master speaks the query master's protocol, not the JobTracker's.
        if !app.state.is_final() && !is_sql_session(&app.name) {
            if let Some(addr) = application_tracking_address(&app) {
                if let Ok(status) = self.jobtracker_status(&addr).await {
                    let mut report = JobReport::from_status(&status, &app);
                    report.tracking_address = Some(addr);
                    return Ok(report);
                }
            }
        }
        // Over, or its JobTracker is unreachable (between attempts, or gone): a history file,
        // when there is one, has the counters and attempts.
        match self.read_history(job_id).await {
            Ok(Some(h)) => Ok(JobReport::from_history(&h, Some(&app))),
            _ => Ok(JobReport::from_application(&app)),
        }
    }

    async fn jobtracker_status(&self, addr: &str) -> JobClientResult<JobStatus> {
        match self.jobtracker_call(addr, &JtRequest::Status).await? {
            JtResponse::Status(s) => Ok(*s),
            other => Err(unexpected_answer(addr, &other)),
        }
    }

    async fn jobtracker_call(&self, addr: &str, req: &JtRequest) -> JobClientResult<JtResponse> {
        let socket: SocketAddr = addr.parse().map_err(|_| JobClientError::JobTracker {
            addr: addr.to_string(),
            reason: "not an IP:PORT address".into(),
        })?;
        match self.jobtrackers.call(socket, req).await {
            Ok(JtResponse::Error(e)) => Err(JobClientError::JobTracker {
                addr: addr.to_string(),
                reason: e.to_string(),
            }),
            Ok(resp) => Ok(resp),
            Err(e) => Err(JobClientError::JobTracker {
                addr: addr.to_string(),
                reason: e.to_string(),
            }),
        }
    }

    /// Kills the job: asks its JobTracker (which cleans up and records the history), and when
    /// that is impossible or does not end the job within a grace period, the ResourceManager.
    /// Returns the state the job ended in. A JobTracker that refuses because the job is
    /// committing is never overruled: `kill` waits a while for the job to end and returns
    /// [`JobClientError::KillRefused`].
    pub async fn kill(&self, job_id: &str, reason: &str) -> JobClientResult<JobRunState> {
        let report = self.status(job_id).await?;
        if report.state.is_over() {
            return Err(JobClientError::AlreadyOver {
                job: job_id.to_string(),
                state: report.state,
            });
        }
        let app_id = parse_job_id(job_id)?;
        let answer = match &report.tracking_address {
            Some(addr) => self
                .jobtracker_call(
                    addr,
                    &JtRequest::Kill {
                        reason: reason.to_string(),
                    },
                )
                .await
                .ok()
                .and_then(|r| KillAnswer::of(&r)),
            None => None,
        };
        if let Some(KillAnswer::Refused(why)) = &answer {
            tracing::info!(job = job_id, %why, "the jobtracker refused the kill");
            let ended = if self.wait_until_over(app_id, COMMIT_WAIT).await? {
                Some(self.status(job_id).await?.state)
            } else {
                None
            };
            return Err(JobClientError::KillRefused {
                job: job_id.to_string(),
                ended,
            });
        }
        if answer.is_some() && self.wait_until_over(app_id, KILL_GRACE).await? {
            return Ok(self.status(job_id).await?.state);
        }
        match self.rm.kill(app_id).await {
            Ok(()) | Err(YarnError::AlreadyFinal { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(self.status(job_id).await?.state)
    }

    /// Polls the ResourceManager until the application is over (true) or `limit` passed.
    async fn wait_until_over(&self, app_id: AppId, limit: Duration) -> JobClientResult<bool> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.rm.application(app_id).await?.state.is_final() {
                return Ok(true);
            }
            tokio::time::sleep(KILL_POLL).await;
        }
        Ok(false)
    }

    /// MapReduce jobs: those the ResourceManager knows (only unfinished ones unless `all`) and,
    /// with `all`, finished jobs whose history is in the DFS. Sorted by job id.
    pub async fn list(&self, all: bool) -> JobClientResult<Vec<JobSummary>> {
        let states = if all {
            Vec::new()
        } else {
            vec![AppState::New, AppState::Accepted, AppState::Running]
        };
        let mut jobs: BTreeMap<String, JobSummary> = BTreeMap::new();
        for app in self.rm.applications(states).await? {
            if !is_mapreduce_application(&app.name) && !is_sql_session(&app.name) {
                continue;
            }
            let r = JobReport::from_application(&app);
            jobs.insert(
                r.job_id.clone(),
                JobSummary {
                    job_id: r.job_id,
                    name: r.name,
                    state: r.state,
                    start_ms: r.start_ms,
                    user: r.user,
                    queue: r.queue,
                },
            );
        }
        if all {
            for job_id in self.history_job_ids().await? {
                if jobs.contains_key(&job_id) {
                    continue;
                }
                if let Some(h) = self.read_history(&job_id).await? {
                    let r = JobReport::from_history(&h, None);
                    jobs.insert(
                        job_id,
                        JobSummary {
                            job_id: r.job_id,
                            name: r.name,
                            state: r.state,
                            start_ms: r.start_ms,
                            user: r.user,
                            queue: r.queue,
                        },
                    );
                }
            }
        }
        Ok(jobs.into_values().collect())
    }

    async fn history_job_ids(&self) -> JobClientResult<Vec<String>> {
        let entries = match self.dfs.list(HISTORY_DIR).await {
            Ok(e) => e,
            Err(e) if e.is_not_found() => return Ok(Vec::new()),
            Err(e) => return Err(dfs_err(format!("listing {HISTORY_DIR}"))(e)),
        };
        Ok(entries
            .iter()
            .filter(|e| e.kind == FileKind::File)
            .filter_map(|e| {
                sheaf_dfs::path::file_name(&e.path)
                    .strip_suffix(".json")
                    .filter(|id| id.starts_with("job_"))
                    .map(str::to_string)
            })
            .collect())
    }

    /// The job's history (its configuration, counters and attempts), once it ended.
    pub async fn history(&self, job_id: &str) -> JobClientResult<JobHistory> {
        let app_id = parse_job_id(job_id)?;
        if let Some(h) = self.read_history(job_id).await? {
            return Ok(h);
        }
        match self.rm.application(app_id).await {
            Ok(app) if !app.state.is_final() => Err(JobClientError::NoHistory {
                job: job_id.to_string(),
                why: format!(
                    "it is still {}; the history is written when it ends, see `sheaf job status {job_id}`",
                    JobRunState::of_application(app.state, app.final_status)
                ),
            }),
            Ok(app) => Err(JobClientError::NoHistory {
                job: job_id.to_string(),
                why: format!(
                    "its JobTracker ended without writing {} ({})",
                    history_file(job_id),
                    if app.diagnostics.is_empty() {
                        JobRunState::of_application(app.state, app.final_status).to_string()
                    } else {
                        app.diagnostics
                    }
                ),
            }),
            Err(YarnError::UnknownApplication(_)) => {
                Err(JobClientError::UnknownJob(job_id.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The history file of `job_id`, `None` when there is none.
    pub async fn read_history(&self, job_id: &str) -> JobClientResult<Option<JobHistory>> {
        let path = history_file(job_id);
        match self.dfs.status(&path).await {
            Ok(Some(_)) => {}
            Ok(None) => return Ok(None),
            Err(e) => return Err(dfs_err(format!("reading {path}"))(e)),
        }
        let bytes = match self.dfs.read_file(&path).await {
            Ok(b) => b,
            // Removed between the two calls.
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(dfs_err(format!("reading {path}"))(e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| JobClientError::BadHistory {
                path,
                reason: e.to_string(),
            })
    }
}

fn unexpected_answer(addr: &str, resp: &JtResponse) -> JobClientError {
    JobClientError::JobTracker {
        addr: addr.to_string(),
        reason: format!("unexpected answer {resp:?}")
            .chars()
            .take(200)
            .collect(),
    }
}

/// The JobTracker address the ResourceManager reports for the application, if registered.
fn application_tracking_address(app: &ApplicationReport) -> Option<String> {
    app.tracking_address.clone().filter(|a| !a.is_empty())
}

/// The address client endpoints bind to: loopback for a loopback cluster (the pseudo-distributed
/// one), any address otherwise.
/// The local IP a client binds to for `server`: loopback for a loopback server, else any.
pub fn client_ip_for(server: SocketAddr) -> IpAddr {
    match server.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(ip) if ip.is_loopback() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// Resolves a job path argument to an absolute DFS path: `/abs`, `sheaf:///abs`,
/// `sheaf://host:port/abs` naming this cluster's NameNode (`namenode`), or a path relative to
/// `home` (Hadoop's rule: relative paths are under the user's home directory).
pub fn resolve_dfs_path(arg: &str, home: &str, namenode: SocketAddr) -> JobClientResult<String> {
    let uri =
        DfsUri::parse_relative_to(arg, home).map_err(|e| JobClientError::BadPath(e.to_string()))?;
    match uri.namenode {
        Some(named) if !same_namenode(named, namenode) => Err(JobClientError::BadPath(format!(
            "{arg}: names the NameNode {named}, but cluster jobs read and write their own cluster's DFS ({namenode}); use sheaf:///path"
        ))),
        _ => Ok(uri.path),
    }
}

/// True when `a` and `b` are the same NameNode (an unspecified configured address matches any
/// address with its port).
fn same_namenode(a: SocketAddr, b: SocketAddr) -> bool {
    a == b || (a.port() == b.port() && (a.ip().is_unspecified() || b.ip().is_unspecified()))
}

/// The application id of `job_id`, or [`JobClientError::BadJobId`].
pub fn parse_job_id(job_id: &str) -> JobClientResult<AppId> {
    if !job_id.starts_with("job_") {
        return Err(JobClientError::BadJobId(job_id.to_string()));
    }
    application_of_job_id(job_id)
        .parse::<AppId>()
        .map_err(|_| JobClientError::BadJobId(job_id.to_string()))
}

/// True for SQL sessions (`sheaf sql` on the cluster): `sheaf job list` shows them too.
pub fn is_sql_session(name: &str) -> bool {
    name.strip_prefix(super::submission::SQL_APPLICATION_NAME_PREFIX)
        .is_some_and(|rest| rest.starts_with(' '))
}

/// True for applications submitted by the job client.
pub fn is_mapreduce_application(name: &str) -> bool {
    name == APPLICATION_NAME_PREFIX
        || name
            .strip_prefix(APPLICATION_NAME_PREFIX)
            .is_some_and(|rest| rest.starts_with(' '))
}

/// The job name inside an application name `MAPREDUCE <job name>`.
pub fn job_name_of_application(name: &str) -> &str {
    name.strip_prefix(APPLICATION_NAME_PREFIX)
        .map(str::trim_start)
        .unwrap_or(name)
}

/// The JobTracker container's size and attempt limit from the job configuration.
pub fn am_settings(conf: &BTreeMap<String, String>) -> JobClientResult<(Resource, u32)> {
    fn number<T: std::str::FromStr>(
        conf: &BTreeMap<String, String>,
        key: &str,
        default: T,
        expected: &'static str,
        valid: impl Fn(&T) -> bool,
    ) -> JobClientResult<T> {
        match conf.get(key) {
            None => Ok(default),
            Some(v) => {
                v.trim()
                    .parse::<T>()
                    .ok()
                    .filter(valid)
                    .ok_or_else(|| JobClientError::BadConf {
                        key: key.to_string(),
                        value: v.clone(),
                        expected,
                    })
            }
        }
    }
    let memory = number(
        conf,
        AM_MEMORY_KEY,
        DEFAULT_AM_MEMORY_MB,
        "a positive number of MB",
        |v| *v > 0,
    )?;
    let vcores = number(
        conf,
        AM_VCORES_KEY,
        1u32,
        "a positive number of vcores",
        |v| *v > 0,
    )?;
    let attempts = number(
        conf,
        AM_MAX_ATTEMPTS_KEY,
        DEFAULT_AM_MAX_ATTEMPTS,
        "a positive number of attempts",
        |v| *v > 0,
    )?;
    Ok((Resource::new(memory, vcores), attempts))
}

/// A fresh staging directory name for `user`'s submission at `submit_ms`.
fn staging_dir_for(user: &str, submit_ms: u64) -> String {
    format!(
        "{STAGING_ROOT}/{user}/{submit_ms}-{:08x}",
        rand::random::<u32>()
    )
}

/// Tasks of each phase that are done, from the attempts (for history files, which keep only
/// the attempts): a map or reduce with a succeeded attempt.
fn done_tasks(attempts: &[AttemptRecord], maps: u32, reduces: u32) -> (u32, u32) {
    let mut done = BTreeSet::new();
    for a in attempts {
        if a.state == AttemptState::Succeeded {
            done.insert(a.attempt.task);
        }
    }
    let count = |kind| done.iter().filter(|t| t.kind == kind).count() as u32;
    (
        count(TaskKind::Map).min(maps),
        count(TaskKind::Reduce).min(reduces),
    )
}

/// Progress of one phase, 0.0 ..= 1.0, as Hadoop reports it: done tasks count fully, each other
/// task counts the progress of its furthest running attempt.
pub fn phase_progress(attempts: &[AttemptRecord], kind: TaskKind, done: u32, total: u32) -> f64 {
    if total == 0 {
        return if done == 0 { 0.0 } else { 1.0 };
    }
    let mut best: BTreeMap<u32, f64> = BTreeMap::new();
    let mut succeeded = BTreeSet::new();
    for a in attempts.iter().filter(|a| a.attempt.task.kind == kind) {
        let index = a.attempt.task.index;
        if a.state == AttemptState::Succeeded {
            succeeded.insert(index);
        } else if a.state.is_live() {
            let p = a.progress.clamp(0.0, 1.0);
            let e = best.entry(index).or_insert(0.0);
            *e = e.max(p);
        }
    }
    let partial: f64 = best
        .iter()
        .filter(|(index, _)| !succeeded.contains(index))
        .map(|(_, p)| *p)
        .sum();
    ((f64::from(done) + partial) / f64::from(total)).clamp(0.0, 1.0)
}

/// Hadoop's percentage (`map 40%`): floor, so 100% means done.
pub fn percent(progress: f64) -> u32 {
    (progress.clamp(0.0, 1.0) * 100.0).floor() as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobtracker::{AttemptId, TaskId};
    use sheaf_dfs::client::home_dir;

    fn namenode() -> SocketAddr {
        "127.0.6.1:9000".parse().expect("addr")
    }

    #[test]
    fn paths_resolve_absolute_uri_and_relative_forms() {
        let home = home_dir("alice");
        assert_eq!(
            resolve_dfs_path("/data/in", &home, namenode()).unwrap(),
            "/data/in"
        );
        assert_eq!(
            resolve_dfs_path("/data//in/", &home, namenode()).unwrap(),
            "/data/in"
        );
        assert_eq!(
            resolve_dfs_path("sheaf:///data/in", &home, namenode()).unwrap(),
            "/data/in"
        );
        assert_eq!(
            resolve_dfs_path("sheaf://127.0.6.1:9000/data", &home, namenode()).unwrap(),
            "/data"
        );
        assert_eq!(
            resolve_dfs_path("in/a.txt", &home, namenode()).unwrap(),
            "/user/alice/in/a.txt"
        );
        assert_eq!(
            resolve_dfs_path("out", &home, namenode()).unwrap(),
            "/user/alice/out"
        );
    }

    #[test]
    fn paths_of_other_clusters_or_schemes_are_refused() {
        let home = home_dir("alice");
        let other = resolve_dfs_path("sheaf://127.0.9.1:9000/x", &home, namenode());
        assert!(matches!(other, Err(JobClientError::BadPath(m)) if m.contains("127.0.9.1:9000")));
        assert!(resolve_dfs_path("file:///tmp/x", &home, namenode()).is_err());
        assert!(resolve_dfs_path("../x", &home, namenode()).is_err());
        assert!(resolve_dfs_path("", &home, namenode()).is_err());
    }

    #[test]
    fn job_ids_must_look_like_jobs() {
        let app = parse_job_id("job_1764115200000_0007").expect("parse");
        assert_eq!(app.to_string(), "application_1764115200000_0007");
        assert!(matches!(
            parse_job_id("application_1_0001"),
            Err(JobClientError::BadJobId(_))
        ));
        assert!(matches!(
            parse_job_id("job_x"),
            Err(JobClientError::BadJobId(_))
        ));
        assert_eq!(
            JobClientError::UnknownJob("job_1_0001".into()).to_string(),
            "Could not find job job_1_0001"
        );
    }

    #[test]
    fn application_names_carry_the_job_name() {
        assert!(is_mapreduce_application("MAPREDUCE wordcount"));
        assert!(!is_mapreduce_application("MAPREDUCEX"));
        assert!(!is_mapreduce_application("shell: hostname"));
        assert!(is_sql_session("SQL sheaf-sql"));
        assert!(!is_sql_session("SQLX"));
        assert_eq!(
            job_name_of_application("MAPREDUCE word count"),
            "word count"
        );
        assert_eq!(job_name_of_application("other"), "other");
    }

    #[test]
    fn am_settings_have_hadoop_defaults_and_refuse_garbage() {
        let mut conf = BTreeMap::new();
        assert_eq!(am_settings(&conf).unwrap(), (Resource::new(512, 1), 2));
        conf.insert(AM_MEMORY_KEY.to_string(), "1024".to_string());
        conf.insert(AM_MAX_ATTEMPTS_KEY.to_string(), "1".to_string());
        assert_eq!(am_settings(&conf).unwrap(), (Resource::new(1024, 1), 1));
        conf.insert(AM_MEMORY_KEY.to_string(), "lots".to_string());
        let err = am_settings(&conf).unwrap_err().to_string();
        assert!(err.contains(AM_MEMORY_KEY) && err.contains("lots"), "{err}");
        conf.insert(AM_MEMORY_KEY.to_string(), "512".to_string());
        conf.insert(AM_MAX_ATTEMPTS_KEY.to_string(), "0".to_string());
        assert!(am_settings(&conf).is_err());
    }

    fn attempt(
        kind: TaskKind,
        index: u32,
        number: u32,
        state: AttemptState,
        progress: f64,
    ) -> AttemptRecord {
        AttemptRecord {
            attempt: AttemptId {
                task: TaskId { kind, index },
                number,
            },
            state,
            speculative: false,
            host: None,
            rack: None,
            locality: None,
            start_ms: None,
            end_ms: None,
            progress,
            error: None,
            committed: false,
        }
    }

    #[test]
    fn phase_progress_counts_done_tasks_and_the_best_running_attempt() {
        let attempts = vec![
            attempt(TaskKind::Map, 0, 0, AttemptState::Succeeded, 1.0),
            attempt(TaskKind::Map, 1, 0, AttemptState::Running, 0.5),
            attempt(TaskKind::Map, 1, 1, AttemptState::Running, 0.7),
            attempt(TaskKind::Map, 2, 0, AttemptState::Failed, 0.9),
            attempt(TaskKind::Map, 3, 0, AttemptState::Unassigned, 0.0),
            attempt(TaskKind::Reduce, 0, 0, AttemptState::Running, 0.3),
        ];
        let maps = phase_progress(&attempts, TaskKind::Map, 1, 4);
        assert!((maps - (1.0 + 0.7) / 4.0).abs() < 1e-9, "{maps}");
        assert_eq!(percent(maps), 42);
        let reduces = phase_progress(&attempts, TaskKind::Reduce, 0, 2);
        assert_eq!(percent(reduces), 15);
        assert_eq!(phase_progress(&[], TaskKind::Reduce, 0, 0), 0.0);
        assert_eq!(percent(0.999), 99);
        assert_eq!(percent(1.0), 100);
        assert_eq!(done_tasks(&attempts, 4, 2), (1, 0));
    }

    #[test]
    fn a_refused_kill_is_told_apart_from_an_accepted_one() {
        assert_eq!(
            KillAnswer::of(&JtResponse::Ack { proceed: true }),
            Some(KillAnswer::Accepted)
        );
        // A JobTracker already winding down answers stop: the job ends anyway.
        assert_eq!(
            KillAnswer::of(&JtResponse::Ack { proceed: false }),
            Some(KillAnswer::Accepted)
        );
        let refused = JtResponse::to_kill(JobState::Committing);
        assert!(
            matches!(KillAnswer::of(&refused), Some(KillAnswer::Refused(r)) if r.contains("committing"))
        );
        let not_an_answer = JtResponse::MapEvents {
            events: Vec::new(),
            next: 0,
            proceed: true,
        };
        assert_eq!(KillAnswer::of(&not_an_answer), None);
        let e = JobClientError::KillRefused {
            job: "job_1_0002".into(),
            ended: Some(JobRunState::Succeeded),
        };
        assert!(
            e.to_string().contains("committing") && e.to_string().ends_with("it ended SUCCEEDED"),
            "{e}"
        );
        let e = JobClientError::KillRefused {
            job: "job_1_0002".into(),
            ended: None,
        };
        assert!(e.to_string().contains("it will finish"), "{e}");
    }

    #[test]
    fn relative_streaming_commands_must_be_shipped() {
        let streaming = |mapper: &str, combiner: Option<&str>| JobProgram::Streaming {
            mapper: mapper.into(),
            combiner: combiner.map(str::to_string),
            reducer: "wc -l".into(),
        };
        let shipped = vec!["map.py".to_string()];
        for ok in [
            "cat",
            "python3 map.py",
            "/usr/bin/tr a-z A-Z",
            "./map.py --x",
        ] {
            check_streaming_commands(&streaming(ok, None), &shipped).expect(ok);
        }
        let e = check_streaming_commands(&streaming("./map.py", None), &[]).expect_err("unshipped");
        assert!(
            e.to_string().contains("--file") && e.to_string().contains("mapper"),
            "{e}"
        );
        for bad in ["bin/map", "./other.py", "../map.py"] {
            let e = check_streaming_commands(&streaming(bad, None), &shipped).expect_err(bad);
            assert!(matches!(e, JobClientError::UnshippedCommand { .. }), "{e}");
        }
        let e = check_streaming_commands(&streaming("cat", Some("./comb.sh")), &shipped)
            .expect_err("combiner");
        assert!(e.to_string().contains("combiner"), "{e}");
        check_streaming_commands(&JobProgram::Plugin, &[]).expect("plugins run no commands");
    }

    #[test]
    fn shipped_files_are_named_after_existing_files_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let map = dir.path().join("map.py");
        std::fs::write(&map, "#!/bin/sh\ncat\n").expect("write");
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).expect("mkdir");
        std::fs::write(sub.join("map.py"), "x").expect("write");
        assert_eq!(
            shipped_names(std::slice::from_ref(&map)).expect("ok"),
            vec!["map.py"]
        );
        for bad in [
            vec![map.clone(), sub.join("map.py")],
            vec![dir.path().join("missing.py")],
            vec![sub.clone()],
        ] {
            let e = shipped_names(&bad).expect_err("refused");
            assert!(matches!(e, JobClientError::BadShippedFile { .. }), "{e}");
        }
        assert_eq!(shipped_file("/s/u/1-x/", "map.py"), "/s/u/1-x/files/map.py");
    }

    #[test]
    fn application_states_map_to_job_states() {
        use JobRunState as J;
        assert_eq!(
            J::of_application(AppState::Accepted, FinalStatus::Undefined),
            J::Prep
        );
        assert_eq!(
            J::of_application(AppState::Running, FinalStatus::Undefined),
            J::Running
        );
        assert_eq!(
            J::of_application(AppState::Finished, FinalStatus::Succeeded),
            J::Succeeded
        );
        assert_eq!(
            J::of_application(AppState::Finished, FinalStatus::Failed),
            J::Failed
        );
        assert_eq!(
            J::of_application(AppState::Failed, FinalStatus::Undefined),
            J::Failed
        );
        assert_eq!(
            J::of_application(AppState::Killed, FinalStatus::Killed),
            J::Killed
        );
        assert_eq!(J::of_job(JobState::Committing), J::Running);
        assert_eq!(format!("{:<10}|", J::Succeeded), "SUCCEEDED |");
    }

    #[test]
    fn submissions_encode_with_named_fields() {
        let sub = JobSubmission {
            name: "wc".into(),
            user: "alice".into(),
            inputs: vec!["/in".into()],
            output: "/out".into(),
            reducers: 2,
            split_size: None,
            conf: BTreeMap::new(),
            program: super::super::submission::JobProgram::Plugin,
            submit_ms: 1,
            files: vec!["map.py".into()],
        };
        let bytes = rmp_serde::to_vec_named(&sub).expect("encode");
        // Named fields: the field names are in the bytes, so readers tolerate reordering.
        assert!(bytes.windows(6).any(|w| w == b"inputs"));
        let back: JobSubmission = rmp_serde::from_slice(&bytes).expect("decode");
        assert_eq!(back, sub);
        let dir = staging_dir_for("alice", 42);
        assert!(dir.starts_with("/sheaf/staging/alice/42-"), "{dir}");
    }
}
