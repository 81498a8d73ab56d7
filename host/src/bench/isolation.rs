//! `wharf bench isolation`: what an adversarial tenant costs the others.
//!
//! Starts one `wharf serve` child with authentication and two namespaces:
//! tenant B runs the no-op module, tenant A the adversary module under a
//! small quota (concurrent attempts, memory per attempt). Each phase runs
//! B twice: a throughput round (N no-ops with C start requests in flight,
//! first start to last completion) and a latency round (no-ops started at a
//! fixed rate, each one's schedule-to-start read from its attempt history,
//! since the `/metrics` histogram mixes both tenants). Three phases side by
//! side: `B alone` has A idle; in `A+B 1:1` A keeps a backlog of busy loops
//! and memory bombs deep enough to fill every slot of its quota, starting a
//! new one as each fails, both namespaces at the default `cpu_weight` of 1;
//! `A+B 1:4` is the same with B's weight raised to 4. The table shows B's
//! figures against `B alone`, the guest CPU seconds each tenant used in the
//! phase, and whether the goals of fair CPU sharing were met.

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
    /// Activities in each throughput round of tenant B (1 to 1 000 000).
    #[arg(short = 'n', long, default_value_t = 1_000, value_parser = super::count(1..=1_000_000))]
    activities: usize,
    /// Tenant B's start requests in flight in the throughput round (1 to
    /// 100 000).
    #[arg(long, default_value_t = 32, value_parser = super::count(1..=100_000))]
    concurrency: usize,
    /// Tenant B's starts per second in the latency round (1 to 100 000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    rate: u32,
    /// How long each latency round lasts (100 ms to 1 h).
    #[arg(long, default_value = "5s",
          value_parser = super::duration(Duration::from_millis(100), Duration::from_secs(3600)))]
    latency_run: Duration,
    /// Tenant A's quota of concurrent attempts, all kept busy (1 to 1 000).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1000))]
    adversary_slots: u32,
    /// Tenant A's memory per attempt, in MiB (what a memory bomb reaches), 1
    /// to 4 096.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    adversary_memory_mib: u64,
    /// Start-to-close timeout of tenant A's busy loops (100 ms to 1 h).
    #[arg(long, default_value = "2s",
          value_parser = super::duration(Duration::from_millis(100), Duration::from_secs(3600)))]
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
    let http = crate::api::listen::client()
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

    let alone = phase(&args, &b, &a, &child, "B alone").await?;
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
    let even = phase(&args, &b, &a, &child, "A+B 1:1").await;
    let favoured = match even {
        Ok(_) => match b.set_cpu_weight(4).await {
            Ok(()) => phase(&args, &b, &a, &child, "A+B 1:4").await,
            Err(e) => Err(e),
        },
        Err(_) => Err(anyhow::anyhow!("not run")),
    };
    let ended_during = ended.load(Ordering::Relaxed) - ended_before;
    stop.store(true, Ordering::Relaxed);
    for lane in lanes {
        lane.await??;
    }
    let (even, favoured) = (even?, favoured?);
    let running = a.usage().await?;

    println!(
        "{:<9} {:>10} {:>6} {:>8} {:>8} {:>6} {:>8} {:>9} {:>9} {:>8} {:>11}",
        "phase",
        "B act/s",
        "×solo",
        "s2s p50",
        "s2s p99",
        "×solo",
        "s2s max",
        "B CPU s",
        "A CPU s",
        "wall s",
        "server µs/B"
    );
    let ratio = |x: f64, y: f64| if y > 0.0 { x / y } else { f64::NAN };
    for p in [&alone, &even, &favoured] {
        println!(
            "{:<9} {:>10.0} {:>6.2} {:>5} ms {:>5} ms {:>6.2} {:>5} ms {:>9.2} {:>9.2} {:>8.1} {:>11.0}",
            p.name,
            p.rate,
            ratio(p.rate, alone.rate),
            p.p50,
            p.p99,
            ratio(p.p99 as f64, alone.p99.max(1) as f64),
            p.max,
            p.b_cpu,
            p.a_cpu,
            p.wall,
            p.cpu_us
        );
    }
    let met = |ok: bool| if ok { "met" } else { "MISSED" };
    let p99_ok = [&even, &favoured]
        .iter()
        .all(|p| p.p99 <= 2 * alone.p99.max(1));
    println!(
        "goals: B ≥ 0.45× solo at 1:1 ({}), ≥ 0.70× at 1:4 ({}), B's p99 ≤ 2× solo ({})",
        met(ratio(even.rate, alone.rate) >= 0.45),
        met(ratio(favoured.rate, alone.rate) >= 0.70),
        met(p99_ok)
    );
    println!(
        "(×solo: against `B alone`; s2s: schedule-to-start of B's latency round, from the \
         attempt history, whole ms (a p99 under 1 ms counts as 1 ms); CPU s: guest CPU of \
         attempts that ended in the phase, from `namespace describe`; server µs/B: the \
         server's whole CPU, A's attempts included, per B activity of the throughput round)"
    );
    println!(
        "tenant A: {ended_during} loops and memory bombs ended during the attacked phases; \
         namespace usage {running}"
    );
    Ok(())
}

/// Tenant B's figures in one phase, and the guest CPU both tenants used.
struct Phase {
    name: &'static str,
    rate: f64,
    p50: u64,
    p99: u64,
    max: u64,
    cpu_us: f64,
    b_cpu: f64,
    a_cpu: f64,
    wall: f64,
}

async fn phase(
    args: &IsolationArgs,
    b: &Tenant,
    a: &Tenant,
    child: &Server,
    name: &'static str,
) -> anyhow::Result<Phase> {
    let (a0, b0, t0) = (a.guest_cpu().await?, b.guest_cpu().await?, Instant::now());
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
        b_cpu: b.guest_cpu().await? - b0,
        a_cpu: a.guest_cpu().await? - a0,
        wall: t0.elapsed().as_secs_f64(),
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

    /// Guest CPU seconds of the namespace's ended attempts.
    async fn guest_cpu(&self) -> anyhow::Result<f64> {
        let usage = self.usage().await?;
        usage["guest_cpu_seconds"]
            .as_f64()
            .with_context(|| format!("no guest_cpu_seconds in {usage}"))
    }

    /// Sets the namespace's `cpu_weight` quota, as the admin.
    async fn set_cpu_weight(&self, weight: u32) -> anyhow::Result<()> {
        let patch = self
            .as_admin
            .request(Method::PATCH, "")
            .json(&json!({"quotas": {"cpu_weight": weight}}));
        expect_success(patch, "setting cpu_weight").await?;
        Ok(())
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
