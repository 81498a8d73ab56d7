//! What the attempts of one process share: the engine, the host's base
//! limits, the process cache, the host's attempt slots and the threads
//! guests run on. Every caller runs its attempts through a [`Runner`], so
//! the rules of [`super::attempt`] hold for all of them.

use super::attempt::{self, Attempt};
use super::fair::CpuShares;
use super::slots::{HostSlot, HostSlots};
use super::threads::{guest_threads, GuestRuntime, Threads};
use crate::engine::{
    ActivityModule, AttemptLimits, AttemptReport, AttemptRequest, CacheHandle, Engine, Outcome,
    ProcessCache, Watch,
};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// How a process runs its attempts.
#[derive(Clone, Debug)]
pub struct RunnerConfig {
    /// Limits of every attempt before any tenant's quotas (its timeout is
    /// used only by attempts without a deadline).
    pub limits: AttemptLimits,
    /// Budget of each module's `wharf:activity/cache`, in bytes.
    pub cache_bytes: usize,
    /// Attempts running at once on this process, over all namespaces; when
    /// more are ready, namespaces take turns. Keep it below the engine's
    /// instance pool.
    pub max_running: usize,
    /// Which threads run attempts.
    pub threads: Threads,
}

/// Runs attempts under one set of rules. Cheap to clone.
#[derive(Clone)]
pub struct Runner {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    limits: AttemptLimits,
    cache: ProcessCache,
    slots: Arc<HostSlots>,
    shares: Arc<CpuShares>,
    guests: GuestRuntime,
}

impl Runner {
    /// A runner of attempts on `engine`.
    pub fn new(engine: Engine, cfg: RunnerConfig) -> Self {
        // Advancing the epoch early makes running guests yield at their next
        // check; deadlines go by the clock, so they are not shortened.
        let epoch = engine.clone();
        Self {
            inner: Arc::new(Inner {
                engine,
                limits: cfg.limits,
                cache: ProcessCache::new(cfg.cache_bytes),
                slots: HostSlots::new(cfg.max_running.max(1)),
                shares: CpuShares::new(guest_threads(), move || epoch.yield_guests()),
                guests: GuestRuntime::new(cfg.threads),
            }),
        }
    }

    /// The process cache (to drop a deleted namespace's entries).
    pub fn cache(&self) -> &ProcessCache {
        &self.inner.cache
    }

    /// Waits for one of the host's attempt slots for `namespace`. Taken
    /// before an attempt starts, so that the wait is not part of its time.
    pub async fn slot(&self, namespace: &str) -> HostSlot {
        self.inner.slots.acquire(namespace).await
    }

    /// Host slots in use, their number, and attempts waiting for one.
    pub fn slot_usage(&self) -> (usize, usize, usize) {
        self.inner.slots.usage()
    }

    /// The engine's request for `attempt`, as of `now_ms`: its deadline,
    /// limits and cache decided by the rules of [`super::attempt`]. Only
    /// [`Self::run`] may run it: on the guest threads the request is
    /// watched, and `run` is the watcher that keeps its epoch advancing.
    fn request(&self, mut a: Attempt, now_ms: u64) -> (ActivityModule, AttemptRequest) {
        let (deadline_ms, timeout) = attempt::deadline(&a.info, a.deadline, now_ms);
        a.info.deadline_ms = deadline_ms;
        let limits = attempt::limits(&self.inner.limits, a.quotas.as_ref(), timeout);
        let cache = CacheHandle::new(
            self.inner.cache.clone(),
            a.info.namespace.clone(),
            a.module_name,
        );
        let request = AttemptRequest {
            activity_type: a.info.activity_type.clone(),
            args: a.args,
            info: a.info,
            limits,
            hooks: a.hooks,
            stop: a.stop,
            cache: Some(cache),
            grants: a.grants,
            // Only an attempt on the guest threads has a watcher.
            watch: self.inner.guests.separate().then(Watch::default),
        };
        (a.module, request)
    }

    /// Runs `attempt` while `slot` is held; `None` if the attempt's task
    /// died (a host bug, or shutdown). An attempt whose deadline has passed
    /// ends timed out without running.
    ///
    /// Not an `async fn`: one would keep `attempt` in its future from start
    /// to end and copy that future, about 6 KiB, wherever it is boxed or
    /// spawned. The attempt is set up here, before the future exists, and
    /// the future holds only the guest's task, boxed.
    pub fn run(
        &self,
        attempt: Attempt,
        slot: HostSlot,
    ) -> impl Future<Output = Option<AttemptReport>> + Send + 'static {
        let guest = self.guest_task(attempt);
        let inner = self.inner.clone();
        async move {
            let Some((task, watch)) = guest else {
                return Some(not_run());
            };
            let engine = &inner.engine;
            let outlived = || {
                if let Some(w) = &watch {
                    engine.outlived(w);
                }
            };
            let report = inner.guests.run(task, engine.tick(), outlived).await;
            drop(slot);
            report.map(|(mut report, cpu)| {
                report.cpu_time = cpu;
                report
            })
        }
    }

    /// The attempt's task for the guest threads: its engine call under its
    /// namespace's CPU share, with the CPU time it took, and its watch if it
    /// has one; `None` if its deadline has passed.
    fn guest_task(
        &self,
        attempt: Attempt,
    ) -> Option<(
        impl Future<Output = (AttemptReport, Duration)> + Send + 'static,
        Option<Watch>,
    )> {
        // Without a tenant, the attempts of a process share one weight.
        let weight = attempt.quotas.as_ref().map_or(1, |q| q.cpu_weight);
        let (module, request) = self.request(attempt, crate::now_ms());
        if request.limits.timeout == Some(Duration::ZERO) {
            tracing::info!(
                activity_id = %request.info.activity_id,
                attempt = request.info.attempt,
                "deadline already passed; not run"
            );
            return None;
        }
        let engine = self.inner.engine.clone();
        let namespace = request.info.namespace.clone();
        let watch = request.watch.clone();
        let task = self.inner.shares.run(&namespace, weight, async move {
            engine.run_attempt(&module, request).await
        });
        Some((task, watch))
    }
}

/// The report of an attempt that was past its deadline before it began.
fn not_run() -> AttemptReport {
    AttemptReport::without_run(
        Outcome::TimedOut,
        "[wharf] the attempt's deadline passed before it could start\n",
    )
}
