//! Lost nodes and map outputs: the RM's node list, lost NodeManagers, fetch failures.

use super::{Ending, JobTracker};
use crate::attempts::{AttemptState, Now, TaskStatus};
use crate::jobtracker::ids::{AttemptId, TaskKind};
use crate::jobtracker::protocol::Action;
use crate::jobtracker::status::MapCompletionEvent;
use std::collections::BTreeSet;

impl JobTracker {
    /// A map's output went away (node lost, unfetchable): the task is open again and reducers
    /// are told to forget that output.
    fn lose_map_output(
        &mut self,
        id: AttemptId,
        to: AttemptState,
        reason: String,
        now: Now,
        out: &mut Vec<Action>,
    ) {
        if self.book.status(id.task) != TaskStatus::Done(id) {
            return;
        }
        self.book.reopen(id);
        if let Some(location) = self.book.attempt(id).and_then(|a| a.data.output.clone()) {
            self.completion_events.push(MapCompletionEvent {
                attempt: id,
                available: false,
                location,
            });
        }
        self.end_attempt(id, to, reason, Ending::Gone, now, out);
        self.reconcile(id.task, now, out);
    }

    /// The RM's node list: hosts running, and hosts listed in another state. A host listed as
    /// not running, or no longer listed though it was known, is lost (once, until it runs again).
    pub(super) fn on_node_list(
        &mut self,
        running: Vec<String>,
        down: Vec<String>,
        now: Now,
        out: &mut Vec<Action>,
    ) {
        let listed: BTreeSet<String> = running.iter().chain(&down).cloned().collect();
        for host in &running {
            self.lost_hosts.remove(host);
        }
        let mut gone = down;
        gone.extend(self.known_hosts.difference(&listed).cloned());
        for host in gone {
            self.on_node_lost(&host, now, out);
        }
        self.known_hosts.extend(listed);
        self.live_hosts = running.into_iter().collect();
    }

    /// The RM lost a NodeManager: its containers are gone, and so are the map outputs it kept.
    /// A host already lost (and not seen up since) is not lost again.
    pub(super) fn on_node_lost(&mut self, host: &str, now: Now, out: &mut Vec<Action>) {
        if !self.lost_hosts.insert(host.to_string()) {
            return;
        }
        self.live_hosts.remove(host);
        let on_host: Vec<AttemptId> = self
            .book
            .attempts()
            .filter(|a| a.node.as_deref() == Some(host))
            .map(|a| a.id)
            .collect();
        let reason = format!("node {host} lost");
        for id in &on_host {
            if self.book.is_launched_and_live(*id) {
                // Not the task's fault: KILLED, so it does not use up an attempt.
                self.end_attempt(
                    *id,
                    AttemptState::Killed,
                    reason.clone(),
                    Ending::Gone,
                    now,
                    out,
                );
                self.reconcile(id.task, now, out);
            }
        }
        if self.num_reduces > 0 && !self.all_reduces_finished() {
            for id in on_host {
                if id.task.kind == TaskKind::Map {
                    self.lose_map_output(
                        id,
                        AttemptState::Killed,
                        format!("map output lost with node {host}"),
                        now,
                        out,
                    );
                }
            }
        }
        self.check_progress(now, out);
    }

    pub(super) fn on_fetch_failure(
        &mut self,
        reducer: AttemptId,
        map: AttemptId,
        now: Now,
        out: &mut Vec<Action>,
    ) {
        if reducer.task.kind != TaskKind::Reduce
            || self.book.attempt(reducer).is_none()
            || self.book.status(map.task) != TaskStatus::Done(map)
            || self.num_reduces == 0
            || self.all_reduces_finished()
        {
            return;
        }
        let Some(x) = self.book.data_mut(map) else {
            return;
        };
        x.fetch_failures += 1;
        let reports = x.fetch_failures;
        if reports >= self.config.fetch_failures_before_rerun {
            // Hadoop counts this against the map (TOO_MANY_FETCH_FAILURES): its host may be sick.
            self.lose_map_output(
                map,
                AttemptState::Failed,
                format!("too many fetch failures ({reports} reports from reducers)"),
                now,
                out,
            );
            self.check_progress(now, out);
        }
    }
}
