//! What time passing decides: task timeouts and speculative twins for stragglers.

use super::{Ending, JobTracker};
use crate::attempts::{AttemptState, Now};
use crate::jobtracker::ids::TaskKind;
use crate::jobtracker::protocol::Action;
use crate::jobtracker::status::JobState;

impl JobTracker {
    pub(super) fn on_tick(&mut self, now: Now, out: &mut Vec<Action>) {
        if self.state == JobState::Running {
            self.expire_silent_attempts(now, out);
            self.speculate(TaskKind::Map, now, out);
            self.speculate(TaskKind::Reduce, now, out);
            self.check_progress(now, out);
        }
    }

    /// Fails launched attempts without progress for the task timeout (monotonic time: a step of
    /// the wall clock times nothing out).
    fn expire_silent_attempts(&mut self, now: Now, out: &mut Vec<Action>) {
        let timeout = self.config.task_timeout_ms;
        for id in self.book.timed_out(now) {
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
    fn speculate(&mut self, kind: TaskKind, now: Now, out: &mut Vec<Action>) {
        let enabled = match kind {
            TaskKind::Map => self.config.map_speculative,
            TaskKind::Reduce => self.config.reduce_speculative,
        };
        if !enabled {
            return;
        }
        for task in self.book.speculation_candidates(|t| t.kind == kind, now) {
            self.new_attempt(task, true, now, out);
        }
    }
}
