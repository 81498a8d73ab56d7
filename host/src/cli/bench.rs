//! `wharf bench`: which benchmark to run; they live in [`crate::bench`].

use crate::bench::{instantiate, isolation, parked, scheduler, soak, throughput};

/// What to measure.
#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Per module side by side (e.g. Rust, JS and Python no-ops): cost of a
    /// fresh instance + one `run` call, pooling on and off; upload-to-ready
    /// (compile) and restart-to-ready (artifact load) times.
    Instantiate(instantiate::InstantiateArgs),
    /// Durable no-op activities per second through the HTTP API of a
    /// `wharf serve` (started here), at `--sync full` and `--sync normal`.
    Throughput(throughput::ThroughputArgs),
    /// Overhead of the scheduler: no-op throughput on a plain queue against
    /// one with priorities, weighted fairness keys, a rate limit and a
    /// concurrency limit that never bind, rounds alternating on one server.
    Scheduler(scheduler::SchedulerArgs),
    /// Cost of isolation: tenant B's no-op throughput and schedule-to-start
    /// alone, then while tenant A fills its quota with loops and memory
    /// bombs, on one `wharf serve` with authentication (started here).
    Isolation(isolation::IsolationArgs),
    /// Memory of a `wharf serve` (started here) per open activity waiting
    /// for a worker, with no input and with large inputs, and after a
    /// restart recovers them.
    Parked(parked::ParkedArgs),
    /// A long run (a million no-ops by default) with a short retention:
    /// per window throughput, server RSS, SQLite file and WAL size and
    /// schedule-to-start p99, to see that they stay flat.
    Soak(soak::SoakArgs),
}

/// Runs a benchmark command.
pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Instantiate(args) => instantiate::run(args).await,
        BenchCommand::Throughput(args) => throughput::run(args).await,
        BenchCommand::Scheduler(args) => scheduler::run(args).await,
        BenchCommand::Isolation(args) => isolation::run(args).await,
        BenchCommand::Parked(args) => parked::run(args).await,
        BenchCommand::Soak(args) => soak::run(args).await,
    }
}
