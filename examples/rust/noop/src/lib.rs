//! `noop`: an activity that does nothing, as fast as possible.
//!
//! Activity type `noop` ignores its arguments (they are not even decoded) and
//! returns a `binary/null` payload. Benchmarks use it to measure what the host
//! costs per attempt: instantiation, the call, and bookkeeping.

use wharf_guest::{ActivityError, Payload};

/// Returns "no value" without looking at anything.
fn noop() -> Result<Payload, ActivityError> {
    Ok(Payload::null())
}

wharf_guest::export_activities!(noop);
