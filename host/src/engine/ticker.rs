//! The epoch ticker: one thread that advances the engine's epoch every tick
//! while a guest may be running, and sleeps while none is.
//!
//! Epoch interruption is how a running guest notices its deadline, its
//! cancellation and its turn to yield (see `attempt.rs`); between attempts
//! nothing reads the epoch, so an idle host need not wake 1 000 times a
//! second for it. Each sandbox holds a [`Ticking`] for as long as its guest
//! may run; the first one wakes the thread, and it parks again once the
//! last is dropped.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::Duration;

/// Shared between the ticking thread and the engine.
pub(super) struct Ticker {
    running: AtomicUsize,
    stop: AtomicBool,
    thread: OnceLock<Thread>,
}

impl Ticker {
    /// Starts the thread, which calls `tick` every `every` while any
    /// [`Ticking`] is alive, until `tick` returns false or the ticker is
    /// stopped.
    pub(super) fn start(
        every: Duration,
        tick: impl Fn() -> bool + Send + 'static,
    ) -> std::io::Result<Arc<Self>> {
        let ticker = Arc::new(Self {
            running: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            thread: OnceLock::new(),
        });
        let shared = ticker.clone();
        let handle = std::thread::Builder::new()
            .name("wharf-epoch".into())
            .spawn(move || {
                while !shared.stop.load(Ordering::Acquire) {
                    // A wake-up between this check and `park` is not lost:
                    // `unpark` before `park` makes it return at once.
                    if shared.running.load(Ordering::Acquire) == 0 {
                        std::thread::park();
                        continue;
                    }
                    std::thread::sleep(every);
                    if shared.stop.load(Ordering::Acquire) || !tick() {
                        break;
                    }
                }
            })?;
        // Set before the ticker is shared: no `enter` can precede it.
        let _ = ticker.thread.set(handle.thread().clone());
        Ok(ticker)
    }

    /// Keeps the epoch advancing until the returned guard is dropped.
    pub(super) fn enter(self: &Arc<Self>) -> Ticking {
        if self.running.fetch_add(1, Ordering::AcqRel) == 0 {
            self.wake();
        }
        Ticking(self.clone())
    }

    /// Ends the thread at its next wake-up.
    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.wake();
    }

    fn wake(&self) {
        if let Some(thread) = self.thread.get() {
            thread.unpark();
        }
    }
}

/// The epoch advances while one of these is alive.
pub(super) struct Ticking(Arc<Ticker>);

impl Drop for Ticking {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::time::Instant;

    fn counting() -> (Arc<Ticker>, Arc<AtomicU64>) {
        let ticks = Arc::new(AtomicU64::new(0));
        let counter = ticks.clone();
        let ticker = Ticker::start(Duration::from_millis(1), move || {
            counter.fetch_add(1, Ordering::Relaxed);
            true
        })
        .unwrap();
        (ticker, ticks)
    }

    /// Waits up to 10 s for `ticks` to pass `above`.
    fn passes(ticks: &AtomicU64, above: u64) -> bool {
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if ticks.load(Ordering::Relaxed) > above {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    #[test]
    fn ticks_only_while_a_guest_may_run() {
        let (ticker, ticks) = counting();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            ticks.load(Ordering::Relaxed),
            0,
            "ticked with nothing running"
        );

        let first = ticker.enter();
        assert!(passes(&ticks, 5), "no ticks while a guest runs");
        let second = ticker.enter();
        drop(first);
        let now = ticks.load(Ordering::Relaxed);
        assert!(passes(&ticks, now + 5), "stopped while a second guest runs");

        drop(second);
        // The thread checks for guests before each sleep, so at most the
        // tick already under way lands after the last guest is gone.
        let parked = ticks.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(200));
        let after = ticks.load(Ordering::Relaxed);
        assert!(
            after <= parked + 1,
            "ticked after the last guest: {parked} -> {after}"
        );

        let _again = ticker.enter();
        assert!(passes(&ticks, after), "did not wake for the next guest");
        ticker.stop();
    }

    #[test]
    fn stopping_ends_a_parked_thread() {
        let (ticker, ticks) = counting();
        ticker.stop();
        std::thread::sleep(Duration::from_millis(20));
        let _guest = ticker.enter();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(ticks.load(Ordering::Relaxed), 0, "ticked after stop");
    }
}
