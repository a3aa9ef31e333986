//! Reduce ramp-up and preemption: reduces ask for containers only once every map has one, and
//! a map waiting too long gets the newest reducer's container.

use super::{Ending, JobTracker};
use crate::attempts::{AttemptState, Now};
use crate::jobtracker::ids::{AttemptId, TaskKind};
use crate::jobtracker::protocol::Action;
use crate::jobtracker::status::JobState;

impl JobTracker {
    /// Whether some map task waits for a container (twins excluded: their task has one).
    pub(super) fn maps_waiting(&self) -> bool {
        self.waiting_maps().next().is_some()
    }

    /// When (monotonic ms) each map task that waits for a container started waiting.
    fn waiting_maps(&self) -> impl Iterator<Item = u64> + '_ {
        self.book
            .attempts()
            .filter(|a| {
                a.id.task.kind == TaskKind::Map
                    && a.state == AttemptState::Unassigned
                    && !a.speculative
            })
            .map(|a| a.created.monotonic_ms)
    }

    /// The reduce attempts holding a container, newest launch last.
    fn launched_reduces(&self) -> Vec<AttemptId> {
        let mut live: Vec<(u64, AttemptId)> = self
            .book
            .attempts()
            .filter(|a| a.id.task.kind == TaskKind::Reduce && a.state.is_launched_and_live())
            .map(|a| (a.launched.map_or(0, |t| t.monotonic_ms), a.id))
            .collect();
        live.sort();
        live.into_iter().map(|(_, id)| id).collect()
    }

    /// When (monotonic ms) a reducer will be preempted if nothing changes (None when none would
    /// be).
    pub(super) fn next_preemption(&self) -> Option<u64> {
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
    /// delay. Runs after every event, so it scans the attempts a bounded number of times.
    pub(super) fn balance_reduces(&mut self, now: Now, out: &mut Vec<Action>) {
        if self.state != JobState::Running || self.num_reduces == 0 {
            return;
        }
        if self
            .next_preemption()
            .is_some_and(|at| at <= now.monotonic_ms)
        {
            if let Some(victim) = self.launched_reduces().pop() {
                self.last_preemption_ms = Some(now.monotonic_ms);
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
        // Asking for or withdrawing reduce containers does not change which maps wait.
        let maps_waiting = self.maps_waiting();
        let unbalanced: Vec<AttemptId> = self
            .book
            .attempts()
            .filter(|a| a.id.task.kind == TaskKind::Reduce && a.state == AttemptState::Unassigned)
            .filter(|a| a.data.ask.is_some() == maps_waiting)
            .map(|a| a.id)
            .collect();
        for id in unbalanced {
            if maps_waiting {
                if let Some(ask_id) = self.extra_mut(id).and_then(|x| x.ask.take()) {
                    self.asks.remove(&ask_id);
                    out.push(Action::CancelRequest { ask_id });
                }
            } else {
                self.ask_for(id, out);
            }
        }
    }
}
