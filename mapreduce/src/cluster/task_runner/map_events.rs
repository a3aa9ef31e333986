//! A reducer's bookkeeping of map completion events: which map outputs it may fetch and from
//! where, which it is fetching, which it has, and which failed and when to try them again.
//!
//! Obsolete events (`available: false`, Hadoop's OBSOLETE: the output went away with its node,
//! or too many reducers failed to fetch it) withdraw an offer the reducer has not fetched yet;
//! it then waits for the event of the map's next successful attempt. An output already fetched
//! is kept even when it becomes obsolete, and later attempts of that map are ignored: unlike
//! Hadoop, which re-fetches the replacement, we rely on every successful attempt of a map
//! producing the same records (the engine requires deterministic maps for retries anyway), so
//! the segment in hand is as good as the replacement's.
//!
//! A failed fetch is reported to the JobTracker and retried from the same attempt with a
//! growing delay until an event replaces or withdraws it: the JobTracker re-runs a map only
//! after several reports, so a single reducer must keep reporting for that to happen.

use std::net::SocketAddr;

use crate::jobtracker::{AttemptId, TaskKind};

/// First delay before a failed map output is fetched again.
const RETRY_DELAY_MS: u64 = 1_000;
/// Longest delay between fetches of a failing map output.
const MAX_RETRY_DELAY_MS: u64 = 10_000;

/// A location offered by an event and not withdrawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Offer {
    attempt: AttemptId,
    host: SocketAddr,
    /// Fetch rounds of this offer that failed.
    failures: u32,
    /// Not to be fetched before this time (ms, the caller's clock).
    retry_at_ms: u64,
}

#[derive(Debug, Clone, Default)]
struct MapState {
    /// The attempt to fetch, if an event offered one and nothing withdrew it.
    offer: Option<Offer>,
    /// Attempts whose fetch is running (more than one when an offer was replaced while the
    /// old attempt's fetch hangs on a host that went away).
    fetching: Vec<AttemptId>,
    /// The attempt whose output is in the shuffle buffer.
    fetched: Option<AttemptId>,
}

impl MapState {
    /// The offer, if it should be fetched by `now_ms` (not fetched, not being fetched, due).
    fn due(&self, now_ms: u64) -> Option<Offer> {
        self.offer.filter(|o| {
            self.fetched.is_none() && !self.fetching.contains(&o.attempt) && o.retry_at_ms <= now_ms
        })
    }
}

/// What a reducer knows about the outputs of the job's maps.
#[derive(Debug, Clone)]
pub struct MapEventBook {
    maps: Vec<MapState>,
    fetched: u32,
}

impl MapEventBook {
    /// A book for a job of `num_maps` maps, nothing known yet.
    pub fn new(num_maps: u32) -> Self {
        MapEventBook {
            maps: vec![MapState::default(); num_maps as usize],
            fetched: 0,
        }
    }

    fn state(&mut self, attempt: AttemptId) -> Option<&mut MapState> {
        if attempt.task.kind != TaskKind::Map {
            return None;
        }
        self.maps.get_mut(attempt.task.index as usize)
    }

    /// An event says `attempt`'s output can be fetched from `host`. Returns true if that gives
    /// something new to fetch (false for a map already fetched or an offer already known).
    pub fn offer(&mut self, attempt: AttemptId, host: SocketAddr) -> bool {
        let Some(state) = self.state(attempt) else {
            return false;
        };
        if state.fetched.is_some() || state.offer.is_some_and(|o| o.attempt == attempt) {
            return false;
        }
        state.offer = Some(Offer {
            attempt,
            host,
            failures: 0,
            retry_at_ms: 0,
        });
        true
    }

    /// An event says `attempt`'s output is gone: an offer of it not fetched yet is withdrawn.
    pub fn obsolete(&mut self, attempt: AttemptId) {
        if let Some(state) = self.state(attempt) {
            if state.offer.is_some_and(|o| o.attempt == attempt) {
                state.offer = None;
            }
        }
    }

    /// The outputs to fetch now (offered, not fetched nor being fetched, not waiting for a
    /// retry); they are marked as being fetched.
    pub fn start_fetches(&mut self, now_ms: u64) -> Vec<(AttemptId, SocketAddr)> {
        self.start_fetches_from(now_ms, |_| true)
    }

    /// Like [`MapEventBook::start_fetches`], for outputs on hosts `allowed` accepts (asked
    /// once per candidate, in map order, so it may count the hosts it lets through).
    pub fn start_fetches_from(
        &mut self,
        now_ms: u64,
        mut allowed: impl FnMut(SocketAddr) -> bool,
    ) -> Vec<(AttemptId, SocketAddr)> {
        let mut batch = Vec::new();
        for state in &mut self.maps {
            if let Some(offer) = state.due(now_ms) {
                if allowed(offer.host) {
                    state.fetching.push(offer.attempt);
                    batch.push((offer.attempt, offer.host));
                }
            }
        }
        batch
    }

    /// `attempt`'s output was fetched. Returns false if the segment is not wanted (another
    /// attempt of the map was fetched already), in which case the caller drops it.
    pub fn fetched(&mut self, attempt: AttemptId) -> bool {
        let Some(state) = self.state(attempt) else {
            return false;
        };
        let Some(i) = state.fetching.iter().position(|a| *a == attempt) else {
            return false;
        };
        state.fetching.swap_remove(i);
        if state.fetched.is_some() {
            return false;
        }
        state.fetched = Some(attempt);
        self.fetched += 1;
        true
    }

    /// Fetching `attempt`'s output failed at `now_ms`. Returns true if the failure should be
    /// reported to the JobTracker: the attempt is still the map's offer (it is retried later);
    /// a withdrawn or replaced attempt is not reported and not retried.
    pub fn fetch_failed(&mut self, attempt: AttemptId, now_ms: u64) -> bool {
        let Some(state) = self.state(attempt) else {
            return false;
        };
        state.fetching.retain(|a| *a != attempt);
        if state.fetched.is_some() {
            return false;
        }
        match &mut state.offer {
            Some(offer) if offer.attempt == attempt => {
                offer.failures += 1;
                let delay = RETRY_DELAY_MS
                    .saturating_mul(1 << (offer.failures - 1).min(16))
                    .min(MAX_RETRY_DELAY_MS);
                offer.retry_at_ms = now_ms + delay;
                true
            }
            _ => false,
        }
    }

    /// Whether `attempt`'s output is still wanted: it is its map's current offer and the map
    /// is not fetched yet. A running fetch of an unwanted attempt may be abandoned.
    pub fn wanted(&self, attempt: AttemptId) -> bool {
        attempt.task.kind == TaskKind::Map
            && self.maps.get(attempt.task.index as usize).is_some_and(|m| {
                m.fetched.is_none() && m.offer.is_some_and(|o| o.attempt == attempt)
            })
    }

    /// The caller cancelled the running fetch of `attempt` (not a failure: nothing is
    /// reported and no retry delay is added; a still-offered attempt is fetched again).
    pub fn fetch_abandoned(&mut self, attempt: AttemptId) {
        if let Some(state) = self.state(attempt) {
            state.fetching.retain(|a| *a != attempt);
        }
    }

    /// Whether every map's output is in hand.
    pub fn all_fetched(&self) -> bool {
        self.fetched as usize == self.maps.len()
    }

    /// Maps whose output is in hand.
    pub fn fetched_count(&self) -> u32 {
        self.fetched
    }

    /// Whether a fetch is running.
    pub fn fetching(&self) -> bool {
        self.maps.iter().any(|m| !m.fetching.is_empty())
    }

    /// The earliest time a failed output may be fetched again, if one waits for that.
    pub fn next_retry_ms(&self) -> Option<u64> {
        self.maps
            .iter()
            .filter_map(|m| m.due(u64::MAX).map(|o| o.retry_at_ms))
            .min()
    }

    /// Map indexes whose output is not in hand yet (for diagnostics).
    pub fn missing(&self) -> Vec<u32> {
        self.maps
            .iter()
            .enumerate()
            .filter(|(_, m)| m.fetched.is_none())
            .map(|(i, _)| i as u32)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobtracker::TaskId;

    fn map(index: u32, number: u32) -> AttemptId {
        AttemptId {
            task: TaskId::map(index),
            number,
        }
    }

    fn host(n: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, n], 7000))
    }

    #[test]
    fn offered_maps_are_fetched_once_and_completion_counts_every_map() {
        let mut book = MapEventBook::new(2);
        assert!(!book.all_fetched());
        assert!(book.offer(map(0, 0), host(1)));
        assert!(
            !book.offer(map(0, 0), host(1)),
            "a repeated event is not news"
        );
        assert_eq!(book.start_fetches(0), vec![(map(0, 0), host(1))]);
        assert!(book.start_fetches(0).is_empty(), "already being fetched");
        assert!(book.fetching());
        assert!(book.fetched(map(0, 0)));
        assert_eq!(book.fetched_count(), 1);
        assert_eq!(book.missing(), vec![1]);
        book.offer(map(1, 0), host(2));
        assert_eq!(book.start_fetches(0), vec![(map(1, 0), host(2))]);
        assert!(book.fetched(map(1, 0)));
        assert!(book.all_fetched());
        assert!(!book.fetching());
    }

    #[test]
    fn fetches_can_be_limited_to_some_hosts() {
        let mut book = MapEventBook::new(3);
        book.offer(map(0, 0), host(1));
        book.offer(map(1, 0), host(2));
        book.offer(map(2, 0), host(1));
        let batch = book.start_fetches_from(0, |h| h == host(1));
        assert_eq!(batch, vec![(map(0, 0), host(1)), (map(2, 0), host(1))]);
        assert_eq!(book.start_fetches(0), vec![(map(1, 0), host(2))]);
    }

    #[test]
    fn events_for_unknown_maps_or_reduces_are_ignored() {
        let mut book = MapEventBook::new(1);
        assert!(!book.offer(map(5, 0), host(1)));
        let reduce = AttemptId {
            task: TaskId::reduce(0),
            number: 0,
        };
        assert!(!book.offer(reduce, host(1)));
        assert!(book.start_fetches(0).is_empty());
        assert!(!book.fetched(map(5, 0)));
    }

    #[test]
    fn obsolete_output_not_yet_fetched_waits_for_the_replacement() {
        let mut book = MapEventBook::new(1);
        book.offer(map(0, 0), host(1));
        book.obsolete(map(0, 0));
        assert!(book.start_fetches(0).is_empty(), "withdrawn");
        assert!(book.offer(map(0, 1), host(2)));
        assert_eq!(book.start_fetches(0), vec![(map(0, 1), host(2))]);
        assert!(book.fetched(map(0, 1)));
        assert!(book.all_fetched());
    }

    #[test]
    fn fetched_output_is_kept_when_it_becomes_obsolete() {
        let mut book = MapEventBook::new(1);
        book.offer(map(0, 0), host(1));
        book.start_fetches(0);
        assert!(book.fetched(map(0, 0)));
        book.obsolete(map(0, 0));
        assert!(!book.offer(map(0, 1), host(2)), "replacement ignored");
        assert!(book.start_fetches(0).is_empty());
        assert!(book.all_fetched());
    }

    #[test]
    fn output_withdrawn_while_being_fetched_is_kept_if_the_fetch_succeeds() {
        let mut book = MapEventBook::new(1);
        book.offer(map(0, 0), host(1));
        book.start_fetches(0);
        book.obsolete(map(0, 0));
        book.offer(map(0, 1), host(2));
        assert!(
            book.fetched(map(0, 0)),
            "a succeeded attempt's data is correct"
        );
        assert!(book.all_fetched());
        assert!(
            book.start_fetches(0).is_empty(),
            "the replacement is not fetched"
        );
    }

    #[test]
    fn a_replacement_is_fetched_while_the_old_attempts_fetch_still_hangs() {
        let mut book = MapEventBook::new(1);
        book.offer(map(0, 0), host(1));
        book.start_fetches(0);
        // The old attempt's node died: its fetch hangs, the map is re-run elsewhere.
        book.obsolete(map(0, 0));
        book.offer(map(0, 1), host(2));
        assert_eq!(book.start_fetches(0), vec![(map(0, 1), host(2))]);
        assert!(book.fetched(map(0, 1)));
        assert!(book.all_fetched());
        assert!(book.fetching(), "the hung fetch is still running");
        assert!(!book.fetch_failed(map(0, 0), 5), "not reported: withdrawn");
        assert!(!book.fetching());
        // Had it delivered after all, its segment would be a duplicate.
        let mut book = MapEventBook::new(1);
        book.offer(map(0, 0), host(1));
        book.start_fetches(0);
        book.offer(map(0, 1), host(2));
        book.start_fetches(0);
        assert!(book.fetched(map(0, 1)));
        assert!(!book.fetched(map(0, 0)), "duplicate dropped");
        assert_eq!(book.fetched_count(), 1);
    }

    #[test]
    fn failed_fetches_are_reported_and_retried_with_growing_delays() {
        let mut book = MapEventBook::new(1);
        book.offer(map(0, 0), host(1));
        book.start_fetches(0);
        assert!(book.fetch_failed(map(0, 0), 100));
        assert_eq!(book.next_retry_ms(), Some(1_100));
        assert!(book.start_fetches(1_000).is_empty(), "not before the delay");
        assert_eq!(book.start_fetches(1_100), vec![(map(0, 0), host(1))]);
        assert!(book.fetch_failed(map(0, 0), 2_000));
        assert_eq!(book.next_retry_ms(), Some(4_000), "delay doubled");
        for _ in 0..10 {
            let now = book.next_retry_ms().expect("waiting");
            book.start_fetches(now);
            book.fetch_failed(map(0, 0), now);
        }
        let now = 1_000_000;
        book.start_fetches(u64::MAX);
        book.fetch_failed(map(0, 0), now);
        assert_eq!(book.next_retry_ms(), Some(now + MAX_RETRY_DELAY_MS));
    }

    #[test]
    fn failures_of_withdrawn_or_replaced_attempts_are_not_reported() {
        let mut book = MapEventBook::new(1);
        book.offer(map(0, 0), host(1));
        book.start_fetches(0);
        book.obsolete(map(0, 0));
        assert!(!book.fetch_failed(map(0, 0), 10), "withdrawn");
        assert_eq!(book.next_retry_ms(), None);
        book.offer(map(0, 1), host(2));
        book.start_fetches(10);
        book.offer(map(0, 2), host(3));
        assert!(!book.fetch_failed(map(0, 1), 20), "replaced by attempt 2");
        assert_eq!(
            book.start_fetches(20),
            vec![(map(0, 2), host(3))],
            "the replacement is fetched at once"
        );
    }

    #[test]
    fn running_fetches_of_withdrawn_or_replaced_attempts_can_be_abandoned() {
        let mut book = MapEventBook::new(2);
        book.offer(map(0, 0), host(1));
        book.offer(map(1, 0), host(1));
        assert_eq!(book.start_fetches(0).len(), 2);
        assert!(book.wanted(map(0, 0)) && book.wanted(map(1, 0)));
        // The node died: map 0's output is withdrawn, map 1's is replaced.
        book.obsolete(map(0, 0));
        book.offer(map(1, 1), host(2));
        assert!(!book.wanted(map(0, 0)) && !book.wanted(map(1, 0)));
        assert!(book.wanted(map(1, 1)));
        book.fetch_abandoned(map(0, 0));
        book.fetch_abandoned(map(1, 0));
        assert!(!book.fetching());
        assert_eq!(
            book.start_fetches(0),
            vec![(map(1, 1), host(2))],
            "the replacement is fetched at once, the withdrawn map waits for its next event"
        );
        assert!(book.fetched(map(1, 1)));
        assert!(
            !book.fetched(map(1, 0)),
            "an abandoned fetch's late segment is not wanted"
        );
    }
}
