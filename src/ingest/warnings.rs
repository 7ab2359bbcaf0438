//! Rate-limited warnings: a device sending garbage must not make logging the bottleneck.

use std::time::{Duration, Instant};

/// Dead-letter warnings logged per second; past that a device sending garbage would make
/// logging the bottleneck. The rest are summed up in one line, and every one is stored.
const DEAD_LETTER_WARNINGS_PER_SECOND: u32 = 10;

/// Lets the first few warnings of each second through and counts the rest.
pub struct WarningLimit {
    window_start: Instant,
    in_window: u32,
    suppressed: u64,
}

impl Default for WarningLimit {
    fn default() -> Self {
        WarningLimit {
            window_start: Instant::now(),
            in_window: 0,
            suppressed: 0,
        }
    }
}

impl WarningLimit {
    pub(super) fn allow(&mut self) -> bool {
        self.roll();
        self.in_window += 1;
        if self.in_window > DEAD_LETTER_WARNINGS_PER_SECOND {
            self.suppressed += 1;
        }
        self.in_window <= DEAD_LETTER_WARNINGS_PER_SECOND
    }

    /// Starts a new second when one has passed, saying how many warnings were held back.
    pub(super) fn roll(&mut self) {
        if self.window_start.elapsed() < Duration::from_secs(1) {
            return;
        }
        if self.suppressed > 0 {
            tracing::warn!(
                "{} more dead letters were not logged one by one (they are in the dead_letters table)",
                self.suppressed
            );
        }
        *self = WarningLimit::default();
    }
}
