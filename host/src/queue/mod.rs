//! Task queues: where scheduled attempts wait for a worker slot.
//!
//! A queue exists once something uses it. It holds a backlog of tasks (one per
//! attempt ready to run), the deployment that serves it (if any), and a
//! semaphore of worker slots. One dispatcher per deployed queue takes a slot
//! first and a task second, so a task never leaves the backlog before a slot
//! is free to run it, and the task must pass its concurrency gates ([`gate`])
//! before it goes. Matching is entirely in memory; the service rebuilds the
//! backlog from SQLite at start.

mod backlog;
pub mod gate;
mod limit;
mod rate;

pub use backlog::{KeyBacklog, PriorityBacklog, PRIORITIES};
pub use gate::{GateKey, GatePass, Gates};
pub use limit::RateConfig;
pub use rate::RateWindow;

use backlog::Backlog;
use limit::RateLimit;

use crate::clock::SharedClock;
use crate::registry::LoadedModule;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// One attempt waiting for a worker.
#[derive(Clone, Debug)]
pub struct Task {
    /// The activity run.
    pub run_id: i64,
    /// The attempt it is for; a stale task (the run moved on) is skipped.
    pub attempt: u32,
    /// When it entered the backlog.
    pub enqueued: Instant,
    /// 1 (highest) to 5.
    pub priority: u8,
    /// Lane within the priority (empty: the shared lane).
    pub fairness_key: Arc<str>,
    /// Share of the lane relative to the other keys of the priority.
    pub fairness_weight: f32,
    /// Concurrency gates the attempt must pass.
    pub gates: Arc<[GateKey]>,
}

/// The module version serving a queue.
pub struct Deployment {
    /// Module name.
    pub name: String,
    /// Module version.
    pub version: u32,
    /// The loaded module.
    pub module: Arc<LoadedModule>,
    /// Most attempts running at once.
    pub max_concurrent: u32,
    /// A newer version taking a share of activities during a rollout.
    pub ramp: Option<Ramp>,
    /// When it was deployed, ms since the Unix epoch.
    pub deployed_ms: u64,
}

/// A version being rolled out to a share of a queue's activities.
pub struct Ramp {
    /// Module version.
    pub version: u32,
    /// The loaded module.
    pub module: Arc<LoadedModule>,
    /// Share of activities, 1 to 99 percent.
    pub percent: u8,
}

impl Deployment {
    /// The version that runs `run_id`'s attempts. During a rollout the
    /// choice hangs on the run, so every attempt of one activity runs the
    /// same version.
    pub fn version_for(&self, run_id: i64) -> (u32, &Arc<LoadedModule>) {
        match &self.ramp {
            Some(r) if bucket(run_id) < u64::from(r.percent) => (r.version, &r.module),
            _ => (self.version, &self.module),
        }
    }
}

/// A stable, well-spread bucket 0..100 of a run id.
fn bucket(run_id: i64) -> u64 {
    ((run_id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % 100
}

/// A task queue of one namespace.
pub struct TaskQueue {
    /// Namespace it belongs to.
    pub namespace: String,
    /// Its name.
    pub name: String,
    backlog: Mutex<Backlog>,
    ready: Notify,
    limit: Mutex<RateLimit>,
    limit_changed: Notify,
    /// Tasks handed to workers per second over the last minute.
    pub dispatched: RateWindow,
    deployment: Mutex<Option<Arc<Deployment>>>,
    deployed: Notify,
    slots: Arc<Semaphore>,
    capacity: Mutex<u32>,
    running: AtomicUsize,
    dispatcher: AtomicBool,
    /// Set when the queue leaves the service (its namespace was deleted):
    /// the dispatcher ends instead of waiting forever on a queue nobody
    /// can reach.
    closed: tokio_util::sync::CancellationToken,
    /// Attempts that completed, per second over the last minute.
    pub completed: RateWindow,
    /// Attempts that ended otherwise (failed, timed out, trapped, ...).
    pub failed: RateWindow,
    gates: Arc<Gates>,
    parked: AtomicUsize,
    clock: SharedClock,
}

/// Tasks listed in describe output as "next to go".
const NEXT_SHOWN: usize = 10;

/// Queue state for describe output.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct QueueStats {
    /// Tasks waiting for a worker.
    pub backlog: usize,
    /// Age of the oldest waiting task, in ms.
    pub backlog_oldest_age_ms: u64,
    /// Backlog per priority (highest first), for the priorities that have any.
    pub backlog_by_priority: Vec<PriorityBacklog>,
    /// The queue-wide dispatch rate limit.
    pub rate_limit: RateConfig,
    /// Tasks dispatched per second, averaged over the last minute.
    pub dispatched_per_second: f64,
    /// Attempts running now.
    pub running: usize,
    /// Tasks of this queue parked at a full concurrency gate.
    pub waiting_on_limits: usize,
    /// Run ids of the next tasks to go, in dispatch order.
    #[serde(skip)]
    pub next_run_ids: Vec<i64>,
    /// Worker slots.
    pub slots: u32,
    /// Attempts finished per second, averaged over the last minute.
    pub finished_per_second: f64,
    /// Of those, attempts that completed.
    pub completed_per_second: f64,
    /// Of those, attempts that did not complete.
    pub failed_per_second: f64,
    /// Attempts that finished (completed or failed) in each of the last 60
    /// seconds, oldest first.
    pub finished_last_minute: Vec<u64>,
    /// The same in each of the last 60 minutes.
    pub finished_last_hour: Vec<u64>,
}

impl TaskQueue {
    /// An empty, undeployed queue whose tasks pass `gates`; its rate limit
    /// reads time from `clock`.
    pub fn new(namespace: &str, name: &str, gates: Arc<Gates>, clock: SharedClock) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            backlog: Mutex::new(Backlog::default()),
            ready: Notify::new(),
            limit: Mutex::new(RateLimit::new(RateConfig::default(), clock.now())),
            limit_changed: Notify::new(),
            dispatched: RateWindow::default(),
            deployment: Mutex::new(None),
            deployed: Notify::new(),
            slots: Arc::new(Semaphore::new(0)),
            capacity: Mutex::new(0),
            running: AtomicUsize::new(0),
            dispatcher: AtomicBool::new(false),
            closed: tokio_util::sync::CancellationToken::new(),
            completed: RateWindow::default(),
            failed: RateWindow::default(),
            gates,
            parked: AtomicUsize::new(0),
            clock,
        }
    }

    /// Adds a task at the back of the backlog.
    pub fn push(&self, task: Task) {
        if let Ok(mut b) = self.backlog.lock() {
            b.push(task);
        }
        self.ready.notify_one();
    }

    /// A task let through a gate it was parked at: it goes next.
    fn unpark(&self, task: Task) {
        self.parked.fetch_sub(1, Ordering::Relaxed);
        if let Ok(mut b) = self.backlog.lock() {
            b.push_front(task);
        }
        self.ready.notify_one();
    }

    /// Drops the waiting tasks of a run (it closed while waiting).
    pub fn remove(&self, run_id: i64) {
        if let Ok(mut b) = self.backlog.lock() {
            b.remove(run_id);
        }
    }

    /// Waits until the backlog has a task.
    async fn wait_ready(&self) {
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.backlog.lock().map(|b| !b.is_empty()).unwrap_or(false) {
                return;
            }
            notified.await;
        }
    }

    /// Waits for a task that the rate limit and the concurrency gates let
    /// go: the next task in backlog order whose gates all have room. Tasks
    /// met on the way whose gates are full are parked at them.
    async fn next_task(self: &Arc<Self>) -> (Task, GatePass) {
        loop {
            self.wait_ready().await;
            let changed = self.limit_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let verdict = self
                .limit
                .lock()
                .map(|mut l| l.ready_in(self.clock.now()))
                .unwrap_or(Ok(()));
            match verdict {
                Ok(()) => {
                    if let Some(admitted) = self.pop_admitted() {
                        if let Ok(mut l) = self.limit.lock() {
                            let _ = l.take(self.clock.now());
                        }
                        self.dispatched.record();
                        return admitted;
                    }
                }
                Err(Some(wait)) => {
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = changed => {}
                    }
                }
                Err(None) => changed.await,
            }
        }
    }

    fn pop_admitted(self: &Arc<Self>) -> Option<(Task, GatePass)> {
        let mut b = self.backlog.lock().ok()?;
        while let Some(task) = b.pop() {
            match self.gates.admit(self, task) {
                Ok(admitted) => return Some(admitted),
                Err(()) => {
                    self.parked.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        None
    }

    /// Sets (or with `rate: None`, clears) the queue-wide dispatch rate.
    pub fn set_rate(&self, config: RateConfig) {
        if let Ok(mut l) = self.limit.lock() {
            *l = RateLimit::new(config, self.clock.now());
        }
        self.limit_changed.notify_waiters();
    }

    /// Sets the serving module version and resizes the worker slots.
    pub fn deploy(&self, deployment: Arc<Deployment>) {
        if let Ok(mut cap) = self.capacity.lock() {
            let want = deployment.max_concurrent;
            if want > *cap {
                self.slots.add_permits((want - *cap) as usize);
            } else {
                self.slots.forget_permits((*cap - want) as usize);
            }
            *cap = want;
        }
        if let Ok(mut d) = self.deployment.lock() {
            *d = Some(deployment);
        }
        self.deployed.notify_waiters();
    }

    /// Ends the dispatcher (see `closed`); tasks already handed out run on.
    pub fn close(&self) {
        self.closed.cancel();
    }

    /// Whether the queue holds nothing but its name: no deployment or
    /// dispatcher, no task waiting, parked or running, and no rate set. Such
    /// a queue is as good as a new one of the same name.
    pub fn is_idle(&self) -> bool {
        !self.dispatcher.load(Ordering::SeqCst)
            && self.running.load(Ordering::Relaxed) == 0
            && self.parked.load(Ordering::Relaxed) == 0
            && self.deployment().is_none()
            && self.backlog.lock().is_ok_and(|b| b.is_empty())
            && self.limit.lock().is_ok_and(|l| l.config.rate.is_none())
    }

    /// True exactly once: for the caller that should start the dispatcher.
    pub fn claim_dispatcher(&self) -> bool {
        !self.dispatcher.swap(true, Ordering::SeqCst)
    }

    /// The serving deployment, if any.
    pub fn deployment(&self) -> Option<Arc<Deployment>> {
        self.deployment.lock().ok().and_then(|d| d.clone())
    }

    /// Tasks waiting for a worker (in the backlog or parked at a full
    /// concurrency gate), and the age of the oldest in the backlog in ms.
    pub fn backlog(&self) -> (usize, u64) {
        let (len, oldest) = self
            .backlog
            .lock()
            .map(|b| (b.len(), b.oldest_age_ms()))
            .unwrap_or_default();
        (len + self.parked.load(Ordering::Relaxed), oldest)
    }

    /// Snapshot for describe output.
    pub fn stats(&self) -> QueueStats {
        let (backlog, oldest, by_priority, next) = self
            .backlog
            .lock()
            .map(|b| {
                (
                    b.len(),
                    b.oldest_age_ms(),
                    b.by_priority(),
                    b.next_run_ids(NEXT_SHOWN),
                )
            })
            .unwrap_or_default();
        let (completed, failed) = (self.completed.history(), self.failed.history());
        let sum = |a: Vec<u64>, b: &[u64]| -> Vec<u64> {
            a.iter().zip(b).map(|(x, y)| x.saturating_add(*y)).collect()
        };
        QueueStats {
            backlog,
            backlog_oldest_age_ms: oldest,
            backlog_by_priority: by_priority,
            rate_limit: self
                .limit
                .lock()
                .map(|l| l.config.clone())
                .unwrap_or_default(),
            dispatched_per_second: self.dispatched.per_second(),
            running: self.running.load(Ordering::Relaxed),
            waiting_on_limits: self.parked.load(Ordering::Relaxed),
            next_run_ids: next,
            slots: self.capacity.lock().map(|c| *c).unwrap_or(0),
            finished_per_second: self.completed.per_second() + self.failed.per_second(),
            completed_per_second: self.completed.per_second(),
            failed_per_second: self.failed.per_second(),
            finished_last_minute: sum(completed.0, &failed.0),
            finished_last_hour: sum(completed.1, &failed.1),
        }
    }

    /// Takes a slot, then a task, and hands both with the deployment to
    /// `run`; forever, until `stop` resolves or the queue is closed. Waits
    /// while undeployed.
    pub async fn dispatch<F>(self: Arc<Self>, stop: impl std::future::Future<Output = ()>, run: F)
    where
        F: Fn(Task, Arc<Deployment>, Slot),
    {
        let closed = self.closed.clone();
        let stop = async move {
            tokio::select! {
                () = stop => {}
                () = closed.cancelled() => {}
            }
        };
        tokio::pin!(stop);
        loop {
            let deployment = loop {
                let deployed = self.deployed.notified();
                tokio::pin!(deployed);
                deployed.as_mut().enable();
                if let Some(d) = self.deployment() {
                    break d;
                }
                tokio::select! {
                    _ = deployed => {}
                    _ = &mut stop => return,
                }
            };
            let permit = tokio::select! {
                p = self.slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
                _ = &mut stop => return,
            };
            let (task, gates) = tokio::select! {
                t = self.next_task() => t,
                _ = &mut stop => return,
            };
            // A redeploy between taking the slot and the task wins.
            let deployment = self.deployment().unwrap_or(deployment);
            self.running.fetch_add(1, Ordering::Relaxed);
            run(
                task,
                deployment,
                Slot {
                    _permit: permit,
                    _gates: gates,
                    queue: self.clone(),
                },
            );
        }
    }
}

/// A worker slot in use; freed when dropped.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    _gates: GatePass,
    queue: Arc<TaskQueue>,
}

impl Slot {
    /// Frees the slot after an attempt, counting how it ended.
    pub fn finish(self, completed: bool) {
        if completed {
            self.queue.completed.record();
        } else {
            self.queue.failed.record();
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.queue.running.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn closing_a_queue_ends_its_dispatcher() {
        let queue = Arc::new(TaskQueue::new(
            "ns",
            "q",
            Arc::new(Gates::default()),
            crate::clock::system(),
        ));
        assert!(queue.claim_dispatcher());
        // Undeployed and never told to stop: it would wait forever.
        let dispatcher = tokio::spawn(
            queue
                .clone()
                .dispatch(std::future::pending::<()>(), |_task, _deployment, _slot| {}),
        );
        tokio::task::yield_now().await;
        assert!(!dispatcher.is_finished());
        queue.close();
        tokio::time::timeout(std::time::Duration::from_secs(10), dispatcher)
            .await
            .expect("the dispatcher ends once its queue is closed")
            .expect("the dispatcher does not panic");
    }
}
