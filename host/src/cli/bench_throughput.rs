//! `wharf bench throughput`: end-to-end durable activities per second.
//!
//! Starts a `wharf serve` child per durability mode on a fresh data
//! directory, uploads the no-op module, then (1) starts N activities through
//! the HTTP API with many requests in flight and times first start to last
//! completion, and (2) starts activities at half that rate and reads the
//! schedule-to-start histogram from `/metrics`.

use crate::metrics::{parse_buckets, quantile};
use anyhow::Context as _;
use serde_json::{json, Value};
use std::io::BufRead as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
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
    /// Activities in the throughput run.
    #[arg(short = 'n', long, default_value_t = 20_000)]
    activities: usize,
    /// Start requests in flight at once.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Worker slots of the benchmark queue.
    #[arg(long, default_value_t = 256)]
    slots: u32,
    /// How long the half-load latency run lasts.
    #[arg(long, default_value = "5s", value_parser = super::args::parse_duration)]
    latency_run: Duration,
}

pub(super) struct Child {
    pub(super) process: std::process::Child,
    pub(super) base: String,
    dir: PathBuf,
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(super) fn spawn_server(sync: &str, slots: u32) -> anyhow::Result<Child> {
    spawn_server_with(sync, slots, |_| Ok(Vec::new()))
}

/// Like [`spawn_server`], with more `wharf serve` arguments made from the
/// fresh data directory (e.g. a token file kept in it).
pub(super) fn spawn_server_with(
    sync: &str,
    slots: u32,
    extra: impl FnOnce(&std::path::Path) -> anyhow::Result<Vec<String>>,
) -> anyhow::Result<Child> {
    let dir = super::bench::tempdir()?;
    let extra = extra(&dir)?;
    let mut process = std::process::Command::new(std::env::current_exe()?)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--sync",
            sync,
            "--max-concurrent",
        ])
        .arg(slots.to_string())
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(&extra)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("cannot start wharf serve")?;
    let stdout = process.stdout.take().context("no stdout")?;
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .with_context(|| format!("unexpected startup line {line:?}"))?;
    Ok(Child {
        process,
        base: format!("http://{addr}"),
        dir,
    })
}

/// Runs the benchmark at both durability modes and prints a table.
pub async fn run(args: ThroughputArgs) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build of wharf; figures are not representative");
    }
    let module = std::fs::read(&args.module)
        .with_context(|| format!("cannot read {}", args.module.display()))?;
    println!(
        "{} no-op activities through the HTTP API, {} starts in flight, {} worker slots",
        args.activities, args.concurrency, args.slots
    );
    println!(
        "{:<8} {:>14} {:>12} | {:>12} {:>10} {:>10}",
        "sync", "activities/s", "seconds", "half load/s", "s2s p50", "s2s p99"
    );
    let mut cpu_notes = Vec::new();
    for sync in ["full", "normal"] {
        let child = spawn_server(sync, args.slots)?;
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(args.concurrency)
            .build()?;
        let ns = format!("{}/api/v1/namespaces/default", child.base);
        upload_and_deploy(&http, &ns, None, &module, "bench", "bench", args.slots).await?;
        let body = Arc::new(json!({
            "activity_type": args.activity_type,
            "task_queue": "bench",
            "start_to_close_timeout": "30s",
        }));

        // Throughput: as fast as the server acknowledges.
        let cpu0 = (
            cpu_seconds(child.process.id()),
            cpu_seconds(std::process::id()),
        );
        let t0 = Instant::now();
        let next = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..args.concurrency)
            .map(|_| {
                let (http, ns, body, next, n) = (
                    http.clone(),
                    ns.clone(),
                    body.clone(),
                    next.clone(),
                    args.activities,
                );
                tokio::spawn(async move {
                    while next.fetch_add(1, Ordering::Relaxed) < n {
                        start(&http, &ns, &body).await?;
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        for w in workers {
            w.await??;
        }
        wait_completed(&http, &child.base, args.activities as u64).await?;
        let elapsed = t0.elapsed();
        let rate = args.activities as f64 / elapsed.as_secs_f64();
        let cpu1 = (
            cpu_seconds(child.process.id()),
            cpu_seconds(std::process::id()),
        );
        let per = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => format!("{:.0}", (b - a) * 1e6 / args.activities as f64),
            _ => "-".into(),
        };
        cpu_notes.push(format!(
            "{sync}: CPU per activity: server {} µs, benchmark client {} µs",
            per(cpu0.0, cpu1.0),
            per(cpu0.1, cpu1.1)
        ));

        // Latency at half that load.
        let before = scrape(&http, &child.base).await?;
        let half = (rate / 2.0).max(1.0);
        let total = (half * args.latency_run.as_secs_f64()) as usize;
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / half));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut pending = Vec::with_capacity(total);
        for _ in 0..total {
            tick.tick().await;
            let (http, ns, body) = (http.clone(), ns.clone(), body.clone());
            pending.push(tokio::spawn(async move { start(&http, &ns, &body).await }));
        }
        for p in pending {
            p.await??;
        }
        wait_completed(&http, &child.base, (args.activities + total) as u64).await?;
        let after = scrape(&http, &child.base).await?;
        let b = parse_buckets(&before, "wharf_schedule_to_start_seconds");
        let a = parse_buckets(&after, "wharf_schedule_to_start_seconds");
        let diff: Vec<(f64, u64)> = a
            .iter()
            .zip(b.iter().chain(std::iter::repeat(&(0.0, 0))))
            .map(|((le, x), (_, y))| (*le, x - y))
            .collect();
        let fmt = |q| quantile(&diff, q).map_or("-".into(), |s| format!("≤{:.2}ms", s * 1e3));
        println!(
            "{:<8} {:>14.0} {:>12.2} | {:>12.0} {:>10} {:>10}",
            sync,
            rate,
            elapsed.as_secs_f64(),
            half,
            fmt(0.5),
            fmt(0.99)
        );
    }
    println!("(s2s: schedule-to-start, from the start's commit to a worker taking the task; bucket bounds)");
    for n in cpu_notes {
        println!("{n}");
    }
    Ok(())
}

/// Uploads `wasm` as `module` to the namespace at URL `ns` and deploys it
/// to `queue` with `slots` worker slots; `token` when the server requires one.
pub(super) async fn upload_and_deploy(
    http: &reqwest::Client,
    ns: &str,
    token: Option<&str>,
    wasm: &[u8],
    module: &str,
    queue: &str,
    slots: u32,
) -> anyhow::Result<()> {
    let auth = |r: reqwest::RequestBuilder| match token {
        Some(t) => r.bearer_auth(t),
        None => r,
    };
    let up = auth(http.post(format!("{ns}/modules?name={module}")))
        .body(wasm.to_vec())
        .send()
        .await?;
    anyhow::ensure!(
        up.status().is_success(),
        "upload failed: {}",
        up.text().await?
    );
    let dep = auth(http.put(format!("{ns}/task-queues/{queue}/deployment")))
        .json(&json!({"module": module, "max_concurrent": slots}))
        .send()
        .await?;
    anyhow::ensure!(
        dep.status().is_success(),
        "deploy failed: {}",
        dep.text().await?
    );
    Ok(())
}

/// User + system CPU time of a process so far, from /proc (Linux).
pub(super) fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

pub(super) async fn start(http: &reqwest::Client, ns: &str, body: &Value) -> anyhow::Result<()> {
    start_as(http, ns, None, body).await
}

/// Starts an activity in the namespace at URL `ns`, with `token` when the
/// server requires one.
pub(super) async fn start_as(
    http: &reqwest::Client,
    ns: &str,
    token: Option<&str>,
    body: &Value,
) -> anyhow::Result<()> {
    let mut req = http.post(format!("{ns}/activities")).json(body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let r = req.send().await?;
    anyhow::ensure!(
        r.status().as_u16() == 201,
        "start failed: {}",
        r.text().await?
    );
    Ok(())
}

async fn scrape(http: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    Ok(http
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?)
}

pub(super) async fn wait_completed(
    http: &reqwest::Client,
    base: &str,
    n: u64,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let text = scrape(http, base).await?;
        let done = text
            .lines()
            .find_map(|l| l.strip_prefix("wharf_activities_completed_total "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if done >= n {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {done} of {n} activities completed"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
