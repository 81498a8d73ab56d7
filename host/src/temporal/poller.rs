//! Polls one core worker (one task queue) and runs what it gets.
//!
//! A `Start` task becomes an attempt run by the worker layer's [`Runner`]
//! (with the deadline the server set and no tenant quotas), in its own tokio
//! task; a `Cancel` task marks the running attempt with the same task token
//! (see [`CancelState`]). When the attempt ends core is told the task "will
//! complete asynchronously" (so it frees the slot without an RPC of its own,
//! see [`super::deliver`]), and the report is sent; one the server cannot
//! be reached for goes to the [outbox](super::outbox).

use super::activity::{info_of, payload_from_proto, report_of, Report, TaskOrigin, TYPE_NOT_FOUND};
use super::deliver::RpcDelivery;
use super::heartbeat::{CancelState, Journal, TemporalHooks};
use super::outbox::Outbox;
use super::{Activities, TemporalError, WorkerConfig};
use crate::store::temporal::AttemptKey;
use crate::store::Db;
use crate::worker::{Attempt, Deadline, Failure, Runner};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use temporalio_common::protos::coresdk::activity_result::ActivityExecutionResult;
use temporalio_common::protos::coresdk::activity_task::{activity_task::Variant, Start};
use temporalio_common::protos::coresdk::ActivityTaskCompletion;
use temporalio_sdk_core::{PollError, Worker as CoreWorker};
use tokio::task::JoinSet;

/// Counters of one worker process, shown at shutdown.
#[derive(Default, Debug)]
pub struct Counters {
    /// Attempts started.
    pub started: AtomicU64,
    /// Reports the server took.
    pub delivered: AtomicU64,
    /// Reports left in the outbox for later.
    pub queued: AtomicU64,
    /// Reports neither delivered nor kept: the outbox's write failed.
    pub lost: AtomicU64,
}

/// What the pollers of one process share.
pub struct Shared {
    /// Runs the attempts, at most `max_concurrent` at once over both
    /// queues.
    pub runner: Runner,
    /// Served activity types.
    pub activities: Activities,
    /// Journal and outbox storage.
    pub db: Db,
    /// Where reports go.
    pub outbox: Arc<Outbox<RpcDelivery>>,
    /// The worker's configuration.
    pub config: WorkerConfig,
    /// Cancellation state of running attempts by task token.
    pub running: Mutex<HashMap<Vec<u8>, Arc<CancelState>>>,
    /// Counters.
    pub counters: Counters,
}

impl Shared {
    /// Asks every running attempt to stop now (a second Ctrl-C).
    pub fn stop_all(&self) {
        if let Ok(running) = self.running.lock() {
            for state in running.values() {
                state.request(
                    temporalio_common::protos::coresdk::activity_task::ActivityCancelReason::WorkerShutdown
                        as i32,
                    Duration::ZERO,
                );
            }
        }
    }
}

/// Polls `core` (serving `task_queue`) until core shuts down, then waits
/// for the attempts it started. An error means core met a fatal poll error
/// (and has begun shutting down).
pub async fn poll(
    core: Arc<CoreWorker>,
    shared: Arc<Shared>,
    task_queue: String,
) -> Result<(), TemporalError> {
    let mut attempts = JoinSet::new();
    let mut fatal = None;
    loop {
        match core.poll_activity_task().await {
            Ok(task) => match task.variant {
                Some(Variant::Start(start)) => {
                    let cancel = Arc::new(CancelState::default());
                    if let Ok(mut running) = shared.running.lock() {
                        running.insert(task.task_token.clone(), cancel.clone());
                    }
                    let (core, shared, queue) = (core.clone(), shared.clone(), task_queue.clone());
                    attempts.spawn(async move {
                        run_task(&core, &shared, &queue, task.task_token, start, cancel).await;
                    });
                }
                Some(Variant::Cancel(c)) => {
                    let state = shared
                        .running
                        .lock()
                        .ok()
                        .and_then(|r| r.get(&task.task_token).cloned());
                    match state {
                        Some(state) => {
                            tracing::info!(task_queue, reason = c.reason, "cancellation requested");
                            state.request(c.reason, shared.config.cancel_grace);
                        }
                        None => tracing::debug!("cancel for a task no longer running"),
                    }
                }
                None => tracing::warn!("activity task without a variant, ignored"),
            },
            Err(PollError::ShutDown) => break,
            Err(PollError::TonicError(status)) => {
                // Core treats this as fatal and shuts the worker down; keep
                // polling to drain it.
                tracing::error!(task_queue, "polling failed: {status}");
                fatal.get_or_insert(format!("{:?}: {}", status.code(), status.message()));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        while attempts.try_join_next().is_some() {}
    }
    while attempts.join_next().await.is_some() {}
    match fatal {
        Some(reason) => Err(TemporalError::Poll { task_queue, reason }),
        None => Ok(()),
    }
}

/// Runs one `Start` task to its report.
async fn run_task(
    core: &Arc<CoreWorker>,
    shared: &Shared,
    task_queue: &str,
    task_token: Vec<u8>,
    start: Start,
    cancel: Arc<CancelState>,
) {
    shared.counters.started.fetch_add(1, Ordering::Relaxed);
    let cfg = &shared.config;
    let origin = TaskOrigin {
        namespace: &cfg.namespace,
        task_queue,
        worker_task_queue: &cfg.worker_task_queue,
    };
    let info = info_of(&task_token, &start, &origin);
    let key = AttemptKey {
        namespace: info.namespace.clone(),
        task_token: task_token.clone(),
        workflow_id: info.workflow_id.clone(),
        activity_id: info.activity_id.clone(),
        activity_type: info.activity_type.clone(),
        attempt: info.attempt,
    };
    let report = match shared.activities.get(&start.activity_type) {
        None => Some(Report::Failed {
            failure: Failure {
                error_type: TYPE_NOT_FOUND.into(),
                message: format!(
                    "activity type {:?} is not served by this wharf worker (it serves: {})",
                    start.activity_type,
                    shared.activities.types().join(", ")
                ),
                ..Failure::default()
            },
            last_heartbeat_details: Vec::new(),
        }),
        Some(served) => {
            // Held for the attempt: the process-wide bound over both queues.
            let slot = shared.runner.slot(&cfg.namespace).await;
            let journal = Journal::new(shared.db.clone(), key.clone());
            let hooks = TemporalHooks {
                core: core.clone(),
                task_token: task_token.clone(),
                cancel: cancel.clone(),
                journal: journal.clone(),
            };
            let attempt = Attempt {
                module: served.module.module.clone(),
                module_name: served.name.clone(),
                info,
                // The server's, from its clock: ours only enforces it.
                deadline: Deadline::Given,
                args: start.input.into_iter().map(payload_from_proto).collect(),
                // A Temporal worker serves no Wharf tenant: its operator's
                // flags are the limits (`WorkerConfig::limits`).
                quotas: None,
                grants: cfg.grants.clone(),
                hooks: Arc::new(hooks),
                stop: cancel.stop.clone(),
            };
            match shared.runner.run(attempt, slot).await {
                // The task died: no report, the server's timeout retries it.
                None => None,
                Some(attempt) => {
                    if let Some(last) = attempt.last_heartbeat.as_deref() {
                        if let Err(e) = journal.finish(last).await {
                            tracing::error!(activity_id = %key.activity_id, "cannot journal the last heartbeat: {e}");
                        }
                    }
                    tracing::info!(
                        activity_type = %key.activity_type,
                        activity_id = %key.activity_id,
                        attempt = key.attempt,
                        outcome = %attempt.outcome.kind(),
                        elapsed_ms = attempt.duration.as_millis() as u64,
                        "attempt ended"
                    );
                    if matches!(attempt.outcome, crate::engine::Outcome::WillCompleteAsync) {
                        tracing::info!(
                            activity_id = %key.activity_id,
                            task_token = %hex::encode(&task_token),
                            "will complete asynchronously: complete it by this task token"
                        );
                    }
                    report_of(
                        &attempt.outcome,
                        &attempt.log,
                        attempt.last_heartbeat.as_deref(),
                        cancel.reason(),
                    )
                }
            }
        }
    };
    if let Ok(mut running) = shared.running.lock() {
        running.remove(&task_token);
    }
    // Core forgets the task (no RPC): the report is ours to send.
    let done = ActivityTaskCompletion {
        task_token,
        result: Some(ActivityExecutionResult::will_complete_async()),
    };
    if let Err(e) = core.complete_activity_task(done).await {
        tracing::error!(activity_id = %key.activity_id, "core refused the completion: {e}");
    }
    if let Some(report) = report {
        match shared.outbox.send(&key, &report).await {
            super::outbox::Sent::Queued(_) => {
                shared.counters.queued.fetch_add(1, Ordering::Relaxed);
            }
            super::outbox::Sent::Lost(_) => {
                shared.counters.lost.fetch_add(1, Ordering::Relaxed);
            }
            super::outbox::Sent::Delivered | super::outbox::Sent::Rejected(_) => {
                shared.counters.delivered.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
