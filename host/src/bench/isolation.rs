//! `wharf bench isolation`: what an adversarial tenant costs the others.
//!
//! Starts one `wharf serve` child with authentication and two namespaces:
//! tenant B runs the no-op module, tenant A the adversary module under a
//! small quota (concurrent attempts, memory per attempt). Each phase runs
//! B twice: a throughput round (N no-ops with C start requests in flight,
//! first start to last completion) and a latency round (no-ops started at a
//! fixed rate, each one's schedule-to-start read from its attempt history,
//! since the `/metrics` histogram mixes both tenants). The `alone` phase has
//! A idle; in the `attacked` phase A keeps a backlog of busy loops and
//! memory bombs deep enough to fill every slot of its quota, starting a new
//! one as each fails. The table shows both phases and their ratios.

use super::harness::{self, cpu_seconds, expect_success, percentile, Namespace};
use super::Server;
use anyhow::Context as _;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Arguments of `wharf bench isolation`.
#[derive(clap::Args)]
pub struct IsolationArgs {
    /// Tenant B's no-op activity component.
    #[arg(long)]
    module: PathBuf,
    /// Tenant A's component: the `adversary` test fixture (`loop`,
    /// `memory-bomb`).
    #[arg(long)]
    adversary: PathBuf,
    /// Activity type tenant B starts.
    #[arg(long, default_value = "noop")]
    activity_type: String,
    /// Activities in each throughput round of tenant B.
    #[arg(short = 'n', long, default_value_t = 1_000)]
    activities: usize,
    /// Tenant B's start requests in flight in the throughput round.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Tenant B's starts per second in the latency round.
    #[arg(long, default_value_t = 100)]
    rate: u32,
    /// How long each latency round lasts.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    latency_run: Duration,
    /// Tenant A's quota of concurrent attempts (all kept busy).
    #[arg(long, default_value_t = 4)]
    adversary_slots: u32,
    /// Tenant A's memory per attempt, in MiB (what a memory bomb reaches).
    #[arg(long, default_value_t = 64)]
    adversary_memory_mib: u64,
    /// Start-to-close timeout of tenant A's busy loops.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    loop_timeout: Duration,
}

/// The admin token of the benchmark's server (it listens on loopback only
/// and lives as long as the run).
const ADMIN: &str = "wharf-bench-isolation-admin-token";

/// Runs both phases and prints the table.
pub async fn run(args: IsolationArgs) -> anyhow::Result<()> {
    let build = super::build_kind();
    anyhow::ensure!(
        args.activities > 0 && args.rate > 0,
        "-n and --rate must be at least 1"
    );
    let noop = std::fs::read(&args.module)
        .with_context(|| format!("cannot read {}", args.module.display()))?;
    let adversary = std::fs::read(&args.adversary)
        .with_context(|| format!("cannot read {}", args.adversary.display()))?;
    let child = Server::start("full", 256, |dir| {
        let file = dir.join("admin-token");
        std::fs::write(&file, ADMIN).context("cannot write the admin token file")?;
        Ok(vec![
            "--admin-token-file".into(),
            file.to_string_lossy().into_owned(),
        ])
    })?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency.max(64))
        .build()?;
    let api = Api {
        http: http.clone(),
        server: child.base().to_owned(),
    };
    let b = api.tenant(ADMIN, "b", json!({})).await?;
    let a = api
        .tenant(
            ADMIN,
            "a",
            json!({"max_concurrent_attempts": args.adversary_slots,
                   "max_memory_per_attempt": args.adversary_memory_mib << 20}),
        )
        .await?;
    b.deploy(&noop, "noop", "bench").await?;
    a.deploy(&adversary, "adversary", "q").await?;

    println!(
        "tenant B: {} `{}` activities with {} starts in flight, then {}/s for {:.0} s; \
         tenant A: {} slots, {} MiB per attempt ({build} build)",
        args.activities,
        args.activity_type,
        args.concurrency,
        args.rate,
        args.latency_run.as_secs_f64(),
        args.adversary_slots,
        args.adversary_memory_mib
    );
    // Warm up B's module (first instantiation) before anything is measured.
    b.throughput(&args, "warm", 50.min(args.activities)).await?;

    let alone = phase(&args, &b, &child, "alone").await?;
    let stop = Arc::new(AtomicBool::new(false));
    let ended = Arc::new(AtomicUsize::new(0));
    let lanes: Vec<_> = (0..2 * args.adversary_slots as usize)
        .map(|lane| {
            let (a, stop, ended, timeout) =
                (a.clone(), stop.clone(), ended.clone(), args.loop_timeout);
            tokio::spawn(async move { a.attack(lane, timeout, &stop, &ended).await })
        })
        .collect();
    // Let A's backlog build and its slots fill before B is measured.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ended_before = ended.load(Ordering::Relaxed);
    let attacked = phase(&args, &b, &child, "attacked").await;
    let ended_during = ended.load(Ordering::Relaxed) - ended_before;
    stop.store(true, Ordering::Relaxed);
    for lane in lanes {
        lane.await??;
    }
    let attacked = attacked?;
    let running = a.usage().await?;

    println!(
        "{:<10} {:>14} {:>10} {:>10} {:>10} {:>16}",
        "phase", "B activities/s", "s2s p50", "s2s p99", "s2s max", "server CPU/act"
    );
    for p in [&alone, &attacked] {
        println!(
            "{:<10} {:>14.0} {:>8} ms {:>7} ms {:>7} ms {:>13.0} µs",
            p.name, p.rate, p.p50, p.p99, p.max, p.cpu_us
        );
    }
    let ratio = |x: f64, y: f64| if y > 0.0 { x / y } else { f64::NAN };
    println!(
        "{:<10} {:>14.2} {:>10.2} {:>10.2} {:>10.2}",
        "ratio",
        ratio(attacked.rate, alone.rate),
        ratio(attacked.p50 as f64, alone.p50 as f64),
        ratio(attacked.p99 as f64, alone.p99 as f64),
        ratio(attacked.max as f64, alone.max as f64),
    );
    println!(
        "(ratio: attacked / alone; s2s: schedule-to-start of B's latency round, \
         from the attempt history, whole ms; server CPU includes tenant A's attempts)"
    );
    println!(
        "tenant A: {ended_during} loops and memory bombs ended during the attacked phase; \
         namespace usage {running}"
    );
    Ok(())
}

/// Tenant B's figures in one phase.
struct Phase {
    name: &'static str,
    rate: f64,
    p50: u64,
    p99: u64,
    max: u64,
    cpu_us: f64,
}

async fn phase(
    args: &IsolationArgs,
    b: &Tenant,
    child: &Server,
    name: &'static str,
) -> anyhow::Result<Phase> {
    let cpu0 = cpu_seconds(child.pid());
    let rate = b.throughput(args, name, args.activities).await?;
    let cpu1 = cpu_seconds(child.pid());
    let mut s2s = b.latency(args, name).await?;
    s2s.sort_unstable();
    let pct = |p| percentile(&s2s, p).unwrap_or(0);
    Ok(Phase {
        name,
        rate,
        p50: pct(50),
        p99: pct(99),
        max: s2s.last().copied().unwrap_or(0),
        cpu_us: match (cpu0, cpu1) {
            (Some(a), Some(b)) => (b - a) * 1e6 / args.activities as f64,
            _ => f64::NAN,
        },
    })
}

/// The namespaces API of the server.
struct Api {
    http: reqwest::Client,
    /// The server's base URL.
    server: String,
}

impl Api {
    /// Creates namespace `name` with `quotas` and a token for it.
    async fn tenant(&self, admin: &str, name: &str, quotas: Value) -> anyhow::Result<Tenant> {
        let create = self
            .http
            .post(format!("{}/api/v1/namespaces", self.server))
            .bearer_auth(admin)
            .json(&json!({"name": name, "quotas": quotas}));
        expect_success(create, &format!("creating namespace {name}")).await?;
        let token = self
            .http
            .post(format!("{}/api/v1/namespaces/{name}/tokens", self.server))
            .bearer_auth(admin)
            .json(&json!({}));
        let token = expect_success(token, "creating a token").await?;
        let token = token["token"]
            .as_str()
            .with_context(|| format!("no token in {token}"))?
            .to_owned();
        let url = format!("{}/api/v1/namespaces/{name}", self.server);
        Ok(Tenant {
            ns: Namespace::new(self.http.clone(), &url, Some(&token)),
            as_admin: Namespace::new(self.http.clone(), &url, Some(admin)),
            http: self.http.clone(),
            server: Arc::from(self.server.as_str()),
        })
    }
}

/// Requests as one tenant, and about it as the admin.
#[derive(Clone)]
struct Tenant {
    ns: Namespace,
    as_admin: Namespace,
    http: reqwest::Client,
    /// The server's base URL.
    server: Arc<str>,
}

impl Tenant {
    async fn deploy(&self, wasm: &[u8], module: &str, queue: &str) -> anyhow::Result<()> {
        Ok(self.ns.upload_and_deploy(wasm, module, queue, 256).await?)
    }

    async fn start(&self, body: &Value) -> anyhow::Result<()> {
        Ok(self.ns.start(body).await?)
    }

    /// Waits for activity `id` to close; returns its description.
    async fn closed(&self, id: &str) -> anyhow::Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(120);
        let get = |path: String| expect_success(self.ns.request(Method::GET, &path), "describe");
        loop {
            let r = get(format!("activities/{id}/result?wait=30s")).await?;
            if r["closed"] == true {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "{id} did not close: {r}");
        }
        Ok(get(format!("activities/{id}")).await?)
    }

    /// `n` no-ops with `--concurrency` starts in flight; activities per
    /// second from the first start to the last completion.
    async fn throughput(&self, args: &IsolationArgs, tag: &str, n: usize) -> anyhow::Result<f64> {
        let before = self.completed().await?;
        let next = Arc::new(AtomicUsize::new(0));
        let t0 = Instant::now();
        let workers: Vec<_> = (0..args.concurrency.min(n))
            .map(|_| {
                let (me, next, tag) = (self.clone(), next.clone(), tag.to_owned());
                let activity_type = args.activity_type.clone();
                tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            return anyhow::Ok(());
                        }
                        me.start(&noop(&activity_type, format!("{tag}-t{i}")))
                            .await?;
                    }
                })
            })
            .collect();
        for w in workers {
            w.await??;
        }
        // Only B's activities complete (A's all fail), so the host-wide
        // counter tells when B's last one has; waiting on each activity in
        // turn would time the API's latency instead.
        let deadline = Instant::now() + Duration::from_secs(600);
        while self.completed().await? < before + n as u64 {
            anyhow::ensure!(Instant::now() < deadline, "B's activities did not complete");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(n as f64 / t0.elapsed().as_secs_f64())
    }

    /// No-ops at `--rate` for `--latency-run`; each one's schedule-to-start
    /// in ms.
    async fn latency(&self, args: &IsolationArgs, tag: &str) -> anyhow::Result<Vec<u64>> {
        let total = ((args.rate as f64 * args.latency_run.as_secs_f64()) as usize).max(1);
        let mut tick = tokio::time::interval(Duration::from_secs(1) / args.rate);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut pending = Vec::with_capacity(total);
        for i in 0..total {
            tick.tick().await;
            let (me, body) = (
                self.clone(),
                noop(&args.activity_type, format!("{tag}-l{i}")),
            );
            pending.push(tokio::spawn(async move { me.start(&body).await }));
        }
        for p in pending {
            p.await??;
        }
        let mut s2s = Vec::with_capacity(total);
        for i in 0..total {
            let d = self.closed(&format!("{tag}-l{i}")).await?;
            anyhow::ensure!(d["state"] == "completed", "B's activity failed: {d}");
            let started = d["attempts"][0]["started_ms"].as_u64();
            let scheduled = d["scheduled_ms"].as_u64();
            let (Some(started), Some(scheduled)) = (started, scheduled) else {
                anyhow::bail!("no attempt times in {d}");
            };
            s2s.push(started.saturating_sub(scheduled));
        }
        Ok(s2s)
    }

    /// One lane of tenant A's attack: a busy loop or a memory bomb at a
    /// time, the next started as soon as the last one failed.
    async fn attack(
        &self,
        lane: usize,
        loop_timeout: Duration,
        stop: &AtomicBool,
        ended: &AtomicUsize,
    ) -> anyhow::Result<()> {
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            let id = format!("attack-{lane}-{i}");
            let ty = if (lane + i).is_multiple_of(2) {
                "loop"
            } else {
                "memory-bomb"
            };
            self.start(
                &json!({"activity_id": id, "activity_type": ty, "task_queue": "q",
                               "start_to_close_timeout": format!("{}ms", loop_timeout.as_millis()),
                               "retry_policy": {"maximum_attempts": 1}}),
            )
            .await?;
            self.closed(&id).await?;
            ended.fetch_add(1, Ordering::Relaxed);
            i += 1;
        }
        Ok(())
    }

    /// Activities completed on the whole host (`/metrics`, admin only).
    async fn completed(&self) -> anyhow::Result<u64> {
        Ok(harness::completed(&self.http, &self.server, Some(ADMIN)).await?)
    }

    /// The namespace's usage counters, as the admin sees them.
    async fn usage(&self) -> anyhow::Result<Value> {
        let d = expect_success(self.as_admin.request(Method::GET, ""), "describe").await?;
        Ok(d["namespace"]["usage"].clone())
    }
}

/// The start request of one of tenant B's no-ops.
fn noop(activity_type: &str, id: String) -> Value {
    json!({"activity_id": id, "activity_type": activity_type, "task_queue": "bench",
           "start_to_close_timeout": "30s"})
}
