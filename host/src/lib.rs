//! Wharf runs Temporal-style activities compiled to WebAssembly components.
//!
//! # Layout
//!
//! Dependencies point one way, from the top of this list to the bottom:
//!
//! * [`cli`]: the `wharf` command's subcommands; thin, they call the layers
//!   below.
//! * [`registry`]: module upload, validation against the `wharf:activity`
//!   world, and the precompiled-artifact cache.
//! * [`engine`]: the wasmtime sandbox; a fresh instance per attempt and a
//!   typed outcome for whatever the guest does.
//! * [`store`]: SQLite, its migrations and the group-commit writer.
//! * [`payload`]: values as Temporal carries them, shared by every layer.

pub mod cli;
pub mod engine;
pub mod payload;
pub mod registry;
pub mod store;

/// Milliseconds since the Unix epoch, as stored and shown everywhere.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
