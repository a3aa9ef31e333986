//! Why a job client operation failed ([`JobClientError`]); messages are Hadoop's where Hadoop has
//! one.

use super::report::JobRunState;
use crate::cluster::protocol::JtResponse;
use sheaf_dfs::client::DfsError;
use sheaf_yarn::protocol::YarnError;

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

/// The message of [`JobClientError::KillRefused`].
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

/// Result of job client operations.
pub type JobClientResult<T> = Result<T, JobClientError>;

/// Wraps a DFS error with what was being done.
pub(super) fn dfs_err(context: impl Into<String>) -> impl FnOnce(DfsError) -> JobClientError {
    let context = context.into();
    move |source| JobClientError::Dfs { context, source }
}

/// A JobTracker answer that does not fit the request.
pub(super) fn unexpected_answer(addr: &str, resp: &JtResponse) -> JobClientError {
    JobClientError::JobTracker {
        addr: addr.to_string(),
        reason: format!("unexpected answer {resp:?}")
            .chars()
            .take(200)
            .collect(),
    }
}
