//! `adversary`: a TEST FIXTURE, not an example to copy.
//!
//! Every activity type here misbehaves on purpose, so that the host's
//! isolation can be tested against the real thing: runaway CPU, memory and
//! stack, output floods, oversized results and heartbeats, attempts to reach
//! files, environment, sockets, the network and ungranted configuration,
//! panics, and misuse of the heartbeat and cancellation protocol. See
//! README.md for each type's exact behaviour. Arguments noted as optional may be left out (or be `{}`) to get
//! the defaults.

mod capabilities;
mod protocol;
mod resources;

wharf_guest::export_activities!(
    "loop" => resources::busy_loop,
    "memory-bomb" => resources::memory_bomb,
    "recurse" => resources::recurse,
    "stdout-flood" => resources::stdout_flood,
    "huge-result" => resources::huge_result,
    "read-file" => capabilities::read_file,
    "write-file" => capabilities::write_file,
    "read-env" => capabilities::read_env,
    "connect" => capabilities::connect,
    "http-get" => capabilities::http_get,
    "config-get" => capabilities::config_get,
    "heartbeat-flood" => protocol::heartbeat_flood,
    "big-heartbeat" => protocol::big_heartbeat,
    "panic" => protocol::panic_on_purpose,
    "spawn-thread" => resources::spawn_thread,
    "sleep" => protocol::sleep,
    "async-complete" => protocol::async_complete,
    "info" => protocol::info,
    "echo" => protocol::echo,
);

/// One mebibyte.
const MIB: usize = 1 << 20;

/// `mib` MiB as a byte count, or an `InvalidArgument` error if that does not
/// fit in memory's address space.
fn mib_to_bytes(mib: u64) -> Result<usize, wharf_guest::ActivityError> {
    usize::try_from(mib)
        .ok()
        .and_then(|m| m.checked_mul(MIB))
        .ok_or_else(|| {
            wharf_guest::ActivityError::non_retryable(format!("{mib} MiB is too large"))
                .with_type("InvalidArgument")
        })
}
