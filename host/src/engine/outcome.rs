//! What an attempt ended with.
//!
//! [`Outcome`] is the one answer the engine gives for every attempt, whatever
//! the guest did; callers (the service, the Temporal bridge, `wharf run`)
//! match on it. [`Interrupt`] is how the host stops a guest from the inside:
//! it travels as the error of a trap and is recognised again on the way out.

use crate::payload::Payload;
use serde::{Deserialize, Serialize};

/// A failure raised by activity code, as Temporal's `ApplicationFailure`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplicationError {
    /// What went wrong.
    pub message: String,
    /// Kind of failure, matched exactly by retry policies.
    #[serde(rename = "type")]
    pub error_type: String,
    /// No further attempts whatever the policy.
    pub non_retryable: bool,
    /// Structured data about the failure.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<Payload>,
    /// Overrides the policy's backoff for the next attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_retry_delay_ms: Option<u64>,
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// `run` returned a result.
    Completed {
        /// The result.
        result: Payload,
    },
    /// `run` returned an application error.
    Failed {
        /// The error as the guest raised it.
        error: ApplicationError,
    },
    /// The result will arrive later by task token or activity id.
    WillCompleteAsync,
    /// The activity acknowledged cancellation, or ignored it and was stopped.
    Cancelled,
    /// The guest trapped (panic, unreachable, stack overflow, bad import...).
    Trapped {
        /// The trap, as wasmtime describes it.
        message: String,
    },
    /// The attempt ran past its deadline and was stopped.
    TimedOut,
    /// The attempt tried to grow its memories and tables past the limit.
    MemoryLimitExceeded {
        /// The limit in bytes.
        limit: usize,
    },
    /// The attempt used up its fuel (CPU budget).
    FuelExhausted {
        /// The budget in fuel units.
        limit: u64,
    },
    /// The result or heartbeat details were larger than allowed.
    OutputTooLarge {
        /// Which output: `result` or `heartbeat`.
        what: String,
        /// Its size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
}

impl Outcome {
    /// Short name of the outcome kind, as stored and shown.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Completed { .. } => "completed",
            Outcome::Failed { .. } => "failed",
            Outcome::WillCompleteAsync => "will_complete_async",
            Outcome::Cancelled => "cancelled",
            Outcome::Trapped { .. } => "trapped",
            Outcome::TimedOut => "timed_out",
            Outcome::MemoryLimitExceeded { .. } => "memory_limit_exceeded",
            Outcome::FuelExhausted { .. } => "fuel_exhausted",
            Outcome::OutputTooLarge { .. } => "output_too_large",
        }
    }

    /// A one-line human description.
    pub fn describe(&self) -> String {
        match self {
            Outcome::Completed { result } => format!("completed: {}", result.to_json()),
            Outcome::Failed { error } => format!(
                "failed ({}{}): {}",
                if error.error_type.is_empty() {
                    "Error"
                } else {
                    &error.error_type
                },
                if error.non_retryable {
                    ", non-retryable"
                } else {
                    ""
                },
                error.message
            ),
            Outcome::WillCompleteAsync => "will complete asynchronously".into(),
            Outcome::Cancelled => "cancelled".into(),
            Outcome::Trapped { message } => format!("trapped: {message}"),
            Outcome::TimedOut => "timed out: stopped at its deadline".into(),
            Outcome::MemoryLimitExceeded { limit } => {
                format!("memory limit exceeded: the limit is {limit} bytes")
            }
            Outcome::FuelExhausted { limit } => {
                format!("fuel exhausted: the budget is {limit} units")
            }
            Outcome::OutputTooLarge { what, size, limit } => {
                format!("{what} too large: {size} bytes, the limit is {limit}")
            }
        }
    }
}

/// Why the host stopped a guest mid-run. Carried as a trap's error.
#[derive(Clone, Debug, thiserror::Error)]
pub(crate) enum Interrupt {
    #[error("attempt deadline reached")]
    Deadline,
    #[error("cancelled and stopped by the host")]
    Cancelled,
    #[error("memory limit of {limit} bytes exceeded (asked for {requested})")]
    MemoryLimit { limit: usize, requested: usize },
    #[error("{what} of {size} bytes exceeds the limit of {limit} bytes")]
    OutputTooLarge {
        what: &'static str,
        size: usize,
        limit: usize,
    },
}

impl Interrupt {
    pub(crate) fn into_outcome(self) -> Outcome {
        match self {
            Interrupt::Deadline => Outcome::TimedOut,
            Interrupt::Cancelled => Outcome::Cancelled,
            Interrupt::MemoryLimit { limit, .. } => Outcome::MemoryLimitExceeded { limit },
            Interrupt::OutputTooLarge { what, size, limit } => Outcome::OutputTooLarge {
                what: what.to_owned(),
                size,
                limit,
            },
        }
    }
}
