//! The end of an attempt (its container, its counters), successes and task-commit arbitration:
//! exactly one attempt per task is committed.

use super::{Ending, JobTracker};
use crate::attempts::{AttemptState, Ended, Now, Success, TaskStatus};
use crate::jobtracker::ids::{AttemptId, ContainerId, TaskKind};
use crate::jobtracker::protocol::{Action, MapOutputLocation};
use crate::jobtracker::status::*;

impl JobTracker {
    /// Moves an attempt to FAILED or KILLED (from a live state, or from SUCCEEDED when a map's
    /// output is lost), handling its ask or container and the counters. Does not reschedule.
    pub(super) fn end_attempt(
        &mut self,
        id: AttemptId,
        to: AttemptState,
        reason: String,
        ending: Ending,
        now: Now,
        out: &mut Vec<Action>,
    ) {
        let ended = if to == AttemptState::Failed {
            self.book.failed(id, reason, now).map(|f| f.ended)
        } else {
            self.book.killed(id, reason, now)
        };
        if let Some(ended) = ended {
            self.settle_container(id, &ended, ending, out);
            self.count_end(id.task.kind, to, &ended);
        }
    }

    /// The container side of an attempt's end: its ask is withdrawn, and the container of a live
    /// attempt released or killed.
    fn settle_container(
        &mut self,
        id: AttemptId,
        ended: &Ended,
        ending: Ending,
        out: &mut Vec<Action>,
    ) {
        let Some(x) = self.book.data_mut(id) else {
            return;
        };
        if let Some(ask_id) = x.ask.take() {
            self.asks.remove(&ask_id);
            out.push(Action::CancelRequest { ask_id });
        }
        if !ended.was.is_live() {
            return;
        }
        if let Some(container) = x.container.clone() {
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

    fn count_end(&mut self, kind: TaskKind, to: AttemptState, ended: &Ended) {
        if !ended.launched {
            return;
        }
        let name = match (kind, to) {
            (TaskKind::Map, AttemptState::Failed) => NUM_FAILED_MAPS,
            (TaskKind::Reduce, AttemptState::Failed) => NUM_FAILED_REDUCES,
            (TaskKind::Map, _) => NUM_KILLED_MAPS,
            (TaskKind::Reduce, _) => NUM_KILLED_REDUCES,
        };
        self.counters.incr(JOB_GROUP, name, 1);
        self.counters
            .incr(JOB_GROUP, millis_counter(kind), ended.ran_ms as i64);
    }

    /// A task reported that its attempt failed or was killed.
    pub(super) fn on_reported_end(
        &mut self,
        id: AttemptId,
        to: AttemptState,
        reason: String,
        now: Now,
        out: &mut Vec<Action>,
    ) {
        if self.book.is_launched_and_live(id) {
            self.end_attempt(id, to, reason, Ending::Reported, now, out);
            self.reconcile(id.task, now, out);
        }
    }

    /// A container's process ended before its attempt reported an outcome: it failed.
    pub(super) fn on_container_completed(
        &mut self,
        container: ContainerId,
        diagnostics: String,
        now: Now,
        out: &mut Vec<Action>,
    ) {
        let Some(id) = self.containers.get(&container).copied() else {
            return;
        };
        if self.book.is_launched_and_live(id) {
            self.end_attempt(
                id,
                AttemptState::Failed,
                format!("container {container} exited: {diagnostics}"),
                Ending::Gone,
                now,
                out,
            );
            self.reconcile(id.task, now, out);
        }
    }

    pub(super) fn on_succeeded(
        &mut self,
        id: AttemptId,
        output: Option<MapOutputLocation>,
        now: Now,
        out: &mut Vec<Action>,
    ) {
        if !self.book.is_launched_and_live(id) {
            return; // unknown, or already ended (a late report from a killed attempt)
        }
        let map_with_shuffle = id.task.kind == TaskKind::Map && self.num_reduces > 0;
        if map_with_shuffle && output.is_none() && self.book.is_open(id.task) {
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
        let twins = match self.book.succeeded(id, now) {
            Success::NotLive => return,
            Success::AlreadyDone { ended, speculated } => {
                self.settle_container(id, &ended, Ending::Reported, out);
                self.count_end(id.task.kind, AttemptState::Killed, &ended);
                if speculated {
                    self.counters
                        .incr(JOB_GROUP, SPECULATIVE_ATTEMPTS_KILLED, 1);
                }
                return;
            }
            Success::Won { twins } => twins,
        };
        let location = if map_with_shuffle { output } else { None };
        let millis = self.book.attempt(id).map_or(0, |a| {
            now.monotonic_ms
                .saturating_sub(a.launched.map_or(now.monotonic_ms, |t| t.monotonic_ms))
        });
        if let Some(x) = self.book.data_mut(id) {
            x.output = location.clone();
            if let Some(container) = x.container.clone() {
                self.containers.remove(&container);
                out.push(Action::ReleaseContainer { container });
            }
        }
        self.counters
            .incr(JOB_GROUP, millis_counter(id.task.kind), millis as i64);
        if let Some(location) = location {
            // Nothing to commit: the output is on the map's host, and this one is it.
            self.book.committed(id);
            self.completion_events.push(MapCompletionEvent {
                attempt: id,
                available: true,
                location,
            });
            out.push(Action::MapOutputAccepted { attempt: id });
        } else {
            out.push(Action::CommitTask { attempt: id });
        }
        // First to finish wins: its twin (running or still waiting) goes.
        let speculated = self.book.has_speculated(id.task);
        for twin in twins {
            let launched = self.book.attempt(twin).is_some_and(|a| a.is_launched());
            self.end_attempt(
                twin,
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

    pub(super) fn on_task_committed(&mut self, id: AttemptId, now: Now, out: &mut Vec<Action>) {
        if self.book.committed(id) {
            if let Some(x) = self.book.data_mut(id) {
                x.committed = true;
            }
            self.check_progress(now, out);
        }
    }

    pub(super) fn on_commit_failed(
        &mut self,
        id: AttemptId,
        reason: String,
        now: Now,
        out: &mut Vec<Action>,
    ) {
        if self.book.status(id.task) != TaskStatus::Won(id) {
            return;
        }
        self.book.reopen(id);
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
}

fn millis_counter(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::Map => MILLIS_MAPS,
        TaskKind::Reduce => MILLIS_REDUCES,
    }
}
