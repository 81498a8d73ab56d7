//! `wharf bench`: measurements, kept apart from tests. Run on a release build.

use crate::engine::{
    ActivityInfo, ActivityModule, AttemptLimits, AttemptRequest, Engine, EngineConfig, NoHooks,
    Outcome, StopSignal,
};
use crate::registry::Registry;
use anyhow::Context as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to measure.
#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Cost of a fresh instance + one `run` call, pooling on and off.
    Instantiate(InstantiateArgs),
    /// Durable no-op activities per second through the HTTP API of a
    /// `wharf serve` (started here), at `--sync full` and `--sync normal`.
    Throughput(super::bench_throughput::ThroughputArgs),
}

/// Arguments of `wharf bench instantiate`.
#[derive(clap::Args)]
pub struct InstantiateArgs {
    /// Component to instantiate (a no-op activity).
    #[arg(long)]
    module: PathBuf,
    /// Activity type to call.
    #[arg(long, default_value = "noop")]
    activity_type: String,
    /// Attempts per measurement.
    #[arg(short = 'n', long, default_value_t = 10_000)]
    attempts: usize,
}

/// Runs a benchmark command.
pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Instantiate(args) => instantiate(args).await,
        BenchCommand::Throughput(args) => super::bench_throughput::run(args).await,
    }
}

async fn instantiate(args: InstantiateArgs) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build of wharf; figures are not representative");
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "fresh instance + run({}) of {}, {} attempts per row, {cores} cores",
        args.activity_type,
        args.module.display(),
        args.attempts
    );
    println!(
        "{:<22} {:>10} {:>10} {:>10} {:>14} {:>14}",
        "allocator", "p50 µs", "p99 µs", "mean µs", "1 core att/s", "all cores att/s"
    );
    for pooling in [true, false] {
        let dir = tempdir()?;
        let engine = Engine::new(&EngineConfig {
            pooling,
            ..EngineConfig::default()
        })?;
        let registry = Registry::new(engine.clone(), &dir);
        let (module, _) = registry.load_file(&args.module).await?;
        let module = module.module.clone();

        // Warm up: first instances fault in the pool's pages.
        for _ in 0..200 {
            attempt(&engine, &module, &args.activity_type).await?;
        }
        let mut times = Vec::with_capacity(args.attempts);
        let start = Instant::now();
        for _ in 0..args.attempts {
            let t = Instant::now();
            attempt(&engine, &module, &args.activity_type).await?;
            times.push(t.elapsed());
        }
        let one_core = args.attempts as f64 / start.elapsed().as_secs_f64();

        let start = Instant::now();
        let per_task = args.attempts / cores;
        let tasks: Vec<_> = (0..cores)
            .map(|_| {
                let (engine, module, ty) =
                    (engine.clone(), module.clone(), args.activity_type.clone());
                tokio::spawn(async move {
                    for _ in 0..per_task {
                        attempt(&engine, &module, &ty).await?;
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        for t in tasks {
            t.await??;
        }
        let all_cores = (per_task * cores) as f64 / start.elapsed().as_secs_f64();

        times.sort();
        let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
        let mean = times.iter().sum::<Duration>() / times.len() as u32;
        println!(
            "{:<22} {:>10.1} {:>10.1} {:>10.1} {:>14.0} {:>14.0}",
            format!("{:?}", engine.allocator()),
            us(pct(0.5)),
            us(pct(0.99)),
            us(mean),
            one_core,
            all_cores
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

async fn attempt(engine: &Engine, module: &ActivityModule, ty: &str) -> anyhow::Result<()> {
    let report = engine
        .run_attempt(
            module,
            AttemptRequest {
                activity_type: ty.to_owned(),
                args: Vec::new(),
                info: ActivityInfo::default(),
                limits: AttemptLimits::default(),
                hooks: Arc::new(NoHooks),
                stop: StopSignal::new(),
            },
        )
        .await;
    match report.outcome {
        Outcome::Completed { .. } => Ok(()),
        other => anyhow::bail!("benchmark activity did not complete: {}", other.describe()),
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// A fresh temporary directory.
pub(super) fn tempdir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "wharf-bench-{}-{}",
        std::process::id(),
        crate::now_ms()
    ));
    std::fs::create_dir_all(&dir).context("cannot create a temporary directory")?;
    Ok(dir)
}
