//! Activities that push the host protocol: heartbeat floods and giants,
//! cancellation ignored or honoured, asynchronous completion, panics, and
//! the raw view of the attempt's info and arguments.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use wharf_guest::{activity, ActivityError, Payload};

use crate::mib_to_bytes;

#[derive(Deserialize)]
pub struct HeartbeatFlood {
    #[serde(default = "default_count")]
    count: u64,
}

fn default_count() -> u64 {
    1_000_000
}

#[derive(Serialize)]
struct Tick {
    i: u64,
}

/// `heartbeat-flood`, optional arg `{"count": u64 = 1000000}`: heartbeats
/// `{"i": i}` `count` times, ignoring cancellation; returns `{"count": count}`.
pub fn heartbeat_flood(args: Option<HeartbeatFlood>) -> Result<Value, ActivityError> {
    let count = args.map_or_else(default_count, |a| a.count);
    for i in 0..count {
        activity::heartbeat(&Tick { i });
    }
    Ok(json!({ "count": count }))
}

#[derive(Deserialize)]
pub struct BigHeartbeat {
    #[serde(default = "default_heartbeat_mib")]
    mib: u64,
}

fn default_heartbeat_mib() -> u64 {
    16
}

/// `big-heartbeat`, optional arg `{"mib": u64 = 16}`: one heartbeat whose
/// details are a JSON string of that many MiB; returns `"ok"`.
pub fn big_heartbeat(args: Option<BigHeartbeat>) -> Result<&'static str, ActivityError> {
    let mib = args.map_or_else(default_heartbeat_mib, |a| a.mib);
    activity::heartbeat(&"x".repeat(mib_to_bytes(mib)?));
    Ok("ok")
}

/// `panic`: panics (a trap, for the host).
pub fn panic_on_purpose() -> Result<(), ActivityError> {
    panic!("adversary panicked on purpose")
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Sleep {
    ms: u64,
    heartbeat_every_ms: Option<u64>,
    ignore_cancel: bool,
    pad_bytes: usize,
}

/// `sleep`, optional arg
/// `{"ms": u64 = 0, "heartbeat_every_ms": u64 | null, "ignore_cancel": bool = false,
/// "pad_bytes": usize = 0}`:
/// sleeps `ms` in slices. With `heartbeat_every_ms`, heartbeats
/// `{"slept_ms": n}` after every slice of that length and, unless
/// `ignore_cancel`, stops with "cancelled" once a heartbeat reports a
/// cancellation request. Returns `{"slept_ms": ms, "started_ms": t0,
/// "ended_ms": t1}`, the wall-clock span the guest itself saw (ms since the
/// Unix epoch), so tests can check how many ran at once; with `pad_bytes`,
/// also `"pad"`, a string of that many bytes (a large result at a chosen
/// time).
pub fn sleep(args: Option<Sleep>) -> Result<Value, ActivityError> {
    let args = args.unwrap_or_default();
    let started_ms = now_ms();
    let slice = args.heartbeat_every_ms.unwrap_or(100).max(1);
    let mut slept: u64 = 0;
    while slept < args.ms {
        let step = slice.min(args.ms - slept);
        std::thread::sleep(Duration::from_millis(step));
        slept += step;
        if args.heartbeat_every_ms.is_some()
            && activity::heartbeat(&json!({ "slept_ms": slept }))
            && !args.ignore_cancel
        {
            return Err(ActivityError::cancelled());
        }
    }
    let mut result = json!({ "slept_ms": args.ms, "started_ms": started_ms, "ended_ms": now_ms() });
    if args.pad_bytes > 0 {
        result["pad"] = json!("p".repeat(args.pad_bytes));
    }
    Ok(result)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `async-complete`: hands its task token to "someone else" (prints
/// `task-token: <hex>` to stdout, where the attempt log keeps it) and answers
/// "will complete asynchronously".
pub fn async_complete() -> Result<(), ActivityError> {
    println!("task-token: {}", hex(&activity::info().task_token));
    Err(ActivityError::will_complete_async())
}

/// `info`: the attempt's info as JSON. Field names are the WIT ones in
/// snake_case, times in ms since the Unix epoch (`*_ms`), `task_token` as a
/// lowercase hex string, `heartbeat_details` as an array of the details
/// decoded as JSON (an undecodable one becomes `{"undecodable": reason}`).
pub fn info() -> Result<Value, ActivityError> {
    let i = activity::info();
    let details: Vec<Value> = i
        .heartbeat_details
        .iter()
        .map(|p| {
            p.decode::<Value>()
                .unwrap_or_else(|e| json!({ "undecodable": e.to_string() }))
        })
        .collect();
    Ok(json!({
        "namespace": i.namespace,
        "task_queue": i.task_queue,
        "activity_id": i.activity_id,
        "activity_type": i.activity_type,
        "attempt": i.attempt,
        "task_token": hex(&i.task_token),
        "scheduled_ms": millis(i.scheduled_time),
        "started_ms": millis(i.started_time),
        "deadline_ms": i.deadline.map(millis),
        "heartbeat_timeout_ms": i.heartbeat_timeout.map(|d| d.as_millis() as u64),
        "heartbeat_details": details,
        "workflow_id": i.workflow_id,
        "workflow_type": i.workflow_type,
        "worker_task_queue": i.worker_task_queue,
    }))
}

/// `echo`: returns its arguments as a JSON array, each decoded as JSON
/// (`binary/null` as `null`, `binary/plain` as an array of byte values).
pub fn echo(args: Vec<Payload>) -> Result<Vec<Value>, ActivityError> {
    args.iter()
        .enumerate()
        .map(|(index, p)| {
            p.decode().map_err(|e| {
                ActivityError::non_retryable(format!("argument {index}: {e}"))
                    .with_type("InvalidArgument")
            })
        })
        .collect()
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
