//! Time as the state machine, its timers and the task queues read it.
//!
//! Decisions (is a timeout due, when may the next attempt start, when does
//! an attempt's deadline fall) take the time as an argument instead of
//! reading it themselves; whoever calls them reads it from a [`Clock`]
//! injected at start. Production uses [`SystemClock`]; tests use
//! [`ManualClock`], which stands still until the test moves it.
//!
//! The monotonic half is tokio's [`Instant`], the type timers sleep on.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// One reading of a clock: the wall clock (stored and shown) and the
/// monotonic clock (deadlines and timers) at the same moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// Milliseconds since the Unix epoch.
    pub ms: u64,
    /// Monotonic time, for deadlines.
    pub at: Instant,
}

impl Now {
    /// The monotonic instant of a wall-clock time (ms since the Unix epoch),
    /// relative to this reading. Stored times are not trusted to be near:
    /// far future saturates, far past is now.
    pub fn instant_of(&self, ms: u64) -> Instant {
        if ms >= self.ms {
            let ahead = Duration::from_millis(ms - self.ms);
            self.at
                .checked_add(ahead)
                .unwrap_or_else(|| far_future(self.at))
        } else {
            self.at
                .checked_sub(Duration::from_millis(self.ms - ms))
                .unwrap_or(self.at)
        }
    }
}

/// An instant beyond any deadline a client can ask for, yet representable.
fn far_future(at: Instant) -> Instant {
    // About 30 years, as tokio's own "never".
    at + Duration::from_secs(86_400 * 365 * 30)
}

/// A source of time.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Monotonic time.
    fn now(&self) -> Instant;
    /// Both halves at once.
    fn read(&self) -> Now {
        Now {
            ms: self.now_ms(),
            at: self.now(),
        }
    }
}

/// A clock that can be shared by every part of the host.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's clocks.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        crate::now_ms()
    }

    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// The production clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock for tests: it reads what it was set to, and moves only when
/// told to ([`ManualClock::advance`]). Clones share the same time.
#[derive(Clone, Debug)]
pub struct ManualClock {
    start: Instant,
    /// Wall clock at `start`, and how far the clock has moved since.
    at: Arc<Mutex<(u64, Duration)>>,
}

impl ManualClock {
    /// A clock that reads `start_ms` now.
    pub fn new(start_ms: u64) -> Self {
        Self {
            start: Instant::now(),
            at: Arc::new(Mutex::new((start_ms, Duration::ZERO))),
        }
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let mut at = self.at.lock().unwrap_or_else(|e| e.into_inner());
        at.1 = at.1.saturating_add(d);
    }

    fn get(&self) -> (u64, Duration) {
        *self.at.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        let (start_ms, moved) = self.get();
        start_ms.saturating_add(u64::try_from(moved.as_millis()).unwrap_or(u64::MAX))
    }

    fn now(&self) -> Instant {
        let moved = self.get().1;
        self.start
            .checked_add(moved)
            .unwrap_or_else(|| far_future(self.start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(1_000);
        let (ms, at) = (c.now_ms(), c.now());
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!((c.now_ms(), c.now()), (ms, at));
        c.clone().advance(Duration::from_millis(250));
        assert_eq!(c.now_ms(), 1_250);
        assert_eq!(c.now(), at + Duration::from_millis(250));
        let now = c.read();
        assert_eq!(now.instant_of(1_750), now.at + Duration::from_millis(500));
        assert_eq!(now.instant_of(1_000), at);
        assert!(now.instant_of(u64::MAX) > now.at);
    }
}
