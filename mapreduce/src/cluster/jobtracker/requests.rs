//! The driver's answers to the requests of tasks (`GetTask`, progress, outputs, failures, map
//! events, fetch failures) and clients (status, kill) that the RPC service forwards.

use super::driver::Driver;
use super::service::RpcAnswer;
use crate::cluster::layout::{dfs_path_of, output_file_name};
use crate::cluster::protocol::{JtError, JtRequest, JtResponse, TaskAssignment};
use crate::jobtracker::{Event, MapOutputLocation, TaskKind};

impl Driver {
    /// Answers a task's or client's request, feeding the tracker what it tells.
    pub(super) fn on_rpc(&mut self, req: JtRequest) -> RpcAnswer {
        let reply = |r| RpcAnswer::Reply(r);
        match req {
            JtRequest::GetTask { attempt } => {
                if !self.launched.contains_key(&attempt) {
                    return reply(JtResponse::Error(JtError::UnknownAttempt(
                        attempt.to_string(),
                    )));
                }
                if !self.jt.is_live(attempt) {
                    return reply(JtResponse::Ack { proceed: false });
                }
                self.feed(Event::AttemptStarted { attempt });
                let writes_output =
                    attempt.task.kind == TaskKind::Reduce || self.submission.reducers == 0;
                let attempt_dir = dfs_path_of(&self.attempt_dir(attempt));
                let app_attempt = self.app_attempt.attempt;
                let split = match attempt.task.kind {
                    TaskKind::Map => self.splits.get(attempt.task.index as usize).cloned(),
                    TaskKind::Reduce => None,
                };
                let assignment = TaskAssignment {
                    job_id: self.job_id.clone(),
                    attempt,
                    program: self.submission.program.clone(),
                    conf: self.conf.clone(),
                    split,
                    num_maps: self.splits.len() as u32,
                    num_reduces: self.submission.reducers,
                    attempt_dir: attempt_dir.clone(),
                    output_file: output_file_name(attempt.task),
                    shuffle_secret: self.secret.as_bytes().to_vec(),
                    app_attempt,
                };
                RpcAnswer::Assign(Box::new(assignment), writes_output.then_some(attempt_dir))
            }
            JtRequest::Progress {
                attempt,
                progress,
                alive,
            } => {
                self.feed(Event::AttemptProgress {
                    attempt,
                    progress,
                    alive,
                });
                let proceed = self.jt.is_live(attempt);
                reply(JtResponse::Ack { proceed })
            }
            JtRequest::MapOutputReady {
                attempt,
                shuffle_address,
                counters,
            } => {
                let Some(host) = self.launched.get(&attempt).cloned() else {
                    return reply(JtResponse::Error(JtError::UnknownAttempt(
                        attempt.to_string(),
                    )));
                };
                self.shuffle_services.insert(shuffle_address.clone());
                self.pending_counters.insert(attempt, counters);
                self.feed(Event::AttemptSucceeded {
                    attempt,
                    output: Some(MapOutputLocation {
                        host,
                        shuffle_address,
                    }),
                });
                // Action::MapOutputAccepted took the counters if this output won its task.
                let won = self.pending_counters.remove(&attempt).is_none();
                reply(JtResponse::Ack { proceed: won })
            }
            JtRequest::OutputReady { attempt, counters } => {
                if !self.launched.contains_key(&attempt) {
                    return reply(JtResponse::Error(JtError::UnknownAttempt(
                        attempt.to_string(),
                    )));
                }
                self.pending_counters.insert(attempt, counters);
                self.feed(Event::AttemptSucceeded {
                    attempt,
                    output: None,
                });
                if !self.committing.contains(&attempt) {
                    // Lost to another attempt (or not live any more): never committed.
                    self.pending_counters.remove(&attempt);
                }
                reply(JtResponse::Ack { proceed: true })
            }
            JtRequest::Failed { attempt, reason } => {
                self.feed(Event::AttemptFailed { attempt, reason });
                reply(JtResponse::Ack { proceed: false })
            }
            JtRequest::MapEvents { reducer, from } => {
                if reducer.task.kind != TaskKind::Reduce {
                    return reply(JtResponse::Error(JtError::BadRequest(format!(
                        "{reducer} is not a reduce attempt"
                    ))));
                }
                if !self.launched.contains_key(&reducer) {
                    return reply(JtResponse::Error(JtError::UnknownAttempt(
                        reducer.to_string(),
                    )));
                }
                let events = self.jt.map_completion_events(from as usize).to_vec();
                let next = from.saturating_add(events.len() as u32);
                let proceed = self.jt.is_live(reducer);
                reply(JtResponse::MapEvents {
                    events,
                    next,
                    proceed,
                })
            }
            JtRequest::FetchFailed {
                reducer,
                map,
                reason,
            } => {
                tracing::info!(%reducer, %map, %reason, "fetch failure reported");
                self.feed(Event::FetchFailure { reducer, map });
                let proceed = self.jt.is_live(reducer);
                reply(JtResponse::Ack { proceed })
            }
            JtRequest::Status => reply(JtResponse::Status(Box::new(self.status()))),
            JtRequest::Kill { reason } => {
                self.feed(Event::Kill { reason });
                reply(JtResponse::to_kill(self.jt.state()))
            }
        }
    }
}
