//! `noop`: an activity that does nothing, as fast as possible, and `count`,
//! which shows that no attempt sees the state of an earlier one.
//!
//! * `noop` ignores its arguments (they are not even decoded) and returns a
//!   `binary/null` payload. Benchmarks use it to measure what the host costs
//!   per attempt: instantiation, the call, and bookkeeping.
//! * `count` adds one to a module-level counter and returns the new value.
//!   Every attempt runs in a fresh instance, so it always returns 1. Its
//!   optional argument `fail_until_attempt` makes attempts before that one
//!   fail retryably (type `CountFailed`, details `{"count": n}`), so a
//!   retried activity shows its counter too.
//! * `remember(key, value)` keeps a JSON value in the process cache and
//!   `recall(key)` returns it (or null): the one thing that does outlive an
//!   attempt, on purpose, on the process that ran it.

use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::json;
use wharf_guest::{activity, ActivityError, Payload};

/// Returns "no value" without looking at anything.
fn noop() -> Result<Payload, ActivityError> {
    Ok(Payload::null())
}

/// Lives as long as the instance: one attempt.
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Increments [`COUNTER`] and returns its new value.
fn count(fail_until_attempt: Option<u32>) -> Result<u32, ActivityError> {
    let count = COUNTER.fetch_add(1, Ordering::Relaxed) + 1;
    let attempt = activity::info().attempt;
    if attempt < fail_until_attempt.unwrap_or(0) {
        return Err(ActivityError::retryable(format!(
            "attempt {attempt} failed with count {count}"
        ))
        .with_type("CountFailed")
        .with_details(&json!({ "count": count })));
    }
    Ok(count)
}

/// Keeps `value` under `key` in the process cache.
fn remember(key: String, value: serde_json::Value) -> Result<(), ActivityError> {
    Ok(wharf_guest::cache::set_json(&key, &value)?)
}

/// The value kept under `key` on this process, or null.
fn recall(key: String) -> Result<Option<serde_json::Value>, ActivityError> {
    Ok(wharf_guest::cache::get_json(&key))
}

wharf_guest::export_activities!(noop, count, remember, recall);
