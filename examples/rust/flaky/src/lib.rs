//! `flaky`: activities that fail in the ways retry policies care about.
//!
//! * `flaky` — `{"succeed_on_attempt": u32, "retry_delay_ms": u64 | null}`:
//!   attempts before `succeed_on_attempt` fail retryably with type
//!   `FlakyError`, message `"attempt {a} failed"`, details `{"attempt": a}`
//!   and, when `retry_delay_ms` is given, that next-retry delay, after
//!   logging `attempt {a} of {succeed_on_attempt}: failing on purpose`.
//!   Later attempts return `{"attempt": a}`.
//! * `reject` — `{"reason": string}`: fails non-retryably with type
//!   `InvalidOrder`, message `"order rejected: {reason}"`, details
//!   `{"reason": reason}`, after logging the warning `rejecting: {reason}`.
//! * `fail-typed` — `{"error_type": string}`: fails retryably with that error
//!   type and message `"failed with {error_type}"`, to exercise a retry
//!   policy's list of non-retryable error types.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use wharf_guest::{activity, ActivityError};

#[derive(Deserialize)]
struct FlakyInput {
    succeed_on_attempt: u32,
    #[serde(default)]
    retry_delay_ms: Option<u64>,
}

fn flaky(input: FlakyInput) -> Result<Value, ActivityError> {
    let attempt = activity::info().attempt;
    if attempt < input.succeed_on_attempt {
        wharf_guest::info!(
            "attempt {attempt} of {}: failing on purpose",
            input.succeed_on_attempt
        );
        let mut err = ActivityError::retryable(format!("attempt {attempt} failed"))
            .with_type("FlakyError")
            .with_details(&json!({ "attempt": attempt }));
        if let Some(ms) = input.retry_delay_ms {
            err = err.with_next_retry_delay(Duration::from_millis(ms));
        }
        return Err(err);
    }
    Ok(json!({ "attempt": attempt }))
}

#[derive(Deserialize)]
struct RejectInput {
    reason: String,
}

fn reject(input: RejectInput) -> Result<(), ActivityError> {
    wharf_guest::warn!("rejecting: {}", input.reason);
    Err(
        ActivityError::non_retryable(format!("order rejected: {}", input.reason))
            .with_type("InvalidOrder")
            .with_details(&json!({ "reason": input.reason })),
    )
}

#[derive(Deserialize)]
struct FailTypedInput {
    error_type: String,
}

fn fail_typed(input: FailTypedInput) -> Result<(), ActivityError> {
    Err(
        ActivityError::retryable(format!("failed with {}", input.error_type))
            .with_type(input.error_type),
    )
}

wharf_guest::export_activities!(flaky, reject, "fail-typed" => fail_typed);
