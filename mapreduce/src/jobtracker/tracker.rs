//! [`JobTracker`]: task and attempt bookkeeping for one job, driven by events.

use super::config::JobConfig;
use super::ids::{AttemptId, ContainerId, TaskId, TaskKind};
use super::protocol::{
    Action, ContainerRequest, Event, JobSpec, Locality, MapOutputLocation, DEFAULT_RACK,
};
use super::speculation::{stragglers, LiveAttempt};
use super::status::*;
use crate::counters::Counters;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Hadoop's container priorities (lower is served first): retried maps jump the queue so one
/// flaky split does not hold the job back, and reduces go before fresh maps once released.
const PRIORITY_FAST_FAIL_MAP: u32 = 5;
const PRIORITY_REDUCE: u32 = 10;
const PRIORITY_MAP: u32 = 20;

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Needs (more) work.
    Open,
    /// An attempt succeeded; its commit is in flight.
    Committing(AttemptId),
    /// Committed, or for a map of a job with reducers, its output is available.
    Done(AttemptId),
}

#[derive(Debug)]
struct Task {
    id: TaskId,
    /// Replica hosts of the split (maps only).
    hosts: Vec<String>,
    /// Their racks.
    racks: Vec<String>,
    attempts: Vec<AttemptId>,
    failures: u32,
    failed_hosts: BTreeSet<String>,
    last_error: Option<String>,
    outcome: Outcome,
    /// Succeeded at least once (a map whose output was later lost keeps this).
    ever_done: bool,
    /// Already got its one speculative twin.
    speculated: bool,
}

#[derive(Debug)]
struct Attempt {
    id: AttemptId,
    state: AttemptState,
    speculative: bool,
    ask: Option<u64>,
    container: Option<ContainerId>,
    host: Option<String>,
    rack: Option<String>,
    locality: Option<Locality>,
    launched_ms: Option<u64>,
    /// When the attempt was made: how long it has waited for a container while unassigned.
    created_ms: u64,
    end_ms: Option<u64>,
    progress: f64,
    last_progress_ms: u64,
    /// Container offers passed over in the hope of a better host.
    declined: u32,
    /// Hosts this attempt should not run on (where its task failed; its twin's host).
    avoid: BTreeSet<String>,
    error: Option<String>,
    output: Option<MapOutputLocation>,
    fetch_failures: u32,
    committed: bool,
}

impl Attempt {
    fn launched(&self) -> bool {
        self.launched_ms.is_some()
    }

    fn record(&self) -> AttemptRecord {
        AttemptRecord {
            attempt: self.id,
            state: self.state,
            speculative: self.speculative,
            host: self.host.clone(),
            rack: self.rack.clone(),
            locality: self.locality,
            start_ms: self.launched_ms,
            end_ms: self.end_ms,
            progress: self.progress,
            error: self.error.clone(),
            committed: self.committed,
        }
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

/// Why a job history cannot seed a new JobTracker attempt.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RecoveryError {
    /// The history is another job's.
    #[error("job history is for {found}, not {expected} (start the job over)")]
    WrongJob {
        /// The job being recovered.
        expected: String,
        /// The job the history names.
        found: String,
    },
    /// The job's task counts differ from the history's (its input changed).
    #[error(
        "job history of {job} has {history:?} (maps, reduces) but the job now has {now:?} \
         (the input changed: start the job over)"
    )]
    ShapeChanged {
        /// The job.
        job: String,
        /// Maps and reduces in the history.
        history: (u32, u32),
        /// Maps and reduces now.
        now: (u32, u32),
    },
    /// The history names an attempt outside the job, or the same attempt twice.
    #[error("job history of {job} has a bad attempt {attempt} (start the job over)")]
    UnknownAttempt {
        /// The job.
        job: String,
        /// The attempt.
        attempt: String,
    },
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
    maps: Vec<Task>,
    reduces: Vec<Task>,
    attempts: BTreeMap<AttemptId, Attempt>,
    /// Unsatisfied asks and the attempt each was made for.
    asks: BTreeMap<u64, AttemptId>,
    /// Phase of every ask ever made, so a late allocation for a cancelled ask can still be used.
    ask_kinds: HashMap<u64, TaskKind>,
    next_ask: u64,
    containers: HashMap<ContainerId, AttemptId>,
    host_failures: BTreeMap<String, u32>,
    /// Hosts believed to be up: the RM's list if given, else replica hosts; plus hosts containers
    /// came from, minus lost ones.
    live_hosts: BTreeSet<String>,
    reduces_released: bool,
    /// When a reducer was last killed to make room for a waiting map.
    last_preemption_ms: Option<u64>,
    counters: Counters,
    completion_events: Vec<MapCompletionEvent>,
    start_ms: u64,
    finish_ms: Option<u64>,
    diagnostics: Option<String>,
    started: bool,
}

fn new_task(id: TaskId, hosts: Vec<String>, racks: Vec<String>) -> Task {
    Task {
        id,
        hosts,
        racks,
        attempts: Vec::new(),
        failures: 0,
        failed_hosts: BTreeSet::new(),
        last_error: None,
        outcome: Outcome::Open,
        ever_done: false,
        speculated: false,
    }
}

impl JobTracker {
    /// A tracker for `spec`, run with `config`; nothing is scheduled before [`JobTracker::start`].
    pub fn new(spec: JobSpec, config: JobConfig, now_ms: u64) -> JobTracker {
        let rack_of = |h: &String| {
            spec.host_racks
                .get(h)
                .cloned()
                .unwrap_or_else(|| DEFAULT_RACK.to_string())
        };
        let mut live_hosts = BTreeSet::new();
        let maps = spec
            .splits
            .iter()
            .enumerate()
            .map(|(i, s)| {
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
                new_task(TaskId::map(i as u32), hosts, racks)
            })
            .collect();
        let reduces = (0..spec.num_reduces)
            .map(|i| new_task(TaskId::reduce(i), Vec::new(), Vec::new()))
            .collect();
        JobTracker {
            job_id: spec.job_id,
            conf: spec.conf,
            num_reduces: spec.num_reduces,
            config,
            state: JobState::Running,
            maps,
            reduces,
            attempts: BTreeMap::new(),
            asks: BTreeMap::new(),
            ask_kinds: HashMap::new(),
            next_ask: 1,
            containers: HashMap::new(),
            host_failures: BTreeMap::new(),
            live_hosts,
            reduces_released: false,
            last_preemption_ms: None,
            counters: Counters::new(),
            completion_events: Vec::new(),
            start_ms: now_ms,
            finish_ms: None,
            diagnostics: None,
            started: false,
        }
    }

    /// A tracker for a new JobTracker attempt after the previous one died, seeded from the job
    /// history it left: committed tasks stay committed (their output is already promoted), failure
    /// counts and host blacklists carry over, attempt numbers continue, and whatever was running
    /// is counted as killed. Map outputs lived on NodeManagers and are not trusted: maps are run
    /// again unless every reduce is already committed. A history that ended the job makes a
    /// tracker that is already over; [`JobTracker::start`] then repeats the final action.
    pub fn recover(
        spec: JobSpec,
        config: JobConfig,
        history: &JobHistory,
        now_ms: u64,
    ) -> Result<JobTracker, RecoveryError> {
        if history.job_id != spec.job_id {
            return Err(RecoveryError::WrongJob {
                expected: spec.job_id,
                found: history.job_id.clone(),
            });
        }
        let mut jt = JobTracker::new(spec, config, history.start_ms);
        if history.maps_total as usize != jt.maps.len()
            || history.reduces_total as usize != jt.reduces.len()
        {
            return Err(RecoveryError::ShapeChanged {
                job: jt.job_id,
                history: (history.maps_total, history.reduces_total),
                now: (jt.maps.len() as u32, jt.reduces.len() as u32),
            });
        }
        jt.counters = history.counters.clone();
        let mut records: Vec<&AttemptRecord> = history.attempts.iter().collect();
        records.sort_by_key(|r| r.attempt);
        for r in records {
            let id = r.attempt;
            let tasks = match id.task.kind {
                TaskKind::Map => jt.maps.len(),
                TaskKind::Reduce => jt.reduces.len(),
            };
            if id.task.index as usize >= tasks || jt.attempts.contains_key(&id) {
                return Err(RecoveryError::UnknownAttempt {
                    job: jt.job_id,
                    attempt: id.to_string(),
                });
            }
            let lost = r.state.is_live();
            let state = if lost { AttemptState::Killed } else { r.state };
            let error = if lost {
                Some("lost with the previous JobTracker attempt".to_string())
            } else {
                r.error.clone()
            };
            if lost && r.start_ms.is_some() {
                jt.counters.incr(
                    JOB_GROUP,
                    match id.task.kind {
                        TaskKind::Map => NUM_KILLED_MAPS,
                        TaskKind::Reduce => NUM_KILLED_REDUCES,
                    },
                    1,
                );
            }
            jt.attempts.insert(
                id,
                Attempt {
                    id,
                    state,
                    speculative: r.speculative,
                    ask: None,
                    container: None,
                    host: r.host.clone(),
                    rack: r.rack.clone(),
                    locality: r.locality,
                    launched_ms: r.start_ms,
                    created_ms: r.start_ms.unwrap_or(now_ms),
                    end_ms: if lost { Some(now_ms) } else { r.end_ms },
                    progress: r.progress,
                    last_progress_ms: now_ms,
                    declined: 0,
                    avoid: BTreeSet::new(),
                    error: error.clone(),
                    output: None,
                    fetch_failures: 0,
                    committed: r.committed,
                },
            );
            let writes_output = id.task.kind == TaskKind::Reduce || jt.num_reduces == 0;
            let task = jt.task_mut(id.task);
            task.attempts.push(id);
            task.speculated |= r.speculative;
            if state == AttemptState::Failed {
                task.failures += 1;
                task.last_error = error;
                if let Some(host) = &r.host {
                    task.failed_hosts.insert(host.clone());
                }
            }
            if r.committed && writes_output {
                task.outcome = Outcome::Done(id);
                task.ever_done = true;
            } else if state == AttemptState::Succeeded && !writes_output {
                // Its output may be gone, but it did once succeed: needed again only if a
                // reduce still has to read it.
                task.ever_done = true;
            }
        }
        for r in &history.attempts {
            if let (AttemptState::Failed, Some(host)) = (r.state, &r.host) {
                *jt.host_failures.entry(host.clone()).or_insert(0) += 1;
            }
        }
        jt.diagnostics = history.diagnostics.clone();
        if history.state.is_terminal() {
            jt.state = history.state;
            jt.finish_ms = history.finish_ms;
        }
        Ok(jt)
    }

    /// Asks for the map containers (and reduce ones if slow start already allows). Idempotent.
    /// On a tracker recovered from a finished job, returns that job's final action instead.
    pub fn start(&mut self, now_ms: u64) -> Vec<Action> {
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
        for i in 0..self.maps.len() {
            self.reconcile(self.maps[i].id, now_ms, &mut out);
        }
        self.check_progress(now_ms, &mut out);
        self.balance_reduces(now_ms, &mut out);
        out
    }

    /// Applies one event that happened at `now_ms` and returns what to do about it.
    pub fn handle(&mut self, now_ms: u64, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        if !self.started {
            // Events before start can only be stale; starting first keeps the state consistent.
            out = self.start(now_ms);
        }
        match event {
            Event::ContainerAllocated {
                container,
                ask_id,
                host,
                rack,
            } => self.on_allocated(container, ask_id, host, rack, now_ms, &mut out),
            Event::AttemptStarted { attempt } => {
                if let Some(a) = self.attempts.get_mut(&attempt) {
                    if a.state == AttemptState::Assigned {
                        a.state = AttemptState::Running;
                        a.last_progress_ms = now_ms;
                    }
                }
            }
            Event::AttemptProgress {
                attempt,
                progress,
                alive,
            } => {
                if let Some(a) = self.attempts.get_mut(&attempt) {
                    if matches!(a.state, AttemptState::Assigned | AttemptState::Running)
                        && progress.is_finite()
                    {
                        a.state = AttemptState::Running;
                        let progress = progress.clamp(0.0, 1.0);
                        // Forward motion or work the task vouches for resets the timeout; a
                        // heartbeat alone does not: a stuck task's ping thread still pings.
                        if progress > a.progress {
                            a.progress = progress;
                            a.last_progress_ms = now_ms;
                        } else if alive {
                            a.last_progress_ms = now_ms;
                        }
                    }
                }
            }
            Event::AttemptSucceeded { attempt, output } => {
                self.on_succeeded(attempt, output, now_ms, &mut out)
            }
            Event::AttemptFailed { attempt, reason } => {
                if self.is_launched_and_live(attempt) {
                    self.end_attempt(
                        attempt,
                        AttemptState::Failed,
                        reason,
                        Ending::Reported,
                        now_ms,
                        &mut out,
                    );
                    self.reconcile(attempt.task, now_ms, &mut out);
                }
            }
            Event::AttemptKilled { attempt, reason } => {
                if self.is_launched_and_live(attempt) {
                    self.end_attempt(
                        attempt,
                        AttemptState::Killed,
                        reason,
                        Ending::Reported,
                        now_ms,
                        &mut out,
                    );
                    self.reconcile(attempt.task, now_ms, &mut out);
                }
            }
            Event::ContainerCompleted {
                container,
                diagnostics,
            } => {
                if let Some(attempt) = self.containers.get(&container).copied() {
                    if self.is_launched_and_live(attempt) {
                        self.end_attempt(
                            attempt,
                            AttemptState::Failed,
                            format!("container {container} exited: {diagnostics}"),
                            Ending::Gone,
                            now_ms,
                            &mut out,
                        );
                        self.reconcile(attempt.task, now_ms, &mut out);
                    }
                }
            }
            Event::ClusterHosts { hosts } => {
                self.live_hosts = hosts.into_iter().collect();
            }
            Event::NodeLost { host } => self.on_node_lost(&host, now_ms, &mut out),
            Event::FetchFailure { reducer, map } => {
                self.on_fetch_failure(reducer, map, now_ms, &mut out)
            }
            Event::TaskCommitted { attempt } => {
                if let Some(task) = self.task_of(attempt) {
                    if task.outcome == Outcome::Committing(attempt) {
                        task.outcome = Outcome::Done(attempt);
                        task.ever_done = true;
                        if let Some(a) = self.attempts.get_mut(&attempt) {
                            a.committed = true;
                        }
                        self.check_progress(now_ms, &mut out);
                    }
                }
            }
            Event::TaskCommitFailed { attempt, reason } => {
                self.on_commit_failed(attempt, reason, now_ms, &mut out)
            }
            Event::JobCommitted => {
                if self.state == JobState::Committing {
                    self.state = JobState::Succeeded;
                    self.finish_ms = Some(now_ms);
                    out.push(Action::JobSucceeded);
                }
            }
            Event::JobCommitFailed { reason } => {
                if self.state == JobState::Committing {
                    let reason = format!("job commit failed: {reason}");
                    self.state = JobState::Failed;
                    self.finish_ms = Some(now_ms);
                    self.diagnostics = Some(reason.clone());
                    out.push(Action::JobFailed { reason });
                }
            }
            Event::Tick => {
                if self.state == JobState::Running {
                    self.expire_silent_attempts(now_ms, &mut out);
                    self.speculate(TaskKind::Map, now_ms, &mut out);
                    self.speculate(TaskKind::Reduce, now_ms, &mut out);
                    self.check_progress(now_ms, &mut out);
                }
            }
            // A kill while committing is not honoured: the output is being made visible, and
            // stopping half way could leave it neither there nor cleanly absent.
            Event::Kill { reason } => {
                if self.state == JobState::Running {
                    let reason = format!("job killed: {reason}");
                    self.wind_down(&reason, now_ms, &mut out);
                    self.state = JobState::Killed;
                    self.finish_ms = Some(now_ms);
                    self.diagnostics = Some(reason.clone());
                    out.push(Action::JobKilled { reason });
                }
            }
        }
        self.balance_reduces(now_ms, &mut out);
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

    /// Job counters so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Map outputs that became available or went away, from index `from` on (reducers poll
    /// with the count they have seen).
    pub fn map_completion_events(&self, from: usize) -> &[MapCompletionEvent] {
        self.completion_events.get(from..).unwrap_or_default()
    }

    /// When the next task timeout or reducer preemption can fire: the shell should tick no
    /// later than this (and about once a second anyway, for speculation).
    pub fn next_timeout(&self) -> Option<u64> {
        if self.state != JobState::Running {
            return None;
        }
        if self.config.task_timeout_ms == 0 {
            return self.next_preemption();
        }
        let timeouts = self
            .attempts
            .values()
            .filter(|a| matches!(a.state, AttemptState::Assigned | AttemptState::Running))
            .map(|a| {
                a.last_progress_ms
                    .saturating_add(self.config.task_timeout_ms)
            });
        timeouts.chain(self.next_preemption()).min()
    }

    /// A snapshot for `sheaf job status`.
    pub fn status(&self) -> JobStatus {
        let done = |tasks: &[Task]| {
            tasks
                .iter()
                .filter(|t| matches!(t.outcome, Outcome::Done(_)))
                .count() as u32
        };
        JobStatus {
            job_id: self.job_id.clone(),
            state: self.state,
            maps_done: done(&self.maps),
            maps_total: self.maps.len() as u32,
            reduces_done: done(&self.reduces),
            reduces_total: self.reduces.len() as u32,
            blacklisted_hosts: self
                .host_failures
                .keys()
                .filter(|h| self.is_blacklisted(h))
                .cloned()
                .collect(),
            diagnostics: self.diagnostics.clone(),
            attempts: self.attempts.values().map(Attempt::record).collect(),
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
            maps_total: self.maps.len() as u32,
            reduces_total: self.reduces.len() as u32,
            counters: self.counters.clone(),
            attempts: self.attempts.values().map(Attempt::record).collect(),
        }
    }

    // ---- lookups ----

    fn task(&self, id: TaskId) -> &Task {
        match id.kind {
            TaskKind::Map => &self.maps[id.index as usize],
            TaskKind::Reduce => &self.reduces[id.index as usize],
        }
    }

    fn task_mut(&mut self, id: TaskId) -> &mut Task {
        match id.kind {
            TaskKind::Map => &mut self.maps[id.index as usize],
            TaskKind::Reduce => &mut self.reduces[id.index as usize],
        }
    }

    /// The task of a known attempt (None for ids this tracker never issued).
    fn task_of(&mut self, attempt: AttemptId) -> Option<&mut Task> {
        if self.attempts.contains_key(&attempt) {
            Some(self.task_mut(attempt.task))
        } else {
            None
        }
    }

    fn is_launched_and_live(&self, id: AttemptId) -> bool {
        self.attempts
            .get(&id)
            .is_some_and(|a| matches!(a.state, AttemptState::Assigned | AttemptState::Running))
    }

    fn has_live_attempt(&self, id: TaskId) -> bool {
        self.task(id)
            .attempts
            .iter()
            .any(|a| self.attempts[a].state.is_live())
    }

    fn is_blacklisted(&self, host: &str) -> bool {
        self.host_failures
            .get(host)
            .is_some_and(|n| *n >= self.config.node_failure_limit)
    }

    fn max_attempts(&self, kind: TaskKind) -> u32 {
        match kind {
            TaskKind::Map => self.config.max_map_attempts,
            TaskKind::Reduce => self.config.max_reduce_attempts,
        }
    }

    fn all_reduces_finished(&self) -> bool {
        self.reduces.iter().all(|t| t.outcome != Outcome::Open)
    }

    fn locality(&self, task: TaskId, host: &str, rack: &str) -> Option<Locality> {
        if task.kind == TaskKind::Reduce {
            return None;
        }
        let t = self.task(task);
        Some(if t.hosts.iter().any(|h| h == host) {
            Locality::NodeLocal
        } else if t.racks.iter().any(|r| r == rack) {
            Locality::RackLocal
        } else {
            Locality::OffRack
        })
    }

    // ---- scheduling ----

    /// Makes sure an open task has an attempt while it is allowed one; fails the job when the
    /// task is out of attempts.
    fn reconcile(&mut self, id: TaskId, now: u64, out: &mut Vec<Action>) {
        if self.state != JobState::Running {
            return;
        }
        let task = self.task(id);
        if task.outcome != Outcome::Open {
            return;
        }
        // As in Hadoop, the task fails at its last allowed failure even if a twin still runs:
        // letting the twin go on would be a fifth attempt.
        if task.failures >= self.max_attempts(id.kind) {
            let reason = format!(
                "task {} failed {} times; last error: {}",
                id,
                task.failures,
                task.last_error.as_deref().unwrap_or("unknown")
            );
            self.fail_job(reason, now, out);
            return;
        }
        if self.has_live_attempt(id) {
            return;
        }
        if id.kind == TaskKind::Reduce && !self.reduces_released {
            return;
        }
        if id.kind == TaskKind::Map
            && self.num_reduces > 0
            && task.ever_done
            && self.all_reduces_finished()
        {
            // Its output was lost but no reducer needs it any more.
            return;
        }
        self.new_attempt(id, false, now, out);
    }

    fn new_attempt(&mut self, task_id: TaskId, speculative: bool, now: u64, out: &mut Vec<Action>) {
        let task = self.task(task_id);
        let mut avoid = task.failed_hosts.clone();
        if speculative {
            // A twin on the straggler's own host would share whatever makes it slow.
            avoid.extend(
                task.attempts
                    .iter()
                    .filter_map(|a| self.attempts[a].host.clone()),
            );
        }
        let id = AttemptId {
            task: task_id,
            // After a recovery the history may have gaps; never reuse a number.
            number: task
                .attempts
                .iter()
                .map(|a| a.number + 1)
                .max()
                .unwrap_or(0),
        };
        self.task_mut(task_id).attempts.push(id);
        self.attempts.insert(
            id,
            Attempt {
                id,
                state: AttemptState::Unassigned,
                speculative,
                ask: None,
                container: None,
                host: None,
                rack: None,
                locality: None,
                launched_ms: None,
                created_ms: now,
                end_ms: None,
                progress: 0.0,
                last_progress_ms: now,
                declined: 0,
                avoid,
                error: None,
                output: None,
                fetch_failures: 0,
                committed: false,
            },
        );
        self.ask_for(id, out);
    }

    /// Issues a fresh one-container ask for an unassigned attempt; a reduce's ask is held back
    /// while a map waits for a container ([`JobTracker::balance_reduces`] makes it later).
    fn ask_for(&mut self, id: AttemptId, out: &mut Vec<Action>) {
        if id.task.kind == TaskKind::Reduce && self.maps_waiting() {
            return;
        }
        let ask_id = self.next_ask;
        self.next_ask += 1;
        let a = &self.attempts[&id];
        let task = self.task(id.task);
        let request = match id.task.kind {
            TaskKind::Map => {
                let hosts: Vec<String> = task
                    .hosts
                    .iter()
                    .filter(|h| !a.avoid.contains(*h) && !self.is_blacklisted(h))
                    .cloned()
                    .collect();
                let retry = id.number > 0 && !a.speculative;
                ContainerRequest {
                    ask_id,
                    kind: TaskKind::Map,
                    resource: self.config.map_resource,
                    priority: if retry {
                        PRIORITY_FAST_FAIL_MAP
                    } else {
                        PRIORITY_MAP
                    },
                    hosts,
                    racks: task.racks.clone(),
                }
            }
            TaskKind::Reduce => ContainerRequest {
                ask_id,
                kind: TaskKind::Reduce,
                resource: self.config.reduce_resource,
                priority: PRIORITY_REDUCE,
                hosts: Vec::new(),
                racks: Vec::new(),
            },
        };
        self.asks.insert(ask_id, id);
        self.ask_kinds.insert(ask_id, id.task.kind);
        if let Some(a) = self.attempts.get_mut(&id) {
            a.ask = Some(ask_id);
        }
        out.push(Action::RequestContainer(request));
    }

    /// Whether an unassigned attempt takes a container on `host`: not on a blacklisted host or
    /// one it avoids, unless no other live host is left or it has waited long enough.
    fn accepts(&self, a: &Attempt, host: &str) -> bool {
        if a.declined >= self.config.max_declined_offers {
            return true;
        }
        if !self.is_blacklisted(host) && !a.avoid.contains(host) {
            return true;
        }
        !self
            .live_hosts
            .iter()
            .any(|h| !self.is_blacklisted(h) && !a.avoid.contains(h))
    }

    /// The unassigned attempt of `kind` that should get a container on `host`: best locality,
    /// then retries, then first attempts, then twins, in task order.
    fn best_unassigned(&self, kind: TaskKind, host: &str, rack: &str) -> Option<AttemptId> {
        self.attempts
            .values()
            .filter(|a| {
                a.state == AttemptState::Unassigned
                    && a.id.task.kind == kind
                    && self.accepts(a, host)
            })
            .min_by_key(|a| {
                let locality = match self.locality(a.id.task, host, rack) {
                    Some(Locality::NodeLocal) | None => 0,
                    Some(Locality::RackLocal) => 1,
                    Some(Locality::OffRack) => 2,
                };
                let class = if a.speculative {
                    2
                } else if a.id.number > 0 {
                    0
                } else {
                    1
                };
                (locality, class, a.id)
            })
            .map(|a| a.id)
    }

    fn on_allocated(
        &mut self,
        container: ContainerId,
        ask_id: u64,
        host: String,
        rack: String,
        now: u64,
        out: &mut Vec<Action>,
    ) {
        if self.containers.contains_key(&container) {
            return; // duplicate report
        }
        let consumed_for = self.asks.remove(&ask_id);
        if let Some(a) = consumed_for.and_then(|id| self.attempts.get_mut(&id)) {
            a.ask = None;
        }
        let kind = self.ask_kinds.get(&ask_id).copied();
        let pick = match kind {
            // A reduce container granted before its ask was withdrawn for waiting maps: taking
            // it would hold back the maps the withdrawal was for.
            Some(TaskKind::Reduce) if self.maps_waiting() => None,
            Some(kind) if self.state == JobState::Running => {
                self.live_hosts.insert(host.clone());
                self.best_unassigned(kind, &host, &rack)
            }
            _ => None,
        };
        match pick {
            Some(id) => {
                // The container went to another attempt than the ask's: that attempt's own ask
                // is now surplus.
                if let Some(own) = self.attempts.get_mut(&id).and_then(|a| a.ask.take()) {
                    self.asks.remove(&own);
                    out.push(Action::CancelRequest { ask_id: own });
                }
                self.launch(id, container, host, rack, now, out);
            }
            None => {
                out.push(Action::ReleaseContainer { container });
                if kind != Some(TaskKind::Reduce) || !self.maps_waiting() {
                    if let Some(a) = consumed_for.and_then(|id| self.attempts.get_mut(&id)) {
                        a.declined += 1;
                    }
                }
            }
        }
        // The attempt this ask was for still waits: ask again for it.
        if let Some(waiting) = consumed_for {
            if self.state == JobState::Running
                && Some(waiting) != pick
                && self
                    .attempts
                    .get(&waiting)
                    .is_some_and(|a| a.state == AttemptState::Unassigned && a.ask.is_none())
            {
                self.ask_for(waiting, out);
            }
        }
    }

    fn launch(
        &mut self,
        id: AttemptId,
        container: ContainerId,
        host: String,
        rack: String,
        now: u64,
        out: &mut Vec<Action>,
    ) {
        let locality = self.locality(id.task, &host, &rack);
        let Some(a) = self.attempts.get_mut(&id) else {
            return;
        };
        a.state = AttemptState::Assigned;
        a.container = Some(container.clone());
        a.host = Some(host.clone());
        a.rack = Some(rack);
        a.locality = locality;
        a.launched_ms = Some(now);
        a.last_progress_ms = now;
        let speculative = a.speculative;
        self.containers.insert(container.clone(), id);
        let c = &mut self.counters;
        match id.task.kind {
            TaskKind::Map => c.incr(JOB_GROUP, TOTAL_LAUNCHED_MAPS, 1),
            TaskKind::Reduce => c.incr(JOB_GROUP, TOTAL_LAUNCHED_REDUCES, 1),
        }
        match locality {
            Some(Locality::NodeLocal) => c.incr(JOB_GROUP, DATA_LOCAL_MAPS, 1),
            Some(Locality::RackLocal) => c.incr(JOB_GROUP, RACK_LOCAL_MAPS, 1),
            Some(Locality::OffRack) => c.incr(JOB_GROUP, OTHER_LOCAL_MAPS, 1),
            None => {}
        }
        if speculative {
            c.incr(JOB_GROUP, SPECULATIVE_ATTEMPTS_LAUNCHED, 1);
        }
        out.push(Action::Launch {
            attempt: id,
            container,
            host,
        });
    }

    // ---- reduce ramp-up and preemption ----

    /// Whether some map task waits for a container (twins excluded: their task has one).
    fn maps_waiting(&self) -> bool {
        self.waiting_maps().next().is_some()
    }

    /// When each map task that waits for a container started waiting.
    fn waiting_maps(&self) -> impl Iterator<Item = u64> + '_ {
        self.attempts
            .values()
            .filter(|a| {
                a.id.task.kind == TaskKind::Map
                    && a.state == AttemptState::Unassigned
                    && !a.speculative
            })
            .map(|a| a.created_ms)
    }

    /// The reduce attempts holding a container, newest launch last.
    fn launched_reduces(&self) -> Vec<AttemptId> {
        let mut live: Vec<(u64, AttemptId)> = self
            .attempts
            .values()
            .filter(|a| {
                a.id.task.kind == TaskKind::Reduce
                    && matches!(a.state, AttemptState::Assigned | AttemptState::Running)
            })
            .map(|a| (a.launched_ms.unwrap_or(0), a.id))
            .collect();
        live.sort();
        live.into_iter().map(|(_, id)| id).collect()
    }

    /// When a reducer will be preempted if nothing changes (None when none would be).
    fn next_preemption(&self) -> Option<u64> {
        if self.state != JobState::Running || self.launched_reduces().is_empty() {
            return None;
        }
        let delay = self.config.reducer_preempt_delay_ms;
        let waited_enough = self.waiting_maps().min()?.saturating_add(delay);
        let spaced = self
            .last_preemption_ms
            .map_or(0, |t| t.saturating_add(delay));
        Some(waited_enough.max(spaced))
    }

    /// Hadoop's reduce ramp-up and preemption (RMContainerAllocator), without knowing the
    /// cluster's capacity: a reducer holds its container until every map is done, so reducers
    /// placed ahead of maps can take every container and deadlock the job. While a map waits
    /// for a container no reduce ask stays outstanding; once every map has one, the held-back
    /// reduces ask. A map waiting longer than the preemption delay while reducers run gets the
    /// newest reducer's container (KILLED, so not counted against the task), at most one per
    /// delay.
    fn balance_reduces(&mut self, now: u64, out: &mut Vec<Action>) {
        if self.state != JobState::Running || self.reduces.is_empty() {
            return;
        }
        if self.next_preemption().is_some_and(|at| at <= now) {
            if let Some(victim) = self.launched_reduces().pop() {
                self.last_preemption_ms = Some(now);
                self.end_attempt(
                    victim,
                    AttemptState::Killed,
                    "preempted: its container is needed by a map waiting for one".to_string(),
                    Ending::Decided,
                    now,
                    out,
                );
                self.reconcile(victim.task, now, out);
            }
        }
        let unasked: Vec<AttemptId> = self
            .attempts
            .values()
            .filter(|a| a.id.task.kind == TaskKind::Reduce && a.state == AttemptState::Unassigned)
            .filter(|a| a.ask.is_some() == self.maps_waiting())
            .map(|a| a.id)
            .collect();
        for id in unasked {
            if self.maps_waiting() {
                if let Some(ask_id) = self.attempts.get_mut(&id).and_then(|a| a.ask.take()) {
                    self.asks.remove(&ask_id);
                    out.push(Action::CancelRequest { ask_id });
                }
            } else {
                self.ask_for(id, out);
            }
        }
    }

    /// Moves an attempt to FAILED or KILLED (from a live state, or from SUCCEEDED when a map's
    /// output is lost), handling its ask or container and the counters. Does not reschedule.
    fn end_attempt(
        &mut self,
        id: AttemptId,
        to: AttemptState,
        reason: String,
        ending: Ending,
        now: u64,
        out: &mut Vec<Action>,
    ) {
        let Some(a) = self.attempts.get_mut(&id) else {
            return;
        };
        let prev = a.state;
        if !prev.is_live() && prev != AttemptState::Succeeded {
            return;
        }
        if let Some(ask_id) = a.ask.take() {
            self.asks.remove(&ask_id);
            out.push(Action::CancelRequest { ask_id });
        }
        if prev.is_live() {
            if let Some(container) = a.container.clone() {
                self.containers.remove(&container);
                match ending {
                    Ending::Reported => out.push(Action::ReleaseContainer { container }),
                    Ending::Decided => out.push(Action::KillAttempt {
                        attempt: id,
                        container,
                    }),
                    Ending::Gone => {}
                }
            }
        }
        a.state = to;
        a.error = Some(reason.clone());
        if prev.is_live() {
            a.end_ms = Some(now);
        }
        let launched = a.launched();
        let host = a.host.clone();
        let millis = match (prev.is_live(), a.launched_ms) {
            (true, Some(start)) => now.saturating_sub(start) as i64,
            _ => 0,
        };
        let kind = id.task.kind;
        if launched {
            let name = match (kind, to) {
                (TaskKind::Map, AttemptState::Failed) => NUM_FAILED_MAPS,
                (TaskKind::Reduce, AttemptState::Failed) => NUM_FAILED_REDUCES,
                (TaskKind::Map, _) => NUM_KILLED_MAPS,
                (TaskKind::Reduce, _) => NUM_KILLED_REDUCES,
            };
            self.counters.incr(JOB_GROUP, name, 1);
            let millis_name = match kind {
                TaskKind::Map => MILLIS_MAPS,
                TaskKind::Reduce => MILLIS_REDUCES,
            };
            self.counters.incr(JOB_GROUP, millis_name, millis);
        }
        if to == AttemptState::Failed {
            let task = self.task_mut(id.task);
            task.failures += 1;
            task.last_error = Some(reason);
            if let Some(host) = host {
                task.failed_hosts.insert(host.clone());
                *self.host_failures.entry(host).or_insert(0) += 1;
            }
        }
    }

    fn on_succeeded(
        &mut self,
        id: AttemptId,
        output: Option<MapOutputLocation>,
        now: u64,
        out: &mut Vec<Action>,
    ) {
        if !self.is_launched_and_live(id) {
            return; // unknown, or already ended (a late report from a killed attempt)
        }
        let task = self.task(id.task);
        if task.outcome != Outcome::Open {
            let speculated = task.speculated;
            self.end_attempt(
                id,
                AttemptState::Killed,
                "another attempt of the task already succeeded".to_string(),
                Ending::Reported,
                now,
                out,
            );
            if speculated {
                self.counters
                    .incr(JOB_GROUP, SPECULATIVE_ATTEMPTS_KILLED, 1);
            }
            return;
        }
        let map_with_shuffle = id.task.kind == TaskKind::Map && self.num_reduces > 0;
        let location = match (map_with_shuffle, output) {
            (true, None) => {
                self.end_attempt(
                    id,
                    AttemptState::Failed,
                    "map finished without reporting where its output is".to_string(),
                    Ending::Reported,
                    now,
                    out,
                );
                self.reconcile(id.task, now, out);
                return;
            }
            (true, Some(location)) => Some(location),
            (false, _) => None,
        };
        let Some(a) = self.attempts.get_mut(&id) else {
            return;
        };
        a.state = AttemptState::Succeeded;
        a.end_ms = Some(now);
        a.progress = 1.0;
        a.output = location.clone();
        let millis = now.saturating_sub(a.launched_ms.unwrap_or(now)) as i64;
        if let Some(container) = a.container.clone() {
            self.containers.remove(&container);
            out.push(Action::ReleaseContainer { container });
        }
        self.counters.incr(
            JOB_GROUP,
            match id.task.kind {
                TaskKind::Map => MILLIS_MAPS,
                TaskKind::Reduce => MILLIS_REDUCES,
            },
            millis,
        );
        let task = self.task_mut(id.task);
        if let Some(location) = location {
            task.outcome = Outcome::Done(id);
            task.ever_done = true;
            self.completion_events.push(MapCompletionEvent {
                attempt: id,
                available: true,
                location,
            });
        } else {
            task.outcome = Outcome::Committing(id);
            out.push(Action::CommitTask { attempt: id });
        }
        // First to finish wins: its twin (running or still waiting) goes.
        let task = self.task(id.task);
        let speculated = task.speculated;
        let others: Vec<AttemptId> = task
            .attempts
            .iter()
            .copied()
            .filter(|o| *o != id && self.attempts[o].state.is_live())
            .collect();
        for other in others {
            let launched = self.attempts[&other].launched();
            self.end_attempt(
                other,
                AttemptState::Killed,
                format!("attempt {id} succeeded first"),
                Ending::Decided,
                now,
                out,
            );
            if speculated && launched {
                self.counters
                    .incr(JOB_GROUP, SPECULATIVE_ATTEMPTS_KILLED, 1);
            }
        }
        self.check_progress(now, out);
    }

    fn on_commit_failed(&mut self, id: AttemptId, reason: String, now: u64, out: &mut Vec<Action>) {
        let Some(task) = self.task_of(id) else {
            return;
        };
        if task.outcome != Outcome::Committing(id) {
            return;
        }
        task.outcome = Outcome::Open;
        self.end_attempt(
            id,
            AttemptState::Failed,
            format!("commit failed: {reason}"),
            Ending::Gone,
            now,
            out,
        );
        self.reconcile(id.task, now, out);
    }

    /// A map's output went away (node lost, unfetchable): the task is open again and reducers
    /// are told to forget that output.
    fn lose_map_output(
        &mut self,
        id: AttemptId,
        to: AttemptState,
        reason: String,
        now: u64,
        out: &mut Vec<Action>,
    ) {
        if self.task(id.task).outcome != Outcome::Done(id) {
            return;
        }
        self.task_mut(id.task).outcome = Outcome::Open;
        if let Some(location) = self.attempts.get(&id).and_then(|a| a.output.clone()) {
            self.completion_events.push(MapCompletionEvent {
                attempt: id,
                available: false,
                location,
            });
        }
        self.end_attempt(id, to, reason, Ending::Gone, now, out);
        self.reconcile(id.task, now, out);
    }

    fn on_node_lost(&mut self, host: &str, now: u64, out: &mut Vec<Action>) {
        self.live_hosts.remove(host);
        let on_host: Vec<AttemptId> = self
            .attempts
            .values()
            .filter(|a| a.host.as_deref() == Some(host))
            .map(|a| a.id)
            .collect();
        let reason = format!("node {host} lost");
        for id in &on_host {
            if self.is_launched_and_live(*id) {
                // Not the task's fault: KILLED, so it does not use up an attempt.
                self.end_attempt(
                    *id,
                    AttemptState::Killed,
                    reason.clone(),
                    Ending::Gone,
                    now,
                    out,
                );
                self.reconcile(id.task, now, out);
            }
        }
        if self.num_reduces > 0 && !self.all_reduces_finished() {
            for id in on_host {
                if id.task.kind == TaskKind::Map {
                    self.lose_map_output(
                        id,
                        AttemptState::Killed,
                        format!("map output lost with node {host}"),
                        now,
                        out,
                    );
                }
            }
        }
        self.check_progress(now, out);
    }

    fn on_fetch_failure(
        &mut self,
        reducer: AttemptId,
        map: AttemptId,
        now: u64,
        out: &mut Vec<Action>,
    ) {
        if reducer.task.kind != TaskKind::Reduce
            || !self.attempts.contains_key(&reducer)
            || !self.attempts.contains_key(&map)
            || self.task(map.task).outcome != Outcome::Done(map)
            || self.num_reduces == 0
            || self.all_reduces_finished()
        {
            return;
        }
        let Some(a) = self.attempts.get_mut(&map) else {
            return;
        };
        a.fetch_failures += 1;
        let reports = a.fetch_failures;
        if reports >= self.config.fetch_failures_before_rerun {
            // Hadoop counts this against the map (TOO_MANY_FETCH_FAILURES): its host may be sick.
            self.lose_map_output(
                map,
                AttemptState::Failed,
                format!("too many fetch failures ({reports} reports from reducers)"),
                now,
                out,
            );
            self.check_progress(now, out);
        }
    }

    fn expire_silent_attempts(&mut self, now: u64, out: &mut Vec<Action>) {
        let timeout = self.config.task_timeout_ms;
        if timeout == 0 {
            return;
        }
        let expired: Vec<AttemptId> = self
            .attempts
            .values()
            .filter(|a| {
                matches!(a.state, AttemptState::Assigned | AttemptState::Running)
                    && now.saturating_sub(a.last_progress_ms) >= timeout
            })
            .map(|a| a.id)
            .collect();
        for id in expired {
            self.end_attempt(
                id,
                AttemptState::Failed,
                format!("timed out after {timeout} ms without progress"),
                Ending::Decided,
                now,
                out,
            );
            self.reconcile(id.task, now, out);
        }
    }

    /// Gives stragglers of one phase a twin once most of the phase is done.
    fn speculate(&mut self, kind: TaskKind, now: u64, out: &mut Vec<Action>) {
        let (enabled, tasks) = match kind {
            TaskKind::Map => (self.config.map_speculative, &self.maps),
            TaskKind::Reduce => (self.config.reduce_speculative, &self.reduces),
        };
        let total = tasks.len();
        if !enabled || total == 0 {
            return;
        }
        let done = tasks.iter().filter(|t| t.outcome != Outcome::Open).count();
        if done == total || (done as f64) < self.config.speculation_start_fraction * total as f64 {
            return;
        }
        let mut live = Vec::new();
        let mut speculative_running = 0usize;
        for task in tasks.iter().filter(|t| t.outcome == Outcome::Open) {
            let live_attempts: Vec<&Attempt> = task
                .attempts
                .iter()
                .map(|a| &self.attempts[a])
                .filter(|a| a.state.is_live())
                .collect();
            speculative_running += live_attempts.iter().filter(|a| a.speculative).count();
            for a in &live_attempts {
                if let Some(start) = a.launched_ms {
                    live.push(LiveAttempt {
                        attempt: a.id,
                        elapsed_ms: now.saturating_sub(start),
                        progress: a.progress,
                        may_speculate: !task.speculated && live_attempts.len() == 1,
                    });
                }
            }
        }
        let finished: Vec<u64> = self
            .attempts
            .values()
            .filter(|a| a.id.task.kind == kind && a.state == AttemptState::Succeeded)
            .filter_map(|a| Some(a.end_ms?.saturating_sub(a.launched_ms?)))
            .collect();
        let cap = ((self.config.speculative_cap_fraction * total as f64) as usize).max(1);
        let budget = cap.saturating_sub(speculative_running);
        for straggler in stragglers(&live, &finished, &self.config, budget) {
            self.task_mut(straggler.task).speculated = true;
            self.new_attempt(straggler.task, true, now, out);
        }
    }

    /// Releases reducers once slow start allows, and starts the job commit once every task is
    /// done.
    fn check_progress(&mut self, now: u64, out: &mut Vec<Action>) {
        if self.state != JobState::Running {
            return;
        }
        if !self.reduces_released && self.num_reduces > 0 {
            let done = self
                .maps
                .iter()
                .filter(|t| matches!(t.outcome, Outcome::Done(_)))
                .count();
            if done as f64 >= self.config.reduce_slowstart * self.maps.len() as f64 {
                self.reduces_released = true;
                for i in 0..self.reduces.len() {
                    self.reconcile(self.reduces[i].id, now, out);
                }
            }
        }
        let maps_done = if self.num_reduces > 0 {
            self.maps.iter().all(|t| t.ever_done)
        } else {
            self.maps
                .iter()
                .all(|t| matches!(t.outcome, Outcome::Done(_)))
        };
        let reduces_done = self
            .reduces
            .iter()
            .all(|t| matches!(t.outcome, Outcome::Done(_)));
        if self.state == JobState::Running && maps_done && reduces_done {
            // Leftovers (a map re-run nobody needs any more) must not outlive the job.
            self.wind_down("job is committing", now, out);
            self.state = JobState::Committing;
            out.push(Action::CommitJob);
        }
    }

    fn fail_job(&mut self, reason: String, now: u64, out: &mut Vec<Action>) {
        if self.state != JobState::Running {
            return;
        }
        self.wind_down("job failed", now, out);
        self.state = JobState::Failed;
        self.finish_ms = Some(now);
        self.diagnostics = Some(reason.clone());
        out.push(Action::JobFailed { reason });
    }

    /// Kills every live attempt and withdraws every ask.
    fn wind_down(&mut self, reason: &str, now: u64, out: &mut Vec<Action>) {
        let live: Vec<AttemptId> = self
            .attempts
            .values()
            .filter(|a| a.state.is_live())
            .map(|a| a.id)
            .collect();
        for id in live {
            self.end_attempt(
                id,
                AttemptState::Killed,
                reason.to_string(),
                Ending::Decided,
                now,
                out,
            );
        }
    }
}
