//! The book driven the way a query master would: tasks are `(stage, partition)`, nothing of
//! MapReduce in sight.

use super::*;

/// A query master's task: partition `partition` of stage `stage`.
type StageTask = (u32, u32);

fn book(policy: AttemptPolicy) -> AttemptBook<StageTask> {
    let mut b = AttemptBook::new(policy);
    for stage in 0..2 {
        for partition in 0..4 {
            b.add_task((stage, partition));
        }
    }
    b
}

#[test]
fn failures_retry_elsewhere_then_give_up_at_the_limit() {
    let mut b = book(AttemptPolicy {
        max_attempts: 3,
        ..AttemptPolicy::default()
    });
    let task = (1, 2);
    let mut avoid = Vec::new();
    for n in 0..3u32 {
        let node = format!("h{n}");
        let id = b.create_attempt(task, false, Now::at(10 * n as u64));
        assert_eq!(id.number, n);
        assert_eq!(
            b.attempt(id)
                .map(|a| a.avoid.iter().cloned().collect::<Vec<_>>()),
            Some(avoid.clone()),
            "a retry avoids the nodes its task failed on"
        );
        assert!(b.launch(id, &node, Now::at(10 * n as u64 + 1)));
        let failure = b
            .failed(id, format!("oom on {node}"), Now::at(10 * n as u64 + 5))
            .expect("live attempt");
        assert_eq!(failure.ended.ran_ms, 4);
        avoid.push(node.clone());
        if n < 2 {
            assert_eq!(
                failure.verdict,
                Verdict::Retry {
                    avoid_nodes: avoid.iter().cloned().collect()
                }
            );
        } else {
            assert_eq!(
                failure.verdict,
                Verdict::GiveUp {
                    failures: 3,
                    last_error: "oom on h2".into()
                }
            );
        }
    }
    assert!(b.is_exhausted(task));
    assert_eq!(b.last_error(task), Some("oom on h2"));
    // A late report from an ended attempt changes nothing.
    let first = AttemptId { task, number: 0 };
    assert_eq!(b.failed(first, "again".into(), Now::at(99)), None);
    assert_eq!(b.failures(task), 3);
}

#[test]
fn the_first_success_wins_and_a_later_one_is_killed() {
    let mut b = book(AttemptPolicy::default());
    let task = (0, 0);
    let a = b.start_attempt(task, "h1", Now::at(0));
    let twin = b.create_attempt(task, true, Now::at(5));
    assert!(b.has_speculated(task));
    assert!(b.attempt(twin).is_some_and(|t| t.avoid.contains("h1")));
    b.launch(twin, "h2", Now::at(6));
    assert_eq!(
        b.succeeded(twin, Now::at(20)),
        Success::Won { twins: vec![a] }
    );
    assert_eq!(b.status(task), TaskStatus::Won(twin));
    match b.succeeded(a, Now::at(21)) {
        Success::AlreadyDone { ended, speculated } => {
            assert!(speculated);
            assert_eq!(ended.ran_ms, 21);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(b.succeeded(a, Now::at(22)), Success::NotLive);
    // A failed commit reopens the task and counts against it.
    assert!(b.reopen(twin));
    assert!(b
        .failed(twin, "commit failed".into(), Now::at(23))
        .is_some());
    assert!(b.is_open(task));
    assert_eq!(b.failures(task), 1);
    let c = b.start_attempt(task, "h3", Now::at(30));
    assert_eq!(c.number, 2);
    assert!(matches!(b.succeeded(c, Now::at(40)), Success::Won { .. }));
    assert!(b.committed(c));
    assert!(b.is_done(task) && b.was_ever_done(task));
}

#[test]
fn nodes_are_blacklisted_after_the_limit_of_failures() {
    let mut b = book(AttemptPolicy {
        node_failure_limit: 2,
        ..AttemptPolicy::default()
    });
    for partition in 0..2 {
        let id = b.start_attempt((0, partition), "sick", Now::at(0));
        assert!(!b.is_blacklisted("sick"));
        b.failed(id, "crash".into(), Now::at(1));
    }
    assert!(b.is_blacklisted("sick"));
    assert_eq!(b.blacklisted_nodes(), vec!["sick".to_string()]);
    // Killed attempts are not the node's fault.
    let id = b.start_attempt((0, 3), "fine", Now::at(0));
    b.killed(id, "preempted".into(), Now::at(1));
    let again = b.start_attempt((0, 3), "fine", Now::at(2));
    b.killed(again, "again".into(), Now::at(3));
    assert!(!b.is_blacklisted("fine"));
}

#[test]
fn a_wall_clock_step_does_not_time_attempts_out() {
    let mut b = book(AttemptPolicy {
        timeout_ms: 10_000,
        ..AttemptPolicy::default()
    });
    let start = Now {
        monotonic_ms: 1_000,
        wall_ms: 1_700_000_000_000,
    };
    let id = b.start_attempt((0, 0), "h1", start);
    assert_eq!(b.next_timeout(), Some(11_000));
    // NTP steps the wall clock a day forward; only a second passed.
    let stepped = Now {
        monotonic_ms: 2_000,
        wall_ms: start.wall_ms + 86_400_000,
    };
    assert!(b.timed_out(stepped).is_empty());
    b.progress(id, 0.5, false, stepped);
    // And back: still nothing, until the monotonic clock says 10 s passed without progress.
    let back = Now {
        monotonic_ms: 11_999,
        wall_ms: start.wall_ms - 86_400_000,
    };
    assert!(b.timed_out(back).is_empty());
    assert_eq!(b.timed_out(Now::at(12_000)), vec![id]);
}

#[test]
fn stragglers_of_a_stage_get_one_twin_once_most_of_the_stage_is_done() {
    let mut b = book(AttemptPolicy::default());
    let stage_one = |t: StageTask| t.0 == 1;
    for partition in 0..4 {
        b.start_attempt((1, partition), &format!("h{partition}"), Now::at(0));
    }
    for partition in 0..3 {
        let id = AttemptId {
            task: (1, partition),
            number: 0,
        };
        b.progress(id, 0.5, false, Now::at(5_000));
        assert!(matches!(
            b.succeeded(id, Now::at(10_000)),
            Success::Won { .. }
        ));
        b.committed(id);
    }
    // Partition 3 crawls at 10% after 20 s while the others took 10 s.
    let slow = AttemptId {
        task: (1, 3),
        number: 0,
    };
    b.progress(slow, 0.1, false, Now::at(20_000));
    assert_eq!(
        b.speculation_candidates(stage_one, Now::at(20_000)),
        vec![(1, 3)]
    );
    // Stage 0 has nothing done: too early to judge.
    assert!(b
        .speculation_candidates(|t: StageTask| t.0 == 0, Now::at(20_000))
        .is_empty());
    let twin = b.create_attempt((1, 3), true, Now::at(20_000));
    assert!(b.attempt(twin).is_some_and(|a| a.avoid.contains("h3")));
    assert!(
        b.speculation_candidates(stage_one, Now::at(30_000))
            .is_empty(),
        "one twin per task"
    );
}

#[test]
fn restored_attempts_keep_their_counts_and_numbers_continue() {
    let mut b: AttemptBook<StageTask> = AttemptBook::new(AttemptPolicy::default());
    let id = AttemptId {
        task: (2, 0),
        number: 4,
    };
    let restored = Attempt {
        id,
        state: AttemptState::Failed,
        speculative: false,
        node: Some("h9".into()),
        created: Now::at(1),
        launched: Some(Now::at(1)),
        ended: Some(Now::at(2)),
        progress: 0.3,
        last_progress_ms: 2,
        avoid: Default::default(),
        error: Some("lost".into()),
        data: (),
    };
    assert!(b.restore(restored.clone()));
    assert!(!b.restore(restored), "an attempt is restored once");
    assert_eq!(b.failures((2, 0)), 1);
    assert_eq!(b.create_attempt((2, 0), false, Now::at(3)).number, 5);
}
