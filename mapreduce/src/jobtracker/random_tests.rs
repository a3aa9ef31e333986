//! Thousands of random event sequences (allocations on any host, stale and bogus reports, failures,
//! lost nodes, fetch failures, commit failures, timeouts, kills) checked against the JobTracker's
//! invariants after every step, then driven to the end to check the job always terminates.

use super::tests::{spec, Harness};
use super::*;
use std::collections::{BTreeMap, BTreeSet};

const HOSTS: [&str; 4] = ["h1", "h2", "h3", "h4"];

/// xorshift64*: deterministic, dependency-free, plenty for picking events.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<T: Clone>(&mut self, items: &[T]) -> Option<T> {
        if items.is_empty() {
            None
        } else {
            Some(items[self.below(items.len())].clone())
        }
    }
}

/// What the checker has seen of the action stream.
#[derive(Default)]
struct Seen {
    terminal: Vec<Action>,
    commit_job: usize,
    /// CommitTask issued and not yet answered.
    pending_commits: BTreeSet<AttemptId>,
    committed: BTreeSet<TaskId>,
    containers_launched: BTreeSet<ContainerId>,
    all_asks: BTreeSet<u64>,
    /// When each attempt last sent a heartbeat saying its work moved: no timeout may fire
    /// within the task timeout of that.
    vouched: BTreeMap<AttemptId, u64>,
    /// When reducers were killed to make room for a waiting map.
    preemptions: Vec<u64>,
}

struct Run {
    h: Harness,
    rng: Rng,
    seen: Seen,
    maps: u32,
    reduces: u32,
    config: JobConfig,
    seed: u64,
}

impl Run {
    fn new(seed: u64) -> Run {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let maps = rng.below(6) as u32;
        let reduces = rng.below(4) as u32;
        let split_hosts: Vec<Vec<&str>> = (0..maps)
            .map(|_| {
                let n = 1 + rng.below(3);
                let mut hs: Vec<&str> = (0..n).map(|_| HOSTS[rng.below(4)]).collect();
                hs.sort();
                hs.dedup();
                hs
            })
            .collect();
        let split_refs: Vec<&[&str]> = split_hosts.iter().map(Vec::as_slice).collect();
        let config = JobConfig {
            max_map_attempts: 1 + rng.below(4) as u32,
            max_reduce_attempts: 1 + rng.below(4) as u32,
            reduce_slowstart: [0.0, 0.05, 0.5, 1.0][rng.below(4)],
            map_speculative: rng.chance(70),
            reduce_speculative: rng.chance(70),
            speculation_min_runtime_ms: 500,
            task_timeout_ms: [0, 5_000, 20_000][rng.below(3)],
            fetch_failures_before_rerun: 1 + rng.below(3) as u32,
            reducer_preempt_delay_ms: [0, 3_000, 10_000][rng.below(3)],
            ..JobConfig::default()
        };
        let h = Harness::new(spec(&split_refs, reduces), config.clone());
        let mut run = Run {
            h,
            rng,
            seen: Seen::default(),
            maps,
            reduces,
            config,
            seed,
        };
        // The start actions went through the harness only; replay them into the checker.
        let start: Vec<ContainerRequest> = run.h.asks.values().cloned().collect();
        run.seen.all_asks.extend(start.iter().map(|r| r.ask_id));
        run.seen.commit_job = run.h.commit_job;
        if run.h.commit_job > 0 {
            assert_eq!(maps + reduces, 0);
        }
        run
    }

    fn feed(&mut self, event: Event) {
        let before_terminal = !self.seen.terminal.is_empty();
        let commit_answer = match &event {
            Event::TaskCommitted { attempt } => Some((*attempt, true)),
            Event::TaskCommitFailed { attempt, .. } => Some((*attempt, false)),
            _ => None,
        };
        if let Event::AttemptProgress {
            attempt,
            alive: true,
            ..
        } = &event
        {
            self.seen.vouched.insert(*attempt, self.h.now);
        }
        let actions = self.h.feed(event.clone());
        if let Some((attempt, ok)) = commit_answer {
            if self.seen.pending_commits.remove(&attempt) && ok {
                assert!(
                    self.seen.committed.insert(attempt.task),
                    "seed {}: task {} committed twice",
                    self.seed,
                    attempt.task
                );
            }
        }
        for a in &actions {
            if before_terminal || !self.seen.terminal.is_empty() {
                assert!(
                    matches!(a, Action::ReleaseContainer { .. }),
                    "seed {}: {a:?} after the job ended ({event:?})",
                    self.seed
                );
            }
            match a {
                Action::RequestContainer(r) => {
                    assert!(self.seen.all_asks.insert(r.ask_id), "ask id reused");
                }
                Action::Launch {
                    attempt, container, ..
                } => {
                    assert!(
                        self.seen.containers_launched.insert(container.clone()),
                        "seed {}: container {container} used twice",
                        self.seed
                    );
                    let failures = self.failures(attempt.task);
                    assert!(
                        failures < self.max_attempts(attempt.task.kind),
                        "seed {}: {attempt} launched after {failures} failures",
                        self.seed
                    );
                    assert!(!self.seen.committed.contains(&attempt.task));
                }
                Action::CommitTask { attempt } => {
                    assert!(
                        !self.seen.committed.contains(&attempt.task)
                            && !self
                                .seen
                                .pending_commits
                                .iter()
                                .any(|p| p.task == attempt.task),
                        "seed {}: second commit for {}",
                        self.seed,
                        attempt.task
                    );
                    self.seen.pending_commits.insert(*attempt);
                }
                Action::KillAttempt { attempt, .. } => {
                    self.check_timeout_kill(*attempt);
                    self.check_preemption(*attempt);
                }
                Action::CommitJob => self.seen.commit_job += 1,
                Action::JobSucceeded | Action::JobFailed { .. } | Action::JobKilled { .. } => {
                    self.seen.terminal.push(a.clone())
                }
                _ => {}
            }
        }
        self.check();
    }

    /// A kill for a timeout must come a full task timeout after the attempt's last sign of work.
    fn check_timeout_kill(&self, attempt: AttemptId) {
        let status = self.h.jt.status();
        let timed_out = status.attempts.iter().any(|r| {
            r.attempt == attempt && r.error.as_deref().is_some_and(|e| e.contains("timed out"))
        });
        if let (true, Some(&at)) = (timed_out, self.seen.vouched.get(&attempt)) {
            assert!(
                self.h.now.saturating_sub(at) >= self.config.task_timeout_ms,
                "seed {}: {attempt} timed out at {} though it vouched for its work at {at}",
                self.seed,
                self.h.now
            );
        }
    }

    /// A reducer is preempted only for a map that waited the delay, and once per delay.
    fn check_preemption(&mut self, attempt: AttemptId) {
        let status = self.h.jt.status();
        let preempted = status.attempts.iter().any(|r| {
            r.attempt == attempt
                && r.error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("preempted:"))
        });
        if !preempted {
            return;
        }
        let delay = self.config.reducer_preempt_delay_ms;
        let now = self.h.now;
        assert_eq!(attempt.task.kind, TaskKind::Reduce, "seed {}", self.seed);
        if let Some(last) = self.seen.preemptions.last() {
            assert!(
                now.saturating_sub(*last) >= delay,
                "seed {}: preempted at {now} and {last}",
                self.seed
            );
        }
        assert!(
            status
                .attempts
                .iter()
                .any(|r| r.attempt.task.kind == TaskKind::Map
                    && r.state == AttemptState::Unassigned
                    && !r.speculative),
            "seed {}: a reducer preempted though no map waits",
            self.seed
        );
        self.seen.preemptions.push(now);
    }

    fn max_attempts(&self, kind: TaskKind) -> u32 {
        match kind {
            TaskKind::Map => self.config.max_map_attempts,
            TaskKind::Reduce => self.config.max_reduce_attempts,
        }
    }

    fn failures(&self, task: TaskId) -> u32 {
        self.h
            .jt
            .status()
            .attempts
            .iter()
            .filter(|a| a.attempt.task == task && a.state == AttemptState::Failed)
            .count() as u32
    }

    fn check(&self) {
        let seed = self.seed;
        let status = self.h.jt.status();
        assert!(
            self.seen.terminal.len() <= 1,
            "seed {seed}: {:?}",
            self.seen.terminal
        );
        assert!(
            self.seen.commit_job <= 1,
            "seed {seed}: job committed twice"
        );
        let mut failures: BTreeMap<TaskId, u32> = BTreeMap::new();
        for a in &status.attempts {
            if a.state == AttemptState::Failed {
                *failures.entry(a.attempt.task).or_default() += 1;
            }
        }
        for (task, n) in &failures {
            assert!(
                *n <= self.max_attempts(task.kind),
                "seed {seed}: {task} failed {n} times"
            );
        }
        // Every waiting attempt has exactly one outstanding ask, and nothing else has one, except
        // that reduces ask for nothing while a map task waits for a container (ramp-up).
        let waiting = |kind: TaskKind| {
            status
                .attempts
                .iter()
                .filter(move |a| a.state == AttemptState::Unassigned && a.attempt.task.kind == kind)
        };
        let unassigned = status
            .attempts
            .iter()
            .filter(|a| a.state == AttemptState::Unassigned)
            .count();
        let maps_waiting = waiting(TaskKind::Map).any(|a| !a.speculative);
        let held_back = if maps_waiting {
            waiting(TaskKind::Reduce).count()
        } else {
            0
        };
        assert_eq!(
            unassigned - held_back,
            self.h.asks.len(),
            "seed {seed}: asks out of step"
        );
        if maps_waiting {
            assert!(
                self.h.asks.values().all(|r| r.kind == TaskKind::Map),
                "seed {seed}: a reduce ask is outstanding while a map waits"
            );
        }
        // The shell's view of running processes matches the tracker's.
        let launched: BTreeSet<AttemptId> = status
            .attempts
            .iter()
            .filter(|a| matches!(a.state, AttemptState::Assigned | AttemptState::Running))
            .map(|a| a.attempt)
            .collect();
        let running: BTreeSet<AttemptId> = self.h.running.keys().copied().collect();
        assert_eq!(
            launched, running,
            "seed {seed}: running attempts out of step"
        );
        if status.state.is_terminal() || status.state == JobState::Committing {
            assert!(
                launched.is_empty() && unassigned == 0,
                "seed {seed}: leftovers"
            );
        }
        match self.seen.terminal.first() {
            Some(Action::JobSucceeded) => {
                assert_eq!(status.state, JobState::Succeeded);
                assert_eq!(self.seen.commit_job, 1);
                for r in 0..self.reduces {
                    assert!(
                        self.seen.committed.contains(&TaskId::reduce(r)),
                        "seed {seed}"
                    );
                }
                for m in 0..self.maps {
                    let task = TaskId::map(m);
                    if self.reduces == 0 {
                        assert!(self.seen.committed.contains(&task), "seed {seed}: {task}");
                    } else {
                        assert!(
                            self.h
                                .jt
                                .map_completion_events(0)
                                .iter()
                                .any(|e| e.available && e.attempt.task == task),
                            "seed {seed}: {task} never produced output"
                        );
                    }
                }
            }
            Some(Action::JobFailed { .. }) => {
                assert_eq!(status.state, JobState::Failed);
                assert!(status.diagnostics.is_some());
            }
            Some(Action::JobKilled { .. }) => assert_eq!(status.state, JobState::Killed),
            _ => assert!(
                !status.state.is_terminal(),
                "seed {seed}: terminal without action"
            ),
        }
    }

    fn known_attempts(&self) -> Vec<AttemptId> {
        self.h
            .jt
            .status()
            .attempts
            .iter()
            .map(|a| a.attempt)
            .collect()
    }

    fn random_step(&mut self) {
        let host = HOSTS[self.rng.below(4)].to_string();
        let running: Vec<AttemptId> = self.h.running.keys().copied().collect();
        let target = if self.rng.chance(85) {
            self.rng.pick(&running)
        } else {
            // Stale or never-issued ids: must be harmless.
            let mut known = self.known_attempts();
            known.push(AttemptId {
                task: TaskId::map(self.rng.below(3) as u32),
                number: 9,
            });
            self.rng.pick(&known)
        };
        match self.rng.below(20) {
            0..=4 => {
                let asks: Vec<u64> = self.h.asks.keys().copied().collect();
                let ask = if self.rng.chance(90) {
                    self.rng.pick(&asks)
                } else {
                    // A late allocation for an ask already satisfied or cancelled.
                    let all: Vec<u64> = self.seen.all_asks.iter().copied().collect();
                    self.rng.pick(&all)
                };
                if let Some(ask) = ask {
                    let actions = self.h.grant(ask, &host);
                    // grant() went around feed(): put its actions through the checker.
                    self.replay(actions);
                }
            }
            5 | 6 => {
                if let Some(attempt) = target {
                    let progress = (self.rng.below(101) as f64) / 100.0;
                    let alive = self.rng.chance(50);
                    self.feed(Event::AttemptProgress {
                        attempt,
                        progress,
                        alive,
                    });
                }
            }
            7..=9 => {
                if let Some(attempt) = target {
                    self.h.running.remove(&attempt);
                    let output = Some(MapOutputLocation {
                        host: host.clone(),
                        shuffle_address: format!("{host}:1"),
                    });
                    self.feed(Event::AttemptSucceeded { attempt, output });
                }
            }
            10 => {
                if let Some(attempt) = target {
                    self.h.running.remove(&attempt);
                    self.feed(Event::AttemptFailed {
                        attempt,
                        reason: "plugin panicked: random".to_string(),
                    });
                }
            }
            11 => {
                if let Some(attempt) = target {
                    if self.rng.chance(50) {
                        self.h.running.remove(&attempt);
                        self.feed(Event::AttemptKilled {
                            attempt,
                            reason: "preempted".to_string(),
                        });
                    } else if let Some((container, _)) = self.h.running.remove(&attempt) {
                        self.feed(Event::ContainerCompleted {
                            container,
                            diagnostics: "exit 137".to_string(),
                        });
                    }
                }
            }
            12 => {
                if self.rng.chance(30) {
                    // The running attempts on that host go with it.
                    self.h.running.retain(|_, (_, h)| *h != host);
                    self.feed(Event::NodeLost { host });
                } else {
                    let hosts: Vec<String> = HOSTS
                        .iter()
                        .filter(|_| self.rng.chance(75))
                        .map(|h| h.to_string())
                        .collect();
                    self.feed(Event::ClusterHosts { hosts });
                }
            }
            13 => {
                let known = self.known_attempts();
                let reducers: Vec<AttemptId> = known
                    .iter()
                    .copied()
                    .filter(|a| a.task.kind == TaskKind::Reduce)
                    .collect();
                let maps: Vec<AttemptId> = known
                    .iter()
                    .copied()
                    .filter(|a| a.task.kind == TaskKind::Map)
                    .collect();
                if let (Some(reducer), Some(map)) = (self.rng.pick(&reducers), self.rng.pick(&maps))
                {
                    self.feed(Event::FetchFailure { reducer, map });
                }
            }
            14 | 15 => {
                let mut pending: Vec<AttemptId> =
                    self.seen.pending_commits.iter().copied().collect();
                if self.rng.chance(20) {
                    // Answers about commits never asked for (or long settled) must be ignored.
                    pending = self.known_attempts();
                }
                if let Some(attempt) = self.rng.pick(&pending) {
                    if self.rng.chance(80) {
                        self.feed(Event::TaskCommitted { attempt });
                    } else {
                        self.feed(Event::TaskCommitFailed {
                            attempt,
                            reason: "rename failed".to_string(),
                        });
                    }
                } else if self.h.jt.state() == JobState::Committing || self.rng.chance(5) {
                    if self.rng.chance(90) {
                        self.feed(Event::JobCommitted);
                    } else {
                        self.feed(Event::JobCommitFailed {
                            reason: "namenode down".to_string(),
                        });
                    }
                }
            }
            16..=18 => {
                self.h.now += self.rng.below(4000) as u64;
                self.feed(Event::Tick);
            }
            _ => {
                if self.rng.chance(10) {
                    self.feed(Event::Kill {
                        reason: "random".to_string(),
                    });
                } else if let Some(attempt) = target {
                    self.feed(Event::AttemptStarted { attempt });
                }
            }
        }
    }

    /// Runs actions produced by a `Harness` helper through the checker (the harness has already
    /// absorbed them).
    fn replay(&mut self, actions: Vec<Action>) {
        for a in &actions {
            if !self.seen.terminal.is_empty() {
                assert!(
                    matches!(a, Action::ReleaseContainer { .. }),
                    "seed {}: {a:?} after the job ended",
                    self.seed
                );
            }
            match a {
                Action::RequestContainer(r) => {
                    assert!(self.seen.all_asks.insert(r.ask_id), "ask id reused");
                }
                Action::Launch {
                    attempt, container, ..
                } => {
                    assert!(self.seen.containers_launched.insert(container.clone()));
                    assert!(self.failures(attempt.task) < self.max_attempts(attempt.task.kind));
                }
                _ => {}
            }
        }
        self.check();
    }

    /// A well-behaved cluster from here on: everything granted, everything succeeds. The job
    /// must reach a terminal state.
    fn drive_to_end(&mut self) {
        for round in 0..200 {
            if !self.seen.terminal.is_empty() {
                return;
            }
            self.h.now += 100;
            let asks: Vec<u64> = self.h.asks.keys().copied().collect();
            for (i, ask) in asks.into_iter().enumerate() {
                let host = HOSTS[(round + i) % 4];
                let actions = self.h.grant(ask, host);
                self.replay(actions);
            }
            let running: Vec<AttemptId> = self.h.running.keys().copied().collect();
            for attempt in running {
                // An earlier success in this loop may have killed it (its twin).
                let Some((_, host)) = self.h.running.remove(&attempt) else {
                    continue;
                };
                self.feed(Event::AttemptSucceeded {
                    attempt,
                    output: Some(MapOutputLocation {
                        shuffle_address: format!("{host}:1"),
                        host,
                    }),
                });
            }
            for attempt in self.seen.pending_commits.clone() {
                self.feed(Event::TaskCommitted { attempt });
            }
            if self.h.jt.state() == JobState::Committing {
                self.feed(Event::JobCommitted);
            }
            self.feed(Event::Tick);
        }
        panic!(
            "seed {}: job never ended: {:?}",
            self.seed,
            self.h.jt.status()
        );
    }
}

#[test]
fn random_event_sequences_keep_the_invariants_and_always_terminate() {
    let mut outcomes = BTreeMap::new();
    let mut totals = BTreeMap::new();
    let mut preemptions = 0;
    for seed in 0..3000u64 {
        let mut run = Run::new(seed);
        let steps = 20 + run.rng.below(250);
        for _ in 0..steps {
            run.random_step();
        }
        run.drive_to_end();
        preemptions += run.seen.preemptions.len();
        let end = match &run.seen.terminal[0] {
            Action::JobSucceeded => "succeeded",
            Action::JobFailed { .. } => "failed",
            _ => "killed",
        };
        *outcomes.entry(end).or_insert(0u32) += 1;
        for (name, v) in run
            .h
            .jt
            .counters()
            .groups
            .get(JOB_GROUP)
            .into_iter()
            .flatten()
        {
            *totals.entry(name.clone()).or_insert(0i64) += v;
        }
    }

    assert!(
        preemptions > 10,
        "reducer preemption exercised: {preemptions}"
    );
    // The generator must actually reach every ending, or the test checks less than it claims.
    for end in ["succeeded", "failed", "killed"] {
        assert!(outcomes.get(end).copied().unwrap_or(0) > 50, "{outcomes:?}");
    }
    for counter in [
        SPECULATIVE_ATTEMPTS_LAUNCHED,
        SPECULATIVE_ATTEMPTS_KILLED,
        NUM_FAILED_MAPS,
        NUM_FAILED_REDUCES,
        NUM_KILLED_REDUCES,
        RACK_LOCAL_MAPS,
        OTHER_LOCAL_MAPS,
    ] {
        assert!(
            totals.get(counter).copied().unwrap_or(0) > 10,
            "{counter}: {totals:?}"
        );
    }
}
