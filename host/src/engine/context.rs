//! The host side of `wharf:activity/context`: what a guest may ask of the
//! host during an attempt, and the per-attempt state behind it.
//!
//! The engine knows nothing of storage or activity semantics: heartbeats and
//! cancellation go through [`AttemptHooks`], which the caller (the service,
//! the Temporal bridge, `wharf run`) implements.

use super::http::OutboundHttp;
use super::limits::Limiter;
use super::log::AttemptLog;
use super::outcome::Interrupt;
use super::vars::ConfigGrants;
use crate::payload::{self, Payload};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "activity",
    imports: { default: trappable },
    exports: { default: async },
});

pub(crate) use exports::wharf::activity::activities::ActivityError as WitActivityError;
use wharf::activity::context::{Host, Level};
use wharf::activity::types::{ActivityInfo as WitInfo, Payload as WitPayload};

/// What an attempt knows about itself (the WIT `activity-info`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityInfo {
    /// Namespace of the activity.
    pub namespace: String,
    /// Task queue it was scheduled on.
    pub task_queue: String,
    /// Activity id, unique per namespace.
    pub activity_id: String,
    /// Activity type, the name `run` is called with.
    pub activity_type: String,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// Token that completes this attempt from outside.
    pub task_token: Vec<u8>,
    /// First scheduled, ms since the Unix epoch.
    pub scheduled_ms: u64,
    /// This attempt started, ms since the Unix epoch.
    pub started_ms: u64,
    /// This attempt is stopped at, ms since the Unix epoch.
    pub deadline_ms: Option<u64>,
    /// Heartbeat timeout in ms.
    pub heartbeat_timeout_ms: Option<u64>,
    /// Last heartbeat details of an earlier attempt.
    pub heartbeat_details: Vec<Payload>,
    /// Scheduling workflow, if any.
    pub workflow_id: Option<String>,
    /// Its type, if any.
    pub workflow_type: Option<String>,
    /// Queue served only by this process.
    pub worker_task_queue: String,
}

/// How an attempt talks to whoever runs it. Called from inside the guest's
/// call, so implementations must not block.
pub trait AttemptHooks: Send + Sync {
    /// A heartbeat with its (size-checked) details. Returns true once
    /// cancellation of the activity was requested.
    fn heartbeat(&self, details: &[Payload]) -> bool;
    /// True once cancellation of the activity was requested.
    fn is_cancelled(&self) -> bool;
    /// The attempt begins to run: a thread of the guest's takes it up
    /// (until then it may wait for one).
    fn began(&self) {}
}

/// Hooks for an attempt nobody can cancel and whose heartbeats go nowhere
/// but the report.
pub struct NoHooks;

impl AttemptHooks for NoHooks {
    fn heartbeat(&self, _details: &[Payload]) -> bool {
        false
    }
    fn is_cancelled(&self) -> bool {
        false
    }
}

/// Tells a running attempt to stop now (cancellation ignored past its grace
/// period, host shutdown). Cheap to clone; triggering is idempotent. A
/// [`CancellationToken`] under the attempt's own names, so that the engine
/// says what it means ("stop the attempt") where callers hold one.
#[derive(Clone, Default)]
pub struct StopSignal {
    token: CancellationToken,
}

impl StopSignal {
    /// A signal not yet triggered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stops the attempt: its outcome becomes `Cancelled`.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Whether [`trigger`](Self::trigger) was called.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once triggered.
    pub async fn triggered(&self) {
        self.token.cancelled().await;
    }
}

/// Everything one attempt's `Store` holds. Built fresh for every attempt.
pub(crate) struct AttemptState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) http: WasiHttpCtx,
    pub(crate) http_hooks: OutboundHttp,
    pub(crate) config: ConfigGrants,
    pub(crate) limiter: Limiter,
    pub(crate) log: AttemptLog,
    pub(crate) info: ActivityInfo,
    pub(crate) hooks: Arc<dyn AttemptHooks>,
    pub(crate) heartbeat_limit: usize,
    pub(crate) last_heartbeat: Option<Vec<Payload>>,
    pub(crate) heartbeats: u64,
    pub(crate) cache: Option<super::cache::CacheHandle>,
}

impl WasiView for AttemptState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for AttemptState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

impl wharf::activity::types::Host for AttemptState {}

impl Host for AttemptState {
    fn info(&mut self) -> wasmtime::Result<WitInfo> {
        let i = &self.info;
        Ok(WitInfo {
            namespace: i.namespace.clone(),
            task_queue: i.task_queue.clone(),
            activity_id: i.activity_id.clone(),
            activity_type: i.activity_type.clone(),
            attempt: i.attempt,
            task_token: i.task_token.clone(),
            scheduled_ms: i.scheduled_ms,
            started_ms: i.started_ms,
            deadline_ms: i.deadline_ms,
            heartbeat_timeout_ms: i.heartbeat_timeout_ms,
            heartbeat_details: i.heartbeat_details.iter().cloned().map(to_wit).collect(),
            workflow_id: i.workflow_id.clone(),
            workflow_type: i.workflow_type.clone(),
            worker_task_queue: i.worker_task_queue.clone(),
        })
    }

    fn heartbeat(&mut self, details: Vec<WitPayload>) -> wasmtime::Result<bool> {
        let details: Vec<Payload> = details.into_iter().map(from_wit).collect();
        let size = payload::total_size(&details);
        if size > self.heartbeat_limit {
            return Err(Interrupt::OutputTooLarge {
                what: "heartbeat details",
                size,
                limit: self.heartbeat_limit,
            }
            .into());
        }
        self.heartbeats += 1;
        let cancelled = self.hooks.heartbeat(&details);
        self.last_heartbeat = Some(details);
        Ok(cancelled)
    }

    fn is_cancelled(&mut self) -> wasmtime::Result<bool> {
        Ok(self.hooks.is_cancelled())
    }

    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            Level::Trace => "TRACE",
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        };
        self.log.line(&format!("[{level}] {message}"));
        Ok(())
    }
}

pub(crate) fn to_wit(p: Payload) -> WitPayload {
    WitPayload {
        metadata: p.metadata,
        data: p.data,
    }
}

pub(crate) fn from_wit(p: WitPayload) -> Payload {
    Payload {
        metadata: p.metadata,
        data: p.data,
    }
}
