//! Asks, matching containers to attempts, locality and launches.

use super::{JobTracker, MrAttempt};
use crate::attempts::{AttemptState, Now};
use crate::jobtracker::ids::{AttemptId, ContainerId, TaskId, TaskKind};
use crate::jobtracker::protocol::{Action, ContainerRequest, Locality};
use crate::jobtracker::status::*;

/// Hadoop's container priorities (lower is served first): retried maps jump the queue so one
/// flaky split does not hold the job back, and reduces go before fresh maps once released.
const PRIORITY_FAST_FAIL_MAP: u32 = 5;
const PRIORITY_REDUCE: u32 = 10;
const PRIORITY_MAP: u32 = 20;

impl JobTracker {
    pub(super) fn locality(&self, task: TaskId, host: &str, rack: &str) -> Option<Locality> {
        if task.kind == TaskKind::Reduce {
            return None;
        }
        let input = self.map_inputs.get(task.index as usize)?;
        Some(if input.hosts.iter().any(|h| h == host) {
            Locality::NodeLocal
        } else if input.racks.iter().any(|r| r == rack) {
            Locality::RackLocal
        } else {
            Locality::OffRack
        })
    }

    /// Makes sure an open task has an attempt while it is allowed one; fails the job when the
    /// task is out of attempts.
    pub(super) fn reconcile(&mut self, id: TaskId, now: Now, out: &mut Vec<Action>) {
        if self.state != JobState::Running || !self.book.is_open(id) {
            return;
        }
        if self.book.is_exhausted(id) {
            let reason = format!(
                "task {} failed {} times; last error: {}",
                id,
                self.book.failures(id),
                self.book.last_error(id).unwrap_or("unknown")
            );
            self.fail_job(reason, now, out);
            return;
        }
        if self.book.has_live_attempt(id) {
            return;
        }
        if id.kind == TaskKind::Reduce && !self.reduces_released {
            return;
        }
        if id.kind == TaskKind::Map
            && self.num_reduces > 0
            && self.book.was_ever_done(id)
            && self.all_reduces_finished()
        {
            // Its output was lost but no reducer needs it any more.
            return;
        }
        self.new_attempt(id, false, now, out);
    }

    pub(super) fn new_attempt(
        &mut self,
        task: TaskId,
        speculative: bool,
        now: Now,
        out: &mut Vec<Action>,
    ) {
        let id = self.book.create_attempt(task, speculative, now);
        self.ask_for(id, out);
    }

    /// Issues a fresh one-container ask for an unassigned attempt; a reduce's ask is held back
    /// while a map waits for a container ([`JobTracker::balance_reduces`] makes it later).
    pub(super) fn ask_for(&mut self, id: AttemptId, out: &mut Vec<Action>) {
        if id.task.kind == TaskKind::Reduce && self.maps_waiting() {
            return;
        }
        let Some(a) = self.book.attempt(id) else {
            return;
        };
        let ask_id = self.next_ask;
        let request = match id.task.kind {
            TaskKind::Map => {
                let Some(input) = self.map_inputs.get(id.task.index as usize) else {
                    return;
                };
                let hosts: Vec<String> = input
                    .hosts
                    .iter()
                    .filter(|h| !a.avoid.contains(*h) && !self.book.is_blacklisted(h))
                    .cloned()
                    .collect();
                let retry = id.number > 0 && !a.speculative;
                ContainerRequest {
                    ask_id,
                    kind: TaskKind::Map,
                    resource: self.config.map_resource,
                    priority: if retry {
                        PRIORITY_FAST_FAIL_MAP
                    } else {
                        PRIORITY_MAP
                    },
                    hosts,
                    racks: input.racks.clone(),
                }
            }
            TaskKind::Reduce => ContainerRequest {
                ask_id,
                kind: TaskKind::Reduce,
                resource: self.config.reduce_resource,
                priority: PRIORITY_REDUCE,
                hosts: Vec::new(),
                racks: Vec::new(),
            },
        };
        self.next_ask += 1;
        self.asks.insert(ask_id, id);
        self.ask_kinds.insert(ask_id, id.task.kind);
        if let Some(x) = self.extra_mut(id) {
            x.ask = Some(ask_id);
        }
        out.push(Action::RequestContainer(request));
    }

    /// Whether an unassigned attempt takes a container on `host`: not on a blacklisted host or
    /// one it avoids, unless no other live host is left or it has waited long enough.
    fn accepts(&self, a: &MrAttempt, host: &str) -> bool {
        if a.data.declined >= self.config.max_declined_offers {
            return true;
        }
        if !self.book.is_blacklisted(host) && !a.avoid.contains(host) {
            return true;
        }
        !self
            .live_hosts
            .iter()
            .any(|h| !self.book.is_blacklisted(h) && !a.avoid.contains(h))
    }

    /// The unassigned attempt of `kind` that should get a container on `host`: best locality,
    /// then retries, then first attempts, then twins, in task order.
    fn best_unassigned(&self, kind: TaskKind, host: &str, rack: &str) -> Option<AttemptId> {
        self.book
            .attempts()
            .filter(|a| {
                a.state == AttemptState::Unassigned
                    && a.id.task.kind == kind
                    && self.accepts(a, host)
            })
            .min_by_key(|a| {
                let locality = match self.locality(a.id.task, host, rack) {
                    Some(Locality::NodeLocal) | None => 0,
                    Some(Locality::RackLocal) => 1,
                    Some(Locality::OffRack) => 2,
                };
                let class = if a.speculative {
                    2
                } else if a.id.number > 0 {
                    0
                } else {
                    1
                };
                (locality, class, a.id)
            })
            .map(|a| a.id)
    }

    pub(super) fn on_allocated(
        &mut self,
        container: ContainerId,
        ask_id: u64,
        host: String,
        rack: String,
        now: Now,
        out: &mut Vec<Action>,
    ) {
        // A container from a host means the host is up, whatever the node list said last.
        self.known_hosts.insert(host.clone());
        self.lost_hosts.remove(&host);
        if self.containers.contains_key(&container) {
            return; // duplicate report
        }
        let consumed_for = self.asks.remove(&ask_id);
        if let Some(x) = consumed_for.and_then(|id| self.extra_mut(id)) {
            x.ask = None;
        }
        let kind = self.ask_kinds.get(&ask_id).copied();
        let pick = match kind {
            // A reduce container granted before its ask was withdrawn for waiting maps: taking
            // it would hold back the maps the withdrawal was for.
            Some(TaskKind::Reduce) if self.maps_waiting() => None,
            Some(kind) if self.state == JobState::Running => {
                self.live_hosts.insert(host.clone());
                self.best_unassigned(kind, &host, &rack)
            }
            _ => None,
        };
        match pick {
            Some(id) => {
                // The container went to another attempt than the ask's: that attempt's own ask
                // is now surplus.
                if let Some(own) = self.extra_mut(id).and_then(|x| x.ask.take()) {
                    self.asks.remove(&own);
                    out.push(Action::CancelRequest { ask_id: own });
                }
                self.launch(id, container, host, rack, now, out);
            }
            None => {
                out.push(Action::ReleaseContainer { container });
                if kind != Some(TaskKind::Reduce) || !self.maps_waiting() {
                    if let Some(x) = consumed_for.and_then(|id| self.extra_mut(id)) {
                        x.declined += 1;
                    }
                }
            }
        }
        // The attempt this ask was for still waits: ask again for it.
        if let Some(waiting) = consumed_for {
            if self.state == JobState::Running
                && Some(waiting) != pick
                && self
                    .book
                    .attempt(waiting)
                    .is_some_and(|a| a.state == AttemptState::Unassigned && a.data.ask.is_none())
            {
                self.ask_for(waiting, out);
            }
        }
    }

    fn launch(
        &mut self,
        id: AttemptId,
        container: ContainerId,
        host: String,
        rack: String,
        now: Now,
        out: &mut Vec<Action>,
    ) {
        let locality = self.locality(id.task, &host, &rack);
        if !self.book.launch(id, &host, now) {
            return;
        }
        let speculative = self.book.attempt(id).is_some_and(|a| a.speculative);
        if let Some(x) = self.extra_mut(id) {
            x.container = Some(container.clone());
            x.rack = Some(rack);
            x.locality = locality;
        }
        self.containers.insert(container.clone(), id);
        let c = &mut self.counters;
        match id.task.kind {
            TaskKind::Map => c.incr(JOB_GROUP, TOTAL_LAUNCHED_MAPS, 1),
            TaskKind::Reduce => c.incr(JOB_GROUP, TOTAL_LAUNCHED_REDUCES, 1),
        }
        match locality {
            Some(Locality::NodeLocal) => c.incr(JOB_GROUP, DATA_LOCAL_MAPS, 1),
            Some(Locality::RackLocal) => c.incr(JOB_GROUP, RACK_LOCAL_MAPS, 1),
            Some(Locality::OffRack) => c.incr(JOB_GROUP, OTHER_LOCAL_MAPS, 1),
            None => {}
        }
        if speculative {
            c.incr(JOB_GROUP, SPECULATIVE_ATTEMPTS_LAUNCHED, 1);
        }
        out.push(Action::Launch {
            attempt: id,
            container,
            host,
        });
    }
}
