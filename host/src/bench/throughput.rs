//! `wharf bench throughput`: end-to-end durable activities per second.
//!
//! Starts a `wharf serve` child per durability mode (`full` then `normal`
//! unless `--sync` says otherwise) on a fresh data directory, uploads the
//! no-op module, runs `--warm-up` no-ops untimed, then (1) starts N
//! activities through the HTTP API with many starts in flight (one per
//! request, or `--batch` per request) and times first start to last
//! completion, (2) starts activities at half that rate and reads the
//! schedule-to-start histogram from `/metrics`, and (3) on the idle server,
//! runs no-ops one after another over one connection (start, then the
//! result's long poll) and times each start to its result. Beside them it
//! times what the disk of the data directory takes to make a small write
//! durable, the floor of a commit at `--sync full`.

use super::harness::{
    self, cpu_seconds, cpu_seconds_by_thread, percentile, quantile_between, scrape,
};
use super::Server;
use crate::store::Durability;
use anyhow::Context as _;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Arguments of `wharf bench throughput`.
#[derive(clap::Args)]
pub struct ThroughputArgs {
    /// The no-op activity component.
    #[arg(long)]
    module: PathBuf,
    /// Activity type to start.
    #[arg(long, default_value = "noop")]
    activity_type: String,
    /// Activities in the throughput run, 1 to 10 000 000.
    #[arg(short = 'n', long, default_value_t = 20_000,
          value_parser = super::count(1..=10_000_000))]
    activities: usize,
    /// Starts in flight at once, 1 to 100 000 (with `--batch`, in requests
    /// of that many).
    #[arg(long, default_value_t = 256,
          value_parser = super::count(1..=100_000))]
    concurrency: usize,
    /// Starts per request in the throughput and half-load runs, 1 to 1000:
    /// above 1, through `activities:batch`.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1000))]
    batch: u16,
    /// No-ops run one after another on the idle server for start→result
    /// latency, 0 to 1 000 000 (0: skip).
    #[arg(long, default_value_t = 500,
          value_parser = super::count(0..=1_000_000))]
    idle: usize,
    /// The `wharf` binary to serve with (default: this one), to compare a
    /// build's server under the same client.
    #[arg(long)]
    server: Option<PathBuf>,
    /// Worker slots of the benchmark queue.
    #[arg(long, default_value_t = 256)]
    slots: u32,
    /// How long the half-load latency run lasts (100 ms to 1 h).
    #[arg(long, default_value = "5s",
          value_parser = super::duration(Duration::from_millis(100), Duration::from_secs(3600)))]
    latency_run: Duration,
    /// No-ops run on each server before its timed run, untimed, 0 to
    /// 10 000 000: the timed run then meets a server (and client) whose
    /// memory and caches a load has already grown.
    #[arg(long, default_value_t = 0, value_parser = super::count(0..=10_000_000))]
    warm_up: usize,
    /// The durability modes to serve at, in order, each on a server of its
    /// own: 1 to 4 of `full` and `normal`, comma-separated (a mode named
    /// twice runs twice, to show what going first does to a run).
    #[arg(long, default_value = "full,normal", value_parser = modes)]
    sync: Modes,
}

/// The durability modes of `--sync`, in order.
#[derive(Clone)]
struct Modes(Vec<Durability>);

/// Most runs `--sync` may ask for.
const MAX_MODES: usize = 4;

/// Reads `--sync`: 1 to [`MAX_MODES`] modes, comma-separated.
fn modes(text: &str) -> Result<Modes, String> {
    use clap::ValueEnum as _;
    let modes = text
        .split(',')
        .map(|m| Durability::from_str(m.trim(), false))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| format!("{text:?}: each mode is full or normal"))?;
    if (1..=MAX_MODES).contains(&modes.len()) {
        Ok(Modes(modes))
    } else {
        Err(format!("1 to {MAX_MODES} modes, got {}", modes.len()))
    }
}

/// Runs the benchmark at each durability mode asked for and prints a table.
pub async fn run(args: ThroughputArgs) -> anyhow::Result<()> {
    super::build_kind();
    let module = std::fs::read(&args.module)
        .with_context(|| format!("cannot read {}", args.module.display()))?;
    let batch = usize::from(args.batch);
    println!(
        "{} no-op activities through the HTTP API, {} starts in flight, {} per request, {} worker slots",
        args.activities, args.concurrency, batch, args.slots
    );
    println!(
        "{:<8} {:>14} {:>12} | {:>12} {:>10} {:>10} | {:>10} {:>10}",
        "sync",
        "activities/s",
        "seconds",
        "half load/s",
        "s2s p50",
        "s2s p99",
        "idle p50",
        "idle p99"
    );
    let program = match &args.server {
        Some(p) => p.clone(),
        None => std::env::current_exe()?,
    };
    let mut cpu_notes = Vec::new();
    let mut disk_note = None;
    for sync in args.sync.0.iter().map(|d| d.name()) {
        let child = Server::start_binary(&program, sync, args.slots, |_| Ok(Vec::new()))?;
        if disk_note.is_none() {
            disk_note = Some(disk_flushes(&child.dir, DISK_FLUSHES)?);
        }
        let http = crate::api::listen::client()
            .pool_max_idle_per_host(args.concurrency)
            .build()?;
        let ns = child.process.namespace(&http, "default", None);
        ns.upload_and_deploy(&module, "bench", "bench", args.slots)
            .await?;
        let body = json!({
            "activity_type": args.activity_type,
            "task_queue": "bench",
            "start_to_close_timeout": "30s",
        });

        if args.warm_up > 0 {
            super::start_many(&ns, body.clone(), args.warm_up, args.concurrency, batch).await?;
            wait_completed(&http, &child, args.warm_up as u64).await?;
        }
        let done_before = args.warm_up;

        // Throughput: as fast as the server acknowledges.
        let cpu0 = (cpu_seconds(child.pid()), cpu_seconds(std::process::id()));
        let threads0 = cpu_seconds_by_thread(child.pid());
        let t0 = Instant::now();
        super::start_many(&ns, body.clone(), args.activities, args.concurrency, batch).await?;
        wait_completed(&http, &child, (done_before + args.activities) as u64).await?;
        let elapsed = t0.elapsed();
        let rate = args.activities as f64 / elapsed.as_secs_f64();
        let cpu1 = (cpu_seconds(child.pid()), cpu_seconds(std::process::id()));
        let per = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => format!("{:.0}", (b - a) * 1e6 / args.activities as f64),
            _ => "-".into(),
        };
        let peak = harness::peak_rss_bytes(child.pid()).map_or("-".into(), |b| {
            format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
        });
        cpu_notes.push(format!(
            "{sync}: CPU per activity: server {} µs ({}), benchmark client {} µs; server's peak resident memory {peak}",
            per(cpu0.0, cpu1.0),
            by_thread(
                &threads0,
                &cpu_seconds_by_thread(child.pid()),
                args.activities
            ),
            per(cpu0.1, cpu1.1)
        ));

        // Latency at half that load, in requests of the same size: a rate
        // measured with batches is more than single starts could carry.
        let before = scrape(&http, child.base(), None).await?;
        // Bounded: a rate read off a run too short to time is no rate.
        let half = (rate / 2.0).clamp(1.0, 10_000_000.0);
        let requests = ((half * args.latency_run.as_secs_f64()) as usize / batch).max(1);
        let total = requests * batch;
        let pace = super::load::Pace::Every(Duration::from_secs_f64(batch as f64 / half));
        super::start_paced(&ns, body.clone(), (total, batch), args.concurrency, pace).await?;
        wait_completed(
            &http,
            &child,
            (done_before + args.activities + total) as u64,
        )
        .await?;
        let after = scrape(&http, child.base(), None).await?;
        let fmt = |q| {
            quantile_between(&before, &after, "wharf_schedule_to_start_seconds", q)
                .map_or("-".into(), |s| format!("≤{:.2}ms", s * 1e3))
        };
        let idle = idle_latency(child.base(), &args.activity_type, args.idle).await?;
        let ms = |p| {
            percentile(&idle, p).map_or("-".into(), |d: Duration| {
                format!("{:.2}ms", d.as_secs_f64() * 1e3)
            })
        };
        println!(
            "{:<8} {:>14.0} {:>12.2} | {:>12.0} {:>10} {:>10} | {:>10} {:>10}",
            sync,
            rate,
            elapsed.as_secs_f64(),
            half,
            fmt(0.5),
            fmt(0.99),
            ms(50),
            ms(99)
        );
    }
    println!(
        "(s2s: schedule-to-start, from the task joining its queue (as the start's row is queued for \
         writing) to a worker taking it; bucket bounds)"
    );
    println!("(idle: start→result of one no-op at a time over one connection, start then the result's long poll)");
    if let Some(note) = disk_note {
        println!("{note}");
    }
    for n in cpu_notes {
        println!("{n}");
    }
    Ok(())
}

/// Writes timed in [`disk_flushes`].
const DISK_FLUSHES: usize = 200;

/// Times `n` writes of 4 KiB, each made durable (`fdatasync`), in a file
/// of its own in `dir`, beside the data directory (removed after). At
/// `--sync full` every commit waits for at least one such flush, and a
/// start then its result on an idle server for two, or for one when the
/// attempt's end joins its start's commit. A line of the p50 and p99 for
/// the table's notes.
fn disk_flushes(dir: &Path, n: usize) -> anyhow::Result<String> {
    use std::io::Write as _;
    let path = dir.join("flush-probe");
    let failed = |what: &str| format!("cannot {what} {}", path.display());
    let mut file = std::fs::File::create(&path).with_context(|| failed("create"))?;
    let page = [0x5au8; 4096];
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        file.write_all(&page).with_context(|| failed("write to"))?;
        let t = Instant::now();
        file.sync_data().with_context(|| failed("flush"))?;
        times.push(t.elapsed());
    }
    drop(file);
    std::fs::remove_file(&path).with_context(|| failed("remove"))?;
    times.sort();
    let ms = |p| percentile(&times, p).map_or(0.0, |d: Duration| d.as_secs_f64() * 1e3);
    Ok(format!(
        "disk: a 4 KiB write made durable (fdatasync) on the data directory's file system: \
         p50 {:.2}ms, p99 {:.2}ms over {n} writes; at --sync full every commit waits for one",
        ms(50),
        ms(99)
    ))
}

/// Runs `n` no-ops one after another on the otherwise idle server over one
/// HTTP connection: each a start, then its result's long poll. The sorted
/// times from sending the start to reading the result.
///
/// The loop drives its connection itself ([`super::load::Conn`]), on a
/// thread of its own under a single-threaded runtime: on the benchmark's
/// multi-threaded runtime each request crossed from the awaiting thread to
/// the connection's and back, about 0.1 ms per activity that was the
/// client's, not the server's.
async fn idle_latency(base: &str, activity_type: &str, n: usize) -> anyhow::Result<Vec<Duration>> {
    let url = format!("{base}/api/v1/namespaces/default");
    let activity_type = activity_type.to_owned();
    super::on_own_thread("bench-idle", move || async move {
        idle_loop(&url, &activity_type, n).await
    })
    .await
}

async fn idle_loop(url: &str, activity_type: &str, n: usize) -> anyhow::Result<Vec<Duration>> {
    use super::load::{path_of, Conn, Endpoint};
    let path = |rest: &str| path_of(&reqwest::Url::parse(&format!("{url}/{rest}"))?);
    let server = Endpoint::new(&reqwest::Url::parse(url)?, None)?;
    let mut conn = Conn::open(&server).await?;
    let mut times = Vec::with_capacity(n);
    let start_path = path("activities")?;
    for i in 0..n {
        let id = format!("idle-{i}");
        let body = serde_json::to_vec(&json!({
            "activity_id": id,
            "activity_type": activity_type,
            "task_queue": "bench",
            "start_to_close_timeout": "30s",
        }))?;
        let result_path = path(&format!("activities/{id}/result?wait=30s"))?;
        let t = Instant::now();
        let (status, answer) = conn
            .send(server.request(http::Method::POST, start_path.clone(), body.into()))
            .await?;
        harness::successful("start", status, answer)?;
        let (status, answer) = conn
            .send(server.request(http::Method::GET, result_path, bytes::Bytes::new()))
            .await?;
        let answer = harness::successful("result", status, answer)?;
        times.push(t.elapsed());
        let result: serde_json::Value = serde_json::from_slice(&answer).unwrap_or_default();
        anyhow::ensure!(
            result["state"] == "completed",
            "idle activity {id} did not complete: {result}"
        );
    }
    times.sort();
    Ok(times)
}

/// Waits until the server has completed `n` activities in all.
pub(super) async fn wait_completed(
    http: &reqwest::Client,
    server: &Server,
    n: u64,
) -> anyhow::Result<()> {
    harness::wait_completed(http, server.base(), None, n, Duration::from_millis(2))
        .await
        .context("the benchmark's activities did not complete")
}

/// The server's CPU per activity by thread name, largest first: where a
/// change to the path went (e.g. `tokio-rt-worker 20, wharf-db-writer 13`).
fn by_thread(
    before: &std::collections::BTreeMap<String, f64>,
    after: &std::collections::BTreeMap<String, f64>,
    activities: usize,
) -> String {
    let mut spent: Vec<(&str, f64)> = after
        .iter()
        .map(|(name, s)| {
            let was = before.get(name).copied().unwrap_or(0.0);
            (name.as_str(), (s - was) * 1e6 / activities.max(1) as f64)
        })
        .filter(|(_, us)| *us >= 0.5)
        .collect();
    spent.sort_by(|a, b| b.1.total_cmp(&a.1));
    let parts: Vec<String> = spent
        .iter()
        .map(|(name, us)| format!("{name} {us:.0}"))
        .collect();
    if parts.is_empty() {
        "threads not read".into()
    } else {
        parts.join(", ")
    }
}
