//! A tracker for a new JobTracker attempt, seeded from the history the previous one left.

use super::{AttemptExtra, JobTracker, MrAttempt};
use crate::attempts::Now;
use crate::jobtracker::config::JobConfig;
use crate::jobtracker::ids::TaskKind;
use crate::jobtracker::protocol::JobSpec;
use crate::jobtracker::status::*;
use std::collections::BTreeSet;

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

impl JobTracker {
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
        now: Now,
    ) -> Result<JobTracker, RecoveryError> {
        if history.job_id != spec.job_id {
            return Err(RecoveryError::WrongJob {
                expected: spec.job_id,
                found: history.job_id.clone(),
            });
        }
        let started = Now {
            wall_ms: history.start_ms,
            ..now
        };
        let mut jt = JobTracker::new(spec, config, started);
        let maps = jt.map_inputs.len() as u32;
        if history.maps_total != maps || history.reduces_total != jt.num_reduces {
            return Err(RecoveryError::ShapeChanged {
                job: jt.job_id,
                history: (history.maps_total, history.reduces_total),
                now: (maps, jt.num_reduces),
            });
        }
        jt.counters = history.counters.clone();
        let mut records: Vec<&AttemptRecord> = history.attempts.iter().collect();
        records.sort_by_key(|r| r.attempt);
        for r in records {
            let id = r.attempt;
            let tasks = match id.task.kind {
                TaskKind::Map => maps,
                TaskKind::Reduce => jt.num_reduces,
            };
            let lost = r.state.is_live();
            let state = if lost { AttemptState::Killed } else { r.state };
            let error = if lost {
                Some("lost with the previous JobTracker attempt".to_string())
            } else {
                r.error.clone()
            };
            // Only wall times survive a JobTracker: both clocks are set to them, which keeps
            // the durations (speculation compares them) and the records.
            let recorded = Now::at;
            let attempt = MrAttempt {
                id,
                state,
                speculative: r.speculative,
                node: r.host.clone(),
                created: r.start_ms.map_or(now, recorded),
                launched: r.start_ms.map(recorded),
                ended: if lost {
                    Some(now)
                } else {
                    r.end_ms.map(recorded)
                },
                progress: r.progress,
                last_progress_ms: now.monotonic_ms,
                avoid: BTreeSet::new(),
                error,
                data: AttemptExtra {
                    rack: r.rack.clone(),
                    locality: r.locality,
                    committed: r.committed,
                    ..AttemptExtra::default()
                },
            };
            if id.task.index >= tasks || !jt.book.restore(attempt) {
                return Err(RecoveryError::UnknownAttempt {
                    job: jt.job_id,
                    attempt: id.to_string(),
                });
            }
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
            let writes_output = id.task.kind == TaskKind::Reduce || jt.num_reduces == 0;
            if r.committed && writes_output {
                jt.book.restore_done(id);
            } else if state == AttemptState::Succeeded && !writes_output {
                // Its output may be gone, but it did once succeed: needed again only if a
                // reduce still has to read it.
                jt.book.restore_ever_done(id.task);
            }
        }
        jt.diagnostics = history.diagnostics.clone();
        if history.state.is_terminal() {
            jt.state = history.state;
            jt.finish_ms = history.finish_ms;
        }
        Ok(jt)
    }
}
