//! The JobTracker's RPC service: the umbilical its task processes use (what to run, progress,
//! outcome, map completion events) and the calls of `sheaf job status|counters|kill`. One typed
//! request enum and one response enum, served with `sheaf_rpc::service::RpcServer` over QUIC with
//! the cluster's mutual TLS.

use crate::counters::Counters;
use crate::formats::InputSplit;
use crate::jobtracker::{AttemptId, JobState, JobStatus, MapCompletionEvent};
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
        /// The task's work moved since its previous heartbeat (records read, merge steps,
        /// fetches, polls for map events): the attempt is working even when `progress` stands
        /// still, so its task timeout restarts (Hadoop's `reporter.progress()`).
        alive: bool,
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
    /// Answer to `Kill` when the kill is not honoured: the job is committing its output,
    /// which a kill must not interrupt; it will end on its own (most likely SUCCEEDED).
    KillRefused {
        /// Why, as the user should read it.
        reason: String,
    },
    /// The request could not be served.
    Error(JtError),
}

impl JtResponse {
    /// The answer to `Kill` once the kill was fed to the JobTracker and the job is in `state`:
    /// an acknowledgement, or [`JtResponse::KillRefused`] when the job is committing.
    pub fn to_kill(state: JobState) -> JtResponse {
        match state {
            JobState::Committing => JtResponse::KillRefused {
                reason: "the job is committing its output, which a kill does not interrupt; \
                         it will finish"
                    .into(),
            },
            _ => JtResponse::Ack { proceed: true },
        }
    }
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
    /// The JobTracker (application master) attempt that launched this task attempt (1-based; 0
    /// from a JobTracker that did not say). Attempt numbers restart with each JobTracker attempt
    /// for tasks its snapshot did not know, so everything an attempt writes outside its
    /// container (`attempt_dir`, the map output under the shuffle dir) is kept under it.
    #[serde(default)]
    pub app_attempt: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kill_during_the_commit_is_answered_as_refused() {
        assert!(matches!(
            JtResponse::to_kill(JobState::Committing),
            JtResponse::KillRefused { reason } if reason.contains("committing")
        ));
        for state in [JobState::Killed, JobState::Running, JobState::Succeeded] {
            assert!(matches!(
                JtResponse::to_kill(state),
                JtResponse::Ack { proceed: true }
            ));
        }
    }
}
