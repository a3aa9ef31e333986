//! Picking stragglers: attempts whose progress rate is well below the median of their group.

/// When stragglers get a speculative twin (Hadoop's speculator, simplified to progress rates).
#[derive(Debug, Clone, PartialEq)]
pub struct SpeculationPolicy {
    /// Fraction of a group's tasks that must be done before its stragglers are judged (0.75).
    pub start_fraction: f64,
    /// An attempt is slow when its progress rate is below this fraction of the group's median
    /// rate (0.5).
    pub slow_rate_fraction: f64,
    /// An attempt younger than this is never judged slow: early rates are noise (1000 ms).
    pub min_runtime_ms: u64,
    /// At most this fraction of a group's tasks run a speculative twin at once, and at least one
    /// (0.1).
    pub cap_fraction: f64,
}

impl Default for SpeculationPolicy {
    fn default() -> SpeculationPolicy {
        SpeculationPolicy {
            start_fraction: 0.75,
            slow_rate_fraction: 0.5,
            min_runtime_ms: 1000,
            cap_fraction: 0.1,
        }
    }
}

/// A live attempt of the group, as the speculator sees it.
#[derive(Debug, Clone)]
pub(super) struct LiveAttempt<I> {
    /// The attempt.
    pub attempt: I,
    /// Time since launch.
    pub elapsed_ms: u64,
    /// Reported progress.
    pub progress: f64,
    /// False when its task may not get a twin (already has one, or has two live attempts).
    pub may_speculate: bool,
}

fn rate(progress: f64, elapsed_ms: u64) -> f64 {
    progress.clamp(0.0, 1.0) / elapsed_ms.max(1) as f64
}

/// Up to `budget` attempts worth a twin, slowest first. `finished_ms` are the durations of the
/// group's successful attempts. An attempt qualifies when it is old enough to judge, its rate is
/// below `slow_rate_fraction` × the median rate, and at its rate it would still need longer than
/// a fresh attempt at the median rate (so a nearly finished slow attempt is left alone).
pub(super) fn stragglers<I: Copy + Ord>(
    live: &[LiveAttempt<I>],
    finished_ms: &[u64],
    policy: &SpeculationPolicy,
    budget: usize,
) -> Vec<I> {
    if budget == 0 {
        return Vec::new();
    }
    let mut rates: Vec<f64> = live
        .iter()
        .map(|a| rate(a.progress, a.elapsed_ms))
        .chain(finished_ms.iter().map(|d| rate(1.0, *d)))
        .collect();
    if rates.is_empty() {
        return Vec::new();
    }
    rates.sort_by(f64::total_cmp);
    let mid = rates.len() / 2;
    let median = if rates.len().is_multiple_of(2) {
        (rates[mid - 1] + rates[mid]) / 2.0
    } else {
        rates[mid]
    };
    if median <= 0.0 {
        // Nothing is moving: nobody is slower than the rest; the task timeout deals with it.
        return Vec::new();
    }
    let fresh_ms = 1.0 / median;
    let mut slow: Vec<(f64, I)> = live
        .iter()
        .filter(|a| a.may_speculate && a.elapsed_ms >= policy.min_runtime_ms)
        .filter_map(|a| {
            let r = rate(a.progress, a.elapsed_ms);
            let remaining_ms = if r > 0.0 {
                (1.0 - a.progress.clamp(0.0, 1.0)) / r
            } else {
                f64::INFINITY
            };
            (r < policy.slow_rate_fraction * median && remaining_ms > fresh_ms)
                .then_some((r, a.attempt))
        })
        .collect();
    slow.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    slow.into_iter().take(budget).map(|(_, a)| a).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(index: u32, elapsed_ms: u64, progress: f64) -> LiveAttempt<u32> {
        LiveAttempt {
            attempt: index,
            elapsed_ms,
            progress,
            may_speculate: true,
        }
    }

    #[test]
    fn only_the_slow_attempt_that_would_finish_late_is_picked() {
        let policy = SpeculationPolicy::default();
        let finished = [10_000, 11_000, 9_000, 10_500];
        // Index 0: at 10% after 10 s (rate 1/100000 per ms vs median ~1/10000): slow.
        // Index 1: normal. Index 2: slow but 99% done: leave it alone.
        let attempts = [
            live(0, 10_000, 0.1),
            live(1, 5_000, 0.5),
            live(2, 30_000, 0.99),
        ];
        let picked = stragglers(&attempts, &finished, &policy, 5);
        assert_eq!(picked, vec![attempts[0].attempt]);
        assert!(stragglers(&attempts, &finished, &policy, 0).is_empty());
    }

    #[test]
    fn young_or_ineligible_attempts_are_not_judged() {
        let policy = SpeculationPolicy::default();
        let mut a = live(0, 500, 0.0);
        assert!(stragglers(&[a.clone()], &[1000, 1000], &policy, 1).is_empty());
        a.elapsed_ms = 5000;
        a.may_speculate = false;
        assert!(stragglers(&[a.clone()], &[1000, 1000], &policy, 1).is_empty());
        a.may_speculate = true;
        assert_eq!(
            stragglers(&[a.clone()], &[1000, 1000], &policy, 1),
            vec![a.attempt]
        );
    }
}
