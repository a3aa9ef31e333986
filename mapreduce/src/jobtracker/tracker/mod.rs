//! [`JobTracker`]: one job's tasks and attempts, driven by events. The generic attempt
//! bookkeeping (retries, blacklisting, timeouts, speculation) is an [`AttemptBook`]; this adds
//! what is MapReduce's own: containers and asks, locality, the two phases and the shuffle.
//!
//! The state is here; its `impl` is split by concern, the way quinn-proto splits its connection:
//! - `recover`: seeding a tracker from the history a previous JobTracker attempt left;
//! - `scheduling`: asks, matching containers to attempts, locality, launches;
//! - `reduce_ramp`: holding reduce asks back while maps wait, preempting reducers;
//! - `outcomes`: the end of an attempt, successes and task-commit arbitration;
//! - `lost_outputs`: lost nodes, the RM's node list, fetch failures;
//! - `timers`: task timeouts and speculation;
//! - `job_end`: slow start, the job commit, failing and killing the job.

mod job_end;
mod lost_outputs;
mod outcomes;
mod recover;
mod reduce_ramp;
mod scheduling;
mod timers;

pub use recover::RecoveryError;

use super::config::JobConfig;
use super::ids::{AttemptId, ContainerId, TaskId, TaskKind};
use super::protocol::{Action, Event, JobSpec, Locality, MapOutputLocation, DEFAULT_RACK};
use super::status::*;
use crate::attempts::{Attempt, AttemptBook, Now};
use crate::counters::Counters;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The replica hosts of a map's split and their racks.
#[derive(Debug)]
struct MapInput {
    /// Hosts with a replica, in the DFS's order of preference.
    hosts: Vec<String>,
    /// Their racks, sorted.
    racks: Vec<String>,
}

/// What the JobTracker keeps per attempt beside the generic bookkeeping.
#[derive(Debug, Default)]
struct AttemptExtra {
    /// Its outstanding container ask.
    ask: Option<u64>,
    container: Option<ContainerId>,
    rack: Option<String>,
    locality: Option<Locality>,
    /// Container offers passed over in the hope of a better host.
    declined: u32,
    /// Where a map's output can be fetched.
    output: Option<MapOutputLocation>,
    fetch_failures: u32,
    committed: bool,
}

type MrAttempt = Attempt<TaskId, AttemptExtra>;

fn record(a: &MrAttempt) -> AttemptRecord {
    AttemptRecord {
        attempt: a.id,
        state: a.state,
        speculative: a.speculative,
        host: a.node.clone(),
        rack: a.data.rack.clone(),
        locality: a.data.locality,
        start_ms: a.launched.map(|t| t.wall_ms),
        end_ms: a.ended.map(|t| t.wall_ms),
        progress: a.progress,
        error: a.error.clone(),
        committed: a.data.committed,
    }
}

/// How an attempt's end came about, which decides what happens to its container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The task reported its outcome; its process is exiting: release the container.
    Reported,
    /// The container is already gone (exited, node lost): nothing to do.
    Gone,
    /// The JobTracker decided it (kill, timeout): kill the process.
    Decided,
}

/// One job's scheduler, retry policy, speculator and commit arbiter. Feed it with
/// [`JobTracker::start`] then [`JobTracker::handle`]; carry out the returned actions in order.
#[derive(Debug)]
pub struct JobTracker {
    job_id: String,
    conf: BTreeMap<String, String>,
    num_reduces: u32,
    config: JobConfig,
    state: JobState,
    /// Map `i` reads `map_inputs[i]`.
    map_inputs: Vec<MapInput>,
    book: AttemptBook<TaskId, AttemptExtra>,
    /// Unsatisfied asks and the attempt each was made for.
    asks: BTreeMap<u64, AttemptId>,
    /// Phase of every ask ever made, so a late allocation for a cancelled ask can still be used.
    ask_kinds: HashMap<u64, TaskKind>,
    next_ask: u64,
    containers: HashMap<ContainerId, AttemptId>,
    /// Hosts believed to be up: the RM's list if given, else replica hosts; plus hosts containers
    /// came from, minus lost ones.
    live_hosts: BTreeSet<String>,
    /// Hosts the RM listed or containers came from: one missing from a later list is lost.
    known_hosts: BTreeSet<String>,
    /// Hosts declared lost and not seen running since: a loss is handled once.
    lost_hosts: BTreeSet<String>,
    reduces_released: bool,
    /// Monotonic ms when a reducer was last killed to make room for a waiting map.
    last_preemption_ms: Option<u64>,
    counters: Counters,
    completion_events: Vec<MapCompletionEvent>,
    /// Wall-clock ms, for the history.
    start_ms: u64,
    finish_ms: Option<u64>,
    diagnostics: Option<String>,
    started: bool,
}

impl JobTracker {
    /// A tracker for `spec`, run with `config`; nothing is scheduled before [`JobTracker::start`].
    pub fn new(spec: JobSpec, config: JobConfig, now: Now) -> JobTracker {
        let rack_of = |h: &String| {
            spec.host_racks
                .get(h)
                .cloned()
                .unwrap_or_else(|| DEFAULT_RACK.to_string())
        };
        let mut live_hosts = BTreeSet::new();
        let map_inputs: Vec<MapInput> = spec
            .splits
            .iter()
            .map(|s| {
                // Keep the first mention of each host: the order is the DFS's preference.
                let mut seen = BTreeSet::new();
                let hosts: Vec<String> = s
                    .hosts
                    .iter()
                    .filter(|h| seen.insert(*h))
                    .cloned()
                    .collect();
                let mut racks: Vec<String> = hosts.iter().map(rack_of).collect();
                racks.sort();
                racks.dedup();
                live_hosts.extend(hosts.iter().cloned());
                MapInput { hosts, racks }
            })
            .collect();
        let mut book = AttemptBook::new(config.attempt_policy());
        for i in 0..map_inputs.len() as u32 {
            book.add_task_with_max_attempts(TaskId::map(i), config.max_map_attempts);
        }
        for i in 0..spec.num_reduces {
            book.add_task_with_max_attempts(TaskId::reduce(i), config.max_reduce_attempts);
        }
        JobTracker {
            job_id: spec.job_id,
            conf: spec.conf,
            num_reduces: spec.num_reduces,
            config,
            state: JobState::Running,
            map_inputs,
            book,
            asks: BTreeMap::new(),
            ask_kinds: HashMap::new(),
            next_ask: 1,
            containers: HashMap::new(),
            live_hosts,
            known_hosts: BTreeSet::new(),
            lost_hosts: BTreeSet::new(),
            reduces_released: false,
            last_preemption_ms: None,
            counters: Counters::new(),
            completion_events: Vec::new(),
            start_ms: now.wall_ms,
            finish_ms: None,
            diagnostics: None,
            started: false,
        }
    }

    /// Asks for the map containers (and reduce ones if slow start already allows). Idempotent.
    /// On a tracker recovered from a finished job, returns that job's final action instead.
    pub fn start(&mut self, now: Now) -> Vec<Action> {
        let mut out = Vec::new();
        if self.started {
            return out;
        }
        self.started = true;
        let reason = self.diagnostics.clone().unwrap_or_default();
        match self.state {
            JobState::Succeeded => return vec![Action::JobSucceeded],
            JobState::Failed => return vec![Action::JobFailed { reason }],
            JobState::Killed => return vec![Action::JobKilled { reason }],
            JobState::Running | JobState::Committing => {}
        }
        for task in self.map_tasks() {
            self.reconcile(task, now, &mut out);
        }
        self.check_progress(now, &mut out);
        self.balance_reduces(now, &mut out);
        out
    }

    /// Applies one event that happened at `now` and returns what to do about it.
    pub fn handle(&mut self, now: Now, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        if !self.started {
            // Events before start can only be stale; starting first keeps the state consistent.
            out = self.start(now);
        }
        match event {
            Event::ContainerAllocated {
                container,
                ask_id,
                host,
                rack,
            } => self.on_allocated(container, ask_id, host, rack, now, &mut out),
            Event::AttemptStarted { attempt } => self.book.started(attempt, now),
            Event::AttemptProgress {
                attempt,
                progress,
                alive,
            } => self.book.progress(attempt, progress, alive, now),
            Event::AttemptSucceeded { attempt, output } => {
                self.on_succeeded(attempt, output, now, &mut out)
            }
            Event::AttemptFailed { attempt, reason } => {
                self.on_reported_end(attempt, AttemptState::Failed, reason, now, &mut out)
            }
            Event::AttemptKilled { attempt, reason } => {
                self.on_reported_end(attempt, AttemptState::Killed, reason, now, &mut out)
            }
            Event::ContainerCompleted {
                container,
                diagnostics,
            } => self.on_container_completed(container, diagnostics, now, &mut out),
            Event::ClusterHosts { hosts } => {
                self.lost_hosts.retain(|h| !hosts.contains(h));
                self.live_hosts = hosts.into_iter().collect();
            }
            Event::NodeList { running, down } => self.on_node_list(running, down, now, &mut out),
            Event::NodeLost { host } => self.on_node_lost(&host, now, &mut out),
            Event::FetchFailure { reducer, map } => {
                self.on_fetch_failure(reducer, map, now, &mut out)
            }
            Event::TaskCommitted { attempt } => self.on_task_committed(attempt, now, &mut out),
            Event::TaskCommitFailed { attempt, reason } => {
                self.on_commit_failed(attempt, reason, now, &mut out)
            }
            Event::JobCommitted => self.on_job_committed(now, &mut out),
            Event::JobCommitFailed { reason } => self.on_job_commit_failed(reason, now, &mut out),
            Event::Tick => self.on_tick(now, &mut out),
            Event::Kill { reason } => self.kill_job(reason, now, &mut out),
            Event::Fail { reason } => self.fail_job(reason, now, &mut out),
        }
        self.balance_reduces(now, &mut out);
        out
    }

    /// The job's state.
    pub fn state(&self) -> JobState {
        self.state
    }

    /// Whether the job is committing its output: a kill is not honoured then (see
    /// [`Event::Kill`]), and whoever asked for it must be told so.
    pub fn is_committing(&self) -> bool {
        self.state == JobState::Committing
    }

    /// Whether `attempt` may still work (waiting, assigned or running): a task asking is told
    /// to stop when not.
    pub fn is_live(&self, attempt: AttemptId) -> bool {
        self.book.is_live(attempt)
    }

    /// Job counters so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Map outputs that became available or went away, from index `from` on (reducers poll
    /// with the count they have seen).
    pub fn map_completion_events(&self, from: usize) -> &[MapCompletionEvent] {
        self.completion_events.get(from..).unwrap_or_default()
    }

    /// Monotonic ms when the next task timeout or reducer preemption can fire: the shell should
    /// tick no later than this (and about once a second anyway, for speculation).
    pub fn next_timeout(&self) -> Option<u64> {
        if self.state != JobState::Running {
            return None;
        }
        self.book
            .next_timeout()
            .into_iter()
            .chain(self.next_preemption())
            .min()
    }

    /// A snapshot for `sheaf job status`.
    pub fn status(&self) -> JobStatus {
        JobStatus {
            job_id: self.job_id.clone(),
            state: self.state,
            maps_done: self.done_count(self.map_tasks()),
            maps_total: self.map_inputs.len() as u32,
            reduces_done: self.done_count(self.reduce_tasks()),
            reduces_total: self.num_reduces,
            blacklisted_hosts: self.book.blacklisted_nodes(),
            diagnostics: self.diagnostics.clone(),
            attempts: self.book.attempts().map(record).collect(),
            counters: self.counters.clone(),
        }
    }

    /// The record to write to the DFS job history.
    pub fn history(&self) -> JobHistory {
        JobHistory {
            job_id: self.job_id.clone(),
            conf: self.conf.clone(),
            settings: self.config.clone(),
            start_ms: self.start_ms,
            finish_ms: self.finish_ms,
            state: self.state,
            diagnostics: self.diagnostics.clone(),
            maps_total: self.map_inputs.len() as u32,
            reduces_total: self.num_reduces,
            counters: self.counters.clone(),
            attempts: self.book.attempts().map(record).collect(),
        }
    }

    // ---- lookups ----

    fn map_tasks(&self) -> impl Iterator<Item = TaskId> {
        (0..self.map_inputs.len() as u32).map(TaskId::map)
    }

    fn reduce_tasks(&self) -> impl Iterator<Item = TaskId> {
        (0..self.num_reduces).map(TaskId::reduce)
    }

    fn done_count(&self, tasks: impl Iterator<Item = TaskId>) -> u32 {
        tasks.filter(|t| self.book.is_done(*t)).count() as u32
    }

    fn all_reduces_finished(&self) -> bool {
        self.reduce_tasks().all(|t| !self.book.is_open(t))
    }

    fn extra_mut(&mut self, id: AttemptId) -> Option<&mut AttemptExtra> {
        self.book.data_mut(id)
    }
}
