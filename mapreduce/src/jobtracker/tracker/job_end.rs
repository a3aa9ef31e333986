//! The job's way to its end: slow start, the job commit, failing and killing it.

use super::{Ending, JobTracker};
use crate::attempts::{AttemptState, Now};
use crate::jobtracker::ids::AttemptId;
use crate::jobtracker::protocol::Action;
use crate::jobtracker::status::JobState;

impl JobTracker {
    /// Releases reducers once slow start allows, and starts the job commit once every task is
    /// done.
    pub(super) fn check_progress(&mut self, now: Now, out: &mut Vec<Action>) {
        if self.state != JobState::Running {
            return;
        }
        if !self.reduces_released && self.num_reduces > 0 {
            let done = self.done_count(self.map_tasks());
            if done as f64 >= self.config.reduce_slowstart * self.map_inputs.len() as f64 {
                self.reduces_released = true;
                for task in self.reduce_tasks() {
                    self.reconcile(task, now, out);
                }
            }
        }
        let maps_done = if self.num_reduces > 0 {
            self.map_tasks().all(|t| self.book.was_ever_done(t))
        } else {
            self.map_tasks().all(|t| self.book.is_done(t))
        };
        let reduces_done = self.reduce_tasks().all(|t| self.book.is_done(t));
        if self.state == JobState::Running && maps_done && reduces_done {
            // Leftovers (a map re-run nobody needs any more) must not outlive the job.
            self.wind_down("job is committing", now, out);
            self.state = JobState::Committing;
            out.push(Action::CommitJob);
        }
    }

    pub(super) fn on_job_committed(&mut self, now: Now, out: &mut Vec<Action>) {
        if self.state == JobState::Committing {
            self.state = JobState::Succeeded;
            self.finish_ms = Some(now.wall_ms);
            out.push(Action::JobSucceeded);
        }
    }

    pub(super) fn on_job_commit_failed(&mut self, reason: String, now: Now, out: &mut Vec<Action>) {
        if self.state == JobState::Committing {
            let reason = format!("job commit failed: {reason}");
            self.end_job(JobState::Failed, reason.clone(), now);
            out.push(Action::JobFailed { reason });
        }
    }

    /// Fails a running job with `reason` (a task out of attempts, or the shell's
    /// [`crate::jobtracker::Event::Fail`]). A committing job is not failed: its output is
    /// being made visible.
    pub(super) fn fail_job(&mut self, reason: String, now: Now, out: &mut Vec<Action>) {
        if self.state != JobState::Running {
            return;
        }
        self.wind_down("job failed", now, out);
        self.end_job(JobState::Failed, reason.clone(), now);
        out.push(Action::JobFailed { reason });
    }

    /// A kill while committing is not honoured: the output is being made visible, and stopping
    /// half way could leave it neither there nor cleanly absent.
    pub(super) fn kill_job(&mut self, reason: String, now: Now, out: &mut Vec<Action>) {
        if self.state == JobState::Running {
            let reason = format!("job killed: {reason}");
            self.wind_down(&reason, now, out);
            self.end_job(JobState::Killed, reason.clone(), now);
            out.push(Action::JobKilled { reason });
        }
    }

    fn end_job(&mut self, state: JobState, reason: String, now: Now) {
        self.state = state;
        self.finish_ms = Some(now.wall_ms);
        self.diagnostics = Some(reason);
    }

    /// Kills every live attempt and withdraws every ask.
    fn wind_down(&mut self, reason: &str, now: Now, out: &mut Vec<Action>) {
        let live: Vec<AttemptId> = self
            .book
            .attempts()
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
