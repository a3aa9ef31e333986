//! Deterministic scenario tests of the JobTracker: a scripted ResourceManager and task processes,
//! explicit timestamps, no sleeps.

use super::*;
use crate::formats::InputSplit;
use std::collections::BTreeMap;

/// h1, h2 on /r1; h3, h4 on /r2.
pub(super) fn rack_of(host: &str) -> String {
    match host {
        "h1" | "h2" => "/r1".to_string(),
        _ => "/r2".to_string(),
    }
}

pub(super) fn spec(split_hosts: &[&[&str]], num_reduces: u32) -> JobSpec {
    let host_racks = ["h1", "h2", "h3", "h4"]
        .iter()
        .map(|h| (h.to_string(), rack_of(h)))
        .collect();
    JobSpec {
        job_id: "job_1_0001".to_string(),
        splits: split_hosts
            .iter()
            .enumerate()
            .map(|(i, hosts)| SplitLocation {
                split: InputSplit::new("/in/data", i as u64 * 100, 100),
                hosts: hosts.iter().map(|h| h.to_string()).collect(),
            })
            .collect(),
        num_reduces,
        host_racks,
        conf: BTreeMap::from([("mapreduce.job.name".to_string(), "test".to_string())]),
    }
}

/// A JobTracker plus a scripted RM: records outstanding asks, launches, commits and kills.
pub(super) struct Harness {
    pub jt: JobTracker,
    pub now: u64,
    pub asks: BTreeMap<u64, ContainerRequest>,
    pub running: BTreeMap<AttemptId, (ContainerId, String)>,
    pub commits: Vec<AttemptId>,
    pub killed: Vec<AttemptId>,
    pub released: Vec<ContainerId>,
    pub terminal: Vec<Action>,
    pub commit_job: usize,
    next_container: u64,
}

impl Harness {
    pub fn new(spec: JobSpec, config: JobConfig) -> Harness {
        Harness::from_tracker(JobTracker::new(spec, config, Now::at(0)), 0)
    }

    /// Wraps a tracker built elsewhere (a recovered one) and starts it at `now`.
    pub fn from_tracker(jt: JobTracker, now: u64) -> Harness {
        let mut h = Harness {
            jt,
            now,
            asks: BTreeMap::new(),
            running: BTreeMap::new(),
            commits: Vec::new(),
            killed: Vec::new(),
            released: Vec::new(),
            terminal: Vec::new(),
            commit_job: 0,
            next_container: 0,
        };
        let actions = h.jt.start(Now::at(now));
        h.absorb(&actions);
        h
    }

    pub fn absorb(&mut self, actions: &[Action]) {
        for a in actions {
            match a {
                Action::RequestContainer(r) => {
                    assert!(
                        self.asks.insert(r.ask_id, r.clone()).is_none(),
                        "ask id reused"
                    );
                }
                Action::CancelRequest { ask_id } => {
                    self.asks.remove(ask_id);
                }
                Action::Launch {
                    attempt,
                    container,
                    host,
                } => {
                    self.running
                        .insert(*attempt, (container.clone(), host.clone()));
                }
                Action::KillAttempt { attempt, .. } => {
                    self.running.remove(attempt);
                    self.killed.push(*attempt);
                }
                Action::ReleaseContainer { container } => self.released.push(container.clone()),
                Action::CommitTask { attempt } => self.commits.push(*attempt),
                Action::MapOutputAccepted { .. } => {}
                Action::CommitJob => self.commit_job += 1,
                Action::JobSucceeded | Action::JobFailed { .. } | Action::JobKilled { .. } => {
                    self.terminal.push(a.clone())
                }
            }
        }
    }

    pub fn feed(&mut self, event: Event) -> Vec<Action> {
        let actions = self.jt.handle(Now::at(self.now), event);
        self.absorb(&actions);
        actions
    }

    /// The RM satisfies `ask_id` with a container on `host`.
    pub fn grant(&mut self, ask_id: u64, host: &str) -> Vec<Action> {
        self.asks.remove(&ask_id);
        self.next_container += 1;
        self.feed(Event::ContainerAllocated {
            container: ContainerId(format!("c{}", self.next_container)),
            ask_id,
            host: host.to_string(),
            rack: rack_of(host),
        })
    }

    /// Asks of one phase, oldest first.
    pub fn asks_of(&self, kind: TaskKind) -> Vec<ContainerRequest> {
        self.asks
            .values()
            .filter(|r| r.kind == kind)
            .cloned()
            .collect()
    }

    /// Grants every outstanding ask on its first preferred host (or `fallback`).
    pub fn grant_all(&mut self, fallback: &str) {
        for r in self.asks.clone().into_values() {
            let host = r
                .hosts
                .first()
                .cloned()
                .unwrap_or_else(|| fallback.to_string());
            self.grant(r.ask_id, &host);
        }
    }

    pub fn succeed(&mut self, attempt: AttemptId) -> Vec<Action> {
        let host = self
            .running
            .remove(&attempt)
            .map(|(_, h)| h)
            .unwrap_or_else(|| "h?".to_string());
        self.feed(Event::AttemptSucceeded {
            attempt,
            output: Some(MapOutputLocation {
                shuffle_address: format!("{host}:13562"),
                host,
            }),
        })
    }

    pub fn fail(&mut self, attempt: AttemptId, reason: &str) -> Vec<Action> {
        self.running.remove(&attempt);
        self.feed(Event::AttemptFailed {
            attempt,
            reason: reason.to_string(),
        })
    }

    /// Answers every pending commit (tasks, then the job) with success.
    pub fn commit_everything(&mut self) {
        for attempt in self.commits.clone() {
            self.feed(Event::TaskCommitted { attempt });
        }
        if self.jt.state() == JobState::Committing {
            self.feed(Event::JobCommitted);
        }
    }

    pub fn running_of(&self, task: TaskId) -> Vec<AttemptId> {
        self.running
            .keys()
            .copied()
            .filter(|a| a.task == task)
            .collect()
    }

    pub fn host_of(&self, attempt: AttemptId) -> String {
        self.running[&attempt].1.clone()
    }

    pub fn job_counter(&self, name: &str) -> i64 {
        self.jt.counters().get(JOB_GROUP, name)
    }
}

fn attempt(task: TaskId, number: u32) -> AttemptId {
    AttemptId { task, number }
}

#[test]
fn clean_job_schedules_maps_with_locality_and_commits_every_task_once() {
    let mut h = Harness::new(
        spec(&[&["h1"], &["h2"], &["h3"], &["h1"], &["h1"]], 2),
        JobConfig::default(),
    );
    let maps = h.asks_of(TaskKind::Map);
    assert_eq!(maps.len(), 5);
    assert!(
        h.asks_of(TaskKind::Reduce).is_empty(),
        "no reduces before any map is done"
    );
    assert_eq!(maps[0].hosts, vec!["h1"]);
    assert_eq!(maps[0].racks, vec!["/r1"]);
    assert_eq!(maps[0].priority, 20);
    // Node-local for m0..m2; m3 (data on h1) gets h2 on the same rack; m4 gets h4 off-rack.
    h.grant(maps[0].ask_id, "h1");
    h.grant(maps[1].ask_id, "h2");
    h.grant(maps[2].ask_id, "h3");
    h.grant(maps[3].ask_id, "h2");
    h.grant(maps[4].ask_id, "h4");
    assert_eq!(h.running.len(), 5);
    assert!(
        h.asks.is_empty(),
        "every ask consumed or cancelled: {:?}",
        h.asks
    );
    assert_eq!(h.job_counter(DATA_LOCAL_MAPS), 3);
    assert_eq!(h.job_counter(RACK_LOCAL_MAPS), 1);
    assert_eq!(h.job_counter(OTHER_LOCAL_MAPS), 1);
    assert_eq!(h.job_counter(TOTAL_LAUNCHED_MAPS), 5);
    let status = h.jt.status();
    let m3 = status
        .attempts
        .iter()
        .find(|a| a.attempt.task == TaskId::map(3))
        .expect("m3 attempt");
    assert_eq!(m3.locality, Some(Locality::RackLocal));
    assert_eq!(m3.host.as_deref(), Some("h2"));

    h.now = 1000;
    for a in h.running.keys().copied().collect::<Vec<_>>() {
        h.feed(Event::AttemptStarted { attempt: a });
    }
    h.now = 5000;
    for i in 0..5 {
        h.succeed(attempt(TaskId::map(i), 0));
    }
    assert!(
        h.commits.is_empty(),
        "map outputs of a job with reducers are not committed"
    );
    assert_eq!(h.jt.map_completion_events(0).len(), 5);
    assert_eq!(h.jt.map_completion_events(3).len(), 2);
    let reduces = h.asks_of(TaskKind::Reduce);
    assert_eq!(reduces.len(), 2);
    assert!(reduces
        .iter()
        .all(|r| r.hosts.is_empty() && r.priority == 10));
    h.grant_all("h3");
    h.now = 9000;
    h.succeed(attempt(TaskId::reduce(0), 0));
    h.succeed(attempt(TaskId::reduce(1), 0));
    assert_eq!(h.commits.len(), 2);
    assert_eq!(h.commit_job, 0, "job commit waits for the task commits");
    h.commit_everything();
    assert_eq!(h.commit_job, 1);
    assert_eq!(h.terminal, vec![Action::JobSucceeded]);
    assert_eq!(h.jt.state(), JobState::Succeeded);
    let status = h.jt.status();
    assert_eq!((status.maps_done, status.maps_total), (5, 5));
    assert_eq!((status.reduces_done, status.reduces_total), (2, 2));
    assert_eq!(h.job_counter(TOTAL_LAUNCHED_REDUCES), 2);
    assert_eq!(h.job_counter(NUM_FAILED_MAPS), 0);
    assert_eq!(h.job_counter(MILLIS_MAPS), 5 * 5000);
}

#[test]
fn map_only_job_commits_each_map_exactly_once() {
    let mut h = Harness::new(spec(&[&["h1"], &["h2"], &["h3"]], 0), JobConfig::default());
    h.grant_all("h1");
    for i in 0..3 {
        h.feed(Event::AttemptSucceeded {
            attempt: attempt(TaskId::map(i), 0),
            output: None,
        });
    }
    // A duplicate success report must not commit twice.
    h.feed(Event::AttemptSucceeded {
        attempt: attempt(TaskId::map(0), 0),
        output: None,
    });
    assert_eq!(h.commits.len(), 3);
    h.commit_everything();
    assert_eq!(h.terminal, vec![Action::JobSucceeded]);
}

#[test]
fn failed_attempts_retry_on_other_nodes_then_fail_the_job_with_the_last_error() {
    let mut h = Harness::new(spec(&[&["h1", "h2"]], 0), JobConfig::default());
    h.feed(Event::ClusterHosts {
        hosts: ["h1", "h2", "h3", "h4"].map(String::from).to_vec(),
    });
    let m0 = TaskId::map(0);
    let mut hosts_used = Vec::new();
    for n in 0..4u32 {
        let asks = h.asks_of(TaskKind::Map);
        assert_eq!(asks.len(), 1, "one ask for the one open attempt");
        if n > 0 {
            assert_eq!(asks[0].priority, 5, "a retried map jumps the queue");
            for used in &hosts_used {
                assert!(!asks[0].hosts.contains(used), "retry prefers another node");
            }
            // Offered a host where it already failed: declined while others exist.
            let before = h.running.len();
            let actions = h.grant(asks[0].ask_id, &hosts_used[0]);
            assert_eq!(h.running.len(), before, "declined: {actions:?}");
            assert!(actions
                .iter()
                .any(|a| matches!(a, Action::ReleaseContainer { .. })));
        }
        let asks = h.asks_of(TaskKind::Map);
        let host = ["h1", "h2", "h3", "h4"][n as usize];
        h.grant(asks[0].ask_id, host);
        let running = h.running_of(m0);
        assert_eq!(running, vec![attempt(m0, n)]);
        hosts_used.push(host.to_string());
        h.fail(running[0], &format!("plugin panicked: boom {n}"));
    }
    assert_eq!(
        h.terminal,
        vec![Action::JobFailed {
            reason: "task m_000000 failed 4 times; last error: plugin panicked: boom 3".to_string()
        }]
    );
    assert!(h.asks.is_empty(), "no fifth attempt asked for");
    assert_eq!(h.job_counter(NUM_FAILED_MAPS), 4);
    assert_eq!(h.jt.state(), JobState::Failed);
    assert!(h.commits.is_empty());
    assert_eq!(h.commit_job, 0, "a failed job is never committed");
}

#[test]
fn a_host_with_three_failures_is_avoided_unless_it_is_the_only_one_left() {
    let mut h = Harness::new(
        spec(
            &[&["h1", "h2"], &["h1", "h2"], &["h1", "h2"], &["h1", "h2"]],
            0,
        ),
        JobConfig::default(),
    );
    for r in h.asks_of(TaskKind::Map).into_iter().take(3) {
        h.grant(r.ask_id, "h1");
    }
    for i in 0..3 {
        h.fail(attempt(TaskId::map(i), 0), "disk full");
    }
    assert_eq!(h.jt.status().blacklisted_hosts, vec!["h1".to_string()]);
    // m3 never ran on h1, but h1 is blacklisted for the job: its offer goes back.
    let m3_ask = h
        .asks_of(TaskKind::Map)
        .into_iter()
        .find(|r| r.priority == 20)
        .expect("m3 still waiting");
    let actions = h.grant(m3_ask.ask_id, "h1");
    assert!(
        actions.iter().all(|a| a.launched().is_none()),
        "blacklisted host used: {actions:?}"
    );
    // New asks no longer name h1.
    assert!(h
        .asks
        .values()
        .all(|r| !r.hosts.contains(&"h1".to_string())));
    let any = *h.asks.keys().next().expect("asks");
    let actions = h.grant(any, "h2");
    assert_eq!(actions.iter().filter(|a| a.launched().is_some()).count(), 1);
    // With h2 gone, h1 is the only host left and is used despite the blacklist.
    h.feed(Event::NodeLost {
        host: "h2".to_string(),
    });
    let any = *h.asks.keys().next().expect("asks");
    let actions = h.grant(any, "h1");
    assert_eq!(
        actions.iter().filter(|a| a.launched().is_some()).count(),
        1,
        "{actions:?}"
    );
}

#[test]
fn a_lost_node_reruns_its_completed_maps_while_reducers_need_them() {
    let mut h = Harness::new(spec(&[&["h1"], &["h2"]], 2), JobConfig::default());
    h.grant_all("h1");
    h.succeed(attempt(TaskId::map(0), 0));
    h.succeed(attempt(TaskId::map(1), 0));
    h.grant_all("h3");
    assert_eq!(h.running.len(), 2, "two reducers running");
    // One reducer finishes and commits; the other still needs m0's output.
    h.succeed(attempt(TaskId::reduce(0), 0));
    h.commit_everything();
    let actions = h.feed(Event::NodeLost {
        host: "h1".to_string(),
    });
    let rerun: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            Action::RequestContainer(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(rerun.len(), 1, "{actions:?}");
    assert_eq!(rerun[0].kind, TaskKind::Map);
    let events = h.jt.map_completion_events(2);
    assert_eq!(events.len(), 1);
    assert!(!events[0].available && events[0].attempt == attempt(TaskId::map(0), 0));
    assert_eq!(h.jt.status().maps_done, 1);
    assert_eq!(h.job_counter(NUM_KILLED_MAPS), 1);
    assert_eq!(
        h.job_counter(NUM_FAILED_MAPS),
        0,
        "a lost node is not the map's fault"
    );
    h.grant(rerun[0].ask_id, "h2");
    h.succeed(attempt(TaskId::map(0), 1));
    assert!(h.jt.map_completion_events(3)[0].available);
    h.succeed(attempt(TaskId::reduce(1), 0));
    h.commit_everything();
    assert_eq!(h.terminal, vec![Action::JobSucceeded]);
}

#[test]
fn a_kill_during_the_commit_is_not_honoured_and_says_so() {
    let mut h = Harness::new(spec(&[&["h1"]], 0), JobConfig::default());
    h.grant_all("h1");
    assert!(!h.jt.is_committing());
    h.feed(Event::AttemptSucceeded {
        attempt: attempt(TaskId::map(0), 0),
        output: None,
    });
    h.feed(Event::TaskCommitted {
        attempt: attempt(TaskId::map(0), 0),
    });
    assert!(h.jt.is_committing());
    let actions = h.feed(Event::Kill {
        reason: "by u".to_string(),
    });
    assert!(actions.is_empty(), "{actions:?}");
    assert!(h.jt.is_committing(), "the commit goes on");
    h.feed(Event::JobCommitted);
    assert!(!h.jt.is_committing());
    assert_eq!(h.terminal, vec![Action::JobSucceeded]);
}

#[test]
fn a_lost_node_after_all_reduces_finished_reruns_nothing() {
    let mut h = Harness::new(spec(&[&["h1"], &["h2"]], 1), JobConfig::default());
    h.grant_all("h1");
    h.succeed(attempt(TaskId::map(0), 0));
    h.succeed(attempt(TaskId::map(1), 0));
    h.grant_all("h3");
    h.succeed(attempt(TaskId::reduce(0), 0));
    h.feed(Event::TaskCommitted {
        attempt: attempt(TaskId::reduce(0), 0),
    });
    assert_eq!(h.jt.state(), JobState::Committing);
    let actions = h.feed(Event::NodeLost {
        host: "h1".to_string(),
    });
    assert!(actions.is_empty(), "{actions:?}");
    h.feed(Event::JobCommitted);
    assert_eq!(h.terminal, vec![Action::JobSucceeded]);
    // Map-only job: outputs are in the DFS, a lost node takes nothing with it.
    let mut h = Harness::new(spec(&[&["h1"], &["h2"]], 0), JobConfig::default());
    h.grant_all("h1");
    h.feed(Event::AttemptSucceeded {
        attempt: attempt(TaskId::map(0), 0),
        output: None,
    });
    let actions = h.feed(Event::NodeLost {
        host: "h1".to_string(),
    });
    assert!(actions.is_empty(), "{actions:?}");
}

#[test]
fn repeated_fetch_failures_rerun_the_map() {
    let mut h = Harness::new(spec(&[&["h1"], &["h2"]], 1), JobConfig::default());
    h.grant_all("h1");
    let m0 = attempt(TaskId::map(0), 0);
    h.succeed(m0);
    h.succeed(attempt(TaskId::map(1), 0));
    h.grant_all("h3");
    let r0 = attempt(TaskId::reduce(0), 0);
    for _ in 0..2 {
        let actions = h.feed(Event::FetchFailure {
            reducer: r0,
            map: m0,
        });
        assert!(actions.is_empty());
    }
    // Reports about ids the tracker never issued change nothing.
    let bogus = attempt(TaskId::map(0), 7);
    assert!(h
        .feed(Event::FetchFailure {
            reducer: r0,
            map: bogus
        })
        .is_empty());
    let actions = h.feed(Event::FetchFailure {
        reducer: r0,
        map: m0,
    });
    assert!(
        matches!(&actions[..], [Action::RequestContainer(r)] if r.kind == TaskKind::Map && r.priority == 5),
        "{actions:?}"
    );
    assert_eq!(h.job_counter(NUM_FAILED_MAPS), 1);
    let rec = h.jt.status();
    let rec = rec.attempts.iter().find(|a| a.attempt == m0).expect("m0");
    assert_eq!(rec.state, AttemptState::Failed);
    assert!(rec
        .error
        .as_deref()
        .unwrap_or("")
        .contains("fetch failures"));
    // Further reports against the obsolete output are ignored.
    assert!(h
        .feed(Event::FetchFailure {
            reducer: r0,
            map: m0
        })
        .is_empty());
}

#[test]
fn an_attempt_without_progress_times_out_counts_as_failed_and_is_retried() {
    let config = JobConfig {
        task_timeout_ms: 10_000,
        ..JobConfig::default()
    };
    let mut h = Harness::new(spec(&[&["h1", "h2"]], 0), config);
    h.grant_all("h1");
    let a0 = attempt(TaskId::map(0), 0);
    assert_eq!(h.jt.next_timeout(), Some(10_000));
    h.now = 5_000;
    h.feed(Event::AttemptProgress {
        attempt: a0,
        progress: 0.1,
        alive: false,
    });
    h.now = 9_000;
    // Same progress again: not forward motion, no reset.
    h.feed(Event::AttemptProgress {
        attempt: a0,
        progress: 0.1,
        alive: false,
    });
    assert_eq!(h.jt.next_timeout(), Some(15_000));
    h.now = 14_999;
    assert!(h.feed(Event::Tick).is_empty());
    h.now = 15_000;
    let actions = h.feed(Event::Tick);
    assert!(
        matches!(&actions[..], [Action::KillAttempt { attempt, .. }, Action::RequestContainer(r)]
            if *attempt == a0 && !r.hosts.contains(&"h1".to_string())),
        "{actions:?}"
    );
    assert_eq!(h.job_counter(NUM_FAILED_MAPS), 1);
    let status = h.jt.status();
    assert!(status.attempts[0]
        .error
        .as_deref()
        .unwrap_or("")
        .contains("timed out after 10000 ms"));
    // A late success of the killed attempt is ignored.
    assert!(h.succeed(a0).is_empty());
}

#[test]
fn an_attempt_vouching_for_its_work_is_not_timed_out_though_its_fraction_stands_still() {
    // Two maps: one reducer waits for the slow one at a fixed fraction, like Hadoop's reducers
    // calling `reporter.progress()` while the shuffle waits for map events.
    let config = JobConfig {
        task_timeout_ms: 10_000,
        reduce_slowstart: 0.0,
        ..JobConfig::default()
    };
    let mut h = Harness::new(spec(&[&["h1"], &["h2"]], 2), config);
    h.grant_all("h1");
    let m1 = attempt(TaskId::map(1), 0);
    h.succeed(attempt(TaskId::map(0), 0));
    h.grant_all("h3");
    let r0 = attempt(TaskId::reduce(0), 0);
    let r1 = attempt(TaskId::reduce(1), 0);
    assert!(h.running.contains_key(&r0) && h.running.contains_key(&r1));
    for t in (1..=30).map(|s| s * 1_000) {
        h.now = t;
        // The slow map is in its final merge: no new bytes read, but working.
        h.feed(Event::AttemptProgress {
            attempt: m1,
            progress: 1.0,
            alive: true,
        });
        // Both send the same fraction every second; only r0's work thread moved.
        h.feed(Event::AttemptProgress {
            attempt: r0,
            progress: 0.2,
            alive: true,
        });
        h.feed(Event::AttemptProgress {
            attempt: r1,
            progress: 0.2,
            alive: false,
        });
        let actions = h.feed(Event::Tick);
        for a in &actions {
            if let Action::KillAttempt { attempt, .. } = a {
                assert_eq!(*attempt, r1, "at {t}: {actions:?}");
                assert!(t >= 11_000, "r1 killed at {t}, before its timeout");
            }
        }
    }
    let status = h.jt.status();
    let record = |id| {
        status
            .attempts
            .iter()
            .find(|a| a.attempt == id)
            .expect("attempt")
            .clone()
    };
    assert_eq!(
        record(r0).state,
        AttemptState::Running,
        "alive: never timed out"
    );
    let r1_record = record(r1);
    assert_eq!(r1_record.state, AttemptState::Failed);
    assert!(
        r1_record
            .error
            .as_deref()
            .unwrap_or("")
            .contains("timed out after 10000 ms"),
        "{r1_record:?}"
    );
    // The live attempts' deadline follows their last sign of work.
    assert_eq!(h.jt.next_timeout(), Some(30_000 + 10_000));
}

#[test]
fn a_straggler_gets_one_twin_on_another_node_and_the_first_success_wins() {
    let mut h = Harness::new(
        spec(&[&["h1"], &["h2"], &["h3"], &["h4"]], 0),
        JobConfig::default(),
    );
    h.grant_all("h1");
    for i in 0..4 {
        h.feed(Event::AttemptStarted {
            attempt: attempt(TaskId::map(i), 0),
        });
    }
    h.now = 10_000;
    for i in 0..3 {
        h.feed(Event::AttemptSucceeded {
            attempt: attempt(TaskId::map(i), 0),
            output: None,
        });
    }
    let slow = attempt(TaskId::map(3), 0);
    h.feed(Event::AttemptProgress {
        attempt: slow,
        progress: 0.1,
        alive: false,
    });
    h.now = 12_000;
    let actions = h.feed(Event::Tick);
    let twin_ask = match &actions[..] {
        [Action::RequestContainer(r)] => r.clone(),
        other => panic!("expected one twin request, got {other:?}"),
    };
    assert!(
        !twin_ask.hosts.contains(&"h4".to_string()),
        "twin avoids the straggler's node"
    );
    // Only one twin per task, however slow it stays.
    h.now = 13_000;
    assert!(h.feed(Event::Tick).is_empty());
    // Offered the straggler's own host: declined.
    let actions = h.grant(twin_ask.ask_id, "h4");
    assert!(
        actions.iter().all(|a| a.launched().is_none()),
        "{actions:?}"
    );
    let ask = h.asks_of(TaskKind::Map)[0].ask_id;
    h.grant(ask, "h2");
    let twin = attempt(TaskId::map(3), 1);
    assert_eq!(h.host_of(twin), "h2");
    assert_eq!(h.job_counter(SPECULATIVE_ATTEMPTS_LAUNCHED), 1);
    h.now = 15_000;
    let actions = h.feed(Event::AttemptSucceeded {
        attempt: twin,
        output: None,
    });
    assert!(actions.contains(&Action::CommitTask { attempt: twin }));
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::KillAttempt { attempt, .. } if *attempt == slow)));
    // The original reporting success afterwards changes nothing.
    assert!(h
        .feed(Event::AttemptSucceeded {
            attempt: slow,
            output: None
        })
        .is_empty());
    assert_eq!(
        h.commits
            .iter()
            .filter(|a| a.task == TaskId::map(3))
            .count(),
        1
    );
    assert_eq!(h.job_counter(SPECULATIVE_ATTEMPTS_KILLED), 1);
    assert_eq!(h.job_counter(NUM_KILLED_MAPS), 1);
    h.commit_everything();
    assert_eq!(h.terminal, vec![Action::JobSucceeded]);
    let history = h.jt.history();
    let twin_rec = history
        .attempts
        .iter()
        .find(|a| a.attempt == twin)
        .expect("twin");
    assert!(twin_rec.speculative && twin_rec.state == AttemptState::Succeeded);
}

#[test]
fn attempts_at_the_median_rate_get_no_twin_and_speculation_can_be_switched_off() {
    for speculative in [true, false] {
        let config = JobConfig {
            map_speculative: speculative,
            ..JobConfig::default()
        };
        let mut h = Harness::new(spec(&[&["h1"], &["h2"], &["h3"], &["h4"]], 0), config);
        h.grant_all("h1");
        h.now = 10_000;
        for i in 0..3 {
            h.feed(Event::AttemptSucceeded {
                attempt: attempt(TaskId::map(i), 0),
                output: None,
            });
        }
        h.feed(Event::AttemptProgress {
            attempt: attempt(TaskId::map(3), 0),
            progress: if speculative { 0.9 } else { 0.01 },
            alive: false,
        });
        h.now = 11_000;
        assert!(h.feed(Event::Tick).is_empty(), "speculative={speculative}");
    }
}

#[test]
fn slow_start_holds_reducers_until_enough_maps_are_done() {
    let config = JobConfig {
        reduce_slowstart: 0.5,
        ..JobConfig::default()
    };
    let hosts: Vec<&[&str]> = vec![&["h1"]; 10];
    let mut h = Harness::new(spec(&hosts, 3), config);
    h.grant_all("h1");
    for i in 0..4 {
        h.succeed(attempt(TaskId::map(i), 0));
        assert!(
            h.asks_of(TaskKind::Reduce).is_empty(),
            "after {} maps",
            i + 1
        );
    }
    h.succeed(attempt(TaskId::map(4), 0));
    assert_eq!(h.asks_of(TaskKind::Reduce).len(), 3);
}

#[test]
fn killing_the_job_kills_every_attempt_and_withdraws_every_ask() {
    let mut h = Harness::new(spec(&[&["h1"], &["h2"], &["h3"]], 1), JobConfig::default());
    let asks = h.asks_of(TaskKind::Map);
    h.grant(asks[0].ask_id, "h1");
    h.grant(asks[1].ask_id, "h2");
    let actions = h.feed(Event::Kill {
        reason: "by alice".to_string(),
    });
    let kills = actions
        .iter()
        .filter(|a| matches!(a, Action::KillAttempt { .. }))
        .count();
    let cancels = actions
        .iter()
        .filter(|a| matches!(a, Action::CancelRequest { .. }))
        .count();
    assert_eq!((kills, cancels), (2, 1), "{actions:?}");
    assert_eq!(
        actions.last(),
        Some(&Action::JobKilled {
            reason: "job killed: by alice".to_string()
        })
    );
    assert!(h.asks.is_empty() && h.running.is_empty());
    assert_eq!(h.job_counter(NUM_KILLED_MAPS), 2);
    // Late news after the kill: the container goes back, nothing else happens.
    let actions = h.grant(asks[2].ask_id, "h3");
    assert!(matches!(&actions[..], [Action::ReleaseContainer { .. }]));
    assert!(h.succeed(attempt(TaskId::map(0), 0)).is_empty());
    assert!(h
        .feed(Event::Kill {
            reason: "again".to_string()
        })
        .is_empty());
    assert_eq!(h.jt.state(), JobState::Killed);
    assert_eq!(h.terminal.len(), 1);
}

#[test]
fn a_failed_task_commit_reruns_the_task_and_a_failed_job_commit_fails_the_job() {
    let mut h = Harness::new(spec(&[&["h1"]], 0), JobConfig::default());
    h.grant_all("h1");
    let a0 = attempt(TaskId::map(0), 0);
    h.feed(Event::AttemptSucceeded {
        attempt: a0,
        output: None,
    });
    let actions = h.feed(Event::TaskCommitFailed {
        attempt: a0,
        reason: "rename refused".to_string(),
    });
    assert!(
        matches!(&actions[..], [Action::RequestContainer(_)]),
        "{actions:?}"
    );
    h.grant_all("h2");
    let a1 = attempt(TaskId::map(0), 1);
    h.feed(Event::AttemptSucceeded {
        attempt: a1,
        output: None,
    });
    h.feed(Event::TaskCommitted { attempt: a1 });
    assert_eq!(h.commit_job, 1);
    let actions = h.feed(Event::JobCommitFailed {
        reason: "namenode unreachable".to_string(),
    });
    assert_eq!(
        actions,
        vec![Action::JobFailed {
            reason: "job commit failed: namenode unreachable".to_string()
        }]
    );
}

#[test]
fn a_dead_task_process_fails_its_attempt() {
    let mut h = Harness::new(spec(&[&["h1", "h2"]], 0), JobConfig::default());
    h.grant_all("h1");
    let (container, _) = h.running[&attempt(TaskId::map(0), 0)].clone();
    let actions = h.feed(Event::ContainerCompleted {
        container,
        diagnostics: "exit status 137 (killed by signal 9)".to_string(),
    });
    assert!(
        matches!(&actions[..], [Action::RequestContainer(_)]),
        "{actions:?}"
    );
    assert_eq!(h.job_counter(NUM_FAILED_MAPS), 1);
}

#[test]
fn zero_maps_releases_reducers_at_once_and_an_empty_job_commits_at_once() {
    let h = Harness::new(spec(&[], 2), JobConfig::default());
    assert_eq!(h.asks_of(TaskKind::Reduce).len(), 2);
    let h = Harness::new(spec(&[], 0), JobConfig::default());
    assert_eq!(h.commit_job, 1);
}

#[test]
fn status_and_history_roundtrip_through_messagepack() {
    let mut h = Harness::new(spec(&[&["h1"], &["h2"]], 1), JobConfig::default());
    h.grant_all("h1");
    h.fail(attempt(TaskId::map(0), 0), "boom");
    let status = h.jt.status();
    let bytes = rmp_serde::to_vec_named(&status).expect("encode");
    let back: JobStatus = rmp_serde::from_slice(&bytes).expect("decode");
    assert_eq!(back, status);
    let history = h.jt.history();
    let bytes = rmp_serde::to_vec_named(&history).expect("encode");
    let back: JobHistory = rmp_serde::from_slice(&bytes).expect("decode");
    assert_eq!(back, history);
    assert_eq!(back.conf["mapreduce.job.name"], "test");
    assert_eq!(back.counters.get(JOB_GROUP, NUM_FAILED_MAPS), 1);
    assert_eq!(back.attempts.len(), 3);
}

fn roundtrip(history: &JobHistory) -> JobHistory {
    let bytes = rmp_serde::to_vec_named(history).expect("encode");
    rmp_serde::from_slice(&bytes).expect("decode")
}

#[test]
fn a_new_jobtracker_attempt_keeps_committed_tasks_and_reruns_the_rest() {
    let job = || spec(&[&["h1"], &["h2"]], 2);
    let mut h = Harness::new(job(), JobConfig::default());
    h.grant_all("h1");
    h.succeed(attempt(TaskId::map(0), 0));
    h.succeed(attempt(TaskId::map(1), 0));
    h.grant_all("h3");
    h.succeed(attempt(TaskId::reduce(0), 0));
    h.commit_everything();
    h.fail(attempt(TaskId::reduce(1), 0), "disk full");
    h.grant_all("h4");
    assert_eq!(
        h.running_of(TaskId::reduce(1)),
        vec![attempt(TaskId::reduce(1), 1)]
    );
    // The JobTracker dies here; the new attempt reads the history it left.
    let history = roundtrip(&h.jt.history());
    let jt = JobTracker::recover(job(), JobConfig::default(), &history, Now::at(50_000))
        .expect("recover");
    let mut h = Harness::from_tracker(jt, 50_000);
    let status = h.jt.status();
    assert_eq!((status.reduces_done, status.maps_done), (1, 0));
    // Maps run again (their outputs were on NodeManagers), numbered after the old attempts.
    let asks = h.asks_of(TaskKind::Map);
    assert_eq!(asks.len(), 2);
    assert!(
        h.asks_of(TaskKind::Reduce).is_empty(),
        "slow start applies again"
    );
    h.grant_all("h1");
    assert!(h.running.contains_key(&attempt(TaskId::map(0), 1)));
    h.succeed(attempt(TaskId::map(0), 1));
    h.succeed(attempt(TaskId::map(1), 1));
    // Only the uncommitted reduce runs again.
    let reduce_asks = h.asks_of(TaskKind::Reduce);
    assert_eq!(reduce_asks.len(), 1);
    h.grant(reduce_asks[0].ask_id, "h2");
    assert_eq!(
        h.running_of(TaskId::reduce(1)),
        vec![attempt(TaskId::reduce(1), 2)]
    );
    h.succeed(attempt(TaskId::reduce(1), 2));
    assert_eq!(h.commits, vec![attempt(TaskId::reduce(1), 2)]);
    h.commit_everything();
    assert_eq!(h.terminal, vec![Action::JobSucceeded]);
    // Counters carry over; the attempt lost with the old tracker counts as killed.
    assert_eq!(h.job_counter(NUM_FAILED_REDUCES), 1);
    assert_eq!(h.job_counter(NUM_KILLED_REDUCES), 1);
    assert_eq!(h.job_counter(TOTAL_LAUNCHED_REDUCES), 3 + 1);
}

#[test]
fn recovery_commits_a_job_whose_reduces_were_all_committed_and_repeats_a_final_state() {
    let job = || spec(&[&["h1"]], 1);
    let mut h = Harness::new(job(), JobConfig::default());
    h.grant_all("h1");
    h.succeed(attempt(TaskId::map(0), 0));
    h.grant_all("h2");
    h.succeed(attempt(TaskId::reduce(0), 0));
    h.feed(Event::TaskCommitted {
        attempt: attempt(TaskId::reduce(0), 0),
    });
    assert_eq!(h.jt.state(), JobState::Committing);
    // Died during the job commit: the new attempt commits again (the commit is repeatable)
    // without running any task.
    let history = roundtrip(&h.jt.history());
    let mut jt =
        JobTracker::recover(job(), JobConfig::default(), &history, Now::at(9)).expect("recover");
    assert_eq!(jt.start(Now::at(9)), vec![Action::CommitJob]);
    assert_eq!(
        jt.handle(Now::at(10), Event::JobCommitted),
        vec![Action::JobSucceeded]
    );
    // Died after finishing: the new attempt only reports the outcome.
    let history = roundtrip(&jt.history());
    let mut jt =
        JobTracker::recover(job(), JobConfig::default(), &history, Now::at(11)).expect("recover");
    assert_eq!(jt.start(Now::at(11)), vec![Action::JobSucceeded]);
    assert_eq!(jt.state(), JobState::Succeeded);
}

#[test]
fn recovery_refuses_a_history_that_does_not_fit_the_job() {
    let h = Harness::new(spec(&[&["h1"]], 1), JobConfig::default());
    let history = h.jt.history();
    let mut other = spec(&[&["h1"]], 1);
    other.job_id = "job_1_0002".to_string();
    assert!(matches!(
        JobTracker::recover(other, JobConfig::default(), &history, Now::at(0)),
        Err(RecoveryError::WrongJob { .. })
    ));
    let err = JobTracker::recover(
        spec(&[&["h1"], &["h2"]], 1),
        JobConfig::default(),
        &history,
        Now::at(0),
    )
    .expect_err("shape");
    assert!(err.to_string().contains("the input changed"), "{err}");
    let mut bad = history.clone();
    bad.attempts[0].attempt.task = TaskId::map(5);
    assert!(matches!(
        JobTracker::recover(spec(&[&["h1"]], 1), JobConfig::default(), &bad, Now::at(0)),
        Err(RecoveryError::UnknownAttempt { .. })
    ));
}

/// Whether any outstanding ask is for a map.
fn map_ask_outstanding(h: &Harness) -> bool {
    !h.asks_of(TaskKind::Map).is_empty()
}

#[test]
fn reduces_ask_only_once_every_map_has_a_container() {
    // One container at a time: the RM grants the oldest map ask only.
    let mut h = Harness::new(
        spec(&[&["h1"], &["h2"], &["h3"], &["h4"]], 2),
        JobConfig::default(),
    );
    for i in 0..4 {
        let ask = h.asks_of(TaskKind::Map)[0].ask_id;
        h.grant(ask, "h1");
        let running = attempt(TaskId::map(i), 0);
        assert!(
            h.running.contains_key(&running),
            "{running} got the container"
        );
        if i < 3 {
            assert!(map_ask_outstanding(&h));
            assert!(
                h.asks_of(TaskKind::Reduce).is_empty(),
                "no reduce ask while maps wait (after m{i})"
            );
        }
        h.now += 1000;
        h.succeed(running);
        if i < 3 {
            assert!(
                h.asks_of(TaskKind::Reduce).is_empty(),
                "slow start is met but maps still wait (after m{i} succeeded)"
            );
        }
    }
    assert!(!map_ask_outstanding(&h));
    let reduces = h.asks_of(TaskKind::Reduce);
    assert_eq!(reduces.len(), 2, "every map placed: the reduces ask");
    for r in reduces {
        h.grant(r.ask_id, "h1");
    }
    h.now += 1000;
    h.succeed(attempt(TaskId::reduce(0), 0));
    h.succeed(attempt(TaskId::reduce(1), 0));
    h.commit_everything();
    assert_eq!(h.terminal, vec![Action::JobSucceeded]);
    assert_eq!(h.job_counter(NUM_KILLED_REDUCES), 0);
}

#[test]
fn a_map_rerun_starved_by_reducers_withdraws_reduce_asks_then_preempts_one_reducer() {
    let config = JobConfig::default();
    let delay = config.reducer_preempt_delay_ms;
    assert_eq!(delay, 10_000);
    let mut h = Harness::new(spec(&[&["h1"], &["h2"]], 2), config);
    h.grant_all("h1");
    h.now = 1000;
    h.succeed(attempt(TaskId::map(0), 0));
    h.succeed(attempt(TaskId::map(1), 0));
    let reduces = h.asks_of(TaskKind::Reduce);
    assert_eq!(reduces.len(), 2);
    // r0 gets a container; r1 still asks when m0's output is lost with h1.
    h.now = 2000;
    h.grant(reduces[0].ask_id, "h3");
    let r0 = attempt(TaskId::reduce(0), 0);
    h.feed(Event::AttemptStarted { attempt: r0 });
    h.now = 3000;
    let actions = h.feed(Event::NodeLost {
        host: "h1".to_string(),
    });
    let map_asks = h.asks_of(TaskKind::Map);
    assert_eq!(map_asks.len(), 1, "m0 is re-run");
    assert!(
        actions.contains(&Action::CancelRequest {
            ask_id: reduces[1].ask_id
        }),
        "r1's ask is withdrawn while the map waits: {actions:?}"
    );
    assert!(h.asks_of(TaskKind::Reduce).is_empty());

    // The reducer holds the only container; the map waits. Not yet long enough...
    h.now = 3000 + delay - 1;
    h.feed(Event::Tick);
    assert!(h.killed.is_empty());
    assert!(h.jt.next_timeout().is_some_and(|t| t <= 3000 + delay));
    // ...now it has: the newest reducer is killed, not failed.
    h.now = 3000 + delay;
    h.feed(Event::Tick);
    assert_eq!(h.killed, vec![r0]);
    let record =
        h.jt.status()
            .attempts
            .into_iter()
            .find(|a| a.attempt == r0)
            .expect("r0 record");
    assert_eq!(record.state, AttemptState::Killed);
    assert!(record
        .error
        .as_deref()
        .is_some_and(|e| e.contains("preempted")));
    assert_eq!(h.job_counter(NUM_KILLED_REDUCES), 1);
    assert_eq!(h.job_counter(NUM_FAILED_REDUCES), 0);
    assert!(
        h.asks_of(TaskKind::Reduce).is_empty(),
        "the killed reduce asks again only once the map is placed"
    );
    // At most one preemption per delay, however long the map keeps waiting.
    h.now = 3000 + delay + delay / 2;
    h.feed(Event::Tick);
    assert_eq!(h.killed.len(), 1);

    // The freed container goes to the map; then both reduces ask again.
    h.grant(map_asks[0].ask_id, "h3");
    let m0 = attempt(TaskId::map(0), 1);
    assert!(h.running.contains_key(&m0));
    let reduces = h.asks_of(TaskKind::Reduce);
    assert_eq!(reduces.len(), 2, "r0 re-run and r1 ask: {reduces:?}");
    h.now += 1000;
    h.succeed(m0);
    for r in reduces {
        h.grant(r.ask_id, "h2");
    }
    let r0_again = attempt(TaskId::reduce(0), 1);
    assert!(
        h.running.contains_key(&r0_again),
        "killed reduce re-run as a new attempt"
    );
    h.now += 1000;
    h.succeed(r0_again);
    h.succeed(attempt(TaskId::reduce(1), 0));
    h.commit_everything();
    assert_eq!(h.terminal, vec![Action::JobSucceeded]);
    assert_eq!(h.job_counter(NUM_KILLED_REDUCES), 1);
    assert_eq!(h.job_counter(NUM_FAILED_REDUCES), 0);
}

#[test]
fn the_newest_of_several_reducers_is_preempted_and_the_delay_key_is_read() {
    let conf = BTreeMap::from([(
        "mapreduce.job.reducer.preempt.delay.sec".to_string(),
        "2".to_string(),
    )]);
    let config = JobConfig::from_conf(&conf).expect("valid");
    assert_eq!(config.reducer_preempt_delay_ms, 2000);
    let mut h = Harness::new(spec(&[&["h1"], &["h2"]], 2), config);
    h.grant_all("h1");
    h.succeed(attempt(TaskId::map(0), 0));
    h.succeed(attempt(TaskId::map(1), 0));
    let reduces = h.asks_of(TaskKind::Reduce);
    h.now = 100;
    h.grant(reduces[0].ask_id, "h3");
    h.now = 200;
    h.grant(reduces[1].ask_id, "h4");
    // r0 fails and is re-run last: the newest reducer is r0's second attempt, not r1.
    h.now = 250;
    h.fail(attempt(TaskId::reduce(0), 0), "random");
    let retry = h.asks_of(TaskKind::Reduce);
    assert_eq!(retry.len(), 1);
    h.now = 300;
    h.grant(retry[0].ask_id, "h2");
    let r0_again = attempt(TaskId::reduce(0), 1);
    assert!(h.running.contains_key(&r0_again));
    // Too many fetch failures re-run m1; both reducers hold their containers.
    let m1 = attempt(TaskId::map(1), 0);
    for _ in 0..3 {
        h.feed(Event::FetchFailure {
            reducer: attempt(TaskId::reduce(1), 0),
            map: m1,
        });
    }
    assert_eq!(h.asks_of(TaskKind::Map).len(), 1);
    h.now = 1300;
    h.feed(Event::Tick);
    assert!(h.killed.is_empty());
    h.now = 2300;
    h.feed(Event::Tick);
    assert_eq!(h.killed, vec![r0_again]);
    assert_eq!(h.job_counter(NUM_KILLED_REDUCES), 1);
    assert_eq!(
        h.job_counter(NUM_FAILED_REDUCES),
        1,
        "only r0's own failure"
    );
}

#[test]
fn a_wall_clock_step_does_not_time_out_an_attempt() {
    let config = JobConfig {
        task_timeout_ms: 10_000,
        ..JobConfig::default()
    };
    let wall = 1_700_000_000_000;
    let at = |monotonic_ms: u64, wall_ms: u64| Now {
        monotonic_ms,
        wall_ms,
    };
    let mut jt = JobTracker::new(spec(&[&["h1"]], 0), config, at(0, wall));
    let asks = jt.start(at(0, wall));
    let Some(Action::RequestContainer(ask)) = asks.first() else {
        panic!("{asks:?}");
    };
    let launch = jt.handle(
        at(10, wall + 10),
        Event::ContainerAllocated {
            container: ContainerId("c1".into()),
            ask_id: ask.ask_id,
            host: "h1".into(),
            rack: rack_of("h1"),
        },
    );
    let a = launch.iter().find_map(Action::launched).expect("launched");
    // NTP steps the wall clock a day ahead while one second passes.
    let actions = jt.handle(at(1_010, wall + 86_400_000), Event::Tick);
    assert!(actions.is_empty(), "{actions:?}");
    assert!(jt.is_live(a));
    assert_eq!(jt.next_timeout(), Some(10_010));
    // The monotonic clock decides: 10 s without progress.
    let actions = jt.handle(at(10_010, wall - 86_400_000), Event::Tick);
    assert!(actions.contains(&Action::KillAttempt {
        attempt: a,
        container: ContainerId("c1".into())
    }));
    assert!(!jt.is_live(a));
}
