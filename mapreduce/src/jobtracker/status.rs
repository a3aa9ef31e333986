//! What `sheaf job status` shows and what the job history in the DFS keeps: serde records that
//! encode with rmp-serde and serde_json alike (string map keys, no borrowed data).

use super::config::JobConfig;
use super::ids::{AttemptId, TaskKind};
use super::protocol::{Locality, MapOutputLocation};
use crate::counters::Counters;
use std::collections::BTreeMap;
use std::fmt;

/// Hadoop's group of job-level counters (`org.apache.hadoop.mapreduce.JobCounter`).
pub const JOB_GROUP: &str = "Job Counters";
/// Map attempts launched.
pub const TOTAL_LAUNCHED_MAPS: &str = "TOTAL_LAUNCHED_MAPS";
/// Reduce attempts launched.
pub const TOTAL_LAUNCHED_REDUCES: &str = "TOTAL_LAUNCHED_REDUCES";
/// Map attempts that failed.
pub const NUM_FAILED_MAPS: &str = "NUM_FAILED_MAPS";
/// Reduce attempts that failed.
pub const NUM_FAILED_REDUCES: &str = "NUM_FAILED_REDUCES";
/// Launched map attempts that were killed.
pub const NUM_KILLED_MAPS: &str = "NUM_KILLED_MAPS";
/// Launched reduce attempts that were killed.
pub const NUM_KILLED_REDUCES: &str = "NUM_KILLED_REDUCES";
/// Map attempts launched on a host holding their split.
pub const DATA_LOCAL_MAPS: &str = "DATA_LOCAL_MAPS";
/// Map attempts launched on the rack of such a host.
pub const RACK_LOCAL_MAPS: &str = "RACK_LOCAL_MAPS";
/// Map attempts launched elsewhere.
pub const OTHER_LOCAL_MAPS: &str = "OTHER_LOCAL_MAPS";
/// Milliseconds spent by all map attempts, from launch to end.
pub const MILLIS_MAPS: &str = "MILLIS_MAPS";
/// Milliseconds spent by all reduce attempts, from launch to end.
pub const MILLIS_REDUCES: &str = "MILLIS_REDUCES";
/// Speculative twins launched (Hadoop has no job counter for this; Sheaf names it).
pub const SPECULATIVE_ATTEMPTS_LAUNCHED: &str = "SPECULATIVE_ATTEMPTS_LAUNCHED";
/// Launched attempts killed because the other attempt of their speculated task won.
pub const SPECULATIVE_ATTEMPTS_KILLED: &str = "SPECULATIVE_ATTEMPTS_KILLED";

/// Where the job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum JobState {
    /// Tasks are being scheduled and run.
    Running,
    /// Every task is done; the output is being made visible.
    Committing,
    /// Output committed, `_SUCCESS` written.
    Succeeded,
    /// A task ran out of attempts, or the commit failed.
    Failed,
    /// A user killed it.
    Killed,
}

impl JobState {
    /// True for SUCCEEDED, FAILED and KILLED.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Killed
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JobState::Running => "RUNNING",
            JobState::Committing => "COMMITTING",
            JobState::Succeeded => "SUCCEEDED",
            JobState::Failed => "FAILED",
            JobState::Killed => "KILLED",
        })
    }
}

pub use crate::attempts::AttemptState;

/// One attempt as status and history show it. Times are ms since the epoch, as the shell passed them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AttemptRecord {
    /// The attempt.
    pub attempt: AttemptId,
    /// Its state.
    pub state: AttemptState,
    /// True for a speculative twin.
    pub speculative: bool,
    /// Host of its container, once it had one.
    pub host: Option<String>,
    /// Rack of that host.
    pub rack: Option<String>,
    /// For maps: where it ran relative to its split.
    pub locality: Option<Locality>,
    /// When it was launched.
    pub start_ms: Option<u64>,
    /// When it ended.
    pub end_ms: Option<u64>,
    /// Last reported progress.
    pub progress: f64,
    /// Why it failed or was killed.
    pub error: Option<String>,
    /// Its task commit completed: its output is the task's output (what recovery keeps).
    pub committed: bool,
}

/// A map output becoming available or going away: what reducers poll to know what to fetch.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MapCompletionEvent {
    /// The map attempt.
    pub attempt: AttemptId,
    /// True: fetch from `location`. False (Hadoop's OBSOLETE): that output is gone, drop it and
    /// wait for a later event for the same map.
    pub available: bool,
    /// Where its output is.
    pub location: MapOutputLocation,
}

/// A snapshot for `sheaf job status`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JobStatus {
    /// The job.
    pub job_id: String,
    /// Its state.
    pub state: JobState,
    /// Maps whose output is available (or committed, for a map-only job).
    pub maps_done: u32,
    /// Maps in the job.
    pub maps_total: u32,
    /// Reduces committed.
    pub reduces_done: u32,
    /// Reduces in the job.
    pub reduces_total: u32,
    /// Hosts the job avoids after repeated failures.
    pub blacklisted_hosts: Vec<String>,
    /// Why it failed or was killed.
    pub diagnostics: Option<String>,
    /// Every attempt so far.
    pub attempts: Vec<AttemptRecord>,
    /// Job counters.
    pub counters: Counters,
}

impl JobStatus {
    /// Attempts of one phase.
    pub fn attempts_of(&self, kind: TaskKind) -> impl Iterator<Item = &AttemptRecord> {
        self.attempts
            .iter()
            .filter(move |a| a.attempt.task.kind == kind)
    }
}

/// The record of a job written to the DFS when it ends, read by `sheaf job history`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JobHistory {
    /// The job.
    pub job_id: String,
    /// Its configuration as submitted.
    pub conf: BTreeMap<String, String>,
    /// The settings the JobTracker ran it with.
    pub settings: JobConfig,
    /// When the JobTracker started it.
    pub start_ms: u64,
    /// When it reached a terminal state.
    pub finish_ms: Option<u64>,
    /// Final (or current) state.
    pub state: JobState,
    /// Why it failed or was killed.
    pub diagnostics: Option<String>,
    /// Maps in the job.
    pub maps_total: u32,
    /// Reduces in the job.
    pub reduces_total: u32,
    /// Job counters.
    pub counters: Counters,
    /// Every attempt.
    pub attempts: Vec<AttemptRecord>,
}
