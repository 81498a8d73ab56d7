//! `wharf bench scheduler`: what priorities, fairness and limits cost.
//!
//! One `wharf serve` child, two queues deployed with the same no-op module:
//! `plain` with nothing configured, and `sched` with a rate limit and a
//! concurrency limit set far above what the run reaches, and every start
//! carrying a priority (1-5) and one of several weighted fairness keys.
//! Rounds alternate between the queues (and which goes first), so both see
//! the same machine state on average; a round's rate is its activities over
//! the time from the first start until all have completed, and its cost
//! is the server's CPU time per activity. The figures are medians; the
//! ratio is the median of the paired rounds' ratios.

use super::harness::{cpu_seconds, expect_success, Namespace};
use super::throughput::wait_completed;
use super::Server;
use crate::service::bounds;
use anyhow::Context as _;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Arguments of `wharf bench scheduler`.
#[derive(clap::Args)]
pub struct SchedulerArgs {
    /// The no-op activity component.
    #[arg(long)]
    module: PathBuf,
    /// Activity type to start.
    #[arg(long, default_value = "noop")]
    activity_type: String,
    /// Activities per round (1 to 10 000 000).
    #[arg(short = 'n', long, default_value_t = 5_000, value_parser = super::count(1..=10_000_000))]
    activities: usize,
    /// Rounds per queue (1 to 100).
    #[arg(long, default_value_t = 6, value_parser = super::count(1..=100))]
    rounds: usize,
    /// Start requests in flight at once (1 to 100 000).
    #[arg(long, default_value_t = 256, value_parser = super::count(1..=100_000))]
    concurrency: usize,
    /// Worker slots of each queue.
    #[arg(long, default_value_t = 256)]
    slots: u32,
    /// Durability of the server (`normal` keeps fsync out of the figure).
    #[arg(long, default_value = "normal")]
    sync: String,
    /// What the `sched` queue uses (to find the cost of each).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "priority,fairness,rate,limit"
    )]
    with: Vec<Feature>,
}

/// A scheduler feature the `sched` queue can be run with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Feature {
    /// Priorities 1-5 across starts.
    Priority,
    /// Eight fairness keys, weights 1-4.
    Fairness,
    /// A queue rate limit far above the run's rate.
    Rate,
    /// A concurrency limit on the queue's activity type, far above its slots.
    Limit,
}

/// Fairness keys used on the `sched` queue, weights 1 to 4.
const KEYS: usize = 8;

/// Runs the rounds and prints both figures and their ratio.
pub async fn run(args: SchedulerArgs) -> anyhow::Result<()> {
    super::build_kind();
    let module = std::fs::read(&args.module)
        .with_context(|| format!("cannot read {}", args.module.display()))?;
    let child = Server::start(&args.sync, args.slots, |_| Ok(Vec::new()))?;
    let http = crate::api::listen::client()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let ns = child.process.namespace(&http, "default", None);
    ns.upload(&module, "bench").await?;
    for q in ["plain", "sched"] {
        ns.deploy("bench", q, args.slots).await?;
    }
    let on = |f: Feature| args.with.contains(&f);
    if on(Feature::Rate) {
        let rate = ns
            .request(Method::PUT, "task-queues/sched")
            .json(&json!({"rate": bounds::MAX_RATE, "burst": bounds::MAX_BURST}));
        expect_success(rate, "rate limit").await?;
    }
    if on(Feature::Limit) {
        let limit = ns.request(Method::PUT, "concurrency-limits").json(&json!({
            "key": format!("queue:sched/type:{}", args.activity_type),
            "max_concurrent": bounds::MAX_CONCURRENT
        }));
        expect_success(limit, "concurrency limit").await?;
    }

    let plain: Vec<Value> = (0..args.activities)
        .map(|_| {
            json!({"activity_type": args.activity_type, "task_queue": "plain",
                   "start_to_close_timeout": "30s"})
        })
        .collect();
    let sched: Vec<Value> = (0..args.activities)
        .map(|i| {
            let mut b = json!({"activity_type": args.activity_type, "task_queue": "sched",
                               "start_to_close_timeout": "30s"});
            if on(Feature::Priority) {
                b["priority"] = (1 + i % 5).into();
            }
            if on(Feature::Fairness) {
                b["fairness_key"] = format!("k{}", i % KEYS).into();
                b["fairness_weight"] = (1 + (i % KEYS) % 4).into();
            }
            b
        })
        .collect();
    let (plain, sched) = (Arc::new(plain), Arc::new(sched));
    println!(
        "{} no-op activities per round, {} rounds per queue, {} starts in flight, {} slots, sync {}",
        args.activities, args.rounds, args.concurrency, args.slots, args.sync
    );
    let pid = child.pid();
    let (mut a, mut b, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut cpu_a, mut cpu_b) = (Vec::new(), Vec::new());
    let mut done = 0;
    for r in 0..args.rounds {
        let mut pair = [(0.0, 0.0); 2];
        let order = if r % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let bodies = if i == 0 { &plain } else { &sched };
            let cpu0 = cpu_seconds(pid);
            done += bodies.len() as u64;
            let rate = round(&http, &ns, &child, bodies.clone(), args.concurrency, done).await?;
            let cpu = match (cpu0, cpu_seconds(pid)) {
                (Some(x), Some(y)) => (y - x) * 1e6 / bodies.len() as f64,
                _ => f64::NAN,
            };
            pair[i] = (rate, cpu);
        }
        a.push(pair[0].0);
        b.push(pair[1].0);
        cpu_a.push(pair[0].1);
        cpu_b.push(pair[1].1);
        ratios.push(pair[1].0 / pair[0].0);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (pa, pb, ratio) = (
        median(&mut a.clone()),
        median(&mut b.clone()),
        median(&mut ratios),
    );
    println!(
        "{:<52} {:>10.0} activities/s, server CPU {:.0} µs/activity",
        "limits off (queue plain)",
        pa,
        median(&mut cpu_a)
    );
    let with: Vec<String> = args
        .with
        .iter()
        .map(|f| format!("{f:?}").to_lowercase())
        .collect();
    println!(
        "{:<52} {:>10.0} activities/s, server CPU {:.0} µs/activity",
        format!("with {} (queue sched)", with.join(" + ")),
        pb,
        median(&mut cpu_b)
    );
    println!(
        "ratio sched/plain: {ratio:.2} (median of the rounds' ratios; plain {a:.0?}, sched {b:.0?})"
    );
    Ok(())
}

/// Starts every body with `concurrency` requests in flight and waits until
/// the server has completed `total` activities in all; activities per
/// second.
async fn round(
    http: &reqwest::Client,
    ns: &Namespace,
    server: &Server,
    bodies: Arc<Vec<Value>>,
    concurrency: usize,
    total: u64,
) -> anyhow::Result<f64> {
    let t0 = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (ns, bodies, next) = (ns.clone(), bodies.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else { break };
                    ns.start(body).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for w in workers {
        w.await??;
    }
    wait_completed(http, server, total).await?;
    Ok(bodies.len() as f64 / t0.elapsed().as_secs_f64())
}
