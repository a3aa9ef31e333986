//! [`AttemptBook`]: the tasks, their attempts and the nodes' failure counts.

use super::speculation::{stragglers, LiveAttempt};
use super::{AttemptId, AttemptPolicy, AttemptState, Now};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus<T> {
    /// Needs (more) work.
    Open,
    /// An attempt succeeded and won; its output is not final yet (a commit is in flight).
    Won(AttemptId<T>),
    /// The winner's output is final (committed, or needs no commit).
    Done(AttemptId<T>),
}

/// One attempt as the book keeps it, plus the master's own data `D` about it.
#[derive(Debug, Clone)]
pub struct Attempt<T, D = ()> {
    /// The attempt.
    pub id: AttemptId<T>,
    /// Where it is in its life.
    pub state: AttemptState,
    /// A twin of a straggler.
    pub speculative: bool,
    /// The node it was launched on.
    pub node: Option<String>,
    /// When it was made (how long it has waited for a container while unassigned).
    pub created: Now,
    /// When it was launched.
    pub launched: Option<Now>,
    /// When it stopped being live.
    pub ended: Option<Now>,
    /// Reported progress, 0.0 ..= 1.0.
    pub progress: f64,
    /// Monotonic ms of its last sign of life (launch, progress, vouched heartbeat).
    pub last_progress_ms: u64,
    /// Nodes it should not run on (where its task failed; its twin's nodes).
    pub avoid: BTreeSet<String>,
    /// Why it failed or was killed.
    pub error: Option<String>,
    /// The master's data about it (containers, outputs …).
    pub data: D,
}

impl<T, D> Attempt<T, D> {
    /// Whether it was ever launched.
    pub fn is_launched(&self) -> bool {
        self.launched.is_some()
    }

    /// Milliseconds from launch to end, for successful attempts (speculation's yardstick).
    fn run_ms(&self) -> Option<u64> {
        Some(
            self.ended?
                .monotonic_ms
                .saturating_sub(self.launched?.monotonic_ms),
        )
    }
}

/// How an attempt's end went, for the master's own accounting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// Its state before: live (its container must be dealt with) or SUCCEEDED (a lost output).
    pub was: AttemptState,
    /// Whether it was ever launched.
    pub launched: bool,
    /// Milliseconds it ran, when it ended from a launched live state (else 0).
    pub ran_ms: u64,
}

/// What a task does after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It may run again, preferably not on these nodes (where its attempts failed).
    Retry {
        /// Nodes its attempts failed on.
        avoid_nodes: BTreeSet<String>,
    },
    /// It used up its attempts: the master should give up on it (Hadoop fails the job).
    GiveUp {
        /// Failed attempts so far.
        failures: u32,
        /// The last failure's reason.
        last_error: String,
    },
}

/// A failed attempt's end and what its task does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// How the attempt ended.
    pub ended: Ended,
    /// Retry or give up.
    pub verdict: Verdict,
}

/// What a reported success means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Success<T> {
    /// The attempt won its task. `twins` are the task's other live attempts: end them.
    Won {
        /// Still-live attempts of the same task, oldest first.
        twins: Vec<AttemptId<T>>,
    },
    /// Another attempt already won: this one was ended as KILLED.
    AlreadyDone {
        /// How it ended.
        ended: Ended,
        /// Whether its task had a speculative twin (Hadoop counts such kills apart).
        speculated: bool,
    },
    /// Unknown, or not live any more (a late report from an ended attempt): ignored.
    NotLive,
}

#[derive(Debug)]
struct TaskEntry<T> {
    attempts: Vec<AttemptId<T>>,
    max_attempts: u32,
    failures: u32,
    failed_nodes: BTreeSet<String>,
    last_error: Option<String>,
    status: TaskStatus<T>,
    /// Finished at least once (a task whose output was later lost keeps this).
    ever_done: bool,
    /// Already got its one speculative twin.
    speculated: bool,
}

/// Tasks keyed by `T`, their attempts (each with the master's data `D`), and failures per node.
/// See the [module docs](super).
#[derive(Debug)]
pub struct AttemptBook<T, D = ()> {
    policy: AttemptPolicy,
    tasks: BTreeMap<T, TaskEntry<T>>,
    attempts: BTreeMap<AttemptId<T>, Attempt<T, D>>,
    node_failures: BTreeMap<String, u32>,
}

impl<T: Copy + Ord + Debug, D: Default> AttemptBook<T, D> {
    /// An empty book with `policy`'s limits.
    pub fn new(policy: AttemptPolicy) -> Self {
        AttemptBook {
            policy,
            tasks: BTreeMap::new(),
            attempts: BTreeMap::new(),
            node_failures: BTreeMap::new(),
        }
    }

    /// The limits.
    pub fn policy(&self) -> &AttemptPolicy {
        &self.policy
    }

    // ---- tasks ----

    /// Adds an open task with the policy's attempt limit (no-op if known).
    pub fn add_task(&mut self, task: T) {
        self.add_task_with_max_attempts(task, self.policy.max_attempts);
    }

    /// Adds an open task that gives up after `max_attempts` failures (at least 1).
    pub fn add_task_with_max_attempts(&mut self, task: T, max_attempts: u32) {
        self.tasks.entry(task).or_insert_with(|| TaskEntry {
            attempts: Vec::new(),
            max_attempts: max_attempts.max(1),
            failures: 0,
            failed_nodes: BTreeSet::new(),
            last_error: None,
            status: TaskStatus::Open,
            ever_done: false,
            speculated: false,
        });
    }

    /// Every task, in key order.
    pub fn tasks(&self) -> impl Iterator<Item = T> + '_ {
        self.tasks.keys().copied()
    }

    /// Where `task` stands (unknown tasks are open).
    pub fn status(&self, task: T) -> TaskStatus<T> {
        self.tasks.get(&task).map_or(TaskStatus::Open, |t| t.status)
    }

    /// Whether `task` still needs work.
    pub fn is_open(&self, task: T) -> bool {
        self.status(task) == TaskStatus::Open
    }

    /// Whether `task`'s output is final.
    pub fn is_done(&self, task: T) -> bool {
        matches!(self.status(task), TaskStatus::Done(_))
    }

    /// Whether `task` was ever done (its output may have been lost since).
    pub fn was_ever_done(&self, task: T) -> bool {
        self.tasks.get(&task).is_some_and(|t| t.ever_done)
    }

    /// Failed attempts of `task`.
    pub fn failures(&self, task: T) -> u32 {
        self.tasks.get(&task).map_or(0, |t| t.failures)
    }

    /// Why `task`'s last attempt failed.
    pub fn last_error(&self, task: T) -> Option<&str> {
        self.tasks.get(&task).and_then(|t| t.last_error.as_deref())
    }

    /// Whether `task` used up its attempts. As in Hadoop, a task fails at its last allowed
    /// failure even if a twin still runs: letting the twin go on would be one attempt too many.
    pub fn is_exhausted(&self, task: T) -> bool {
        self.tasks
            .get(&task)
            .is_some_and(|t| t.failures >= t.max_attempts)
    }

    /// Whether `task` has an attempt waiting, assigned or running.
    pub fn has_live_attempt(&self, task: T) -> bool {
        self.attempts_of(task).any(|a| a.state.is_live())
    }

    /// Whether `task` already got its speculative twin.
    pub fn has_speculated(&self, task: T) -> bool {
        self.tasks.get(&task).is_some_and(|t| t.speculated)
    }

    /// The attempts of `task`, oldest first.
    pub fn attempts_of(&self, task: T) -> impl Iterator<Item = &Attempt<T, D>> + '_ {
        self.tasks
            .get(&task)
            .into_iter()
            .flat_map(|t| t.attempts.iter())
            .filter_map(|id| self.attempts.get(id))
    }

    // ---- attempts ----

    /// Every attempt, by task then number.
    pub fn attempts(&self) -> impl Iterator<Item = &Attempt<T, D>> + '_ {
        self.attempts.values()
    }

    /// One attempt.
    pub fn attempt(&self, id: AttemptId<T>) -> Option<&Attempt<T, D>> {
        self.attempts.get(&id)
    }

    /// The master's data about an attempt.
    pub fn data_mut(&mut self, id: AttemptId<T>) -> Option<&mut D> {
        self.attempts.get_mut(&id).map(|a| &mut a.data)
    }

    /// Whether the attempt is waiting, assigned or running.
    pub fn is_live(&self, id: AttemptId<T>) -> bool {
        self.attempts.get(&id).is_some_and(|a| a.state.is_live())
    }

    /// Whether the attempt holds a container (assigned or running).
    pub fn is_launched_and_live(&self, id: AttemptId<T>) -> bool {
        self.attempts
            .get(&id)
            .is_some_and(|a| a.state.is_launched_and_live())
    }

    /// A new attempt of `task` waiting for a container (the task is added if unknown). It avoids
    /// the nodes its task failed on, and a twin (`speculative`) also its siblings' nodes: it
    /// would share whatever makes them slow. A twin marks its task as speculated.
    pub fn create_attempt(&mut self, task: T, speculative: bool, now: Now) -> AttemptId<T> {
        self.add_task(task);
        let entry = &self.tasks[&task];
        let mut avoid = entry.failed_nodes.clone();
        if speculative {
            avoid.extend(
                entry
                    .attempts
                    .iter()
                    .filter_map(|a| self.attempts.get(a)?.node.clone()),
            );
        }
        let id = AttemptId {
            task,
            // After a recovery the history may have gaps; never reuse a number.
            number: entry
                .attempts
                .iter()
                .map(|a| a.number + 1)
                .max()
                .unwrap_or(0),
        };
        if let Some(entry) = self.tasks.get_mut(&task) {
            entry.attempts.push(id);
            entry.speculated |= speculative;
        }
        self.attempts.insert(
            id,
            Attempt {
                id,
                state: AttemptState::Unassigned,
                speculative,
                node: None,
                created: now,
                launched: None,
                ended: None,
                progress: 0.0,
                last_progress_ms: now.monotonic_ms,
                avoid,
                error: None,
                data: D::default(),
            },
        );
        id
    }

    /// A new attempt of `task` launched on `node` at once (masters without a container wait).
    pub fn start_attempt(&mut self, task: T, node: &str, now: Now) -> AttemptId<T> {
        let id = self.create_attempt(task, false, now);
        self.launch(id, node, now);
        id
    }

    /// The waiting attempt got a container on `node`; false if it was not waiting.
    pub fn launch(&mut self, id: AttemptId<T>, node: &str, now: Now) -> bool {
        let Some(a) = self.attempts.get_mut(&id) else {
            return false;
        };
        if a.state != AttemptState::Unassigned {
            return false;
        }
        a.state = AttemptState::Assigned;
        a.node = Some(node.to_string());
        a.launched = Some(now);
        a.last_progress_ms = now.monotonic_ms;
        true
    }

    /// The attempt's process reported in.
    pub fn started(&mut self, id: AttemptId<T>, now: Now) {
        if let Some(a) = self.attempts.get_mut(&id) {
            if a.state == AttemptState::Assigned {
                a.state = AttemptState::Running;
                a.last_progress_ms = now.monotonic_ms;
            }
        }
    }

    /// A progress heartbeat. Forward motion, or work the task vouches for (`alive`), resets the
    /// timeout; a heartbeat alone does not: a stuck task's ping thread still pings.
    pub fn progress(&mut self, id: AttemptId<T>, fraction: f64, alive: bool, now: Now) {
        let Some(a) = self.attempts.get_mut(&id) else {
            return;
        };
        if !a.state.is_launched_and_live() || !fraction.is_finite() {
            return;
        }
        a.state = AttemptState::Running;
        let fraction = fraction.clamp(0.0, 1.0);
        if fraction > a.progress {
            a.progress = fraction;
            a.last_progress_ms = now.monotonic_ms;
        } else if alive {
            a.last_progress_ms = now.monotonic_ms;
        }
    }

    /// The attempt finished its work. The first success of a task wins it (the task becomes
    /// [`TaskStatus::Won`]); a success after that ends the attempt as KILLED.
    pub fn succeeded(&mut self, id: AttemptId<T>, now: Now) -> Success<T> {
        if !self.is_launched_and_live(id) {
            return Success::NotLive;
        }
        if !self.is_open(id.task) {
            let speculated = self.has_speculated(id.task);
            return match self.end(
                id,
                AttemptState::Killed,
                "another attempt of the task already succeeded".to_string(),
                now,
            ) {
                Some(ended) => Success::AlreadyDone { ended, speculated },
                None => Success::NotLive,
            };
        }
        if let Some(a) = self.attempts.get_mut(&id) {
            a.state = AttemptState::Succeeded;
            a.ended = Some(now);
            a.progress = 1.0;
        }
        let twins = self
            .attempts_of(id.task)
            .filter(|a| a.id != id && a.state.is_live())
            .map(|a| a.id)
            .collect();
        if let Some(t) = self.tasks.get_mut(&id.task) {
            t.status = TaskStatus::Won(id);
        }
        Success::Won { twins }
    }

    /// The winner's output is final: the task is done. False unless `id` won its task.
    pub fn committed(&mut self, id: AttemptId<T>) -> bool {
        match self.tasks.get_mut(&id.task) {
            Some(t) if t.status == TaskStatus::Won(id) => {
                t.status = TaskStatus::Done(id);
                t.ever_done = true;
                true
            }
            _ => false,
        }
    }

    /// The task of winner `id` is open again (its commit failed, its output was lost); end the
    /// attempt with [`AttemptBook::failed`] or [`AttemptBook::killed`] next. False unless `id`
    /// won or finished its task.
    pub fn reopen(&mut self, id: AttemptId<T>) -> bool {
        match self.tasks.get_mut(&id.task) {
            Some(t) if matches!(t.status, TaskStatus::Won(w) | TaskStatus::Done(w) if w == id) => {
                t.status = TaskStatus::Open;
                true
            }
            _ => false,
        }
    }

    /// The attempt failed: it counts toward its task's limit and its node's blacklist. `None`
    /// if it was neither live nor SUCCEEDED (already ended).
    pub fn failed(&mut self, id: AttemptId<T>, reason: String, now: Now) -> Option<Failure> {
        let ended = self.end(id, AttemptState::Failed, reason, now)?;
        let t = self.tasks.get(&id.task)?;
        let verdict = if t.failures >= t.max_attempts {
            Verdict::GiveUp {
                failures: t.failures,
                last_error: t.last_error.clone().unwrap_or_default(),
            }
        } else {
            Verdict::Retry {
                avoid_nodes: t.failed_nodes.clone(),
            }
        };
        Some(Failure { ended, verdict })
    }

    /// The attempt was killed (not its fault: it counts toward nothing). `None` if it was
    /// neither live nor SUCCEEDED.
    pub fn killed(&mut self, id: AttemptId<T>, reason: String, now: Now) -> Option<Ended> {
        self.end(id, AttemptState::Killed, reason, now)
    }

    fn end(
        &mut self,
        id: AttemptId<T>,
        to: AttemptState,
        reason: String,
        now: Now,
    ) -> Option<Ended> {
        let a = self.attempts.get_mut(&id)?;
        let was = a.state;
        if !was.is_live() && was != AttemptState::Succeeded {
            return None;
        }
        a.state = to;
        a.error = Some(reason.clone());
        if was.is_live() {
            a.ended = Some(now);
        }
        let ran_ms = match (was.is_live(), a.launched) {
            (true, Some(start)) => now.monotonic_ms.saturating_sub(start.monotonic_ms),
            _ => 0,
        };
        let ended = Ended {
            was,
            launched: a.launched.is_some(),
            ran_ms,
        };
        if to == AttemptState::Failed {
            let node = a.node.clone();
            if let Some(t) = self.tasks.get_mut(&id.task) {
                t.failures += 1;
                t.last_error = Some(reason);
                if let Some(node) = &node {
                    t.failed_nodes.insert(node.clone());
                }
            }
            if let Some(node) = node {
                *self.node_failures.entry(node).or_insert(0) += 1;
            }
        }
        Some(ended)
    }

    // ---- nodes ----

    /// Whether `node` had too many failed attempts to be used.
    pub fn is_blacklisted(&self, node: &str) -> bool {
        self.node_failures
            .get(node)
            .is_some_and(|n| *n >= self.policy.node_failure_limit)
    }

    /// The blacklisted nodes, sorted.
    pub fn blacklisted_nodes(&self) -> Vec<String> {
        self.node_failures
            .keys()
            .filter(|n| self.is_blacklisted(n))
            .cloned()
            .collect()
    }

    // ---- time ----

    /// Launched attempts without a sign of life for the policy's timeout (none if disabled).
    pub fn timed_out(&self, now: Now) -> Vec<AttemptId<T>> {
        let timeout = self.policy.timeout_ms;
        if timeout == 0 {
            return Vec::new();
        }
        self.attempts
            .values()
            .filter(|a| {
                a.state.is_launched_and_live()
                    && now.monotonic_ms.saturating_sub(a.last_progress_ms) >= timeout
            })
            .map(|a| a.id)
            .collect()
    }

    /// Monotonic ms at which the next timeout can fire (None when nothing can time out).
    pub fn next_timeout(&self) -> Option<u64> {
        let timeout = self.policy.timeout_ms;
        if timeout == 0 {
            return None;
        }
        self.attempts
            .values()
            .filter(|a| a.state.is_launched_and_live())
            .map(|a| a.last_progress_ms.saturating_add(timeout))
            .min()
    }

    // ---- speculation ----

    /// Tasks of the group `in_group` (a phase, a stage) worth a speculative twin now: once most
    /// of the group is done, open tasks whose only live attempt is a straggler, within the cap
    /// on concurrent twins. Create the twins with [`AttemptBook::create_attempt`].
    pub fn speculation_candidates(&self, in_group: impl Fn(T) -> bool, now: Now) -> Vec<T> {
        let policy = &self.policy.speculation;
        let group: Vec<(&T, &TaskEntry<T>)> =
            self.tasks.iter().filter(|(k, _)| in_group(**k)).collect();
        let total = group.len();
        if total == 0 {
            return Vec::new();
        }
        let done = group
            .iter()
            .filter(|(_, t)| t.status != TaskStatus::Open)
            .count();
        if done == total || (done as f64) < policy.start_fraction * total as f64 {
            return Vec::new();
        }
        let mut live = Vec::new();
        let mut speculative_running = 0usize;
        for (_, task) in group.iter().filter(|(_, t)| t.status == TaskStatus::Open) {
            let live_attempts: Vec<&Attempt<T, D>> = task
                .attempts
                .iter()
                .filter_map(|a| self.attempts.get(a))
                .filter(|a| a.state.is_live())
                .collect();
            speculative_running += live_attempts.iter().filter(|a| a.speculative).count();
            for a in &live_attempts {
                if let Some(start) = a.launched {
                    live.push(LiveAttempt {
                        attempt: a.id,
                        elapsed_ms: now.monotonic_ms.saturating_sub(start.monotonic_ms),
                        progress: a.progress,
                        may_speculate: !task.speculated && live_attempts.len() == 1,
                    });
                }
            }
        }
        let finished: Vec<u64> = self
            .attempts
            .values()
            .filter(|a| in_group(a.id.task) && a.state == AttemptState::Succeeded)
            .filter_map(Attempt::run_ms)
            .collect();
        let cap = ((policy.cap_fraction * total as f64) as usize).max(1);
        let budget = cap.saturating_sub(speculative_running);
        stragglers(&live, &finished, policy, budget)
            .into_iter()
            .map(|a| a.task)
            .collect()
    }

    // ---- recovery ----

    /// Puts back an attempt a previous master recorded (state, node, times from its history);
    /// a FAILED one counts toward its task and node as it did then. Returns false if the
    /// attempt is already known. Only wall times survive a master: both clocks of the restored
    /// times are set to them, which keeps their durations.
    pub fn restore(&mut self, attempt: Attempt<T, D>) -> bool {
        let id = attempt.id;
        if self.attempts.contains_key(&id) {
            return false;
        }
        self.add_task(id.task);
        if let Some(t) = self.tasks.get_mut(&id.task) {
            t.attempts.push(id);
            t.speculated |= attempt.speculative;
            if attempt.state == AttemptState::Failed {
                t.failures += 1;
                t.last_error = attempt.error.clone();
                if let Some(node) = &attempt.node {
                    t.failed_nodes.insert(node.clone());
                }
            }
        }
        if let (AttemptState::Failed, Some(node)) = (attempt.state, &attempt.node) {
            *self.node_failures.entry(node.clone()).or_insert(0) += 1;
        }
        self.attempts.insert(id, attempt);
        true
    }

    /// Recovery: `id`'s output is known final (the task is done).
    pub fn restore_done(&mut self, id: AttemptId<T>) {
        if let Some(t) = self.tasks.get_mut(&id.task) {
            t.status = TaskStatus::Done(id);
            t.ever_done = true;
        }
    }

    /// Recovery: `task` was done once, though its output may be gone.
    pub fn restore_ever_done(&mut self, task: T) {
        if let Some(t) = self.tasks.get_mut(&task) {
            t.ever_done = true;
        }
    }
}
