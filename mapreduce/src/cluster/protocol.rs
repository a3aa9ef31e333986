//! The JobTracker's RPC service: the umbilical its task processes use (what to run, progress,
//! outcome, map completion events) and the calls of `sheaf job status|counters|kill`. One typed
//! request enum and one response enum, served with `sheaf_rpc::service::RpcServer` over QUIC with
//! the cluster's mutual TLS.

use crate::counters::Counters;
use crate::formats::InputSplit;
use crate::jobtracker::{AttemptId, JobStatus, MapCompletionEvent};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::submission::JobProgram;

/// Requests of the JobTracker service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum JtRequest {
    /// Task: what this attempt runs. Also tells the JobTracker the process started.
    GetTask {
        /// The attempt the container was launched for.
        attempt: AttemptId,
    },
    /// Task: progress heartbeat (about once a second while it works).
    Progress {
        /// The attempt.
        attempt: AttemptId,
        /// Fraction done, 0.0 ..= 1.0.
        progress: f64,
    },
    /// Map task of a job with reducers: its output is registered with the shuffle service of
    /// its node, reducers may fetch it.
    MapOutputReady {
        /// The map attempt.
        attempt: AttemptId,
        /// The shuffle service (`IP:PORT`, UDP) serving it.
        shuffle_address: String,
        /// The attempt's task counters.
        counters: Counters,
    },
    /// Reduce task, or map task of a map-only job: its output file is complete (closed) in its
    /// attempt directory; the JobTracker commits it (or not, if another attempt won).
    OutputReady {
        /// The attempt.
        attempt: AttemptId,
        /// The attempt's task counters.
        counters: Counters,
    },
    /// Task: the attempt failed (plugin panic, I/O error, bad input …).
    Failed {
        /// The attempt.
        attempt: AttemptId,
        /// Why, one line, as the user should read it.
        reason: String,
    },
    /// Reducer: map completion events from index `from` on.
    MapEvents {
        /// The reduce attempt asking.
        reducer: AttemptId,
        /// First event wanted (the `next` of the previous answer; 0 at first).
        from: u32,
    },
    /// Reducer: the output of `map` could not be fetched after the fetcher's retries.
    FetchFailed {
        /// The reduce attempt reporting.
        reducer: AttemptId,
        /// The map attempt whose output failed.
        map: AttemptId,
        /// Why.
        reason: String,
    },
    /// Client: the job's status and counters.
    Status,
    /// Client: kill the job.
    Kill {
        /// Who and why, kept in the diagnostics.
        reason: String,
    },
}

/// Responses of the JobTracker service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum JtResponse {
    /// Answer to `GetTask`.
    Task(Box<TaskAssignment>),
    /// Answer to the task reports and `Kill`. `proceed == false` tells a task that its attempt is
    /// no longer wanted (killed, lost a speculative race, job over): it must stop at once and exit
    /// without reporting anything else.
    Ack {
        /// Keep working.
        proceed: bool,
    },
    /// Answer to `MapEvents`.
    MapEvents {
        /// Events `from .. next`.
        events: Vec<MapCompletionEvent>,
        /// Index to ask from next time.
        next: u32,
        /// False once the attempt is no longer wanted (same meaning as `Ack { proceed }`).
        proceed: bool,
    },
    /// Answer to `Status`.
    Status(Box<JobStatus>),
    /// The request could not be served.
    Error(JtError),
}

/// Why the JobTracker refused a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum JtError {
    /// The attempt is not one this JobTracker launched.
    #[error("unknown task attempt {0}")]
    UnknownAttempt(String),
    /// The request does not fit the attempt (e.g. `MapEvents` from a map).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The JobTracker failed internally (DFS unreachable …).
    #[error("jobtracker error: {0}")]
    Internal(String),
}

/// Everything a task process needs to run its attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskAssignment {
    /// The job (`job_<cluster>_<seq>`).
    pub job_id: String,
    /// The attempt.
    pub attempt: AttemptId,
    /// What runs the records: the plugin (localized into the container's working dir under
    /// [`super::submission::PLUGIN_LINK_NAME`]) or streaming commands.
    pub program: JobProgram,
    /// The final job configuration (the submitted one, the plugin's defaults, and what the
    /// JobTracker added, e.g. total-order partition boundaries and Hadoop's input/output keys).
    pub conf: BTreeMap<String, String>,
    /// The split a map reads (`sheaf:///…` path form, see `fs::JobPath`); `None` for reduces.
    pub split: Option<InputSplit>,
    /// Maps in the job.
    pub num_maps: u32,
    /// Reduces in the job (0: map-only, maps write the output).
    pub num_reduces: u32,
    /// DFS directory (absolute DFS path, e.g. `/out/_temporary/attempt_r_000001_0`) the attempt
    /// writes its output file into; it exists and is empty. Unused by maps of jobs with reducers.
    pub attempt_dir: String,
    /// Name of the output file in `attempt_dir` (`part-r-00001`, `part-m-00003`).
    pub output_file: String,
    /// The job's shuffle secret (`shuffle::JobSecret` bytes): maps register their output with it,
    /// reducers sign their fetches with it.
    pub shuffle_secret: Vec<u8>,
}
