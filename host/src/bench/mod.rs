//! Benchmarks of the host (`wharf bench ...`), kept apart from the tests.
//! Run them on a release build; a debug build says so and its figures mean
//! little.
//!
//! * [`instantiate`]: the cost of one attempt (fresh instance + one `run`)
//!   per module and allocator, through the same attempt runner as
//!   `wharf serve`, and how long a module takes to be ready.
//! * [`throughput`]: durable no-op activities per second through the HTTP
//!   API, and schedule-to-start at half that load.
//! * [`scheduler`]: what priorities, fairness keys and limits cost.
//! * [`isolation`]: what an adversarial tenant costs the others.
//! * [`parked`]: what an open activity waiting for a worker costs the
//!   server's memory, whatever the size of its input.
//! * [`soak`]: whether memory, disk and throughput stay flat over a long
//!   run with a short retention.
//! * [`harness`]: starting a `wharf serve`, uploading, deploying, starting
//!   activities, reading `/metrics`, percentiles; shared with the
//!   integration tests.
//!
//! Dependencies: the CLI parses the arguments and calls [`instantiate::run`]
//! and the others; they use the worker layer, the registry and the store
//! (`instantiate`) or a child `wharf serve` over HTTP (the rest).

pub mod harness;
pub mod instantiate;
pub mod isolation;
mod load;
pub mod parked;
pub mod scheduler;
pub mod soak;
pub mod throughput;

use anyhow::Context as _;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// `"debug"` or `"release"`; a debug build warns that its figures are not
/// representative.
fn build_kind() -> &'static str {
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build of wharf; figures are not representative");
        "debug"
    } else {
        "release"
    }
}

/// The parser of a count option: a value outside `range` is refused with
/// an error naming the option, before anything is sized by it.
fn count(range: std::ops::RangeInclusive<u64>) -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(range)
}

use crate::cli::args::duration_in as duration;

/// A fresh temporary directory.
fn tempdir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "wharf-bench-{}-{}",
        std::process::id(),
        crate::now_ms()
    ));
    std::fs::create_dir_all(&dir).context("cannot create a temporary directory")?;
    Ok(dir)
}

/// A `wharf serve` child of this binary on a fresh data directory, with
/// `slots` worker slots per queue by default and durability `sync`; killed,
/// and its directory removed, when dropped.
struct Server {
    process: harness::ServeProcess,
    dir: PathBuf,
}

impl Server {
    /// Starts the server; `extra` makes more `wharf serve` arguments from
    /// the fresh directory (e.g. a token file kept in it).
    fn start(
        sync: &str,
        slots: u32,
        extra: impl FnOnce(&std::path::Path) -> anyhow::Result<Vec<String>>,
    ) -> anyhow::Result<Self> {
        Self::start_binary(&std::env::current_exe()?, sync, slots, extra)
    }

    /// As [`Self::start`], with another `wharf` binary as the server (to
    /// compare builds with the same client).
    fn start_binary(
        program: &std::path::Path,
        sync: &str,
        slots: u32,
        extra: impl FnOnce(&std::path::Path) -> anyhow::Result<Vec<String>>,
    ) -> anyhow::Result<Self> {
        let dir = tempdir()?;
        let mut args = vec![
            "--sync".to_owned(),
            sync.to_owned(),
            "--max-concurrent".to_owned(),
            slots.to_string(),
        ];
        args.extend(extra(&dir)?);
        let process = harness::ServeProcess::start(
            std::process::Command::new(program),
            &dir.join("data"),
            &args,
        )
        .context("cannot start wharf serve")?;
        Ok(Self { process, dir })
    }

    fn base(&self) -> &str {
        &self.process.base
    }

    fn pid(&self) -> u32 {
        self.process.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The process first: it holds the directory open.
        let _ = self.process.child.kill();
        let _ = self.process.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The request that starts `n` of `body` when the load goes `batch` starts
/// a request: a single start, or a batch of `n`.
fn starts_request(
    ns: &harness::Namespace,
    body: &Value,
    batch: usize,
    n: usize,
) -> Result<harness::Prepared, harness::HarnessError> {
    match batch {
        1 => ns.prepare("activities", body),
        _ => ns.prepare(
            "activities:batch",
            &serde_json::json!({ "starts": vec![body; n] }),
        ),
    }
}

/// Starts `n` activities from `body` as fast as the server takes them,
/// with `concurrency` starts in flight: one per request, or `batch` per
/// `activities:batch` request, sent by the lean client of [`load`]. On a
/// terminal, a line on stderr counts them as they go.
pub(super) async fn start_many(
    ns: &harness::Namespace,
    body: Value,
    n: usize,
    concurrency: usize,
    batch: usize,
) -> anyhow::Result<()> {
    start_paced(ns, body, (n, batch), concurrency, load::Pace::Flat).await
}

/// As [`start_many`], at `pace`.
async fn start_paced(
    ns: &harness::Namespace,
    body: Value,
    (n, batch): (usize, usize),
    concurrency: usize,
    pace: load::Pace,
) -> anyhow::Result<()> {
    let batch = batch.max(1);
    let target = |count| -> anyhow::Result<load::Target> {
        load::Target::new(&starts_request(ns, &body, batch, count)?, ns.token())
    };
    let whole = target(batch)?;
    let short = match n % batch {
        0 => None,
        rest => Some(target(rest)?),
    };
    let done = Arc::new(AtomicUsize::new(0));
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
        let done = done.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                eprint!("\rstarted {} of {n}...", done.load(Ordering::Relaxed));
            }
        })
    });
    let senders = concurrency.div_ceil(batch).max(1);
    let finished = load::send_all(whole, short, (n, batch), senders, pace, done).await;
    if let Some(p) = progress {
        p.abort();
        eprint!("\r\x1b[2K");
    }
    finished
}

/// Runs the future `make` makes on a thread of its own (named `name`)
/// under a single-threaded runtime, and awaits its result: a client loop
/// that should not share threads, or cross between them, with the rest.
async fn on_own_thread<T, F>(
    name: &str,
    make: impl FnOnce() -> F + Send + 'static,
) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: std::future::Future<Output = anyhow::Result<T>>,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let run = || -> anyhow::Result<T> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(make())
            };
            let _ = tx.send(run());
        })?;
    rx.await
        .with_context(|| format!("the {name} thread ended without an answer"))?
}
