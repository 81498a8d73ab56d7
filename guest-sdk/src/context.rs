//! The attempt's context: what an activity may ask of the host while it runs.
//!
//! Thin, typed wrappers over the imported WIT `context` interface: the
//! attempt's [`ActivityInfo`], heartbeats (progress that survives a retry,
//! and the channel through which cancellation arrives), and the attempt log.
//! Every call goes to the host; outside a Wharf host they panic.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::__private::bindings::wharf::activity::context as host;
use crate::__private::WitPayload;
use crate::payload::Payload;

/// What an attempt knows about itself (the WIT `activity-info`).
#[derive(Clone, Debug, PartialEq)]
pub struct ActivityInfo {
    /// Namespace (tenant) the activity belongs to.
    pub namespace: String,
    /// Task queue the activity was scheduled on.
    pub task_queue: String,
    /// Identifier of the activity, unique within its namespace.
    pub activity_id: String,
    /// The activity type, i.e. the name the activity was run under.
    pub activity_type: String,
    /// Attempt number, starting at 1.
    pub attempt: u32,
    /// Opaque token that completes, fails or heartbeats this attempt from
    /// outside (valid for this attempt only).
    pub task_token: Vec<u8>,
    /// When the activity was first scheduled.
    pub scheduled_time: SystemTime,
    /// When this attempt started.
    pub started_time: SystemTime,
    /// When this attempt will be stopped: the earlier of the start-to-close
    /// and schedule-to-close deadlines.
    pub deadline: Option<SystemTime>,
    /// The attempt times out when no heartbeat arrives within this interval.
    pub heartbeat_timeout: Option<Duration>,
    /// Details of the last heartbeat of an earlier attempt: where to resume.
    /// See [`heartbeat_details`] for the decoded first entry.
    pub heartbeat_details: Vec<Payload>,
    /// Workflow that scheduled the activity, if any.
    pub workflow_id: Option<String>,
    /// Type of that workflow, if any.
    pub workflow_type: Option<String>,
    /// Queue served only by the process running this attempt; schedule a
    /// follow-up activity there to run it on the same host.
    pub worker_task_queue: String,
}

impl ActivityInfo {
    /// Time left until [`ActivityInfo::deadline`] (zero once it passed), or
    /// `None` if the attempt has no deadline.
    pub fn time_left(&self) -> Option<Duration> {
        let deadline = self.deadline?;
        Some(
            deadline
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO),
        )
    }
}

/// Severity of a line in the attempt log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging information.
    Debug,
    /// Normal progress.
    Info,
    /// Something unexpected that the activity recovered from.
    Warn,
    /// A failure.
    Error,
}

/// Describes the current attempt.
pub fn info() -> ActivityInfo {
    let i = host::info();
    ActivityInfo {
        namespace: i.namespace,
        task_queue: i.task_queue,
        activity_id: i.activity_id,
        activity_type: i.activity_type,
        attempt: i.attempt,
        task_token: i.task_token,
        scheduled_time: time_from_ms(i.scheduled_ms),
        started_time: time_from_ms(i.started_ms),
        deadline: i.deadline_ms.map(time_from_ms),
        heartbeat_timeout: i.heartbeat_timeout_ms.map(Duration::from_millis),
        heartbeat_details: i.heartbeat_details.into_iter().map(Payload::from).collect(),
        workflow_id: i.workflow_id,
        workflow_type: i.workflow_type,
        worker_task_queue: i.worker_task_queue,
    }
}

/// Records progress: `details`, encoded as one `json/plain` payload, are kept
/// durably and handed to the next attempt if this one fails (read them back
/// with [`heartbeat_details`]). Also proves liveness for the heartbeat
/// timeout.
///
/// Returns true once cancellation of the activity was requested; the
/// activity should then stop and return [`ActivityError::cancelled`].
///
/// Should `details` not encode as JSON (a map with non-string keys, say),
/// nothing is recorded, an error line is logged and the cancellation state
/// is returned as [`is_cancelled`] reports it.
///
/// [`ActivityError::cancelled`]: crate::ActivityError::cancelled
pub fn heartbeat<T: Serialize + ?Sized>(details: &T) -> bool {
    match Payload::json(details) {
        Ok(payload) => heartbeat_payloads(vec![payload]),
        Err(e) => {
            log(Level::Error, &format!("heartbeat not recorded: {e}"));
            is_cancelled()
        }
    }
}

/// Like [`heartbeat`], with the details given as payloads (any encoding, any
/// number, including none).
pub fn heartbeat_payloads(details: Vec<Payload>) -> bool {
    let details: Vec<WitPayload> = details.into_iter().map(Into::into).collect();
    host::heartbeat(&details)
}

/// The first heartbeat detail recorded by an earlier attempt, decoded as `T`:
/// where to resume.
///
/// Returns `None` on the first attempt, when the earlier attempts never
/// heartbeated, and when the detail does not decode as `T` (then a warning is
/// logged, and the activity starts over). Use
/// [`info()`]`.heartbeat_details` to see the raw payloads.
pub fn heartbeat_details<T: DeserializeOwned>() -> Option<T> {
    let details = info().heartbeat_details;
    let first = details.first()?;
    match first.decode() {
        Ok(value) => Some(value),
        Err(e) => {
            log(
                Level::Warn,
                &format!("ignoring heartbeat details of an earlier attempt: {e}"),
            );
            None
        }
    }
}

/// True once cancellation of the activity was requested.
pub fn is_cancelled() -> bool {
    host::is_cancelled()
}

/// Appends a line to the attempt log, which the host keeps with the attempt
/// (bounded in size). See also the [`info!`](crate::info!) family of macros.
pub fn log(level: Level, message: &str) {
    let level = match level {
        Level::Trace => host::Level::Trace,
        Level::Debug => host::Level::Debug,
        Level::Info => host::Level::Info,
        Level::Warn => host::Level::Warn,
        Level::Error => host::Level::Error,
    };
    host::log(level, message);
}

fn time_from_ms(ms: u64) -> SystemTime {
    // Cannot overflow on wasm32-wasip2 or 64-bit hosts; saturate elsewhere.
    UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .unwrap_or(UNIX_EPOCH)
}

/// Logs a formatted line at [`Level::Trace`]: `wharf_guest::trace!("x = {x}")`.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)+) => { $crate::log($crate::Level::Trace, &::std::format!($($arg)+)) };
}

/// Logs a formatted line at [`Level::Debug`]: `wharf_guest::debug!("x = {x}")`.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => { $crate::log($crate::Level::Debug, &::std::format!($($arg)+)) };
}

/// Logs a formatted line at [`Level::Info`]: `wharf_guest::info!("x = {x}")`.
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => { $crate::log($crate::Level::Info, &::std::format!($($arg)+)) };
}

/// Logs a formatted line at [`Level::Warn`]: `wharf_guest::warn!("x = {x}")`.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => { $crate::log($crate::Level::Warn, &::std::format!($($arg)+)) };
}

/// Logs a formatted line at [`Level::Error`]: `wharf_guest::error!("x = {x}")`.
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => { $crate::log($crate::Level::Error, &::std::format!($($arg)+)) };
}
