//! Where guests run: a tokio runtime of their own, on threads of lower
//! scheduling priority than the ones that serve the API, poll task queues,
//! dispatch tasks and fire timers. A guest that burns its whole time slice
//! then delays only other guests, while the operating system keeps the
//! control plane responsive.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// How much lower guests run. Not too low: when the control plane is busy
/// (thousands of starts a second) guests must still finish, or worker slots
/// stay taken and the backlog waits (nice 10 showed 1 s schedule-to-start
/// stalls at half load in `bench throughput`; nice 5 did not).
const GUEST_NICE: i32 = 5;

/// Which threads run attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    /// A runtime of their own at a lower priority (`wharf serve`,
    /// `wharf worker`).
    Guest,
    /// The task that asks for the attempt: for one attempt per process
    /// (`wharf run`) and for measurements of the attempt itself
    /// (`wharf bench instantiate` reads the calling thread's CPU time).
    Caller,
}

/// How many threads run guests: one per core.
pub(super) fn guest_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// The guest runtime, if there is one; shut down without waiting when
/// dropped.
pub(super) struct GuestRuntime(Option<tokio::runtime::Runtime>);

impl GuestRuntime {
    /// A runtime for `threads`; [`Threads::Caller`], or a runtime that cannot
    /// be built, runs attempts in place.
    pub(super) fn new(threads: Threads) -> Self {
        if threads == Threads::Caller {
            return Self(None);
        }
        let workers = guest_threads();
        let next = AtomicUsize::new(0);
        match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("wharf-guest")
            // A task spawned here from the control plane (every new attempt)
            // lands in the runtime's shared queue, which a worker that always
            // has a yielded guest of its own to poll would look at only every
            // 61st poll: a light tenant's attempt would wait tens of
            // milliseconds behind a heavy tenant's ticks before the fair
            // scheduler even saw it. Looking there at every poll costs an
            // atomic load.
            .global_queue_interval(1)
            .on_thread_start(move || {
                // Each guest thread's attempts use a shard of their own.
                crate::engine::shard::pin_thread(next.fetch_add(1, Ordering::Relaxed));
                crate::priority::lower(GUEST_NICE);
                crate::priority::default_slice();
            })
            .enable_all()
            .build()
        {
            Ok(rt) => Self(Some(rt)),
            Err(e) => {
                tracing::warn!("no separate runtime for attempts ({e}); running them in place");
                Self(None)
            }
        }
    }

    /// Whether attempts run on threads of their own (not in place).
    pub(super) fn separate(&self) -> bool {
        self.0.is_some()
    }

    /// Runs `attempt` on the guest threads (or in place); `None` if its
    /// task died (a host bug, or shutdown). On the guest threads, calls
    /// `outlived` if the attempt is still running `grace` after it was
    /// handed over: from here, because the guest's own thread is inside
    /// the guest until the epoch that `outlived` keeps advancing reaches it.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        attempt: impl std::future::Future<Output = T> + Send + 'static,
        grace: Duration,
        outlived: impl FnOnce(),
    ) -> Option<T> {
        let Some(rt) = &self.0 else {
            return Some(attempt.await);
        };
        let mut task = rt.spawn(attempt);
        let joined = tokio::select! {
            biased;
            joined = &mut task => joined,
            () = tokio::time::sleep(grace) => {
                outlived();
                task.await
            }
        };
        match joined {
            Ok(out) => Some(out),
            Err(e) => {
                tracing::error!("attempt task ended abnormally: {e}");
                None
            }
        }
    }
}

impl Drop for GuestRuntime {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which is not allowed inside another
        // runtime; its threads are told to stop and left to do so.
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}
