//! What the JobTracker is told ([`Event`]) and what it asks its daemon shell to do ([`Action`]),
//! plus the description of the job it starts from ([`JobSpec`]).

use super::config::Resource;
use super::ids::{AttemptId, ContainerId, TaskId, TaskKind};
use crate::formats::InputSplit;
use std::collections::BTreeMap;

/// Rack of hosts the host→rack map does not name (Hadoop's default).
pub const DEFAULT_RACK: &str = "/default-rack";

/// Where a container landed relative to the data its map reads (Hadoop's three map counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Locality {
    /// On a host holding a replica of the split (DATA_LOCAL_MAPS).
    NodeLocal,
    /// On the rack of such a host (RACK_LOCAL_MAPS).
    RackLocal,
    /// Anywhere else (OTHER_LOCAL_MAPS).
    OffRack,
}

/// One input split and the hosts holding replicas of its block.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SplitLocation {
    /// The byte range the map reads.
    pub split: InputSplit,
    /// Hosts with a replica, as DataNodes (and the NodeManagers beside them) advertise them.
    pub hosts: Vec<String>,
}

/// Everything the JobTracker needs to know about the job at start.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JobSpec {
    /// The job's id (`job_…`), for status and history.
    pub job_id: String,
    /// One map per split, in split order.
    pub splits: Vec<SplitLocation>,
    /// Number of reduce tasks (0: map-only job, maps write the output).
    pub num_reduces: u32,
    /// Rack of each host; hosts not listed are on [`DEFAULT_RACK`].
    pub host_racks: BTreeMap<String, String>,
    /// The job configuration as submitted (kept verbatim in the history).
    pub conf: BTreeMap<String, String>,
}

/// Where a finished map's output can be fetched.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MapOutputLocation {
    /// Host that ran the map and keeps its output.
    pub host: String,
    /// Address of that host's shuffle service.
    pub shuffle_address: String,
}

/// Something that happened, fed to [`super::JobTracker::handle`] with the current time.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The RM gave a container for ask `ask_id` on `host` (in `rack`).
    ContainerAllocated {
        /// The container.
        container: ContainerId,
        /// The ask it satisfies (from [`ContainerRequest::ask_id`]).
        ask_id: u64,
        /// Its NodeManager's host.
        host: String,
        /// That host's rack.
        rack: String,
    },
    /// The task process of an attempt reported in.
    AttemptStarted {
        /// Which attempt.
        attempt: AttemptId,
    },
    /// An attempt's progress heartbeat (0.0 ..= 1.0). The task timeout restarts when the
    /// fraction grows or when `alive` says the task's work moved since its last heartbeat
    /// (Hadoop's `reporter.progress()`: a reducer waiting for maps or a long merge makes no
    /// measurable progress yet is not stuck).
    AttemptProgress {
        /// Which attempt.
        attempt: AttemptId,
        /// Fraction done.
        progress: f64,
        /// The work thread did something since the previous heartbeat.
        alive: bool,
    },
    /// An attempt finished its work (its output is under `_temporary`, or for a map with
    /// reducers, on its host's shuffle service).
    AttemptSucceeded {
        /// Which attempt.
        attempt: AttemptId,
        /// For maps of jobs with reducers: where reducers fetch the output.
        output: Option<MapOutputLocation>,
    },
    /// An attempt failed (plugin panic, I/O error, …).
    AttemptFailed {
        /// Which attempt.
        attempt: AttemptId,
        /// Why, as the task reported it.
        reason: String,
    },
    /// An attempt was killed by someone else (NodeManager, operator); it does not count as failed.
    AttemptKilled {
        /// Which attempt.
        attempt: AttemptId,
        /// Why.
        reason: String,
    },
    /// A container's process ended; if its attempt had not reported an outcome, it failed.
    /// Containers the RM reports as ended by a lost node or on request are not the task's
    /// fault: feed [`Event::NodeLost`] or [`Event::AttemptKilled`] for those instead.
    ContainerCompleted {
        /// Which container.
        container: ContainerId,
        /// Exit status and diagnostics, for the attempt's error.
        diagnostics: String,
    },
    /// The RM's current list of live NodeManager hosts: tells the JobTracker whether "another
    /// node" exists when it avoids a host (feed it at start and whenever the RM's list changes).
    ClusterHosts {
        /// Every live host.
        hosts: Vec<String>,
    },
    /// The RM's node list as it is now: the JobTracker diffs it against what it knew. Hosts
    /// in `down`, and hosts it knew (listed before, or containers came from them) that are not
    /// listed at all, are lost as by [`Event::NodeLost`]; `running` become the live hosts.
    NodeList {
        /// Hosts whose NodeManager runs.
        running: Vec<String>,
        /// Hosts listed in any other state (lost, unhealthy, decommissioned).
        down: Vec<String>,
    },
    /// The RM lost a NodeManager: its containers are gone, and so are the map outputs it kept.
    /// A host already lost is not lost again until it is seen up (listed running, or a
    /// container came from it).
    NodeLost {
        /// Its host.
        host: String,
    },
    /// A reducer could not fetch a map's output.
    FetchFailure {
        /// The reducer attempt reporting it.
        reducer: AttemptId,
        /// The map attempt whose output failed.
        map: AttemptId,
    },
    /// The task commit asked by [`Action::CommitTask`] is done.
    TaskCommitted {
        /// The committed attempt.
        attempt: AttemptId,
    },
    /// The task commit asked by [`Action::CommitTask`] failed; the attempt counts as failed.
    TaskCommitFailed {
        /// The attempt.
        attempt: AttemptId,
        /// Why.
        reason: String,
    },
    /// The job commit asked by [`Action::CommitJob`] is done (`_SUCCESS` written).
    JobCommitted,
    /// The job commit failed.
    JobCommitFailed {
        /// Why.
        reason: String,
    },
    /// Time passed: check timeouts and stragglers. Feed it by
    /// [`super::JobTracker::next_timeout`] and about once a second (speculation).
    Tick,
    /// A user killed the job. Not honoured while the job commits
    /// ([`super::JobTracker::is_committing`]): no [`Action::JobKilled`] follows, the commit
    /// goes on.
    Kill {
        /// Who and why, for the diagnostics.
        reason: String,
    },
    /// The job cannot go on (the RM refuses its asks …): it ends FAILED with `reason`. Like a
    /// kill, not honoured while the job commits.
    Fail {
        /// Why, for the diagnostics.
        reason: String,
    },
}

/// One container the JobTracker wants. Each ask is for one container so it can carry the exact
/// host preference of the task it is for, and be cancelled on its own.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ContainerRequest {
    /// Chosen by the JobTracker; echoed in [`Event::ContainerAllocated`].
    pub ask_id: u64,
    /// Phase of the attempt it is for.
    pub kind: TaskKind,
    /// Container size.
    pub resource: Resource,
    /// Lower is served first (Hadoop: failed maps 5, reduces 10, maps 20).
    pub priority: u32,
    /// Preferred hosts (a map's replica hosts); empty for anywhere.
    pub hosts: Vec<String>,
    /// Preferred racks (those hosts' racks); empty for anywhere.
    pub racks: Vec<String>,
}

/// Something the daemon shell must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Ask the RM for a container.
    RequestContainer(ContainerRequest),
    /// Withdraw an ask not yet satisfied (a late allocation for it is handled by releasing it).
    CancelRequest {
        /// The ask.
        ask_id: u64,
    },
    /// Start `attempt` in `container` on `host` (map `i` reads split `i`; reduce `i` partition `i`).
    Launch {
        /// The attempt.
        attempt: AttemptId,
        /// Its container.
        container: ContainerId,
        /// The container's host.
        host: String,
    },
    /// Stop the attempt's process and give its container back.
    KillAttempt {
        /// The attempt.
        attempt: AttemptId,
        /// Its container.
        container: ContainerId,
    },
    /// Give a container back (unused, or its attempt is over).
    ReleaseContainer {
        /// The container.
        container: ContainerId,
    },
    /// The map's output (reported with [`Event::AttemptSucceeded`]) is its task's: tell the
    /// map to go on serving it, and keep its counters. A map whose report is not followed by
    /// this lost to another attempt (or was not live).
    MapOutputAccepted {
        /// The map attempt.
        attempt: AttemptId,
    },
    /// Promote the attempt's output under `_temporary` to the task's committed output; answer
    /// with [`Event::TaskCommitted`] or [`Event::TaskCommitFailed`].
    CommitTask {
        /// The attempt.
        attempt: AttemptId,
    },
    /// Move committed task outputs into the output directory, then write `_SUCCESS` last; answer
    /// with [`Event::JobCommitted`] or [`Event::JobCommitFailed`].
    CommitJob,
    /// The job is over and succeeded.
    JobSucceeded,
    /// The job is over and failed: delete `_temporary`, never write `_SUCCESS`.
    JobFailed {
        /// Why, for `sheaf job status` and the submitter.
        reason: String,
    },
    /// The job was killed: delete `_temporary`, never write `_SUCCESS`.
    JobKilled {
        /// Why.
        reason: String,
    },
}

impl Action {
    /// The attempt a `Launch` action starts.
    pub fn launched(&self) -> Option<AttemptId> {
        match self {
            Action::Launch { attempt, .. } => Some(*attempt),
            _ => None,
        }
    }

    /// The task an action is about, when it is about one.
    pub fn task(&self) -> Option<TaskId> {
        match self {
            Action::Launch { attempt, .. }
            | Action::KillAttempt { attempt, .. }
            | Action::CommitTask { attempt } => Some(attempt.task),
            _ => None,
        }
    }
}
