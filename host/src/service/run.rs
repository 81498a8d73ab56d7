//! Running an attempt: a worker slot took a task; claim it, describe the
//! attempt to the worker layer with heartbeats wired to the activity, and
//! hand the report on. The attempt's deadline, its limits under the
//! namespace's quotas and its cache are the worker layer's to decide
//! ([`crate::worker::attempt`]).

use super::activity::{payloads_from, payloads_json, Running};
use super::bounds;
use super::decide::Ending;
use super::timers::TimerEvent;
use super::{ServiceConfig, Shared};
use crate::engine::{ActivityInfo, AttemptHooks, AttemptLimits, Engine, Outcome, StopSignal};
use crate::metrics::ActivityFigures;
use crate::payload::Payload;
use crate::queue::{Deployment, Slot, Task};
use crate::registry::LoadedModule;
use crate::store::activities::{self as rows, RunState};
use crate::worker::{Attempt, Deadline, Failure, Runner, RunnerConfig, Threads};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Wires a running attempt's heartbeats and cancellation to its activity.
struct Hooks {
    shared: Weak<Shared>,
    run_id: i64,
    attempt: u32,
    cancel: Arc<AtomicBool>,
    began: Arc<AtomicBool>,
}

impl AttemptHooks for Hooks {
    fn heartbeat(&self, details: &[Payload]) -> bool {
        if let Some(s) = self.shared.upgrade() {
            s.record_heartbeat(self.run_id, self.attempt, details.to_vec());
        }
        self.cancel.load(Ordering::Relaxed)
    }

    fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    fn began(&self) {
        self.began.store(true, Ordering::Relaxed);
    }
}

/// The arguments encoded in a run's input; a stored input that is no
/// longer a list of payloads fails the run.
fn input_args(input: &str) -> Result<Vec<Payload>, Failure> {
    serde_json::from_str::<Vec<Payload>>(input).map_err(|_| Failure {
        error_type: super::STORED_STATE_INVALID.into(),
        message: "the stored input of this activity is not a list of payloads".into(),
        non_retryable: true,
        ..Failure::default()
    })
}

/// A task token: random bytes for the guest, their hex form for the API.
fn new_token() -> (Vec<u8>, String) {
    let mut b = [0u8; 24];
    crate::random::fill(&mut b);
    (b.to_vec(), hex::encode(b))
}

impl Shared {
    pub(super) async fn run_task(
        self: Arc<Self>,
        task: Task,
        deployment: Arc<Deployment>,
        slot: Slot,
    ) {
        let found = {
            let mut st = self.lock();
            let st = &mut *st;
            st.open.get_mut(&task.run_id).and_then(|a| {
                let f = a.fixed.clone();
                // Only a first attempt: a later one may have heartbeat details.
                let held = if a.progress.attempt == 1 {
                    a.input.take()
                } else {
                    None
                };
                st.namespaces
                    .get(&f.namespace)
                    .cloned()
                    .map(|t| (t, f, held))
            })
        };
        let Some((tenant, fixed, held)) = found else {
            return;
        };
        // This process's own queue runs whichever deployed module has the type.
        let deployment = if fixed.task_queue == self.cfg.worker_task_queue {
            self.route(&fixed.namespace, &fixed.activity_type, task.run_id)
                .unwrap_or(deployment)
        } else {
            deployment
        };
        let (version, module) = deployment.version_for(task.run_id);
        let module_label = format!("{}@{version}", deployment.name);
        // A namespace at its concurrency quota waits here (its task stays
        // scheduled, schedule-to-start keeps counting); others run.
        let Ok(tenant_slot) = tenant.slots.clone().acquire_owned().await else {
            return;
        };
        // Then a host slot: when the host is full, namespaces take turns.
        let host_slot = self.worker.slot(&fixed.namespace).await;
        // Read only now: a task waiting in the backlog holds no payload
        // beyond a small input held for it.
        let payloads = match held {
            Some(input) => input_args(input.text()).map(|args| (args, Vec::new())),
            None => self.stored_payloads(task.run_id).await,
        };
        let Some((mut attempt, figures)) =
            self.claim(&task, &deployment.name, module, &module_label)
        else {
            return;
        };
        attempt.quotas = Some(tenant.quotas().per_attempt());
        attempt.grants = tenant.grants(&deployment.name, &module.sha256);
        let refused = if !module.activity_types.contains(&attempt.info.activity_type) {
            Some(Failure {
                error_type: "UnknownActivityType".into(),
                message: format!(
                    "module {module_label} deployed to this queue does not export activity type {:?}; it exports: {}",
                    attempt.info.activity_type,
                    module.activity_types.join(", ")
                ),
                non_retryable: true,
                ..Failure::default()
            })
        } else {
            match payloads {
                Ok((args, details)) => {
                    attempt.args = args;
                    attempt.info.heartbeat_details = details;
                    None
                }
                Err(f) => Some(f),
            }
        };
        let ending = if let Some(failure) = refused {
            slot.finish(false);
            Ending::Failed(failure)
        } else {
            self.counters.attempts.fetch_add(1, Ordering::Relaxed);
            let ran_from = std::time::Instant::now();
            // Boxed, as the ending's write below, and in a statement of its
            // own: this task's future holds what it awaits, and tokio copies
            // the whole future when it is spawned. (A temporary in a match's
            // scrutinee keeps its place in the future until the match ends,
            // even once moved into its box.)
            let running = Box::pin(self.worker.run(attempt, host_slot));
            match running.await {
                Some(report) => {
                    let completed = matches!(report.outcome, Outcome::Completed { .. });
                    let failed =
                        !completed && !matches!(report.outcome, Outcome::WillCompleteAsync);
                    let ran = crate::metrics::seconds(ran_from.elapsed());
                    self.counters.activity.attempt_ran(&figures, ran, failed);
                    slot.finish(completed);
                    tenant.account(&report);
                    Ending::Report(Box::new(report), module_label)
                }
                // The attempt's task died (a host bug, or shutdown): as a
                // lost worker in Temporal, the attempt counts and is retried.
                None => {
                    drop(slot);
                    Ending::WorkerLost
                }
            }
        };
        // A failed write is logged, and the attempt ended again later.
        let ending = Box::pin(self.end_attempt(task.run_id, task.attempt, ending, tenant_slot));
        let _ = ending.await;
    }

    /// The input and latest heartbeat details of a run, read from SQLite
    /// for the attempt starting now; or why the attempt cannot start (an
    /// input that is no longer a list of payloads fails the run).
    async fn stored_payloads(&self, run_id: i64) -> Result<(Vec<Payload>, Vec<Payload>), Failure> {
        let db = self.db.clone();
        let read = tokio::task::spawn_blocking(move || db.run_payloads(run_id)).await;
        let unavailable = |why: String| Failure {
            error_type: "WharfStoreUnavailable".into(),
            message: format!("the activity's input could not be read: {why}"),
            ..Failure::default()
        };
        let stored = match read {
            Ok(Ok(Some(p))) => p,
            Ok(Ok(None)) => return Err(unavailable("the activity is gone".into())),
            Ok(Err(e)) => return Err(unavailable(e.to_string())),
            Err(e) => return Err(unavailable(e.to_string())),
        };
        let args = input_args(&stored.input)?;
        Ok((args, payloads_from(stored.heartbeat_details.as_deref())))
    }

    /// Moves a scheduled run to started for `task`'s attempt and describes
    /// the attempt (without quotas and grants, which are the namespace's);
    /// `None` when the task is stale (the run moved on).
    fn claim(
        self: &Arc<Self>,
        task: &Task,
        module_name: &str,
        module: &LoadedModule,
        module_label: &str,
    ) -> Option<(Attempt, Arc<ActivityFigures>)> {
        let mut st = self.lock();
        let a = st.open.get_mut(&task.run_id)?;
        if a.is_closed()
            || a.progress.state != RunState::Scheduled
            || a.progress.attempt != task.attempt
        {
            return None;
        }
        let now = self.clock.read();
        let now_ms = now.ms;
        let waited = crate::metrics::seconds(task.enqueued.elapsed());
        let figures = a.figures(&self.counters.activity);
        self.counters.activity.task_taken(&figures, waited);
        let (token_bytes, token) = new_token();
        let cancel = Arc::new(AtomicBool::new(a.progress.cancel_requested));
        let began = Arc::new(AtomicBool::new(false));
        let stop = StopSignal::new();
        a.progress.state = RunState::Started {
            task_token: Some(token.clone()),
        };
        a.progress.started_ms = Some(now_ms);
        a.last_alive = now.at;
        a.attempt_begins();
        a.running = Some(Running {
            stop: stop.clone(),
            reason: None,
            cancel: cancel.clone(),
            began: began.clone(),
            module: module_label.to_owned(),
        });

        let info = ActivityInfo {
            namespace: a.fixed.namespace.clone(),
            task_queue: a.fixed.task_queue.clone(),
            activity_id: a.fixed.activity_id.clone(),
            activity_type: a.fixed.activity_type.clone(),
            attempt: task.attempt,
            task_token: token_bytes,
            scheduled_ms: a.fixed.scheduled_ms,
            started_ms: now_ms,
            // Set by the worker layer from `deadline` below.
            deadline_ms: None,
            heartbeat_timeout_ms: a.options.heartbeat_timeout.map(bounds::millis),
            // Set by the caller from SQLite, as the arguments are.
            heartbeat_details: Vec::new(),
            workflow_id: None,
            workflow_type: None,
            worker_task_queue: self.cfg.worker_task_queue.clone(),
        };
        let attempt = Attempt {
            module: module.module.clone(),
            module_name: module_name.to_owned(),
            info,
            deadline: Deadline::Timeouts {
                start_to_close: Some(a.options.attempt_timeout()),
                schedule_to_close: a.options.schedule_to_close_timeout,
            },
            args: Vec::new(),
            quotas: None,
            grants: Default::default(),
            hooks: Arc::new(Hooks {
                shared: Arc::downgrade(self),
                run_id: task.run_id,
                attempt: task.attempt,
                cancel,
                began,
            }),
            stop,
        };
        let hb_timeout = a.options.heartbeat_timeout;
        st.tokens.insert(token, task.run_id);
        self.defer_started(&mut st.unwritten_starts, task.run_id, task.attempt);
        drop(st);
        if let Some(d) = hb_timeout {
            self.timers.set(
                bounds::later(now.at, d),
                TimerEvent::Heartbeat {
                    run_id: task.run_id,
                    attempt: task.attempt,
                },
            );
        }
        // The row says started only if the attempt outlives the next flush
        // (`started.rs`); its attempt row is written when it ends (by
        // recovery if the process dies); describe shows the running attempt
        // from memory.
        Some((attempt, figures))
    }

    /// A heartbeat from a running attempt (or by token): kept in memory at
    /// once, written at most once per throttle interval; the final details
    /// are always written when the attempt ends.
    pub(super) fn record_heartbeat(&self, run_id: i64, attempt: u32, details: Vec<Payload>) {
        let mut st = self.lock();
        let Some(a) = st.open.get_mut(&run_id) else {
            return;
        };
        if a.progress.attempt != attempt || !a.progress.state.is_started() {
            return;
        }
        let now = self.clock.now();
        a.last_alive = now;
        a.heartbeat = details;
        let interval = a
            .options
            .heartbeat_timeout
            .map_or(Duration::from_secs(1), |t| {
                (t / 5).saturating_mul(4).min(Duration::from_secs(1))
            });
        if a.heartbeat_written
            .is_some_and(|w| now.duration_since(w) < interval)
        {
            return;
        }
        a.heartbeat_written = Some(now);
        let json = payloads_json(&a.heartbeat);
        let at = self.clock.now_ms();
        a.progress.heartbeat_ms = Some(at);
        st.heartbeat_stored(run_id, json.len() as u64);
        drop(st);
        self.db
            .write_detached(move |c| rows::save_heartbeat(c, run_id, &json, at));
    }
}

impl ServiceConfig {
    /// The worker layer of a service with these settings: attempts on the
    /// guest threads, payloads up to the payload limit.
    pub(super) fn runner(&self, engine: Engine) -> Runner {
        Runner::new(
            engine,
            RunnerConfig {
                limits: AttemptLimits {
                    result_bytes: self.payload_limit,
                    heartbeat_bytes: self.payload_limit,
                    ..self.attempt_limits.clone()
                },
                cache_bytes: self.cache_bytes,
                max_running: self.max_running,
                threads: Threads::Guest,
            },
        )
    }
}
