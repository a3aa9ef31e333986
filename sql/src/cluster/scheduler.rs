//! The query master's decisions for one query, sans-I/O: which producer stage tasks may run
//! (a stage runs once every stage it reads is complete), which attempt to hand an executor,
//! what a success, a failure, a lost output or a lost executor means. Attempts, retries on
//! other nodes, blacklisting and timeouts are MapReduce's [`AttemptBook`], keyed by
//! `(stage, task)`; lineage recovery (Spark's FetchFailed) is here: a lost output reopens only
//! its producer task, and a stage whose outputs are lost more than [`MAX_STAGE_RESUBMISSIONS`]
//! times fails the query.

use super::protocol::{ProducerOutput, StageLocations, TaskAttemptId};
use crate::block_splits::{self, BlockHosts};
use crate::stage_store::PartitionFile;
use crate::stages::StagePlan;
use sheaf_mapreduce::attempts::{
    AttemptBook, AttemptId, AttemptPolicy, AttemptState, Now, Success, TaskStatus, Verdict,
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

/// A task: (stage, task).
pub type TaskKey = (u32, u32);

/// Times a stage may lose outputs and run again before the query fails (Spark's
/// `spark.stage.maxConsecutiveAttempts`, 4).
pub const MAX_STAGE_RESUBMISSIONS: u32 = 4;

/// The shape of one producer stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageShape {
    /// Its id.
    pub id: u32,
    /// Its tasks.
    pub tasks: u32,
    /// Stages it reads.
    pub inputs: Vec<u32>,
    /// Hosts each task prefers (those holding its scan's blocks); empty for anywhere.
    pub preferred: Vec<Vec<String>>,
}

impl StageShape {
    /// The producer stages of a plan (every stage but the final one, which the master runs),
    /// with the hosts holding each scan task's blocks.
    pub fn producers_of(plan: &StagePlan, hosts: &BlockHosts) -> Vec<StageShape> {
        let n = plan.stages.len().saturating_sub(1);
        plan.stages[..n]
            .iter()
            .map(|s| StageShape {
                id: s.id as u32,
                tasks: s.tasks() as u32,
                inputs: s.inputs.iter().map(|i| *i as u32).collect(),
                preferred: block_splits::task_hosts(&s.plan, hosts),
            })
            .collect()
    }

    fn preferred(&self, task: u32) -> &[String] {
        self.preferred
            .get(task as usize)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

/// Where an attempt ran relative to the data it scans (MapReduce's DATA_LOCAL_MAPS and
/// RACK_LOCAL_MAPS).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TaskLocality {
    /// The task prefers no host (it reads stage outputs, or files outside the DFS).
    #[default]
    Anywhere,
    /// On a host holding its block.
    DataLocal,
    /// On the rack of such a host.
    RackLocal,
    /// Elsewhere.
    OffRack,
}

/// What delay scheduling knows of the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalityView {
    /// Hosts with a live executor.
    pub executor_hosts: BTreeSet<String>,
    /// The rack of each node the ResourceManager reported.
    pub rack_of: BTreeMap<String, String>,
}

/// What the master keeps about an attempt.
#[derive(Debug, Clone, Default)]
pub struct AttemptData {
    /// The executor running it.
    pub executor: Option<u32>,
    /// That executor's shuffle service.
    pub shuffle: Option<SocketAddr>,
    /// Where it ran relative to its data.
    pub locality: TaskLocality,
}

/// An attempt handed to an executor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The attempt.
    pub attempt: TaskAttemptId,
    /// Where its inputs are.
    pub inputs: Vec<StageLocations>,
}

/// Figures of one stage, summed over its winning attempts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageFigures {
    /// Tasks done.
    pub done: u32,
    /// Rows written.
    pub rows: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Bytes spilled.
    pub spilled: u64,
    /// Outputs lost after they were written, and so run again.
    pub reruns: u32,
    /// Attempts launched.
    pub attempts: u32,
    /// Attempts launched on a host holding their block.
    pub data_local: u32,
    /// Attempts launched on the rack of such a host.
    pub rack_local: u32,
}

/// One query's producer stages and their attempts.
#[derive(Debug)]
pub struct QueryScheduler {
    query: u64,
    stages: Vec<StageShape>,
    book: AttemptBook<TaskKey, AttemptData>,
    outputs: BTreeMap<TaskKey, ProducerOutput>,
    spilled: BTreeMap<TaskKey, u64>,
    resubmissions: BTreeMap<u32, u32>,
    reruns: BTreeMap<u32, u32>,
    failure: Option<String>,
    /// The failure is a task out of its memory budget (deterministic: not retried).
    out_of_memory: bool,
    view: LocalityView,
    locality_wait_ms: u64,
    runnable_since: BTreeMap<u32, u64>,
}

impl QueryScheduler {
    /// A scheduler for query `query`'s producer stages.
    pub fn new(query: u64, stages: Vec<StageShape>, policy: AttemptPolicy) -> QueryScheduler {
        let mut book = AttemptBook::new(policy);
        for s in &stages {
            for t in 0..s.tasks {
                book.add_task((s.id, t));
            }
        }
        QueryScheduler {
            query,
            stages,
            book,
            outputs: BTreeMap::new(),
            spilled: BTreeMap::new(),
            resubmissions: BTreeMap::new(),
            reruns: BTreeMap::new(),
            failure: None,
            out_of_memory: false,
            view: LocalityView::default(),
            locality_wait_ms: 3000,
            runnable_since: BTreeMap::new(),
        }
    }

    /// Waits at most `wait` for a slot on a preferred host before a scan task runs elsewhere
    /// (delay scheduling).
    pub fn with_locality_wait(mut self, wait: std::time::Duration) -> QueryScheduler {
        self.locality_wait_ms = wait.as_millis() as u64;
        self
    }

    /// Tells delay scheduling where executors are now.
    pub fn set_view(&mut self, view: LocalityView) {
        self.view = view;
    }

    fn locality_of(&self, host: &str, preferred: &[String]) -> TaskLocality {
        if preferred.is_empty() {
            return TaskLocality::Anywhere;
        }
        if preferred.iter().any(|h| h == host) {
            return TaskLocality::DataLocal;
        }
        let rack = self.view.rack_of.get(host);
        if rack.is_some() && preferred.iter().any(|h| self.view.rack_of.get(h) == rack) {
            TaskLocality::RackLocal
        } else {
            TaskLocality::OffRack
        }
    }

    /// The query.
    pub fn query(&self) -> u64 {
        self.query
    }

    /// Why the query failed, once it has.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Whether the query failed because a task ran out of its memory budget.
    pub fn failed_out_of_memory(&self) -> bool {
        self.failure.is_some() && self.out_of_memory
    }

    fn stage(&self, id: u32) -> Option<&StageShape> {
        self.stages.iter().find(|s| s.id == id)
    }

    fn stage_complete(&self, id: u32) -> bool {
        self.stage(id)
            .map(|s| (0..s.tasks).all(|t| self.outputs.contains_key(&(id, t))))
            .unwrap_or(true)
    }

    /// True when every producer stage's output is complete.
    pub fn is_done(&self) -> bool {
        self.stages.iter().all(|s| self.stage_complete(s.id))
    }

    /// Where the outputs of stage `id` are (complete or not).
    pub fn locations(&self, id: u32) -> StageLocations {
        StageLocations {
            stage: id,
            producers: self
                .outputs
                .range((id, 0)..=(id, u32::MAX))
                .map(|(_, o)| o.clone())
                .collect(),
        }
    }

    /// Figures of stage `id`.
    pub fn figures(&self, id: u32) -> StageFigures {
        let mut f = StageFigures {
            reruns: self.reruns.get(&id).copied().unwrap_or(0),
            attempts: self
                .book
                .attempts()
                .filter(|a| a.id.task.0 == id && a.is_launched())
                .count() as u32,
            ..StageFigures::default()
        };
        for a in self
            .book
            .attempts()
            .filter(|a| a.id.task.0 == id && a.is_launched())
        {
            match a.data.locality {
                TaskLocality::DataLocal => f.data_local += 1,
                TaskLocality::RackLocal => f.rack_local += 1,
                TaskLocality::Anywhere | TaskLocality::OffRack => {}
            }
        }
        for ((_, t), o) in self.outputs.range((id, 0)..=(id, u32::MAX)) {
            f.done += 1;
            f.rows += o.partitions.iter().map(|p| p.rows).sum::<u64>();
            f.bytes += o.partitions.iter().map(|p| p.bytes).sum::<u64>();
            f.spilled += self.spilled.get(&(id, *t)).copied().unwrap_or(0);
        }
        f
    }

    /// The next attempt for an executor on `host`, if a task of a runnable stage needs one. A
    /// task whose attempts failed on `host` goes elsewhere while `other_hosts` says there is an
    /// elsewhere. A scan task prefers the hosts holding its block: it goes to another host only
    /// when none of them has an executor, or once its stage has waited the locality wait.
    pub fn next_task(
        &mut self,
        executor: u32,
        host: &str,
        shuffle: SocketAddr,
        other_hosts: bool,
        now: Now,
    ) -> Option<Assignment> {
        // Is there a live executor on another host `usable` accepts? (Without a view, as in
        // unit tests, the caller's `other_hosts` says.) A task that failed everywhere, or a
        // cluster whose every host is blacklisted, must still run somewhere, not wait forever.
        let elsewhere = |usable: &dyn Fn(&str) -> bool| {
            if self.view.executor_hosts.is_empty() {
                other_hosts
            } else {
                self.view
                    .executor_hosts
                    .iter()
                    .any(|h| h != host && usable(h))
            }
        };
        if self.failure.is_some()
            || (self.book.is_blacklisted(host) && elsewhere(&|h| !self.book.is_blacklisted(h)))
        {
            return None;
        }
        let runnable: Vec<u32> = self
            .stages
            .iter()
            .filter(|s| s.inputs.iter().all(|i| self.stage_complete(*i)))
            .map(|s| s.id)
            .collect();
        for id in &runnable {
            self.runnable_since.entry(*id).or_insert(now.monotonic_ms);
        }
        // Candidates: open tasks of runnable stages, with no live attempt, not failed here.
        let mut candidates: Vec<(TaskKey, &StageShape)> = Vec::new();
        for s in self.stages.iter().filter(|s| runnable.contains(&s.id)) {
            for t in 0..s.tasks {
                let key = (s.id, t);
                if self.book.status(key) != TaskStatus::Open || self.book.has_live_attempt(key) {
                    continue;
                }
                let failed_on = |h: &str| {
                    self.book
                        .attempts_of(key)
                        .any(|a| a.node.as_deref() == Some(h) && a.state == AttemptState::Failed)
                };
                if failed_on(host) && elsewhere(&|h| !failed_on(h)) {
                    continue;
                }
                candidates.push((key, s));
            }
        }
        let local = candidates
            .iter()
            .find(|(k, s)| s.preferred(k.1).iter().any(|h| h == host));
        let chosen = local.or_else(|| {
            candidates.iter().find(|(k, s)| {
                let preferred = s.preferred(k.1);
                let waited = self
                    .runnable_since
                    .get(&s.id)
                    .is_some_and(|t| now.monotonic_ms >= t + self.locality_wait_ms);
                preferred.is_empty()
                    || waited
                    || !preferred
                        .iter()
                        .any(|h| self.view.executor_hosts.contains(h))
            })
        });
        let (key, inputs, locality) = chosen.map(|(k, s)| {
            (
                *k,
                s.inputs.clone(),
                self.locality_of(host, s.preferred(k.1)),
            )
        })?;
        let id = self.book.create_attempt(key, false, now);
        self.book.launch(id, host, now);
        if let Some(d) = self.book.data_mut(id) {
            d.executor = Some(executor);
            d.shuffle = Some(shuffle);
            d.locality = locality;
        }
        Some(Assignment {
            attempt: self.attempt_id(id),
            inputs: inputs.iter().map(|i| self.locations(*i)).collect(),
        })
    }

    fn attempt_id(&self, id: AttemptId<TaskKey>) -> TaskAttemptId {
        TaskAttemptId {
            query: self.query,
            stage: id.task.0,
            task: id.task.1,
            attempt: id.number,
        }
    }

    fn book_id(a: TaskAttemptId) -> AttemptId<TaskKey> {
        AttemptId {
            task: (a.stage, a.task),
            number: a.attempt,
        }
    }

    /// The attempt wrote and registered its output.
    pub fn succeeded(
        &mut self,
        attempt: TaskAttemptId,
        partitions: Vec<PartitionFile>,
        spilled_bytes: u64,
        now: Now,
    ) {
        let id = Self::book_id(attempt);
        let shuffle = self.book.attempt(id).and_then(|a| a.data.shuffle);
        if let Success::Won { .. } = self.book.succeeded(id, now) {
            self.book.committed(id);
            if let Some(shuffle) = shuffle {
                self.outputs.insert(
                    id.task,
                    ProducerOutput {
                        task: attempt.task,
                        attempt: attempt.attempt,
                        shuffle,
                        partitions,
                    },
                );
                self.spilled.insert(id.task, spilled_bytes);
            }
        }
    }

    /// The attempt failed; after the task's last allowed attempt the query fails.
    pub fn failed(&mut self, attempt: TaskAttemptId, error: String, now: Now) {
        let id = Self::book_id(attempt);
        if let Some(f) = self.book.failed(id, error, now) {
            if let Verdict::GiveUp {
                failures,
                last_error,
            } = f.verdict
            {
                self.failure.get_or_insert(format!(
                    "stage {} task {} failed {failures} times; last error: {last_error}",
                    attempt.stage, attempt.task
                ));
            }
        }
    }

    /// The attempt ran out of its memory budget. The same fragment under the same budget fails
    /// the same way, so the query fails now instead of after four attempts; the session then
    /// re-plans it with operators that spill (sort-merge joins).
    pub fn out_of_memory(&mut self, attempt: TaskAttemptId, error: String, now: Now) {
        let id = Self::book_id(attempt);
        let why = format!(
            "stage {} task {} ran out of memory: {error}",
            attempt.stage, attempt.task
        );
        self.book.failed(id, error, now);
        if self.failure.is_none() {
            self.failure = Some(why);
            self.out_of_memory = true;
        }
    }

    /// The attempt could not fetch `producer`'s output: it ends without blame, and the producer
    /// runs again.
    pub fn fetch_failed(
        &mut self,
        attempt: TaskAttemptId,
        producer: TaskKey,
        error: String,
        now: Now,
    ) {
        let id = Self::book_id(attempt);
        self.book.killed(id, format!("input lost: {error}"), now);
        self.output_lost(producer, &error, now);
    }

    /// `producer`'s output cannot be read any more (its node is gone, fetches keep failing):
    /// only that task runs again.
    pub fn output_lost(&mut self, producer: TaskKey, why: &str, now: Now) {
        let Some(lost) = self.outputs.remove(&producer) else {
            return;
        };
        let winner = AttemptId {
            task: producer,
            number: lost.attempt,
        };
        if self.book.reopen(winner) {
            self.book.killed(winner, format!("output lost: {why}"), now);
        }
        *self.reruns.entry(producer.0).or_default() += 1;
        let n = self.resubmissions.entry(producer.0).or_default();
        *n += 1;
        if *n > MAX_STAGE_RESUBMISSIONS {
            self.failure.get_or_insert(format!(
                "stage {} lost its output {} times (last: {why}); giving up",
                producer.0, *n
            ));
        }
    }

    /// Executor `executor` is gone: its running attempts end without blame; when its node is
    /// gone too (`outputs_lost`), the outputs it wrote run again (otherwise the node's shuffle
    /// service still serves them).
    pub fn executor_lost(&mut self, executor: u32, outputs_lost: bool, why: &str, now: Now) {
        let live: Vec<AttemptId<TaskKey>> = self
            .book
            .attempts()
            .filter(|a| a.state.is_live() && a.data.executor == Some(executor))
            .map(|a| a.id)
            .collect();
        for id in live {
            self.book.killed(id, why.to_string(), now);
        }
        if !outputs_lost {
            return;
        }
        let held: Vec<TaskKey> = self
            .outputs
            .keys()
            .copied()
            .filter(|k| {
                let o = &self.outputs[k];
                self.book
                    .attempt(AttemptId {
                        task: *k,
                        number: o.attempt,
                    })
                    .and_then(|a| a.data.executor)
                    == Some(executor)
            })
            .collect();
        for k in held {
            self.output_lost(k, why, now);
        }
    }

    /// Attempts without progress past the policy's timeout fail.
    pub fn time_out(&mut self, now: Now) {
        for id in self.book.timed_out(now) {
            let a = self.attempt_id(id);
            self.failed(a, "timed out without progress".into(), now);
        }
    }

    /// Attempts still running (for the master's accounting at the end).
    pub fn live_attempts(&self) -> usize {
        self.book.attempts().filter(|a| a.state.is_live()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, n], 5000))
    }

    fn part(rows: u64) -> Vec<PartitionFile> {
        vec![PartitionFile {
            offset: 0,
            rows,
            bytes: rows * 10,
            crc32: 7,
        }]
    }

    /// Stage 0 (2 tasks) and stage 1 (1 task) both feed stage 2 (2 tasks).
    fn dag() -> QueryScheduler {
        QueryScheduler::new(
            1,
            vec![
                StageShape {
                    id: 0,
                    tasks: 2,
                    inputs: vec![],
                    preferred: vec![],
                },
                StageShape {
                    id: 1,
                    tasks: 1,
                    inputs: vec![],
                    preferred: vec![],
                },
                StageShape {
                    id: 2,
                    tasks: 2,
                    inputs: vec![0, 1],
                    preferred: vec![],
                },
            ],
            AttemptPolicy::default(),
        )
    }

    fn run_ok(s: &mut QueryScheduler, exec: u32, host: &str, t: u64) -> TaskAttemptId {
        let a = s
            .next_task(exec, host, addr(exec as u8), true, Now::at(t))
            .expect("a task");
        s.succeeded(a.attempt, part(3), 0, Now::at(t + 1));
        a.attempt
    }

    #[test]
    fn a_stage_runs_only_once_its_inputs_are_complete_and_gets_their_locations() {
        let mut s = dag();
        let a = s.next_task(1, "h1", addr(1), true, Now::at(0)).unwrap();
        let b = s.next_task(2, "h2", addr(2), true, Now::at(0)).unwrap();
        let c = s.next_task(1, "h1", addr(1), true, Now::at(0)).unwrap();
        assert_eq!(
            (a.attempt.stage, b.attempt.stage, c.attempt.stage),
            (0, 0, 1)
        );
        // Stage 2 waits for all three.
        assert!(s.next_task(2, "h2", addr(2), true, Now::at(1)).is_none());
        for x in [&a, &b, &c] {
            s.succeeded(x.attempt, part(3), 5, Now::at(2));
        }
        let d = s.next_task(2, "h2", addr(2), true, Now::at(3)).unwrap();
        assert_eq!(d.attempt.stage, 2);
        assert_eq!(d.inputs.len(), 2);
        assert_eq!(d.inputs[0].producers.len(), 2);
        assert_eq!(d.inputs[0].producers[1].shuffle, addr(2));
        assert_eq!(s.figures(0).rows, 6);
        assert_eq!(s.figures(0).spilled, 10);
        assert!(!s.is_done());
        let e = s.next_task(1, "h1", addr(1), true, Now::at(3)).unwrap();
        s.succeeded(d.attempt, part(1), 0, Now::at(4));
        s.succeeded(e.attempt, part(1), 0, Now::at(4));
        assert!(s.is_done());
    }

    #[test]
    fn a_failing_task_retries_elsewhere_and_fails_the_query_after_four_attempts() {
        let mut s = QueryScheduler::new(
            1,
            vec![StageShape {
                id: 0,
                tasks: 1,
                inputs: vec![],
                preferred: vec![],
            }],
            AttemptPolicy::default(),
        );
        let a = s.next_task(1, "h1", addr(1), true, Now::at(0)).unwrap();
        s.failed(a.attempt, "boom".into(), Now::at(1));
        // Not again on h1 while another host can take it.
        assert!(s.next_task(1, "h1", addr(1), true, Now::at(2)).is_none());
        for n in 1..4 {
            let a = s.next_task(2, "h2", addr(2), false, Now::at(2)).unwrap();
            assert_eq!(a.attempt.attempt, n);
            assert!(s.failure().is_none());
            s.failed(a.attempt, format!("boom {n}"), Now::at(3));
        }
        let why = s.failure().expect("failed");
        assert!(
            why.contains("failed 4 times") && why.contains("boom 3"),
            "{why}"
        );
        assert!(s.next_task(2, "h2", addr(2), false, Now::at(4)).is_none());
    }

    #[test]
    fn a_fetch_failure_reruns_only_the_lost_producer_without_blaming_the_consumer() {
        let mut s = dag();
        let first = run_ok(&mut s, 1, "h1", 0);
        run_ok(&mut s, 2, "h2", 0);
        run_ok(&mut s, 2, "h2", 0);
        let consumer = s.next_task(2, "h2", addr(2), true, Now::at(5)).unwrap();
        s.fetch_failed(
            consumer.attempt,
            (first.stage, first.task),
            "gone".into(),
            Now::at(6),
        );
        assert_eq!(s.figures(first.stage).reruns, 1);
        // Only the lost producer is runnable now.
        let rerun = s.next_task(2, "h2", addr(2), true, Now::at(7)).unwrap();
        assert_eq!(s.figures(first.stage).attempts, 3, "two tasks, one re-run");
        assert_eq!(
            (rerun.attempt.stage, rerun.attempt.task),
            (first.stage, first.task)
        );
        assert_eq!(rerun.attempt.attempt, 1);
        assert!(s.next_task(2, "h2", addr(2), true, Now::at(7)).is_none());
        s.succeeded(rerun.attempt, part(3), 0, Now::at(8));
        // The consumer runs again: its kill did not count.
        let again = s.next_task(2, "h2", addr(2), true, Now::at(9)).unwrap();
        assert_eq!(again.attempt.stage, 2);
        assert!(s.failure().is_none());
    }

    #[test]
    fn a_lost_executor_reruns_the_outputs_it_held_and_a_stage_lost_too_often_fails() {
        let mut s = QueryScheduler::new(
            1,
            vec![StageShape {
                id: 0,
                tasks: 1,
                inputs: vec![],
                preferred: vec![],
            }],
            AttemptPolicy::default(),
        );
        for round in 0..=MAX_STAGE_RESUBMISSIONS as u64 {
            run_ok(&mut s, 1, "h1", round * 10);
            assert!(s.is_done());
            s.executor_lost(1, true, "node lost", Now::at(round * 10 + 5));
            assert!(!s.is_done());
        }
        let why = s.failure().expect("failed");
        assert!(why.contains("stage 0 lost its output"), "{why}");
    }

    #[test]
    fn an_executor_that_dies_on_a_live_node_keeps_its_outputs_but_not_its_running_attempts() {
        let mut s = QueryScheduler::new(
            1,
            vec![StageShape {
                id: 0,
                tasks: 2,
                inputs: vec![],
                preferred: vec![],
            }],
            AttemptPolicy::default(),
        );
        run_ok(&mut s, 1, "h1", 0);
        let running = s.next_task(1, "h1", addr(1), true, Now::at(2)).unwrap();
        s.executor_lost(1, false, "container exited", Now::at(3));
        assert_eq!(s.figures(0).done, 1, "the served output stays");
        // The running attempt ended without blame: the task runs again, anywhere.
        let again = s.next_task(2, "h1", addr(2), true, Now::at(4)).unwrap();
        assert_eq!(again.attempt.task, running.attempt.task);
        assert_eq!(again.attempt.attempt, running.attempt.attempt + 1);
    }

    #[test]
    fn a_scan_task_waits_for_a_host_holding_its_block_then_runs_on_its_rack() {
        let shape = StageShape {
            id: 0,
            tasks: 2,
            inputs: vec![],
            preferred: vec![vec!["h1".into()], vec!["h2".into()]],
        };
        let mut s = QueryScheduler::new(1, vec![shape], AttemptPolicy::default())
            .with_locality_wait(std::time::Duration::from_millis(3000));
        s.set_view(LocalityView {
            executor_hosts: ["h1", "h2", "h3"].iter().map(|h| h.to_string()).collect(),
            rack_of: [("h1", "/r1"), ("h2", "/r2"), ("h3", "/r1")]
                .iter()
                .map(|(h, r)| (h.to_string(), r.to_string()))
                .collect(),
        });
        // h2 asks first and gets its own block's task, not task 0.
        let a = s.next_task(2, "h2", addr(2), true, Now::at(0)).unwrap();
        assert_eq!((a.attempt.stage, a.attempt.task), (0, 1));
        // h3 holds no block: task 0 waits for h1 during the locality wait...
        assert!(s.next_task(3, "h3", addr(3), true, Now::at(1000)).is_none());
        // ...and after it runs on h3, on h1's rack.
        let b = s.next_task(3, "h3", addr(3), true, Now::at(3000)).unwrap();
        assert_eq!((b.attempt.stage, b.attempt.task), (0, 0));
        let f = s.figures(0);
        assert_eq!((f.data_local, f.rack_local, f.attempts), (1, 1, 2));
    }

    #[test]
    fn a_scan_task_whose_hosts_have_no_executor_does_not_wait() {
        let shape = StageShape {
            id: 0,
            tasks: 1,
            inputs: vec![],
            preferred: vec![vec!["h9".into()]],
        };
        let mut s = QueryScheduler::new(1, vec![shape], AttemptPolicy::default());
        s.set_view(LocalityView {
            executor_hosts: ["h1"].iter().map(|h| h.to_string()).collect(),
            rack_of: BTreeMap::new(),
        });
        assert!(s.next_task(1, "h1", addr(1), true, Now::at(0)).is_some());
        assert_eq!(s.figures(0).data_local + s.figures(0).rack_local, 0);
    }

    #[test]
    fn a_task_that_failed_on_every_host_still_gets_its_last_attempts() {
        let shape = StageShape {
            id: 0,
            tasks: 1,
            inputs: vec![],
            preferred: vec![],
        };
        let mut s = QueryScheduler::new(1, vec![shape], AttemptPolicy::default());
        s.set_view(LocalityView {
            executor_hosts: ["h1", "h2"].iter().map(|h| h.to_string()).collect(),
            rack_of: BTreeMap::new(),
        });
        let a = s.next_task(1, "h1", addr(1), true, Now::at(0)).unwrap();
        s.failed(a.attempt, "boom".into(), Now::at(1));
        assert!(
            s.next_task(1, "h1", addr(1), true, Now::at(2)).is_none(),
            "h2 is untried"
        );
        let b = s.next_task(2, "h2", addr(2), true, Now::at(3)).unwrap();
        s.failed(b.attempt, "boom".into(), Now::at(4));
        // Failed on both: either host takes the next attempts, up to the fourth failure.
        for t in [5, 7] {
            let c = s
                .next_task(1, "h1", addr(1), true, Now::at(t))
                .expect("another attempt");
            s.failed(c.attempt, "boom".into(), Now::at(t + 1));
        }
        let why = s.failure().expect("failed after four attempts");
        assert!(why.contains("failed 4 times"), "{why}");
    }
}
