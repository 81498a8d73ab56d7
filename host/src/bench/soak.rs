//! `wharf bench soak`: whether a server stays bounded over a long run.
//!
//! Starts a `wharf serve` child with a short retention on its namespace,
//! then pushes no-op activities through the HTTP API window after window
//! and prints, per window: throughput, the server's resident memory, the
//! size of the SQLite file and its WAL, and schedule-to-start p99 (from
//! `/metrics`). Once the first retention cycle has passed, memory and disk
//! should stay flat and throughput should hold; the last lines compare the
//! last window with the first one after warm-up.

use super::harness::{cpu_seconds, quantile_between, rss_bytes, scrape};
use super::throughput::wait_completed;
use super::Server;
use anyhow::Context as _;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Arguments of `wharf bench soak`.
#[derive(clap::Args)]
pub struct SoakArgs {
    /// The no-op activity component.
    #[arg(long)]
    module: PathBuf,
    /// Activity type to start.
    #[arg(long, default_value = "noop")]
    activity_type: String,
    /// Activities in the whole run (1 to 1 000 000 000).
    #[arg(short = 'n', long, default_value_t = 1_000_000, value_parser = super::count(1..=1_000_000_000))]
    activities: usize,
    /// Activities per printed window (1 to 1 000 000 000).
    #[arg(long, default_value_t = 100_000, value_parser = super::count(1..=1_000_000_000))]
    window: usize,
    /// Retention of the namespace's closed activities.
    #[arg(long, default_value = "1m")]
    retention: String,
    /// Start requests in flight at once (1 to 100 000).
    #[arg(long, default_value_t = 256, value_parser = super::count(1..=100_000))]
    concurrency: usize,
    /// Worker slots of the benchmark queue.
    #[arg(long, default_value_t = 256)]
    slots: u32,
    /// Durability of the server (`full` or `normal`).
    #[arg(long, default_value = "full")]
    sync: String,
}

/// One window's figures.
struct Window {
    rate: f64,
    rss_mib: f64,
    db_mib: f64,
    wal_mib: f64,
    s2s_p99: Option<f64>,
}

/// Runs the soak and prints a line per window, then the comparison.
pub async fn run(args: SoakArgs) -> anyhow::Result<()> {
    super::build_kind();
    anyhow::ensure!(args.window > 0, "--window must be at least 1");
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    let module = std::fs::read(&args.module)
        .with_context(|| format!("cannot read {}", args.module.display()))?;
    let child = Server::start(&args.sync, args.slots, |_| Ok(Vec::new()))?;
    let data = child.dir.join("data");
    let http = crate::api::listen::client()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let ns = child.process.namespace(&http, "default", None);
    super::harness::expect_success(
        ns.request(reqwest::Method::PATCH, "")
            .json(&json!({"quotas": {"retention": args.retention}})),
        "setting the retention",
    )
    .await?;
    ns.upload_and_deploy(&module, "bench", "bench", args.slots)
        .await?;
    let body = json!({
        "activity_type": args.activity_type,
        "task_queue": "bench",
        "start_to_close_timeout": "30s",
    });

    println!(
        "{} no-op activities in windows of {}, retention {}, --sync {}, {} starts in flight",
        args.activities, args.window, args.retention, args.sync, args.concurrency
    );
    println!(
        "{:>10} {:>9} {:>12} {:>10} {:>10} {:>10} {:>10}",
        "done", "elapsed", "activities/s", "RSS MiB", "db MiB", "WAL MiB", "s2s p99"
    );
    let t0 = Instant::now();
    let cpu0 = cpu_seconds(child.pid());
    let mut windows = Vec::new();
    let mut done = 0usize;
    while done < args.activities {
        let n = args.window.min(args.activities - done);
        let before = scrape(&http, child.base(), None).await?;
        let started = Instant::now();
        super::start_many(&ns, body.clone(), n, args.concurrency, 1).await?;
        done += n;
        wait_completed(&http, &child, done as u64).await?;
        let rate = n as f64 / started.elapsed().as_secs_f64();
        let after = scrape(&http, child.base(), None).await?;
        let w = Window {
            rate,
            rss_mib: rss_bytes(child.pid()).unwrap_or(0) as f64 / (1 << 20) as f64,
            db_mib: mib(&data.join("wharf.db")),
            wal_mib: mib(&data.join("wharf.db-wal")),
            s2s_p99: s2s_quantile(&before, &after, 0.99),
        };
        println!(
            "{:>10} {:>8.0}s {:>12.0} {:>10.1} {:>10.1} {:>10.1} {:>10}",
            done,
            t0.elapsed().as_secs_f64(),
            w.rate,
            w.rss_mib,
            w.db_mib,
            w.wal_mib,
            w.s2s_p99
                .map_or("-".into(), |s| format!("≤{:.1}ms", s * 1e3))
        );
        windows.push(w);
    }
    if let (Some(a), Some(b)) = (cpu0, cpu_seconds(child.pid())) {
        println!(
            "server CPU per activity: {:.0} µs",
            (b - a) * 1e6 / args.activities as f64
        );
    }
    summarize(&windows, &args.retention, t0.elapsed());
    Ok(())
}

/// Compares the last window with the first one that began after a
/// retention period had passed (the first deletions), or with the second
/// window if the run is shorter than that.
fn summarize(windows: &[Window], retention: &str, elapsed: Duration) {
    let Some(last) = windows.last() else { return };
    let retention = humantime::parse_duration(retention).unwrap_or(Duration::ZERO);
    let per_window = elapsed.as_secs_f64() / windows.len() as f64;
    let warm = if per_window > 0.0 {
        ((retention.as_secs_f64() / per_window).ceil() as usize).max(1)
    } else {
        1
    };
    let Some(first) = windows.get(warm.min(windows.len() - 1)) else {
        return;
    };
    let ratio = |a: f64, b: f64| if a > 0.0 { b / a } else { f64::NAN };
    println!(
        "last window against window {} (first after a retention period): \
         RSS {:.2}x, db + WAL {:.2}x, throughput {:.2}x",
        warm.min(windows.len() - 1) + 1,
        ratio(first.rss_mib, last.rss_mib),
        ratio(first.db_mib + first.wal_mib, last.db_mib + last.wal_mib),
        ratio(first.rate, last.rate)
    );
    println!("(goal: RSS and disk within 1.2x, throughput at least 0.9x)");
}

/// Schedule-to-start quantile `q` of the observations between two scrapes.
fn s2s_quantile(before: &str, after: &str, q: f64) -> Option<f64> {
    quantile_between(before, after, "wharf_schedule_to_start_seconds", q)
}

/// Size of a file in MiB; 0 if it does not exist.
fn mib(path: &Path) -> f64 {
    std::fs::metadata(path).map_or(0.0, |m| m.len() as f64 / (1 << 20) as f64)
}
