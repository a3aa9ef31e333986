//! Time as the sans-I/O decision cores take it: one [`Now`] per event, carrying both clocks.
//!
//! Durations and deadlines (task timeouts, speculation rates, preemption delays) use the
//! monotonic part, so an NTP step of the wall clock cannot time out every task, or none. The wall
//! part is only for what people read (start and finish times in status and history). Daemon
//! shells read both from one [`Clock`]; tests build a [`Now`] from plain numbers.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The moment an event happened, on both clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Now {
    /// Milliseconds on a clock that never steps (since the shell's [`Clock`] started).
    pub monotonic_ms: u64,
    /// Milliseconds since the Unix epoch, for records shown to people.
    pub wall_ms: u64,
}

impl Now {
    /// Both clocks at `ms` (tests and simulations, where the clocks cannot disagree).
    pub fn at(ms: u64) -> Now {
        Now {
            monotonic_ms: ms,
            wall_ms: ms,
        }
    }

    /// Both clocks `ms` later.
    pub fn later(self, ms: u64) -> Now {
        Now {
            monotonic_ms: self.monotonic_ms.saturating_add(ms),
            wall_ms: self.wall_ms.saturating_add(ms),
        }
    }
}

/// The current time since the Unix epoch in ms (0 if the clock is before 1970).
pub fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A daemon shell's source of [`Now`]: monotonic milliseconds count from its creation.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Instant,
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new()
    }
}

impl Clock {
    /// A clock whose monotonic time starts at 0 now.
    pub fn new() -> Clock {
        Clock {
            origin: Instant::now(),
        }
    }

    /// The time now, on both clocks.
    pub fn now(&self) -> Now {
        Now {
            monotonic_ms: self.origin.elapsed().as_millis() as u64,
            wall_ms: wall_clock_ms(),
        }
    }

    /// The instant at monotonic time `monotonic_ms` (a core's deadline, for sleeping until it).
    pub fn instant_at(&self, monotonic_ms: u64) -> Instant {
        self.origin + Duration::from_millis(monotonic_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_time_counts_from_the_clock_and_maps_back_to_instants() {
        let clock = Clock::new();
        let a = clock.now();
        let b = clock.now();
        assert!(b.monotonic_ms >= a.monotonic_ms);
        assert!(a.wall_ms > 1_600_000_000_000, "wall clock is epoch ms");
        assert_eq!(
            clock.instant_at(1500) - clock.instant_at(500),
            Duration::from_secs(1)
        );
        assert_eq!(Now::at(7).later(3), Now::at(10));
    }
}
