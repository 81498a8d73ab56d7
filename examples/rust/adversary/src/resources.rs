//! Activities that exhaust a resource: CPU, memory, stack, output, result size.

use std::hint::black_box;
use std::io::Write;

use serde::Deserialize;
use wharf_guest::ActivityError;

use crate::{mib_to_bytes, MIB};

/// `loop`: spins forever; only a deadline (epoch interruption) or a fuel
/// budget stops it.
pub fn busy_loop() -> Result<(), ActivityError> {
    let mut counter: u64 = 0;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

/// `memory-bomb`: allocates 1 MiB chunks forever, touching every page so the
/// memory is real, and keeps them all alive. Ends when `memory.grow` is
/// refused and the allocator aborts.
pub fn memory_bomb() -> Result<(), ActivityError> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; MIB];
        for byte in chunk.iter_mut().step_by(4096) {
            *byte = 1;
        }
        hoard.push(black_box(chunk));
        black_box(&hoard);
    }
}

/// `recurse`: unbounded non-tail recursion, until the stack overflows.
pub fn recurse() -> Result<u64, ActivityError> {
    Ok(dive(0))
}

#[inline(never)]
fn dive(depth: u64) -> u64 {
    let frame = black_box([depth; 32]);
    // Never true, but the optimiser cannot know that.
    if black_box(depth) == u64::MAX {
        return frame[0];
    }
    dive(depth + 1).wrapping_add(black_box(frame)[1])
}

/// `stdout-flood`: writes ~100-byte lines to stdout forever, and every
/// hundredth line to stderr too. Write errors are ignored: it keeps going
/// until stopped.
pub fn stdout_flood() -> Result<(), ActivityError> {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let padding = "x".repeat(70);
    let mut line: u64 = 0;
    loop {
        let _ = writeln!(stdout.lock(), "stdout-flood line {line:>10} {padding}");
        if line.is_multiple_of(100) {
            let _ = writeln!(stderr.lock(), "stderr-flood line {line:>10} {padding}");
        }
        line = line.wrapping_add(1);
    }
}

/// `spawn-thread`: tries to start a thread, the first step of a fork bomb.
/// wasm32-wasip2 has no threads, so `std` refuses; the answer says how:
/// `{"spawned": false, "error": ...}` (or `{"spawned": true}` on a host that
/// could, which would be a finding).
pub fn spawn_thread() -> Result<serde_json::Value, ActivityError> {
    Ok(
        match std::thread::Builder::new().spawn(|| black_box(1u64)) {
            Ok(handle) => {
                let _ = handle.join();
                serde_json::json!({ "spawned": true })
            }
            Err(e) => serde_json::json!({ "spawned": false, "error": e.to_string() }),
        },
    )
}

#[derive(Deserialize)]
pub struct HugeResult {
    #[serde(default = "default_result_mib")]
    mib: u64,
}

fn default_result_mib() -> u64 {
    64
}

/// `huge-result`, optional arg `{"mib": u64 = 64}`: returns a JSON string of
/// that many MiB of `x`.
pub fn huge_result(args: Option<HugeResult>) -> Result<String, ActivityError> {
    let mib = args.map_or_else(default_result_mib, |a| a.mib);
    Ok("x".repeat(mib_to_bytes(mib)?))
}
