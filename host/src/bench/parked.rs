//! `wharf bench parked`: what an open activity that waits costs the
//! server's memory, with a small and with a large input.
//!
//! Starts a `wharf serve` child on a fresh data directory and starts
//! activities on a queue nothing is deployed to, so they stay open and
//! scheduled. It reads the server's resident memory (`VmRSS`) after a
//! warm-up, after `--small` activities with no input, and after `-n`
//! activities with an input of `--input-bytes` each; then restarts the
//! server on the same directory and reads it again once every open
//! activity is recovered. Payloads live in SQLite, not in memory, so both
//! figures per activity should be the same few hundred bytes.

use super::harness;
use super::Server;
use anyhow::Context as _;
use serde_json::{json, Value};

/// Arguments of `wharf bench parked`.
#[derive(clap::Args)]
pub struct ParkedArgs {
    /// Activities with a large input (1 to 1 000 000).
    #[arg(short = 'n', long, default_value_t = 600, value_parser = super::count(1..=1_000_000))]
    activities: usize,
    /// Bytes of each large input (one JSON string), 0 to 64 MiB.
    #[arg(long, default_value_t = 1 << 20, value_parser = super::count(0..=64 << 20))]
    input_bytes: usize,
    /// Activities with no input, for the fixed cost of one (0 to 10 000 000).
    #[arg(long, default_value_t = 20_000, value_parser = super::count(0..=10_000_000))]
    small: usize,
    /// Start requests in flight at once (1 to 100 000).
    #[arg(long, default_value_t = 16, value_parser = super::count(1..=100_000))]
    concurrency: usize,
    /// Durability of the server (`full` or `normal`).
    #[arg(long, default_value = "normal")]
    sync: String,
}

/// Runs the benchmark and prints what the server's memory grew by.
pub async fn run(args: ParkedArgs) -> anyhow::Result<()> {
    super::build_kind();
    let mut child = Server::start(&args.sync, 1, |_| Ok(Vec::new()))?;
    let http = crate::api::listen::client().build()?;
    let ns = child.process.namespace(&http, "default", None);
    let body = |input: Value| {
        json!({
            "activity_type": "parked",
            "task_queue": "nothing-deployed",
            "start_to_close_timeout": "1h",
            "input": input,
        })
    };
    let rss = |pid| harness::rss_bytes(pid).context("cannot read the server's VmRSS");

    super::start_many(&ns, body(json!([])), 200, args.concurrency, 1).await?;
    let warm = rss(child.pid())?;
    super::start_many(&ns, body(json!([])), args.small, args.concurrency, 1).await?;
    let small = rss(child.pid())?;
    let big = body(json!(["x".repeat(args.input_bytes)]));
    super::start_many(&ns, big, args.activities, args.concurrency, 1).await?;
    let large = rss(child.pid())?;

    // The same open activities, recovered from SQLite by a new process.
    let data = child.dir.join("data");
    let _ = child.process.child.kill();
    let _ = child.process.child.wait();
    child.process = harness::ServeProcess::start(
        std::process::Command::new(std::env::current_exe()?),
        &data,
        ["--sync", &args.sync],
    )
    .context("cannot restart wharf serve")?;
    let recovered = rss(child.pid())?;

    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    let per = |from: u64, to: u64, n: usize| (to.saturating_sub(from)) as f64 / n.max(1) as f64;
    let open = 200 + args.small + args.activities;
    println!("resident memory of wharf serve, activities parked on a queue without a deployment:");
    println!(
        "  after 200 (warm-up)                        {:>9.1} MiB",
        mib(warm)
    );
    println!(
        "  after {:>6} more with no input             {:>9.1} MiB   {:>8.0} bytes per activity",
        args.small,
        mib(small),
        per(warm, small, args.small)
    );
    println!(
        "  after {:>6} more with {:>8}-byte inputs  {:>9.1} MiB   {:>8.0} bytes per activity",
        args.activities,
        args.input_bytes,
        mib(large),
        per(small, large, args.activities)
    );
    println!(
        "  restarted, {open} open activities recovered  {:>9.1} MiB",
        mib(recovered)
    );
    Ok(())
}
