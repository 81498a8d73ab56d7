//! An open activity as the service holds it in memory, and the views of an
//! activity that the API returns.
//!
//! Where a run is in its life is a [`RunState`](crate::store::activities::RunState)
//! in its progress; the decisions that move it are in [`super::decide`].
//!
//! An open activity in memory holds no payload: its input, heartbeat
//! details and last failure are in SQLite, read when an attempt starts or
//! the API shows the activity, so that a parked activity costs the same few
//! hundred bytes whatever it carries. Only an attempt running here keeps the
//! heartbeat details it reported, until it ends; and a small input may be
//! held from the start to the first attempt, within a process-wide budget
//! ([`super::held`]).

use super::options::ActivityOptions;
use crate::engine::StopSignal;
use crate::metrics::{ActivityFigures, ActivityMetrics};
use crate::payload::Payload;
use crate::store::activities::{ActivityFixed, ActivityProgress, AttemptRow, StoredRun};
use crate::worker::{Failure, TimeoutType};
use serde::Serialize;
use serde_json::Value;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Why the host stopped a running attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// Cancellation requested and not honoured within the grace period.
    Cancelled,
    /// A timeout.
    Timeout(TimeoutType),
    /// The host is shutting down.
    Shutdown,
}

/// An attempt running in this process.
pub(crate) struct Running {
    pub(crate) stop: StopSignal,
    pub(crate) reason: Option<StopReason>,
    pub(crate) cancel: Arc<AtomicBool>,
    /// A guest thread has taken it up (it may wait for one after its claim).
    pub(crate) began: Arc<AtomicBool>,
    /// `name@version` of the module it runs.
    pub(crate) module: String,
}

/// An open activity run.
pub(crate) struct Activity {
    pub(crate) fixed: Arc<ActivityFixed>,
    pub(crate) options: Arc<ActivityOptions>,
    /// Its payload fields are always `None` (see the module doc).
    pub(crate) progress: ActivityProgress,
    /// Heartbeat details reported by the attempt in progress and not yet
    /// part of a transition; empty otherwise.
    pub(crate) heartbeat: Vec<Payload>,
    /// Bytes its payloads take in SQLite (input and heartbeat details),
    /// counted in its namespace's stored bytes.
    pub(crate) stored: Stored,
    /// Its input, held in memory for the first attempt (see
    /// [`super::held`]); `None` once taken, or when it was not held.
    pub(crate) input: Option<super::held::HeldInput>,
    /// Last sign of life of the current attempt (start or heartbeat).
    pub(crate) last_alive: Instant,
    /// When heartbeat details were last written between transitions.
    pub(crate) heartbeat_written: Option<Instant>,
    pub(crate) running: Option<Running>,
    /// Wakes those waiting for it to close; made at the first wait (most
    /// runs have none).
    pub(crate) closed: Option<Arc<Notify>>,
    /// Where its figures are recorded; resolved at its first claim.
    pub(crate) figures: Option<Arc<ActivityFigures>>,
    /// The write of its row, if this process started it (the write may be
    /// pending: see `row_write.rs`).
    pub(crate) row: Option<Arc<super::row_write::RowWrite>>,
    /// The write of its row awaits the end of its running attempt, which
    /// began before that write settled.
    pub(crate) end_awaited: bool,
    /// Transitions applied here whose writes have not ended, and its
    /// progress from before the first of them: what describe shows until
    /// they are written (nothing is shown before it is durable).
    pub(crate) unwritten: Option<Unwritten>,
}

/// See [`Activity::unwritten`].
pub(crate) struct Unwritten {
    writes: u32,
    shown: ActivityProgress,
}

/// Bytes of an open run's payloads in SQLite.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Stored {
    /// Its input.
    pub(crate) input: u64,
    /// Its latest heartbeat details.
    pub(crate) heartbeat: u64,
}

impl Stored {
    pub(crate) fn total(self) -> u64 {
        self.input.saturating_add(self.heartbeat)
    }
}

impl Activity {
    /// An open run as memory keeps it: no payloads, no attempt running here.
    pub(crate) fn new(
        fixed: Arc<ActivityFixed>,
        options: Arc<ActivityOptions>,
        progress: ActivityProgress,
        stored: Stored,
        now: Instant,
    ) -> Self {
        Self {
            fixed,
            options,
            progress: lean(progress),
            heartbeat: Vec::new(),
            stored,
            input: None,
            last_alive: now,
            heartbeat_written: None,
            running: None,
            closed: None,
            figures: None,
            row: None,
            end_awaited: false,
            unwritten: None,
        }
    }

    /// Notes that a transition from `before` is applied and its write
    /// queued.
    pub(crate) fn transition_applied(&mut self, before: &ActivityProgress) {
        match &mut self.unwritten {
            Some(u) => u.writes = u.writes.saturating_add(1),
            None => {
                self.unwritten = Some(Unwritten {
                    writes: 1,
                    shown: before.clone(),
                })
            }
        }
    }

    /// Notes that the write of a transition ended (committed, or failed and
    /// undone): once none is left, it is shown as it is.
    pub(crate) fn transition_written(&mut self) {
        if let Some(u) = &mut self.unwritten {
            u.writes = u.writes.saturating_sub(1);
            if u.writes == 0 {
                self.unwritten = None;
            }
        }
    }

    /// Its progress as last written (or, for the attempt running, started
    /// in memory), with the details its attempt in progress reported.
    pub(crate) fn shown(&self) -> ActivityProgress {
        match &self.unwritten {
            Some(u) => u.shown.clone(),
            None => self.snapshot(),
        }
    }

    /// Notes that its attempt begins now: if the write of its row is still
    /// pending, that write awaits the attempt's end.
    pub(crate) fn attempt_begins(&mut self) {
        if let Some(row) = self.row.as_ref().filter(|r| r.settled().is_none()) {
            if !self.end_awaited {
                row.ends.begin();
                self.end_awaited = true;
            }
        }
    }

    /// For the write of its attempt's end: what to tell, once that end is
    /// in the transaction, that the write of its row awaits no more.
    pub(crate) fn attempt_ends(&mut self) -> Option<crate::store::Awaited> {
        if !std::mem::take(&mut self.end_awaited) {
            return None;
        }
        self.row.as_ref().map(|r| r.ends.clone())
    }

    /// Where its figures are recorded (resolved once, then kept).
    pub(crate) fn figures(&mut self, m: &ActivityMetrics) -> Arc<ActivityFigures> {
        let f = &self.fixed;
        self.figures
            .get_or_insert_with(|| m.figures(&f.namespace, &f.task_queue, &f.activity_type))
            .clone()
    }

    /// What to wait on for it to close.
    pub(crate) fn closed_notify(&mut self) -> Arc<Notify> {
        self.closed
            .get_or_insert_with(|| Arc::new(Notify::new()))
            .clone()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.progress.state.is_closed()
    }

    /// The progress to store: with the heartbeat details the attempt in
    /// progress reported, if any (a `None` keeps the stored ones).
    pub(crate) fn snapshot(&self) -> ActivityProgress {
        let mut p = self.progress.clone();
        if !self.heartbeat.is_empty() {
            p.heartbeat_details = Some(payloads_json(&self.heartbeat));
        }
        p
    }
}

/// `options`, shared with the run started before it when they are the same
/// (runs started in bulk mostly are): `last` is that run's.
pub(crate) fn shared_options(
    last: &mut Option<Arc<ActivityOptions>>,
    options: ActivityOptions,
) -> Arc<ActivityOptions> {
    match last {
        Some(o) if **o == options => o.clone(),
        _ => last.insert(Arc::new(options)).clone(),
    }
}

/// `p` without its payloads, as memory keeps it.
pub(crate) fn lean(mut p: ActivityProgress) -> ActivityProgress {
    p.heartbeat_details = None;
    p.last_failure = None;
    p.result = None;
    p
}

/// Encodes payloads for a TEXT column.
pub(crate) fn payloads_json(p: &[Payload]) -> String {
    serde_json::to_string(p).unwrap_or_else(|_| "[]".into())
}

/// Decodes payloads from a TEXT column.
pub(crate) fn payloads_from(s: Option<&str>) -> Vec<Payload> {
    s.and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

fn decoded(p: &[Payload]) -> Vec<Value> {
    p.iter().map(Payload::to_json).collect()
}

/// An activity as the API shows it.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ActivityView {
    /// Namespace.
    pub namespace: String,
    /// Activity id.
    pub activity_id: String,
    /// Run id.
    pub run_id: i64,
    /// Activity type.
    pub activity_type: String,
    /// Task queue.
    pub task_queue: String,
    /// State.
    pub state: String,
    /// Current or last attempt.
    pub attempt: u32,
    /// First scheduled (ms since the Unix epoch).
    pub scheduled_ms: u64,
    /// Current attempt may start at.
    pub attempt_scheduled_ms: u64,
    /// Current attempt started at.
    pub started_ms: Option<u64>,
    /// Closed at.
    pub closed_ms: Option<u64>,
    /// Waiting for completion by task token or id.
    pub awaiting_async: bool,
    /// Cancellation requested.
    pub cancel_requested: bool,
    /// Arguments, decoded.
    pub input: Vec<Value>,
    /// Options as given (with defaults).
    pub options: Value,
    /// Latest heartbeat details, decoded.
    pub heartbeat_details: Vec<Value>,
    /// Last failure; its `details` are the raw payloads.
    pub last_failure: Option<Failure>,
    /// The last failure's details, decoded as the input is (`json/plain`
    /// as JSON values, other encodings in Temporal's JSON form).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_failure_details: Vec<Value>,
    /// Result, decoded, once completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Result as the raw payload, once completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_payload: Option<Payload>,
    /// Attempt history (describe only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<AttemptView>>,
}

/// One attempt as the API shows it.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AttemptView {
    /// Attempt number.
    pub attempt: u32,
    /// Started at.
    pub started_ms: u64,
    /// Ended at.
    pub ended_ms: Option<u64>,
    /// Outcome kind.
    pub outcome: Option<String>,
    /// Failure type.
    pub failure_type: Option<String>,
    /// Failure message.
    pub failure_message: Option<String>,
    /// Tail of the attempt log.
    pub log_tail: Option<String>,
    /// Its last heartbeat details, decoded.
    pub heartbeat_details: Vec<Value>,
    /// Module `name@version` it ran.
    pub module: Option<String>,
    /// CPU time the guest threads spent on it, in seconds (absent where no
    /// guest ran).
    pub guest_cpu_seconds: Option<f64>,
}

impl From<AttemptRow> for AttemptView {
    fn from(a: AttemptRow) -> Self {
        Self {
            attempt: a.attempt,
            started_ms: a.started_ms,
            ended_ms: a.ended_ms,
            outcome: a.outcome,
            failure_type: a.failure_type,
            failure_message: a.failure_message,
            log_tail: a.log_tail,
            heartbeat_details: decoded(&payloads_from(a.heartbeat_details.as_deref())),
            module: a.module,
            guest_cpu_seconds: a.cpu_us.map(|us| us as f64 / 1e6),
        }
    }
}

/// Builds the view of a stored run, showing progress `p`.
pub(crate) fn view(r: &StoredRun, p: &ActivityProgress) -> ActivityView {
    let f = &r.fixed;
    let result_payload: Option<Payload> = p
        .result
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok());
    let last_failure: Option<Failure> = p
        .last_failure
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok());
    ActivityView {
        namespace: f.namespace.clone(),
        activity_id: f.activity_id.clone(),
        run_id: f.run_id,
        activity_type: f.activity_type.clone(),
        task_queue: f.task_queue.clone(),
        state: p.state.as_str().to_owned(),
        attempt: p.attempt,
        scheduled_ms: f.scheduled_ms,
        attempt_scheduled_ms: p.attempt_scheduled_ms,
        started_ms: p.started_ms,
        closed_ms: p.state.closed_ms(),
        awaiting_async: p.state.awaiting_async(),
        cancel_requested: p.cancel_requested,
        input: decoded(&payloads_from(Some(&r.input))),
        options: serde_json::from_str(&r.options).unwrap_or(Value::Null),
        heartbeat_details: decoded(&payloads_from(p.heartbeat_details.as_deref())),
        last_failure_details: last_failure
            .as_ref()
            .map(|f| decoded(&f.details))
            .unwrap_or_default(),
        last_failure,
        result: result_payload.as_ref().map(Payload::to_json),
        result_payload,
        attempts: None,
    }
}

#[cfg(test)]
mod tests {
    use crate::clock::ManualClock;
    use crate::service::decide::fixture::{running, T0};
    use crate::store::activities::{ActivityProgress, RunState};

    fn retrying() -> ActivityProgress {
        ActivityProgress {
            state: RunState::Scheduled,
            attempt: 2,
            attempt_scheduled_ms: T0 + 1_000,
            ..ActivityProgress::default()
        }
    }

    /// Describe shows a run as last written: transitions applied in memory
    /// show only once every write in flight has ended.
    #[test]
    fn a_transition_shows_once_its_write_has_ended() {
        let mut a = running(&ManualClock::new(T0));
        let started = a.shown();
        assert!(started.state.is_started());

        // Attempt 1 failed, attempt 2 is due: applied, its write queued.
        let before = std::mem::replace(&mut a.progress, retrying());
        a.transition_applied(&before);
        assert_eq!(a.shown(), started, "shown before it was written");
        // A second transition while the first is still being written.
        let before = std::mem::replace(&mut a.progress, retrying());
        a.transition_applied(&before);

        a.transition_written();
        assert_eq!(a.shown(), started, "shown while a write is in flight");
        a.transition_written();
        assert_eq!(a.shown(), retrying());
        // An extra end changes nothing.
        a.transition_written();
        assert_eq!(a.shown(), retrying());
    }
}
