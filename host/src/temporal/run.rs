//! One worker process: connect, poll two queues, shut down gracefully.
//!
//! [`Worker::start`] connects to the server, checks the namespace, makes
//! reports a previous process left in the outbox due, and starts one core
//! worker per queue: the shared task queue and this process's own queue (so
//! that workflows can route follow-up activities here). [`Worker::run`]
//! serves until the shutdown future resolves or a poller fails for good,
//! then stops polling, lets running attempts finish within the shutdown
//! grace (core then cancels them with reason `WorkerShutdown`, reported as
//! a retryable failure), and tries once more to deliver what is queued.

use super::deliver::RpcDelivery;
use super::outbox::Outbox;
use super::poller::{self, Shared};
use super::{connect, Activities, TemporalError, WorkerConfig};
use crate::engine::Engine;
use crate::store::Db;
use crate::worker::{Runner, RunnerConfig, Threads};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use temporalio_common::worker::WorkerTaskTypes;
use temporalio_sdk_core::{
    init_worker, CoreRuntime, RuntimeOptions, Worker as CoreWorker, WorkerVersioningStrategy,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Finished journal rows are kept this long.
const JOURNAL_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// At shutdown, how long the last delivery pass of the outbox may take.
const FINAL_DELIVERY: Duration = Duration::from_secs(10);

/// What a worker did, reported when it stops.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    /// Attempts started.
    pub attempts: u64,
    /// Reports the server took (or refused).
    pub delivered: u64,
    /// Reports still in the outbox, re-sent by the next start.
    pub queued: usize,
    /// Reports neither delivered nor kept (the outbox's database refused
    /// the write); each was logged with its activity.
    pub lost: u64,
}

/// A started worker.
pub struct Worker {
    // Kept alive for the workers' lifetime: core's telemetry lives here.
    _runtime: CoreRuntime,
    cores: Vec<Arc<CoreWorker>>,
    pollers: Vec<JoinHandle<Result<(), TemporalError>>>,
    shared: Arc<Shared>,
    outbox_stop: watch::Sender<bool>,
    outbox_task: JoinHandle<()>,
}

fn core_config(
    cfg: &WorkerConfig,
    task_queue: &str,
    queue_rate: Option<f64>,
) -> Result<temporalio_sdk_core::WorkerConfig, TemporalError> {
    temporalio_sdk_core::WorkerConfig::builder()
        .namespace(cfg.namespace.clone())
        .task_queue(task_queue.to_owned())
        .client_identity_override(cfg.server.identity.clone())
        .task_types(WorkerTaskTypes::activity_only())
        .versioning_strategy(WorkerVersioningStrategy::None {
            build_id: format!("wharf-{}", env!("CARGO_PKG_VERSION")),
        })
        .max_outstanding_activities(cfg.max_concurrent)
        .maybe_max_worker_activities_per_second(cfg.max_activities_per_second)
        .maybe_max_task_queue_activities_per_second(queue_rate)
        .graceful_shutdown_period(cfg.shutdown_grace)
        .build()
        .map_err(TemporalError::Worker)
}

impl Worker {
    /// Connects and starts polling both queues.
    pub async fn start(
        config: WorkerConfig,
        engine: Engine,
        activities: Activities,
        db: Db,
    ) -> Result<Self, TemporalError> {
        let options = RuntimeOptions::builder()
            // Worker heartbeating (a server-side registry of workers) is
            // not needed for activities.
            .heartbeat_interval(None)
            .build()
            .map_err(TemporalError::Worker)?;
        let runtime = CoreRuntime::new_assume_tokio(options)
            .map_err(|e| TemporalError::Worker(format!("{e:#}")))?;
        let connection = connect(&config.server).await?;

        let outbox = Outbox::new(
            db.clone(),
            RpcDelivery::new(connection.clone(), config.server.identity.clone()),
        );
        let left = outbox.release_all().await?;
        if left > 0 {
            tracing::info!(left, "re-sending reports a previous run left in the outbox");
        }
        let cutoff = crate::now_ms().saturating_sub(JOURNAL_RETENTION.as_millis() as u64);
        let pruned = db.prune_heartbeat_journal(cutoff).await?;
        tracing::debug!(pruned, "pruned the heartbeat journal");

        let queues = [
            (
                config.task_queue.clone(),
                config.task_queue_activities_per_second,
            ),
            // The queue rate is the shared queue's; this one is ours alone.
            (config.worker_task_queue.clone(), None),
        ];
        let mut cores = Vec::new();
        for (queue, rate) in &queues {
            let core = init_worker(
                &runtime,
                core_config(&config, queue, *rate)?,
                connection.clone(),
            )
            .map_err(|e| TemporalError::Worker(format!("{e:#}")))?;
            core.validate()
                .await
                .map_err(|e| TemporalError::Worker(e.to_string()))?;
            cores.push(Arc::new(core));
        }

        let runner = Runner::new(
            engine,
            RunnerConfig {
                limits: config.limits.clone(),
                cache_bytes: crate::engine::DEFAULT_CACHE_BYTES,
                max_running: config.max_concurrent,
                threads: Threads::Guest,
            },
        );
        let shared = Arc::new(Shared {
            runner,
            activities,
            db,
            outbox: outbox.clone(),
            config,
            running: Default::default(),
            counters: Default::default(),
        });
        let pollers = cores
            .iter()
            .zip(queues)
            .map(|(core, (queue, _))| {
                tokio::spawn(poller::poll(core.clone(), shared.clone(), queue))
            })
            .collect();
        let (outbox_stop, stop_rx) = watch::channel(false);
        let outbox_task = tokio::spawn(outbox.run(stop_rx));
        Ok(Self {
            _runtime: runtime,
            cores,
            pollers,
            shared,
            outbox_stop,
            outbox_task,
        })
    }

    /// Serves until `shutdown` resolves (or polling fails for good), then
    /// shuts down gracefully. A second resolution of `force` stops running
    /// attempts at once.
    pub async fn run(
        mut self,
        shutdown: impl Future<Output = ()>,
        force: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Summary, TemporalError> {
        let mut first_error = None;
        tokio::select! {
            () = shutdown => {
                tracing::info!("shutting down: polling stopped, running attempts may finish");
            }
            (result, index) = first_to_end(&mut self.pollers) => {
                // A poller only ends on its own when core failed; the
                // handle is spent, so drop it from the list.
                self.pollers.remove(index);
                first_error = flatten(result).err();
            }
        }
        for core in &self.cores {
            core.initiate_shutdown();
        }
        let shared = self.shared.clone();
        let forced = tokio::spawn(async move {
            force.await;
            tracing::warn!("stopping running attempts now");
            shared.stop_all();
        });
        for poller in self.pollers.drain(..) {
            if let Err(e) = flatten(poller.await) {
                first_error.get_or_insert(e);
            }
        }
        forced.abort();
        for core in self.cores.drain(..) {
            match Arc::try_unwrap(core) {
                Ok(core) => core.finalize_shutdown().await,
                Err(core) => core.shutdown().await,
            }
        }
        let _ = self.outbox_stop.send(true);
        let _ = self.outbox_task.await;
        let queued =
            match tokio::time::timeout(FINAL_DELIVERY, self.shared.outbox.retry_due()).await {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    tracing::error!("outbox: {e}");
                    self.shared.db.outbox_all().map(|r| r.len()).unwrap_or(0)
                }
                Err(_) => self.shared.db.outbox_all().map(|r| r.len()).unwrap_or(0),
            };
        let c = &self.shared.counters;
        let summary = Summary {
            attempts: c.started.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            queued,
            lost: c.lost.load(Ordering::Relaxed),
        };
        match first_error {
            Some(e) => Err(e),
            None => Ok(summary),
        }
    }
}

fn flatten(r: PollerResult) -> Result<(), TemporalError> {
    match r {
        Ok(r) => r,
        Err(e) => Err(TemporalError::Poll {
            task_queue: String::new(),
            reason: format!("the poller task failed: {e}"),
        }),
    }
}

type PollerResult = Result<Result<(), TemporalError>, tokio::task::JoinError>;

/// Resolves with the result and index of the first poller to end.
async fn first_to_end(
    handles: &mut [JoinHandle<Result<(), TemporalError>>],
) -> (PollerResult, usize) {
    std::future::poll_fn(|cx| {
        for (i, h) in handles.iter_mut().enumerate() {
            if let std::task::Poll::Ready(r) = std::pin::Pin::new(h).poll(cx) {
                return std::task::Poll::Ready((r, i));
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// Starts a worker and serves until `shutdown` (see [`Worker::run`]).
pub async fn run(
    config: WorkerConfig,
    engine: Engine,
    activities: Activities,
    db: Db,
    shutdown: impl Future<Output = ()>,
    force: impl Future<Output = ()> + Send + 'static,
) -> Result<Summary, TemporalError> {
    Worker::start(config, engine, activities, db)
        .await?
        .run(shutdown, force)
        .await
}
