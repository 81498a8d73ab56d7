//! What an attempt's outcome means in Temporal's terms, for both modes.
//!
//! Application errors keep the guest's own type. Everything the sandbox
//! stopped becomes a failure with a distinct `Wasm*` type, retryable, with
//! the attempt log's tail in the message so the cause is visible where the
//! failure is read.

use crate::engine::Outcome;
use crate::payload::Payload;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Bytes of the attempt log kept with a failure and an attempt row.
pub const LOG_TAIL_BYTES: usize = 4096;

/// Which limit ended an activity or attempt by time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(utoipa::ToSchema)]
pub enum TimeoutType {
    /// One attempt ran too long.
    StartToClose,
    /// The whole activity ran too long.
    ScheduleToClose,
    /// It waited too long for a worker.
    ScheduleToStart,
    /// No heartbeat in time.
    Heartbeat,
}

/// A failure as recorded and reported: application error or host failure.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Failure {
    /// Failure type; application errors keep theirs.
    #[serde(rename = "type")]
    pub error_type: String,
    /// What went wrong.
    pub message: String,
    /// Never retried.
    pub non_retryable: bool,
    /// Structured details.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<Payload>,
    /// Delay the error asked for before the next attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_retry_delay_ms: Option<u64>,
    /// Set for timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_type: Option<TimeoutType>,
}

impl Failure {
    /// A timeout failure.
    pub fn timeout(t: TimeoutType) -> Self {
        let (ty, message) = match t {
            TimeoutType::StartToClose => (
                "StartToCloseTimeout",
                "attempt exceeded its start-to-close timeout",
            ),
            TimeoutType::ScheduleToClose => (
                "ScheduleToCloseTimeout",
                "activity exceeded its schedule-to-close timeout",
            ),
            TimeoutType::ScheduleToStart => (
                "ScheduleToStartTimeout",
                "no worker started the activity within its schedule-to-start timeout",
            ),
            TimeoutType::Heartbeat => (
                "HeartbeatTimeout",
                "attempt sent no heartbeat within its heartbeat timeout",
            ),
        };
        Self {
            error_type: ty.into(),
            message: message.into(),
            timeout_type: Some(t),
            ..Self::default()
        }
    }

    /// The delay the error asked for.
    pub fn next_retry_delay(&self) -> Option<Duration> {
        self.next_retry_delay_ms.map(Duration::from_millis)
    }
}

/// The failure an outcome amounts to; `None` for outcomes that are not
/// failures (completed, cancelled, will complete asynchronously).
pub fn failure_of(outcome: &Outcome, log: &str) -> Option<Failure> {
    let host = |ty: &str, message: String| {
        let tail = log_tail(log);
        Some(Failure {
            error_type: ty.into(),
            message: if tail.is_empty() {
                message
            } else {
                format!("{message}\nattempt log (tail):\n{tail}")
            },
            ..Failure::default()
        })
    };
    match outcome {
        Outcome::Completed { .. } | Outcome::Cancelled | Outcome::WillCompleteAsync => None,
        Outcome::Failed { error } => Some(Failure {
            error_type: if error.error_type.is_empty() {
                "Error".into()
            } else {
                error.error_type.clone()
            },
            message: error.message.clone(),
            non_retryable: error.non_retryable,
            details: error.details.clone(),
            next_retry_delay_ms: error.next_retry_delay_ms,
            timeout_type: None,
        }),
        Outcome::TimedOut => Some(Failure::timeout(TimeoutType::StartToClose)),
        Outcome::Trapped { .. } => host("WasmTrap", outcome.describe()),
        Outcome::MemoryLimitExceeded { .. } => host("WasmMemoryLimitExceeded", outcome.describe()),
        Outcome::FuelExhausted { .. } => host("WasmFuelExhausted", outcome.describe()),
        Outcome::OutputTooLarge { .. } => host("WasmOutputTooLarge", outcome.describe()),
    }
}

/// The last [`LOG_TAIL_BYTES`] of a log, cut at a character boundary.
pub fn log_tail(log: &str) -> &str {
    if log.len() <= LOG_TAIL_BYTES {
        return log;
    }
    let mut start = log.len() - LOG_TAIL_BYTES;
    while !log.is_char_boundary(start) {
        start += 1;
    }
    &log[start..]
}
