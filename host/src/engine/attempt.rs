//! One attempt: a fresh `Store` and instance, one call of `run`, one
//! [`Outcome`].
//!
//! Nothing survives from one attempt to the next: the store, its WASI
//! context and the instance are created here and dropped here. The wall-clock
//! deadline is enforced twice: by epoch interruption while the guest runs wasm
//! code, and by a timer while it waits in a host call (a sleep, say).

use super::cache::CacheHandle;
use super::context::{
    ActivityInfo, AttemptHooks, AttemptState, NoHooks, StopSignal, WitActivityError,
};
use super::egress::EgressRules;
use super::http::{EgressStats, OutboundHttp};
use super::limits::{AttemptLimits, Limiter};
use super::log::AttemptLog;
use super::outcome::{ApplicationError, Interrupt, Outcome};
use super::ticker::Ticking;
use super::vars::ConfigGrants;
use super::{context, ActivityModule, Engine};
use crate::payload::{self, Payload};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{ResourceTable, TypedFunc};
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi_http::WasiHttpCtx;

/// Everything needed to run one attempt.
pub struct AttemptRequest {
    /// Activity type to call `run` with.
    pub activity_type: String,
    /// Arguments, passed unchanged.
    pub args: Vec<Payload>,
    /// What the attempt sees through `context.info`.
    pub info: ActivityInfo,
    /// Limits of this attempt.
    pub limits: AttemptLimits,
    /// Heartbeat and cancellation callbacks.
    pub hooks: Arc<dyn AttemptHooks>,
    /// Stops the attempt from outside.
    pub stop: StopSignal,
    /// The module's cache on this process (`wharf:activity/cache`).
    pub cache: Option<CacheHandle>,
    /// What the attempt may reach beyond the sandbox (default: nothing).
    pub grants: Grants,
    /// Set when the caller runs the attempt on another thread and calls
    /// [`Engine::outlived`] with it if the attempt has not ended
    /// [`Engine::tick`] after it was handed over. Until then the attempt
    /// does not wake the epoch ticker itself, which an attempt shorter than
    /// a tick never needs (see `ticker.rs`).
    pub watch: Option<Watch>,
}

/// Shared by an attempt and the thread that watches it: whether the
/// watcher found it still running a tick after handing it over.
#[derive(Clone, Debug, Default)]
pub struct Watch(Arc<AtomicBool>);

impl Watch {
    fn outlived(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    pub(super) fn set_outlived(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Capabilities an attempt is granted beyond the sandbox's defaults; the
/// default grants nothing: every outbound request is denied and no
/// configuration is readable.
#[derive(Clone, Debug, Default)]
pub struct Grants {
    /// Outbound HTTP policy.
    pub egress: Arc<EgressRules>,
    /// Configuration variables readable through `config`.
    pub config: ConfigGrants,
}

/// What happened in one attempt.
#[derive(Debug, Serialize)]
pub struct AttemptReport {
    /// How it ended.
    pub outcome: Outcome,
    /// Captured stdout, stderr and log lines (bounded).
    pub log: String,
    /// Details of the last heartbeat, if the attempt sent any.
    pub last_heartbeat: Option<Vec<Payload>>,
    /// Number of heartbeats sent.
    pub heartbeats: u64,
    /// Wall-clock time from store creation to outcome.
    #[serde(with = "duration_us")]
    pub duration: Duration,
    /// Of that, the time until the instance was ready (from store creation:
    /// instantiation, start functions included); all of it if instantiation
    /// never finished.
    #[serde(with = "duration_us")]
    pub instantiate: Duration,
    /// CPU time of the threads while they ran the attempt (their CPU clock
    /// around each poll), measured by whoever polls it (the worker layer);
    /// zero where nobody did.
    #[serde(with = "duration_us")]
    pub cpu_time: Duration,
    /// Fuel consumed.
    pub fuel_used: u64,
    /// Peak bytes of memories and tables.
    pub memory_peak: usize,
    /// Outbound HTTP requests the guest made (refused ones included).
    pub egress_requests: u64,
    /// Of those, requests the egress policy refused.
    pub egress_denied: u64,
}

impl AttemptReport {
    /// The report of an attempt that never ran a guest instruction: nothing
    /// logged but `log`, no time, fuel or memory used.
    pub fn without_run(outcome: Outcome, log: impl Into<String>) -> Self {
        Self {
            outcome,
            log: log.into(),
            last_heartbeat: None,
            heartbeats: 0,
            duration: Duration::ZERO,
            instantiate: Duration::ZERO,
            cpu_time: Duration::ZERO,
            fuel_used: 0,
            memory_peak: 0,
            egress_requests: 0,
            egress_denied: 0,
        }
    }
}

mod duration_us {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_micros() as u64)
    }
}

/// One attempt's store with what is needed to judge how it ended.
struct Sandbox<'e> {
    /// The engine shard the store belongs to: the calling thread's.
    shard: usize,
    store: Store<AttemptState>,
    log: AttemptLog,
    deadline: Option<Instant>,
    fuel: u64,
    stop: StopSignal,
    started: Instant,
    egress: Arc<EgressStats>,
    /// Keeps the epoch advancing while this sandbox's guest may run.
    _ticking: Ticking<'e>,
}

/// What a sandbox's guest is given besides its limits.
struct Given {
    hooks: Arc<dyn AttemptHooks>,
    stop: StopSignal,
    cache: Option<CacheHandle>,
    grants: Grants,
    /// See [`AttemptRequest::watch`].
    watch: Option<Watch>,
}

impl Engine {
    fn sandbox(&self, info: ActivityInfo, limits: &AttemptLimits, given: Given) -> Sandbox<'_> {
        let Given {
            hooks,
            stop,
            cache,
            grants,
            watch,
        } = given;
        let started = Instant::now();
        let shard = super::shard::home(self.shards());
        let log = AttemptLog::new(limits.log_bytes);
        // A deadline past what the clock holds is no deadline.
        let deadline = limits.timeout.and_then(|t| started.checked_add(t));
        let wasi = WasiCtxBuilder::new()
            .stdout(log.clone())
            .stderr(log.clone())
            .build();
        let egress = Arc::new(EgressStats::default());
        let state = AttemptState {
            wasi,
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            http_hooks: OutboundHttp {
                log: log.clone(),
                rules: grants.egress,
                stats: egress.clone(),
            },
            config: grants.config,
            limiter: Limiter::new(limits.memory_bytes),
            log: log.clone(),
            info,
            hooks,
            heartbeat_limit: limits.heartbeat_bytes,
            last_heartbeat: None,
            heartbeats: 0,
            cache,
        };
        let mut store = Store::new(&self.shard(shard).engine, state);
        store.limiter(|s| &mut s.limiter);
        let fuel = limits.fuel.unwrap_or(u64::MAX);
        // Cannot fail: fuel is enabled in every engine configuration.
        let _ = store.set_fuel(fuel);
        store.set_epoch_deadline(1);
        let epoch_stop = stop.clone();
        store.epoch_deadline_callback(move |_| {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Interrupt::Deadline.into());
            }
            if epoch_stop.is_triggered() {
                return Err(Interrupt::Cancelled.into());
            }
            Ok(UpdateDeadline::Yield(1))
        });
        Sandbox {
            shard,
            store,
            log,
            deadline,
            fuel,
            stop,
            started,
            egress,
            // Counted before the watch is read, and `outlived` sets it
            // before it looks for a parked ticker: if this sandbox does not
            // wake the ticker, the watcher's kick sees it counted.
            _ticking: self
                .inner
                .ticker
                .enter(shard, || watch.is_none_or(|w| w.outlived())),
        }
    }

    /// Runs one attempt in a fresh instance of `module`. Never panics on guest
    /// behaviour; every ending is an [`Outcome`].
    pub async fn run_attempt(&self, module: &ActivityModule, req: AttemptRequest) -> AttemptReport {
        req.hooks.began();
        let limits = req.limits;
        let given = Given {
            hooks: req.hooks,
            stop: req.stop,
            cache: req.cache,
            grants: req.grants,
            watch: req.watch,
        };
        let mut sb = self.sandbox(req.info, &limits, given);
        let args: Vec<_> = req.args.into_iter().map(context::to_wit).collect();
        let (deadline, stop, home) = (sb.deadline, sb.stop.clone(), sb.shard);
        let store = &mut sb.store;
        let started = sb.started;
        let instantiated = std::sync::OnceLock::new();
        let linked = module.on(home);
        let result = guarded(deadline, &stop, async {
            let instance = linked
                .pre
                .instance_pre()
                .instantiate_async(&mut *store)
                .await?;
            let _ = instantiated.set(started.elapsed());
            let run = instance
                .get_func(&mut *store, linked.run)
                .ok_or_else(|| wasmtime::format_err!("the instance has no `run`"))?;
            let run = if linked.run_checked.load(Ordering::Acquire) {
                // SAFETY: `run` of another instance of this same component
                // on this shard passed the check below; an instance's types
                // are its component's.
                unsafe { TypedFunc::<RunParams<'_>, RunResults>::new_unchecked(run) }
            } else {
                let typed = run.typed::<RunParams<'_>, RunResults>(&*store)?;
                linked.run_checked.store(true, Ordering::Release);
                typed
            };
            let (ret,) = run
                .call_async(&mut *store, (req.activity_type.as_str(), args.as_slice()))
                .await?;
            Ok(ret)
        })
        .await;
        let outcome = match result {
            Ok(ret) => returned(ret, &limits),
            Err(err) => stopped(err, &limits, &sb.log),
        };
        let fuel_used = sb
            .fuel
            .saturating_sub(sb.store.get_fuel().unwrap_or(sb.fuel));
        let state = sb.store.into_data();
        let (last_heartbeat, heartbeats, memory_peak) =
            (state.last_heartbeat, state.heartbeats, state.limiter.peak);
        // Response bodies the guest left unread are in the resource table;
        // dropping it writes their log lines before the log is read.
        drop(state.table);
        let duration = sb.started.elapsed();
        AttemptReport {
            outcome,
            log: sb.log.contents(),
            last_heartbeat,
            heartbeats,
            duration,
            instantiate: instantiated.get().copied().unwrap_or(duration),
            cpu_time: Duration::ZERO,
            fuel_used,
            memory_peak,
            egress_requests: sb.egress.requests.load(Ordering::Relaxed),
            egress_denied: sb.egress.denied.load(Ordering::Relaxed),
        }
    }

    /// Calls `activity-types()` in a fresh instance under `limits`.
    pub async fn list_activity_types(
        &self,
        module: &ActivityModule,
        limits: &AttemptLimits,
    ) -> Result<Vec<String>, Outcome> {
        let given = Given {
            hooks: Arc::new(NoHooks),
            stop: StopSignal::new(),
            cache: None,
            grants: Grants::default(),
            watch: None,
        };
        let mut sb = self.sandbox(ActivityInfo::default(), limits, given);
        let (deadline, stop, home) = (sb.deadline, sb.stop.clone(), sb.shard);
        let store = &mut sb.store;
        guarded(deadline, &stop, async {
            let instance = module.on(home).pre.instantiate_async(&mut *store).await?;
            instance
                .wharf_activity_activities()
                .call_activity_types(&mut *store)
                .await
        })
        .await
        .map_err(|err| stopped(err, limits, &sb.log))
    }
}

/// What `run` takes: the activity type and the arguments.
type RunParams<'a> = (&'a str, &'a [context::wharf::activity::types::Payload]);
/// What `run` returns.
type RunResults = (Result<context::wharf::activity::types::Payload, WitActivityError>,);

/// Races a guest call against the deadline and the stop signal. Epoch
/// interruption only stops a guest that runs wasm code; one that waits in a
/// host call (a sleep, say) is stopped here.
async fn guarded<T>(
    deadline: Option<Instant>,
    stop: &StopSignal,
    call: impl std::future::Future<Output = wasmtime::Result<T>>,
) -> wasmtime::Result<T> {
    let timer = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d.into()).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = call => r,
        _ = timer => Err(Interrupt::Deadline.into()),
        _ = stop.triggered() => Err(Interrupt::Cancelled.into()),
    }
}

/// Maps what `run` returned.
fn returned(
    ret: Result<context::wharf::activity::types::Payload, WitActivityError>,
    limits: &AttemptLimits,
) -> Outcome {
    match ret {
        Ok(result) => {
            let result = context::from_wit(result);
            let size = result.size();
            if size > limits.result_bytes {
                return Outcome::OutputTooLarge {
                    what: "result".into(),
                    size,
                    limit: limits.result_bytes,
                };
            }
            Outcome::Completed { result }
        }
        Err(WitActivityError::Failed(e)) => {
            let details: Vec<Payload> = e.details.into_iter().map(context::from_wit).collect();
            let size = payload::total_size(&details) + e.message.len();
            if size > limits.result_bytes {
                return Outcome::OutputTooLarge {
                    what: "failure".into(),
                    size,
                    limit: limits.result_bytes,
                };
            }
            Outcome::Failed {
                error: ApplicationError {
                    message: e.message,
                    error_type: e.error_type,
                    non_retryable: e.non_retryable,
                    details,
                    next_retry_delay_ms: e.next_retry_delay_ms,
                },
            }
        }
        Err(WitActivityError::Cancelled) => Outcome::Cancelled,
        Err(WitActivityError::WillCompleteAsync) => Outcome::WillCompleteAsync,
    }
}

/// Maps an error out of instantiation or the call: our own interrupts, fuel,
/// and every other trap.
/// Failure type of an attempt that found no room in the instance pool.
pub const POOL_EXHAUSTED: &str = "HostPoolExhausted";

fn stopped(err: wasmtime::Error, limits: &AttemptLimits, log: &AttemptLog) -> Outcome {
    if let Some(interrupt) = err.downcast_ref::<Interrupt>() {
        return interrupt.clone().into_outcome();
    }
    if let Some(Trap::OutOfFuel) = err.downcast_ref::<Trap>() {
        return Outcome::FuelExhausted {
            limit: limits.fuel.unwrap_or(u64::MAX),
        };
    }
    // The host is full, not the guest at fault: retried like any failure.
    if let Some(full) = err.downcast_ref::<wasmtime::PoolConcurrencyLimitError>() {
        log.line(&format!("[wharf] no room in the instance pool: {full}"));
        return Outcome::Failed {
            error: ApplicationError {
                message: format!("the host's instance pool is full ({full}); retry later"),
                error_type: POOL_EXHAUSTED.into(),
                non_retryable: false,
                details: Vec::new(),
                next_retry_delay_ms: Some(1_000),
            },
        };
    }
    log.line(&format!("[wharf] trap: {err:?}"));
    let message = match err.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{err:#}"),
    };
    Outcome::Trapped { message }
}
