//! Wharf runs Temporal-style activities compiled to WebAssembly components.
//!
//! # Layout
//!
//! Dependencies point one way, from the top of this list to the bottom:
//!
//! * [`cli`]: the `wharf` command's subcommands; thin, they call the layers
//!   below.
//! * [`bench`]: the benchmarks behind `wharf bench`, and the harness that
//!   drives a `wharf serve` for them and for the integration tests.
//! * [`api`]: the HTTP JSON API over the service.
//! * [`temporal`]: the bridge that makes Wharf a worker of a Temporal
//!   cluster (`wharf worker --temporal`).
//! * [`service`]: the activity state machine (Temporal's semantics), its
//!   timers and recovery.
//! * [`queue`]: task queues: backlog, worker slots, the dispatcher.
//! * [`worker`]: runs attempts by one set of rules (deadline, limits under
//!   the tenant's quotas, process-cache scope, host slots, guest threads)
//!   for both modes, `wharf run` and the benchmarks; what an outcome means
//!   in Temporal's terms.
//! * [`registry`]: module upload, validation against the `wharf:activity`
//!   world, and the precompiled-artifact cache.
//! * [`engine`]: the wasmtime sandbox; a fresh instance per attempt and a
//!   typed outcome for whatever the guest does.
//! * [`store`]: SQLite, its migrations and the group-commit writer.
//! * [`clock`]: the time every decision is given, injected so that tests
//!   control it.
//! * [`otlp`]: export of the service's traces to an OpenTelemetry collector.
//! * [`payload`]: values as Temporal carries them, shared by every layer.

pub mod allocator;
pub mod api;
pub mod bench;
pub mod cli;
pub mod clock;
pub mod engine;
pub mod metrics;
pub mod otlp;
pub mod payload;
pub mod priority;
pub mod queue;
pub mod random;
pub mod registry;
pub mod service;
pub mod store;
pub mod temporal;
pub mod worker;

/// Milliseconds since the Unix epoch, as stored and shown everywhere.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
