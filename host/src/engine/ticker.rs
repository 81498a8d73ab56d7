//! The epoch ticker: one thread that advances the engine's epoch every tick
//! while a guest may be running, and sleeps while none is.
//!
//! Epoch interruption is how a running guest notices its deadline, its
//! cancellation and its turn to yield (see `attempt.rs`); between attempts
//! nothing reads the epoch, so an idle host need not wake 1 000 times a
//! second for it. Each sandbox holds a [`Ticking`] for as long as its guest
//! may run; the thread parks once the last is dropped.
//!
//! A sandbox that finds the thread parked wakes it, unless its caller
//! watches the attempt from another thread and calls [`Ticker::kick`] if
//! the attempt is still running a tick later (the guest threads' attempts,
//! see `worker/threads.rs`): an attempt shorter than a tick, which is most
//! of them on an idle host, then needs no ticks and wakes nothing. Its
//! guest gets its first tick a tick later, at most, than it would have.
//!
//! Sandboxes are counted per engine shard, each count on a cache line of
//! its own: a thread's attempts stay on its shard (see `shard.rs`), so two
//! cores running attempts do not pass one counter back and forth twice per
//! attempt. With each count goes the CPU the shard's latest sandbox started
//! on, which the thread keeps clear of where it can (`cpus.rs`).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::Duration;

/// A shard's sandboxes, on a cache line of their own.
#[repr(align(128))]
#[derive(Default)]
struct Count {
    running: AtomicUsize,
    /// The CPU the latest of them started on, plus one (0: none yet).
    cpu: AtomicUsize,
}

/// Shared between the ticking thread and the engine.
pub(super) struct Ticker {
    /// Sandboxes alive, per shard.
    running: Box<[Count]>,
    /// The thread is parked, or about to park.
    parked: AtomicBool,
    stop: AtomicBool,
    thread: OnceLock<Thread>,
}

impl Ticker {
    /// Starts the thread, which calls `tick` every `every` while any
    /// [`Ticking`] is alive, until `tick` returns false or the ticker is
    /// stopped. Sandboxes are counted in `shards` counts.
    pub(super) fn start(
        every: Duration,
        shards: usize,
        tick: impl Fn() -> bool + Send + 'static,
    ) -> std::io::Result<Arc<Self>> {
        let ticker = Arc::new(Self {
            running: (0..shards.max(1)).map(|_| Count::default()).collect(),
            parked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            thread: OnceLock::new(),
        });
        let shared = ticker.clone();
        let handle = std::thread::Builder::new()
            .name("wharf-epoch".into())
            .spawn(move || {
                #[cfg(target_os = "linux")]
                let mut placement = super::cpus::Placement::new();
                while !shared.stop.load(Ordering::Acquire) {
                    if shared.idle() {
                        // `parked` is set before the counts are read again,
                        // and `enter` counts before it reads `parked`: one of
                        // the two sees the other. A wake-up between this
                        // check and `park` is not lost either: `unpark`
                        // before `park` makes it return at once.
                        shared.parked.store(true, Ordering::SeqCst);
                        if shared.idle() {
                            std::thread::park();
                        }
                        shared.parked.store(false, Ordering::SeqCst);
                        continue;
                    }
                    std::thread::sleep(every);
                    #[cfg(target_os = "linux")]
                    if let Some(placement) = &mut placement {
                        placement.step_aside(&shared.busy_cpus());
                    }
                    if shared.stop.load(Ordering::Acquire) || !tick() {
                        break;
                    }
                }
            })?;
        // Set before the ticker is shared: no `enter` can precede it.
        let _ = ticker.thread.set(handle.thread().clone());
        Ok(ticker)
    }

    /// No sandbox is alive.
    fn idle(&self) -> bool {
        self.running
            .iter()
            .all(|c| c.running.load(Ordering::SeqCst) == 0)
    }

    /// The CPUs the shards with sandboxes alive last started one on.
    #[cfg(target_os = "linux")]
    fn busy_cpus(&self) -> super::cpus::Cpus {
        super::cpus::Cpus::of(
            self.running
                .iter()
                .filter(|c| c.running.load(Ordering::Relaxed) > 0)
                .filter_map(|c| c.cpu.load(Ordering::Relaxed).checked_sub(1)),
        )
    }

    /// Keeps the epoch advancing until the returned guard is dropped; the
    /// sandbox is counted with those of `shard`. Unless `wake()` (read after
    /// the sandbox is counted), a parked thread stays parked until
    /// [`Self::kick`] (or a sandbox that wakes it).
    pub(super) fn enter(&self, shard: usize, wake: impl FnOnce() -> bool) -> Ticking<'_> {
        let count = &self.running[shard % self.running.len()];
        #[cfg(target_os = "linux")]
        if let Some(cpu) = super::cpus::current() {
            count.cpu.store(cpu + 1, Ordering::Relaxed);
        }
        let running = &count.running;
        running.fetch_add(1, Ordering::SeqCst);
        if wake() && self.parked.load(Ordering::SeqCst) {
            self.wake();
        }
        Ticking(running)
    }

    /// Wakes the thread if it is parked: a sandbox that entered without
    /// waking it still runs.
    pub(super) fn kick(&self) {
        if self.parked.load(Ordering::SeqCst) {
            self.wake();
        }
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
pub(super) struct Ticking<'a>(&'a AtomicUsize);

impl Drop for Ticking<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
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
        let ticker = Ticker::start(Duration::from_millis(1), 2, move || {
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

        let first = ticker.enter(0, || true);
        assert!(passes(&ticks, 5), "no ticks while a guest runs");
        let second = ticker.enter(1, || true);
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

        let _again = ticker.enter(1, || true);
        assert!(passes(&ticks, after), "did not wake for the next guest");
        ticker.stop();
    }

    #[test]
    fn every_guest_wakes_a_parked_ticker_whatever_its_shard() {
        let (ticker, ticks) = counting();
        for i in 0..200 {
            // Let the thread park (or be about to) before the next guest.
            if i % 3 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
            let now = ticks.load(Ordering::Relaxed);
            let guest = ticker.enter(i % 2, || true);
            assert!(passes(&ticks, now + 1), "guest {i} got no tick");
            drop(guest);
        }
        ticker.stop();
    }

    /// A sandbox that enters without waking leaves a parked thread parked
    /// until it is kicked, then ticks like any other; one that wakes it
    /// wakes it whatever entered before.
    #[test]
    fn a_quiet_guest_gets_ticks_once_kicked() {
        let (ticker, ticks) = counting();
        // The thread parks once it finds nothing to tick for; it may take
        // a while to start on a busy machine.
        let until = Instant::now() + Duration::from_secs(10);
        while !ticker.parked.load(Ordering::SeqCst) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(20));
        let quiet = ticker.enter(0, || false);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(ticks.load(Ordering::Relaxed), 0, "woke without a kick");
        ticker.kick();
        assert!(passes(&ticks, 5), "no ticks after the kick");
        drop(quiet);

        // Parked again; a quiet guest, then a loud one on the same shard.
        std::thread::sleep(Duration::from_millis(20));
        let parked = ticks.load(Ordering::Relaxed);
        let quiet = ticker.enter(1, || false);
        let loud = ticker.enter(1, || true);
        assert!(passes(&ticks, parked + 1), "the loud guest did not wake it");
        drop((quiet, loud));

        // Kicked before its guest began (it waited for a thread): the kick
        // finds nothing to tick for, so the guest must wake the thread.
        std::thread::sleep(Duration::from_millis(20));
        let parked = ticks.load(Ordering::Relaxed);
        let outlived = AtomicBool::new(true);
        ticker.kick();
        std::thread::sleep(Duration::from_millis(20));
        let _late = ticker.enter(0, || outlived.load(Ordering::SeqCst));
        assert!(passes(&ticks, parked + 2), "the late guest got no ticks");
        ticker.stop();
    }

    #[test]
    fn stopping_ends_a_parked_thread() {
        let (ticker, ticks) = counting();
        ticker.stop();
        std::thread::sleep(Duration::from_millis(20));
        let _guest = ticker.enter(0, || true);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(ticks.load(Ordering::Relaxed), 0, "ticked after stop");
    }
}
