//! The system-busy guard: creation is refused with 503 `system_busy` while
//! `gateway.max_processing_generations` or more generations are processing
//! in the whole system.
//!
//! Counting them for every request would be a query per request. A count
//! well below the cap is therefore reused for a short while: the backlog
//! cannot climb from below half the cap to the cap within `REUSE_FOR`
//! unless half the cap is accepted per `REUSE_FOR` (50,000 at the default
//! cap, far beyond one system's rate). Near the cap every request counts.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a count below half the cap is trusted.
const REUSE_FOR: Duration = Duration::from_millis(500);

#[derive(Default)]
pub struct BusyGuard {
    last: Mutex<Option<(Instant, i64)>>,
}

impl BusyGuard {
    /// Whether this request must count: no recent count, or one that was
    /// not far enough below `cap`.
    pub fn must_count(&self, cap: i64) -> bool {
        let last = *self.last.lock().unwrap_or_else(|e| e.into_inner());
        !matches!(last, Some((at, n)) if at.elapsed() < REUSE_FOR && n < cap / 2)
    }

    /// Keeps a fresh count.
    pub fn record(&self, count: i64) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), count));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_far_below_the_cap_is_reused_and_one_near_it_is_not() {
        let guard = BusyGuard::default();
        assert!(guard.must_count(100), "no count yet");
        guard.record(49);
        assert!(!guard.must_count(100));
        guard.record(50);
        assert!(guard.must_count(100), "half the cap");
        // A cap of 1 (or 0 processing against a cap of 1): always counted.
        guard.record(0);
        assert!(guard.must_count(1));
    }

    #[test]
    fn a_count_is_reused_only_for_a_while() {
        let guard = BusyGuard::default();
        *guard.last.lock().unwrap() = Some((Instant::now() - REUSE_FOR, 0));
        assert!(guard.must_count(100));
    }
}
