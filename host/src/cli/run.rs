//! `wharf run`: one attempt of one activity, straight from a component file.
//! The author's inner loop: no server, no database, the same sandbox.

use super::args::{duration_in, grace, memory_limit};
use super::client::parse_json;
use super::grants::GrantArgs;
use crate::engine::{
    ActivityInfo, AttemptHooks, AttemptLimits, AttemptReport, Engine, EngineConfig, Outcome,
    StopSignal, DEFAULT_CACHE_BYTES,
};
use crate::payload::Payload;
use crate::registry::{LoadSource, LoadedModule, Registry};
use crate::service::bounds;
use crate::worker::{file_module_name, Attempt, Deadline, Runner, RunnerConfig, Threads};
use anyhow::Context as _;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Arguments of `wharf run`.
#[derive(clap::Args)]
pub struct RunArgs {
    /// The activity component (.wasm).
    module: PathBuf,
    /// Activity type to run.
    activity_type: String,
    /// An argument as JSON, or `@FILE` to read it from a file (`@-`:
    /// standard input); repeat for several. A raw Temporal payload
    /// (`{"metadata": {...}, "data": "base64"}`) passes through unchanged.
    #[arg(long = "input", value_name = "JSON")]
    inputs: Vec<String>,
    /// Heartbeat details of an earlier attempt, as JSON (or `@FILE`), to
    /// resume from.
    #[arg(long, value_name = "JSON")]
    heartbeat_details: Option<String>,
    /// Attempt number the activity sees.
    #[arg(long, default_value_t = 1)]
    attempt: u32,
    /// Wall-clock limit of the attempt, 1ms to 10 years.
    #[arg(long, default_value = "10s",
          value_parser = duration_in(bounds::MIN_DURATION, bounds::MAX_DURATION))]
    start_to_close: Duration,
    /// Limit on all memories and tables of the instance, 1MiB to 4GiB.
    #[arg(long, default_value = "256MiB", value_parser = memory_limit())]
    memory_limit: usize,
    /// CPU budget in fuel units (unlimited if absent).
    #[arg(long)]
    fuel: Option<u64>,
    /// Request cancellation this long after the start (to try cancellation),
    /// 0s to 10 years.
    #[arg(long, value_parser = duration_in(Duration::ZERO, bounds::MAX_DURATION))]
    cancel_after: Option<Duration>,
    /// After a cancellation request, stop an attempt that ignores it this
    /// late, 0s to 1h.
    #[arg(long, default_value = "1s", value_parser = grace())]
    cancel_grace: Duration,
    #[command(flatten)]
    grants: GrantArgs,
    /// Where compiled artifacts are cached [default: $XDG_CACHE_HOME/wharf,
    /// or ~/.cache/wharf].
    #[arg(long, env = "WHARF_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Requests cancellation at a fixed time.
struct CancelAt(Option<Instant>);

impl AttemptHooks for CancelAt {
    fn heartbeat(&self, _details: &[Payload]) -> bool {
        self.is_cancelled()
    }
    fn is_cancelled(&self) -> bool {
        self.0.is_some_and(|at| Instant::now() >= at)
    }
}

/// Runs the command; exit code 0 only when the attempt completed.
pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let data_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => user_cache_dir()?,
    };
    // One attempt on one thread: a second shard would only cost its
    // setup (10-12 ms per `wharf run` with one, 14-20 ms with two).
    let engine = Engine::new(&EngineConfig {
        shards: 1,
        ..EngineConfig::default()
    })?;
    let registry = Registry::new(engine.clone(), &data_dir);
    let (module, source) = registry
        .load_file(&args.module)
        .await
        .with_context(|| format!("cannot load {}", args.module.display()))?;
    if !module.activity_types.contains(&args.activity_type) {
        anyhow::bail!(
            "{} has no activity type {:?}; it exports: {}",
            args.module.display(),
            args.activity_type,
            module.activity_types.join(", ")
        );
    }

    let inputs = args
        .inputs
        .iter()
        .map(|s| parse_json(s, "--input").map(Payload::from_user_json))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let heartbeat_details = match &args.heartbeat_details {
        Some(s) => vec![Payload::from_user_json(parse_json(
            s,
            "--heartbeat-details",
        )?)],
        None => Vec::new(),
    };
    let now = crate::now_ms();
    let info = ActivityInfo {
        namespace: "default".into(),
        task_queue: "local".into(),
        activity_id: format!("run-{now}"),
        activity_type: args.activity_type.clone(),
        attempt: args.attempt,
        task_token: now.to_be_bytes().to_vec(),
        scheduled_ms: now,
        started_ms: now,
        heartbeat_details,
        worker_task_queue: format!("wharf-run-{}", std::process::id()),
        ..ActivityInfo::default()
    };
    // One attempt per process: the cache starts and ends empty, and the
    // attempt runs on this thread.
    let runner = Runner::new(
        engine,
        RunnerConfig {
            limits: AttemptLimits {
                memory_bytes: args.memory_limit,
                fuel: args.fuel,
                ..AttemptLimits::default()
            },
            cache_bytes: DEFAULT_CACHE_BYTES,
            max_running: 1,
            threads: Threads::Caller,
        },
    );
    let grants = args.grants.grants()?;
    let slot = runner.slot("default").await;
    // The attempt starts right after this: a cancellation is timed from it.
    let cancel_at = args.cancel_after.map(|d| Instant::now() + d);
    let stop = StopSignal::new();
    if let Some(at) = cancel_at {
        let (stop, grace) = (stop.clone(), args.cancel_grace);
        tokio::spawn(async move {
            tokio::time::sleep_until((at + grace).into()).await;
            stop.trigger();
        });
    }
    let attempt = Attempt {
        module: module.module.clone(),
        module_name: file_module_name(&args.module),
        info,
        deadline: Deadline::Timeouts {
            start_to_close: Some(args.start_to_close),
            schedule_to_close: None,
        },
        args: inputs,
        quotas: None,
        grants,
        hooks: Arc::new(CancelAt(cancel_at)),
        stop,
    };
    let report = runner
        .run(attempt, slot)
        .await
        .context("the attempt's task ended abnormally")?;
    if args.json {
        println!("{}", report_json(&report, &module, source));
    } else {
        print_report(&report, &module, source);
    }
    Ok(if matches!(report.outcome, Outcome::Completed { .. }) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The user's cache directory for `wharf run`'s artifacts, as the XDG base
/// directory specification places it: `$XDG_CACHE_HOME/wharf` when that is
/// an absolute path, else `$HOME/.cache/wharf`. A run then leaves nothing
/// in the directory it was started from, and every project of the user
/// shares one artifact cache (artifacts are keyed by content and engine).
fn user_cache_dir() -> anyhow::Result<PathBuf> {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    if let Some(cache) = absolute("XDG_CACHE_HOME") {
        return Ok(cache.join("wharf"));
    }
    match absolute("HOME") {
        Some(home) => Ok(home.join(".cache").join("wharf")),
        None => anyhow::bail!(
            "neither XDG_CACHE_HOME nor HOME is set to an absolute path; \
             give --data-dir (where compiled artifacts are cached)"
        ),
    }
}

fn decoded(payloads: &[Payload]) -> Vec<Value> {
    payloads.iter().map(Payload::to_json).collect()
}

fn report_json(r: &AttemptReport, m: &LoadedModule, source: LoadSource) -> Value {
    let mut out = json!({
        "outcome": r.outcome.kind(),
        "message": r.outcome.describe(),
        "log": r.log,
        "heartbeats": r.heartbeats,
        "last_heartbeat_details": r.last_heartbeat.as_deref().map(decoded),
        "duration_us": r.duration.as_micros() as u64,
        "fuel_used": r.fuel_used,
        "memory_peak": r.memory_peak,
        "egress_requests": r.egress_requests,
        "egress_denied": r.egress_denied,
        "module": {
            "sha256": m.sha256,
            "activity_types": m.activity_types,
            "source": source,
            "load_ms": m.load_time.as_secs_f64() * 1000.0,
        },
        "raw": r.outcome,
    });
    match &r.outcome {
        Outcome::Completed { result } => out["result"] = result.to_json(),
        Outcome::Failed { error } => {
            out["error"] = json!({
                "message": error.message,
                "type": error.error_type,
                "non_retryable": error.non_retryable,
                "details": decoded(&error.details),
                "next_retry_delay_ms": error.next_retry_delay_ms,
            })
        }
        _ => {}
    }
    out
}

fn print_report(r: &AttemptReport, m: &LoadedModule, source: LoadSource) {
    println!("outcome:   {}", r.outcome.describe());
    if let Outcome::Failed { error } = &r.outcome {
        for d in &error.details {
            println!("details:   {}", d.to_json());
        }
        if let Some(ms) = error.next_retry_delay_ms {
            println!("next retry in {ms} ms");
        }
    }
    if let Some(details) = &r.last_heartbeat {
        let shown: Vec<String> = decoded(details).iter().map(Value::to_string).collect();
        println!(
            "heartbeats: {} (last details: {})",
            r.heartbeats,
            shown.join(", ")
        );
    }
    println!(
        "took:      {:.2} ms, fuel {}, memory peak {} KiB",
        r.duration.as_secs_f64() * 1000.0,
        r.fuel_used,
        r.memory_peak >> 10
    );
    let how = match source {
        LoadSource::Compiled => "compiled",
        LoadSource::Artifact => "loaded precompiled artifact",
        LoadSource::Memory => "in memory",
    };
    println!(
        "module:    {} ({how} in {:.1} ms)",
        &m.sha256[..12],
        m.load_time.as_secs_f64() * 1000.0
    );
    if !r.log.is_empty() {
        println!("log:");
        for line in r.log.lines() {
            println!("  {line}");
        }
    }
}
