//! The activity service: Temporal's activity state machine over SQLite.
//!
//! Every open activity lives in memory (state, timers, the attempt running
//! now) and every transition is written through the store's group commit
//! before anyone is told about it. Matching (task queues) and timers are in
//! memory only and rebuilt from SQLite at start, so the database is never
//! polled. Attempts run in the engine, one fresh instance each.
//!
//! * [`start`]: idempotent start by activity id.
//! * [`run`]: a worker slot takes a task and runs the attempt.
//! * [`decide`]: the state machine, pure: what an event (an ended attempt,
//!   a timer, a cancellation request) does to an activity at a given time.
//! * [`commit`]: applies a decision, writes it, then makes it visible.
//! * [`timeouts`]: what a due timer does; [`timers`]: the timer task.
//! * [`external`]: completion, heartbeats and cancellation from outside.
//! * [`recovery`]: memory rebuilt from SQLite at start.
//! * [`retention`]: closed activities deleted once their namespace's
//!   retention has passed.
//! * [`query`]: describe, list, long-poll, queue views.
//! * [`retry`], [`options`]: the rules.
//! * [`tenant`], [`grants`]: namespaces, their quotas and usage, and what
//!   their modules may reach (outbound HTTP, configuration variables).
//! * [`modules`], [`tokens`]: a namespace's module uploads under its quotas,
//!   and its bearer tokens.
//!
//! Time comes from the [`Clock`](crate::clock::Clock) the service is opened
//! with, read once per event and handed to the decision.

mod activity;
pub mod bounds;
mod by_id;
mod commit;
mod decide;
mod deploy;
mod external;
pub mod grants;
mod held;
mod kept;
mod limits;
pub mod modules;
pub mod options;
mod query;
mod recovery;
mod retention;
pub mod retry;
mod row_write;
mod run;
mod start;
mod started;
pub mod tenant;
mod timeouts;
mod timers;
pub mod tokens;
mod traces;

pub use activity::{ActivityView, AttemptView};
pub use deploy::DeployRequest;
pub use external::{Completion, Target};
pub use query::{ActivityPage, ModuleLoad, QueueView};
pub use recovery::STORED_STATE_INVALID;
pub use start::{ActivityRef, StartRequest, Started};

use crate::clock::SharedClock;
use crate::engine::AttemptLimits;
use crate::queue::{Gates, TaskQueue};
use crate::registry::{Registry, RegistryError};
use crate::store::{Db, StoreError};
use activity::Activity;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use timers::{TimerEvent, Timers};
use tokio::sync::watch;

/// Errors the service answers with; each maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No such namespace.
    #[error("namespace {0:?} not found")]
    NamespaceNotFound(String),
    /// No such activity.
    #[error("activity {0:?} not found")]
    ActivityNotFound(String),
    /// No such task token (unknown, or its attempt is over).
    #[error("task token not found or no longer valid (its attempt has ended)")]
    TokenNotFound,
    /// No such module.
    #[error("module {0} not found")]
    ModuleNotFound(String),
    /// The request is malformed or inconsistent.
    #[error("{0}")]
    InvalidArgument(String),
    /// A payload is over the limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The activity is closed (or not in a state that allows this).
    #[error("{0}")]
    Conflict(String),
    /// The host is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The namespace's start rate is exhausted; retry after the delay.
    #[error("namespace start rate exceeded; retry in {} ms", .0.as_millis())]
    RateLimited(Duration),
    /// A namespace quota would be exceeded.
    #[error("{0}")]
    QuotaExceeded(String),
    /// The namespace's open activities would store more payload bytes
    /// than its `max_stored_bytes`.
    #[error("{0}")]
    StoredBytesExceeded(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// Settings of the service.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// This process's own task queue (see `activity-info.worker-task-queue`).
    pub worker_task_queue: String,
    /// How long a running attempt may ignore a cancellation request.
    pub cancel_grace: Duration,
    /// Largest payload (argument, result, heartbeat details) accepted.
    pub payload_limit: usize,
    /// Worker slots of a queue when a deployment does not say.
    pub default_max_concurrent: u32,
    /// Limits of every attempt (its timeout comes from the activity).
    pub attempt_limits: AttemptLimits,
    /// Budget of each module's `wharf:activity/cache`, in bytes.
    pub cache_bytes: usize,
    /// Attempts running at once on this host, over all namespaces; when
    /// more are ready, namespaces take turns. Keep it below the engine's
    /// instance pool.
    pub max_running: usize,
    /// Where activities' and attempts' spans go, if anywhere.
    pub traces: Option<Arc<crate::otlp::Exporter>>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            worker_task_queue: process_queue_name(),
            cancel_grace: Duration::from_secs(10),
            payload_limit: 2 << 20,
            default_max_concurrent: 100,
            attempt_limits: AttemptLimits::default(),
            cache_bytes: crate::engine::DEFAULT_CACHE_BYTES,
            max_running: 900,
            traces: None,
        }
    }
}

/// A name for this process's own queue, unique to this run of it: tasks
/// routed to an earlier run (whose caches are gone) are not picked up.
fn process_queue_name() -> String {
    let mut b = [0u8; 4];
    crate::random::fill(&mut b);
    format!("wharf-worker-{}-{}", std::process::id(), hex::encode(b))
}

/// Counters for `/metrics`.
#[derive(Default)]
pub struct Counters {
    /// Activities started (new runs).
    pub started: AtomicU64,
    /// Attempts run.
    pub attempts: AtomicU64,
    /// Activities closed, by final state.
    pub completed: AtomicU64,
    /// Closed failed.
    pub failed: AtomicU64,
    /// Closed cancelled.
    pub cancelled: AtomicU64,
    /// Closed timed out.
    pub timed_out: AtomicU64,
    /// Latencies and task counters by namespace, queue and type.
    pub activity: crate::metrics::ActivityMetrics,
}

/// The service. Cheap to clone.
#[derive(Clone)]
pub struct Service {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    db: Db,
    clock: SharedClock,
    registry: Arc<Registry>,
    cfg: ServiceConfig,
    state: Mutex<State>,
    timers: Timers,
    stopping: watch::Sender<bool>,
    counters: Counters,
    /// Runs the attempts (see `run.rs`).
    worker: crate::worker::Runner,
    /// Wakes the task that writes attempts' starts (`started.rs`).
    started_due: Arc<tokio::sync::Notify>,
    /// Small inputs kept from a start to its first attempt (`held.rs`).
    held: held::HeldInputs,
    /// Wakes starts waiting for another start's row (`row_write.rs`).
    rows_settled: tokio::sync::Notify,
}

#[derive(Default)]
struct State {
    namespaces: HashMap<String, Arc<tenant::Tenant>>,
    /// Boxed: the map's slots stay small, and most are empty.
    open: HashMap<i64, Box<Activity>>,
    by_id: by_id::ById,
    tokens: HashMap<String, i64>,
    /// Ordered, so that one namespace's queues are a range (process routing
    /// looks at them without visiting every other namespace's).
    queues: BTreeMap<(String, String), Arc<TaskQueue>>,
    /// Open runs by (namespace, task queue), so that describing a queue
    /// visits its own runs only.
    open_by_queue: HashMap<(String, String), HashSet<i64>>,
    gates: Arc<Gates>,
    next_run_id: i64,
    /// Attempts started in memory whose rows do not say so yet
    /// (`started.rs`): (run id, attempt).
    unwritten_starts: Vec<(i64, u32)>,
    /// Attempt endings whose write failed, to write again (`kept.rs`).
    kept_ends: kept::KeptEnds,
    /// Options of the run started (or recovered) last, shared with the next
    /// if the same.
    last_options: Option<Arc<options::ActivityOptions>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock is a bug in the service, not guest
        // behaviour; keep serving with the state as it is.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check_namespace(&self, ns: &str) -> Result<(), ServiceError> {
        self.tenant(ns).map(|_| ())
    }

    fn tenant(&self, ns: &str) -> Result<Arc<tenant::Tenant>, ServiceError> {
        self.lock()
            .namespaces
            .get(ns)
            .cloned()
            .ok_or_else(|| ServiceError::NamespaceNotFound(ns.to_owned()))
    }
}

impl State {
    /// Indexes an open run by its queue.
    fn note_open(&mut self, f: &crate::store::activities::ActivityFixed) {
        self.open_by_queue
            .entry((f.namespace.clone(), f.task_queue.clone()))
            .or_default()
            .insert(f.run_id);
    }

    /// Records that the heartbeat details of open run `run_id` take `bytes`
    /// in SQLite now, in its namespace's stored bytes.
    fn heartbeat_stored(&mut self, run_id: i64, bytes: u64) {
        let Some(a) = self.open.get_mut(&run_id) else {
            return;
        };
        let old = std::mem::replace(&mut a.stored.heartbeat, bytes);
        if let Some(t) = self.namespaces.get(&a.fixed.namespace) {
            t.stored_changed(old, bytes);
        }
    }

    /// Drops a run from the index of open runs by queue.
    fn forget_open(&mut self, f: &crate::store::activities::ActivityFixed, run_id: i64) {
        let key = (f.namespace.clone(), f.task_queue.clone());
        if let Some(runs) = self.open_by_queue.get_mut(&key) {
            runs.remove(&run_id);
            if runs.is_empty() {
                self.open_by_queue.remove(&key);
            }
        }
    }

    /// The queue `(ns, name)`, created by this use if need be.
    fn queue(&mut self, ns: &str, name: &str, clock: &SharedClock) -> Arc<TaskQueue> {
        self.queues
            .entry((ns.to_owned(), name.to_owned()))
            .or_insert_with(|| {
                Arc::new(TaskQueue::new(ns, name, self.gates.clone(), clock.clone()))
            })
            .clone()
    }
}

impl Service {
    /// Opens the service over `db`: loads deployments and open activities,
    /// re-arms timers, re-queues what was waiting and retries attempts that
    /// were running when the last process died.
    pub async fn open(
        db: Db,
        registry: Arc<Registry>,
        cfg: ServiceConfig,
    ) -> Result<Self, ServiceError> {
        Self::open_with_clock(db, registry, cfg, crate::clock::system()).await
    }

    /// As [`Service::open`], reading time from `clock` (tests pass a
    /// [`ManualClock`](crate::clock::ManualClock)).
    pub async fn open_with_clock(
        db: Db,
        registry: Arc<Registry>,
        cfg: ServiceConfig,
        clock: SharedClock,
    ) -> Result<Self, ServiceError> {
        let (stopping, _) = watch::channel(false);
        let worker = cfg.runner(registry.engine().clone());
        let shared = Arc::new_cyclic(|weak: &std::sync::Weak<Shared>| {
            let weak = weak.clone();
            let timers = Timers::start(clock.clone(), move |ev: TimerEvent| {
                if let Some(shared) = weak.upgrade() {
                    tokio::spawn(async move { shared.on_timer(ev).await });
                }
            });
            Shared {
                db,
                clock,
                registry,
                worker,
                cfg,
                state: Mutex::new(State::default()),
                timers,
                stopping,
                counters: Counters::default(),
                started_due: Arc::default(),
                held: held::HeldInputs::default(),
                rows_settled: tokio::sync::Notify::new(),
            }
        });
        shared.recover().await?;
        retention::start(Arc::downgrade(&shared));
        started::start(Arc::downgrade(&shared));
        let service = Self { shared };
        // Files of a namespace deleted just before a crash.
        service.remove_orphaned_contents().await;
        Ok(service)
    }

    /// Host slots: (in use, capacity, attempts waiting for one).
    pub fn host_slots(&self) -> (usize, usize, usize) {
        self.shared.worker.slot_usage()
    }

    /// Task queues held in memory, over all namespaces.
    pub fn queue_count(&self) -> usize {
        self.shared.lock().queues.len()
    }

    /// Whether the database's last write failed for a full disk (until a
    /// write succeeds again).
    pub fn storage_full(&self) -> bool {
        self.shared.db.is_full()
    }

    /// The service clock's time, ms since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        self.shared.clock.now_ms()
    }

    /// Every task queue in use with its backlog (tasks waiting for a
    /// worker) and the age of its oldest waiting task in ms, as
    /// (namespace, queue, backlog, age).
    pub fn queue_backlogs(&self) -> Vec<(String, String, usize, u64)> {
        let queues: Vec<_> = self
            .shared
            .lock()
            .queues
            .iter()
            .map(|((ns, q), queue)| (ns.clone(), q.clone(), queue.clone()))
            .collect();
        queues
            .into_iter()
            .map(|(ns, q, queue)| {
                let (len, age) = queue.backlog();
                (ns, q, len, age)
            })
            .collect()
    }

    /// Counters for metrics.
    pub fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    /// Settings in force.
    pub fn config(&self) -> &ServiceConfig {
        &self.shared.cfg
    }

    /// Checks that a namespace exists.
    pub fn check_namespace(&self, ns: &str) -> Result<(), ServiceError> {
        self.shared.check_namespace(ns)
    }

    /// Stops taking tasks, lets running attempts finish for up to `grace`,
    /// then stops the rest (they are retried at the next start).
    pub async fn shutdown(&self, grace: Duration) {
        let s = &self.shared;
        s.stopping.send_replace(true);
        let deadline = bounds::later(tokio::time::Instant::now(), grace);
        loop {
            let running = s
                .lock()
                .open
                .values()
                .filter(|a| a.running.is_some())
                .count();
            if running == 0 {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    running,
                    "shutdown grace period over; stopping running attempts"
                );
                for a in s.lock().open.values_mut() {
                    if let Some(r) = &mut a.running {
                        r.reason = Some(activity::StopReason::Shutdown);
                        r.stop.trigger();
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
