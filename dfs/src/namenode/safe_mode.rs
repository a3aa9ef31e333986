//! Safe mode: read-only NameNode at start until enough blocks are reported (sans-I/O).
//!
//! Automatic safe mode starts at startup and ends once `threshold` of the complete blocks have
//! at least one reported replica and then `extension` more ms have passed (an empty namespace
//! leaves at once). Falling below the threshold during the extension restarts the wait. Manual
//! safe mode (`dfsadmin safemode enter`) stays until `leave`, which also ends automatic mode.

/// The safe-mode state machine.
#[derive(Debug, Clone)]
pub struct SafeMode {
    threshold: f64,
    extension_ms: u64,
    automatic: bool,
    manual: bool,
    reached_at: Option<u64>,
}

impl SafeMode {
    /// Safe mode at startup.
    pub fn at_startup(threshold: f64, extension_ms: u64) -> SafeMode {
        SafeMode {
            threshold,
            extension_ms,
            automatic: true,
            manual: false,
            reached_at: None,
        }
    }

    /// True while mutations must be refused.
    pub fn is_on(&self) -> bool {
        self.automatic || self.manual
    }

    /// Feeds the block counts (`total` complete blocks, `safe` of them with a replica);
    /// returns true if automatic safe mode ended in this call.
    pub fn check(&mut self, total: u64, safe: u64, now: u64) -> bool {
        if !self.automatic {
            return false;
        }
        let needed = (self.threshold * total as f64).ceil() as u64;
        if total == 0 {
            self.automatic = false;
            return true;
        }
        if safe < needed {
            self.reached_at = None;
            return false;
        }
        let since = *self.reached_at.get_or_insert(now);
        if now.saturating_sub(since) >= self.extension_ms {
            self.automatic = false;
            return true;
        }
        false
    }

    /// `dfsadmin safemode enter`.
    pub fn enter(&mut self) {
        self.manual = true;
    }

    /// `dfsadmin safemode leave`: ends manual and automatic safe mode.
    pub fn leave(&mut self) {
        self.manual = false;
        self.automatic = false;
        self.reached_at = None;
    }

    /// Why mutations are refused (for the error message).
    pub fn reason(&self, total: u64, safe: u64) -> String {
        if self.manual {
            "entered manually; use `sheaf dfsadmin safemode leave` to leave".into()
        } else {
            let needed = (self.threshold * total as f64).ceil() as u64;
            if safe < needed {
                format!("{safe} of {needed} required blocks reported so far; it leaves by itself once DataNodes report")
            } else {
                "enough blocks reported; leaving after the safe-mode extension".into()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_namespace_leaves_at_once() {
        let mut s = SafeMode::at_startup(0.999, 30_000);
        assert!(s.is_on());
        assert!(s.check(0, 0, 0));
        assert!(!s.is_on());
    }

    #[test]
    fn threshold_then_extension() {
        let mut s = SafeMode::at_startup(0.9, 1000);
        assert!(!s.check(10, 8, 0));
        assert!(s.is_on());
        assert!(!s.check(10, 9, 100)); // reached: extension starts
        assert!(!s.check(10, 9, 1000));
        assert!(!s.check(10, 8, 1050)); // fell below: wait restarts
        assert!(!s.check(10, 10, 1100));
        assert!(s.is_on());
        assert!(s.check(10, 10, 2100));
        assert!(!s.is_on());
    }

    #[test]
    fn zero_extension_leaves_on_reaching_threshold_and_full_threshold_needs_all() {
        let mut s = SafeMode::at_startup(1.0, 0);
        assert!(!s.check(3, 2, 5));
        assert!(s.check(3, 3, 5));
    }

    #[test]
    fn manual_enter_stays_until_leave() {
        let mut s = SafeMode::at_startup(0.5, 0);
        s.check(2, 2, 0);
        assert!(!s.is_on());
        s.enter();
        assert!(s.is_on());
        assert!(!s.check(2, 2, 10_000));
        assert!(s.is_on());
        s.leave();
        assert!(!s.is_on());
        // Leave also ends automatic safe mode.
        let mut t = SafeMode::at_startup(1.0, 0);
        t.leave();
        assert!(!t.is_on());
    }
}
