//! `wharf bench instantiate`: what one attempt costs (a fresh instance and
//! one `run` call of a no-op), per module and instance allocator, and how
//! long a module takes to be ready after an upload and after a restart.
//!
//! Attempts go through the same [`Runner`] as those of `wharf serve` (host
//! slot, limits, cache scope), on the calling thread so that its CPU time
//! and page faults are the attempt's.

use super::harness::percentile;
use crate::engine::{
    ActivityModule, AttemptLimits, Engine, EngineConfig, Outcome, DEFAULT_CACHE_BYTES,
};
use crate::registry::{LoadSource, Registry};
use crate::store::{Db, Durability};
use crate::worker::{Attempt, Deadline, Runner, RunnerConfig, Threads};
use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Arguments of `wharf bench instantiate`.
#[derive(clap::Args)]
pub struct InstantiateArgs {
    /// Component to measure (a no-op activity), as LABEL=PATH or PATH;
    /// repeat to compare side by side, e.g. `--module rust=noop.wasm
    /// --module js=build/examples/js/noop.wasm`.
    #[arg(long = "module", required = true, value_name = "[LABEL=]PATH", value_parser = parse_module)]
    modules: Vec<(String, PathBuf)>,
    /// Activity type to call.
    #[arg(long, default_value = "noop")]
    activity_type: String,
    /// Attempts per measurement, 1 to 5 000 000 (each is timed and kept).
    #[arg(short = 'n', long, default_value_t = 10_000,
          value_parser = super::count(1..=5_000_000))]
    attempts: usize,
    /// Allocators to measure attempts with.
    #[arg(long, value_delimiter = ',', default_value = "pooling,on-demand")]
    allocators: Vec<AllocatorChoice>,
    /// Restarts to time per module, 1 to 10 000 (the median is shown).
    #[arg(long, default_value_t = 5,
          value_parser = super::count(1..=10_000))]
    restarts: usize,
    /// Measure every module this many times, interleaved (A B A B ...),
    /// and print each module's medians: on a machine whose speed drifts,
    /// side-by-side figures then see the same drift (1 to 100).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
}

/// An allocator to measure with.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum AllocatorChoice {
    /// The pooling allocator (with `pagemap_scan` where the kernel has it).
    Pooling,
    /// Memory mapped per instance.
    OnDemand,
}

/// `LABEL=PATH`, or a bare path labelled by its file name.
fn parse_module(s: &str) -> Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((label, path))
            if !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) =>
        {
            Ok((label.to_owned(), PathBuf::from(path)))
        }
        _ => {
            let path = PathBuf::from(s);
            let label = path
                .file_stem()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| format!("{s:?} is not a component path"))?;
            Ok((label, path))
        }
    }
}

/// What it takes to make one module ready, the way `wharf serve` does.
struct Readiness {
    wasm_bytes: u64,
    artifact_bytes: u64,
    /// `upload`: validate, hash, compile, write the artifact, map it back,
    /// link, list activity types, record it.
    upload: Duration,
    /// Median over restarts of loading a recorded module in a new registry:
    /// verify the artifact's checksum, map it, link (its activity types are
    /// the record's).
    restart: Duration,
    /// Median over restarts of the first attempt after that load: the
    /// first touch of the module's code in the process.
    first_attempt: Duration,
    /// Of which hashing the artifact file (warm page cache).
    checksum: Duration,
}

/// Runs the measurements and prints both tables.
pub async fn run(args: InstantiateArgs) -> anyhow::Result<()> {
    super::build_kind();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let root = super::tempdir()?;
    let result = compare(&args, &root, cores).await;
    let _ = std::fs::remove_dir_all(&root);
    result
}

async fn compare(args: &InstantiateArgs, root: &Path, cores: usize) -> anyhow::Result<()> {
    // Compile first, on a quiet machine: each module gets its own data dir,
    // whose artifact the attempt measurements below then map.
    let mut ready = Vec::new();
    for (label, path) in &args.modules {
        let r = readiness(&root.join(label), path, args, cores)
            .await
            .with_context(|| format!("cannot load {}", path.display()))?;
        ready.push(r);
    }

    println!(
        "fresh instance + run({}) per attempt: {} attempts per row, {cores} cores",
        args.activity_type, args.attempts
    );
    println!(
        "{:<10} {:<22} {:>9} {:>9} {:>9} {:>11} {:>7} {:>13} {:>15}",
        "module",
        "allocator",
        "p50 µs",
        "p99 µs",
        "mean µs",
        "cpu p50 µs",
        "faults",
        "1 core att/s",
        "all cores att/s"
    );
    for choice in &args.allocators {
        let engine = Engine::new(&EngineConfig {
            pooling: *choice == AllocatorChoice::Pooling,
            ..EngineConfig::default()
        })?;
        let runner = bench_runner(&engine, cores);
        println!(
            "({:?}: {} engine shards)",
            engine.allocator(),
            engine.shards()
        );
        let mut loaded = Vec::with_capacity(args.modules.len());
        for (label, path) in &args.modules {
            let registry = Registry::new(engine.clone(), &root.join(label));
            loaded.push(registry.load_file(path).await?.0);
        }
        let mut rounds: Vec<Vec<AttemptCost>> = args.modules.iter().map(|_| Vec::new()).collect();
        for _ in 0..args.rounds {
            for (((label, _), module), costs) in args.modules.iter().zip(&loaded).zip(&mut rounds) {
                let m = measure(&runner, &module.module, label, args, cores).await?;
                print_row(label, engine.allocator(), &m);
                costs.push(m);
            }
        }
        if args.rounds > 1 {
            println!("medians of {} rounds:", args.rounds);
            for ((label, _), costs) in args.modules.iter().zip(&rounds) {
                print_row(label, engine.allocator(), &AttemptCost::median(costs));
            }
        }
    }

    println!();
    println!(
        "{:<10} {:>8} {:>12} {:>17} {:>18} {:>14} {:>17}",
        "module",
        "wasm MB",
        "artifact MB",
        "upload→ready ms",
        "restart→ready ms",
        "(checksum ms)",
        "first attempt ms"
    );
    for ((label, _), r) in args.modules.iter().zip(&ready) {
        println!(
            "{:<10} {:>8.2} {:>12.2} {:>17.1} {:>18.1} {:>14.1} {:>17.2}",
            label,
            r.wasm_bytes as f64 / 1e6,
            r.artifact_bytes as f64 / 1e6,
            ms(r.upload),
            ms(r.restart),
            ms(r.checksum),
            ms(r.first_attempt)
        );
    }
    println!(
        "upload→ready: POST /modules without HTTP (compile on {cores} cores); \
         restart→ready: a recorded module loaded by a new process, median of {}, warm page cache; \
         first attempt: the one after that load",
        args.restarts
    );
    Ok(())
}

/// A runner as the benchmark's attempts use: attempts run on the calling
/// thread, one per core at once.
fn bench_runner(engine: &Engine, cores: usize) -> Runner {
    Runner::new(
        engine.clone(),
        RunnerConfig {
            limits: AttemptLimits::default(),
            cache_bytes: DEFAULT_CACHE_BYTES,
            max_running: cores,
            threads: Threads::Caller,
        },
    )
}

fn print_row(label: &str, allocator: crate::engine::Allocator, m: &AttemptCost) {
    println!(
        "{:<10} {:<22} {:>9.1} {:>9.1} {:>9.1} {:>11.1} {:>7.1} {:>13.0} {:>15.0}",
        label,
        format!("{allocator:?}"),
        us(m.p50),
        us(m.p99),
        us(m.mean),
        us(m.cpu_p50),
        m.faults,
        m.one_core,
        m.all_cores
    );
}

/// Uploads `path` into a fresh data dir, then loads it back `restarts`
/// times as restarted processes would, each time running one attempt.
async fn readiness(
    dir: &Path,
    path: &Path,
    args: &InstantiateArgs,
    cores: usize,
) -> anyhow::Result<Readiness> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let wasm_bytes = bytes.len() as u64;
    let db = Db::open(dir, Durability::Full)?;
    let engine = Engine::new(&EngineConfig::default())?;
    let t = Instant::now();
    let (record, _) = Registry::new(engine.clone(), dir)
        .upload(&db, "default", "bench", bytes, &Default::default())
        .await?;
    let upload = t.elapsed();

    let runner = bench_runner(&engine, cores);
    let mut times = Vec::with_capacity(args.restarts);
    let mut firsts = Vec::with_capacity(args.restarts);
    for _ in 0..args.restarts {
        // A new registry has nothing in memory, like a new process.
        let registry = Registry::new(engine.clone(), dir);
        let t = Instant::now();
        let loaded = registry.get(&record).await?;
        times.push(t.elapsed());
        anyhow::ensure!(
            loaded.source == LoadSource::Artifact,
            "the restart did not load the artifact ({:?})",
            loaded.source
        );
        let first = Noop {
            runner: runner.clone(),
            module: loaded.module.clone(),
            name: "bench".into(),
            activity_type: args.activity_type.clone(),
        };
        let t = Instant::now();
        first.attempt().await?;
        firsts.push(t.elapsed());
    }
    times.sort();
    firsts.sort();

    let artifact = std::fs::read_dir(dir.join("artifacts"))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.extension().is_some_and(|e| e == "cwasm")
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&record.sha256))
        })
        .context("no artifact was written")?;
    let artifact_bytes = std::fs::metadata(&artifact)?.len();
    let t = Instant::now();
    crate::registry::artifact_digest(&artifact)?;
    let checksum = t.elapsed();
    Ok(Readiness {
        wasm_bytes,
        artifact_bytes,
        upload,
        restart: times[times.len() / 2],
        first_attempt: firsts[firsts.len() / 2],
        checksum,
    })
}

/// Per-attempt figures of one module on one engine.
struct AttemptCost {
    p50: Duration,
    p99: Duration,
    mean: Duration,
    /// CPU time of the thread running the attempt (user + kernel): unlike
    /// wall time, barely moved by other processes competing for the cores.
    cpu_p50: Duration,
    /// Page faults per attempt: pages the guest touched that the pool had
    /// not kept mapped (copy-on-write of the memory image, or zero pages).
    faults: f64,
    one_core: f64,
    all_cores: f64,
}

impl AttemptCost {
    /// Each figure's median over rounds (figure by figure, so the row need
    /// not be one round's).
    fn median(rounds: &[AttemptCost]) -> AttemptCost {
        fn mid<T: Copy + PartialOrd>(mut v: Vec<T>) -> T {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
            v[v.len() / 2]
        }
        let of = |f: fn(&AttemptCost) -> Duration| mid(rounds.iter().map(f).collect());
        let of_f = |f: fn(&AttemptCost) -> f64| mid(rounds.iter().map(f).collect());
        AttemptCost {
            p50: of(|m| m.p50),
            p99: of(|m| m.p99),
            mean: of(|m| m.mean),
            cpu_p50: of(|m| m.cpu_p50),
            faults: of_f(|m| m.faults),
            one_core: of_f(|m| m.one_core),
            all_cores: of_f(|m| m.all_cores),
        }
    }
}

async fn measure(
    runner: &Runner,
    module: &ActivityModule,
    label: &str,
    args: &InstantiateArgs,
    cores: usize,
) -> anyhow::Result<AttemptCost> {
    let one = Noop {
        runner: runner.clone(),
        module: module.clone(),
        name: label.to_owned(),
        activity_type: args.activity_type.clone(),
    };
    // Warm up: first instances fault in the pool's pages.
    for _ in 0..200 {
        one.attempt().await?;
    }
    let mut times = Vec::with_capacity(args.attempts);
    let mut cpu = Vec::with_capacity(args.attempts);
    let faults_before = thread_page_faults();
    let start = Instant::now();
    for _ in 0..args.attempts {
        // The CPU clock is a system call: read outside the wall-clock window,
        // so that the attempt's time is the attempt's alone.
        let c = thread_cpu_time();
        let t = Instant::now();
        one.attempt().await?;
        times.push(t.elapsed());
        cpu.push(thread_cpu_time().saturating_sub(c));
    }
    let one_core = args.attempts as f64 / start.elapsed().as_secs_f64();
    let faults = (thread_page_faults() - faults_before) as f64 / args.attempts as f64;

    // The tasks take attempts from one count, as a server's workers take
    // tasks from one queue: a task that runs slower does fewer, and no core
    // sits idle at the end while another finishes a fixed share.
    let taken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..cores)
        .map(|_| {
            let (one, taken, total) = (one.clone(), taken.clone(), args.attempts);
            tokio::spawn(async move {
                while taken.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < total {
                    one.attempt().await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let all_cores = args.attempts as f64 / start.elapsed().as_secs_f64();

    times.sort();
    cpu.sort();
    let pct = |v: &[Duration], p| percentile(v, p).unwrap_or_default();
    Ok(AttemptCost {
        p50: pct(&times, 50),
        p99: pct(&times, 99),
        mean: times.iter().sum::<Duration>() / times.len().max(1) as u32,
        cpu_p50: pct(&cpu, 50),
        faults,
        one_core,
        all_cores,
    })
}

/// One no-op attempt of one module, as a served attempt is run.
#[derive(Clone)]
struct Noop {
    runner: Runner,
    module: ActivityModule,
    name: String,
    activity_type: String,
}

impl Noop {
    async fn attempt(&self) -> anyhow::Result<()> {
        let slot = self.runner.slot("default").await;
        // The base limit's timeout, as any attempt without timeouts.
        let deadline = Deadline::Timeouts {
            start_to_close: None,
            schedule_to_close: None,
        };
        let attempt = Attempt::bare(
            self.module.clone(),
            &self.name,
            "default",
            &self.activity_type,
            deadline,
        );
        let report = self
            .runner
            .run(attempt, slot)
            .await
            .context("the attempt's task ended abnormally")?;
        match report.outcome {
            Outcome::Completed { .. } => Ok(()),
            other => anyhow::bail!("benchmark activity did not complete: {}", other.describe()),
        }
    }
}

/// CPU time consumed by the calling thread so far.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant
    // every Linux and macOS libc knows.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Minor and major page faults taken by the calling thread so far.
fn thread_page_faults() -> i64 {
    // SAFETY: an all-zero `rusage` is a valid value for getrusage to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is valid and writable; RUSAGE_THREAD is Linux's.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) } != 0 {
        return 0;
    }
    usage.ru_minflt + usage.ru_majflt
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
