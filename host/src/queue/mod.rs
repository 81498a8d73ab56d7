//! Task queues: where scheduled attempts wait for a worker slot.
//!
//! A queue exists once something uses it. It holds a backlog of tasks (one per
//! attempt ready to run), the deployment that serves it (if any), and a
//! semaphore of worker slots. One dispatcher per deployed queue takes a slot
//! first and a task second, so a task never leaves the backlog before a slot
//! is free to run it. Matching is entirely in memory; the service rebuilds the
//! backlog from SQLite at start.

mod backlog;
mod limit;
mod rate;

pub use backlog::{PriorityBacklog, PRIORITIES};
pub use limit::RateConfig;
pub use rate::RateWindow;

use backlog::Backlog;
use limit::RateLimit;

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
    /// Attempts finished per second over the last minute.
    pub finished: RateWindow,
}

/// Queue state for describe output.
#[derive(Debug, Serialize)]
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
    /// Worker slots.
    pub slots: u32,
    /// Attempts finished per second, averaged over the last minute.
    pub finished_per_second: f64,
}

impl TaskQueue {
    /// An empty, undeployed queue.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            backlog: Mutex::new(Backlog::default()),
            ready: Notify::new(),
            limit: Mutex::new(RateLimit::new(RateConfig::default())),
            limit_changed: Notify::new(),
            dispatched: RateWindow::default(),
            deployment: Mutex::new(None),
            deployed: Notify::new(),
            slots: Arc::new(Semaphore::new(0)),
            capacity: Mutex::new(0),
            running: AtomicUsize::new(0),
            dispatcher: AtomicBool::new(false),
            finished: RateWindow::default(),
        }
    }

    /// Adds a task at the back of the backlog.
    pub fn push(&self, task: Task) {
        if let Ok(mut b) = self.backlog.lock() {
            b.push(task);
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

    /// Waits for a task and for the rate limit to let it go, then takes the
    /// oldest task of the highest priority.
    async fn next_task(&self) -> Task {
        loop {
            self.wait_ready().await;
            let changed = self.limit_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let verdict = self.limit.lock().map(|mut l| l.take()).unwrap_or(Ok(()));
            match verdict {
                Ok(()) => {
                    if let Some(t) = self.backlog.lock().ok().and_then(|mut b| b.pop()) {
                        self.dispatched.record();
                        return t;
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

    /// Sets (or with `rate: None`, clears) the queue-wide dispatch rate.
    pub fn set_rate(&self, config: RateConfig) {
        if let Ok(mut l) = self.limit.lock() {
            *l = RateLimit::new(config);
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

    /// True exactly once: for the caller that should start the dispatcher.
    pub fn claim_dispatcher(&self) -> bool {
        !self.dispatcher.swap(true, Ordering::SeqCst)
    }

    /// The serving deployment, if any.
    pub fn deployment(&self) -> Option<Arc<Deployment>> {
        self.deployment.lock().ok().and_then(|d| d.clone())
    }

    /// Snapshot for describe output.
    pub fn stats(&self) -> QueueStats {
        let (backlog, oldest, by_priority) = self
            .backlog
            .lock()
            .map(|b| (b.len(), b.oldest_age_ms(), b.by_priority()))
            .unwrap_or_default();
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
            slots: self.capacity.lock().map(|c| *c).unwrap_or(0),
            finished_per_second: self.finished.per_second(),
        }
    }

    /// Takes a slot, then a task, and hands both with the deployment to
    /// `run`; forever, until `stop` resolves. Waits while undeployed.
    pub async fn dispatch<F>(self: Arc<Self>, stop: impl std::future::Future<Output = ()>, run: F)
    where
        F: Fn(Task, Arc<Deployment>, Slot),
    {
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
            let task = tokio::select! {
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
                    queue: self.clone(),
                },
            );
        }
    }
}

/// A worker slot in use; freed (and counted as finished) when dropped.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    queue: Arc<TaskQueue>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.queue.running.fetch_sub(1, Ordering::Relaxed);
        self.queue.finished.record();
    }
}
