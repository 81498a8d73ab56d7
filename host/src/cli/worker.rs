//! `wharf worker --temporal HOST:PORT`: serve a Temporal task queue with
//! Wasm activities. See [`crate::temporal`].

use super::args::{grace, memory_limit, parse_module_ref, payload_limit, rate};
use super::grants::GrantArgs;
use crate::engine::{AttemptLimits, Engine, EngineConfig};
use crate::registry::Registry;
use crate::store::lock::DataDirLock;
use crate::store::{Db, Durability};
use crate::temporal::{self, Activities, ServedModule, ServerConfig, TlsConfig, WorkerConfig};
use anyhow::Context as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// gRPC compression on the worker's connection to its server.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Compression {
    Gzip,
    None,
}

/// Arguments of `wharf worker`.
#[derive(clap::Args)]
pub struct WorkerArgs {
    /// Temporal frontend address, `HOST:PORT` (or an `http(s)://` URL).
    #[arg(long, env = "TEMPORAL_ADDRESS", value_name = "HOST:PORT")]
    temporal: String,
    /// Temporal namespace to serve.
    #[arg(long, env = "TEMPORAL_NAMESPACE", default_value = "default")]
    namespace: String,
    /// Task queue to poll.
    #[arg(long)]
    task_queue: String,
    /// A component file (`.wasm`), or `NAME[@VERSION]` of a module uploaded
    /// to the registry of `--data-dir`. Repeat for several; each activity
    /// type may be exported by one module only.
    #[arg(long = "module", value_name = "FILE|NAME[@VERSION]", required = true)]
    modules: Vec<String>,
    /// Where the registry, compiled artifacts, heartbeat journal and result
    /// outbox live.
    #[arg(long, env = "WHARF_DATA_DIR", default_value = "wharf-data")]
    data_dir: PathBuf,
    /// Wharf namespace whose registry `NAME[@VERSION]` modules come from.
    #[arg(long, default_value = "default")]
    module_namespace: String,
    /// Most attempts running at once in this process, 1 to 1000000.
    #[arg(long, default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::service::bounds::MAX_CONCURRENT)))]
    max_concurrent: u32,
    /// Most activities per second this worker starts, 0.001 to 1000000.
    #[arg(long, value_name = "R", value_parser = rate)]
    max_activities_per_second: Option<f64>,
    /// Most activities per second the server hands out from the task queue
    /// to all its workers, 0.001 to 1000000.
    #[arg(long, value_name = "R", value_parser = rate)]
    task_queue_activities_per_second: Option<f64>,
    /// Identity reported to the server (default: PID@HOST).
    #[arg(long)]
    identity: Option<String>,
    /// Connect with TLS (implied by the other --tls-* flags).
    #[arg(long)]
    tls: bool,
    /// PEM file of the CA that signed the server's certificate.
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// PEM file of the client certificate, for mutual TLS.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Server name to verify the certificate against.
    #[arg(long, value_name = "NAME")]
    tls_domain: Option<String>,
    /// API key, sent as a bearer token (Temporal Cloud).
    #[arg(long, env = "TEMPORAL_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// gRPC compression to the server: `gzip` (the Temporal client's
    /// default) or `none` (less CPU per task when bandwidth is cheap, e.g.
    /// a worker next to its server).
    #[arg(long, value_enum, default_value_t = Compression::Gzip)]
    grpc_compression: Compression,
    /// Threads of the runtime that polls the server and schedules attempts,
    /// 1 to 64 (default: half the cores, at least one). Attempts run on
    /// threads of their own, one per core.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub(super) control_threads: Option<u16>,
    #[command(flatten)]
    grants: GrantArgs,
    /// Memories and tables of one attempt, 1MiB to 4GiB.
    #[arg(long, default_value = "256MiB", value_parser = memory_limit())]
    memory_limit: usize,
    /// CPU budget of one attempt in fuel units (unlimited if absent).
    #[arg(long)]
    fuel: Option<u64>,
    /// Largest result or heartbeat payload an attempt may produce, 1KiB to
    /// 256MiB.
    #[arg(long, default_value = "2MiB", value_parser = payload_limit())]
    payload_limit: usize,
    /// How long an attempt may ignore a cancellation before it is stopped,
    /// 0s to 1h.
    #[arg(long, default_value = "10s", value_parser = grace())]
    cancel_grace: Duration,
    /// On SIGTERM/Ctrl-C, how long running attempts may take to finish
    /// before they are cancelled (and reported as retryable failures), 0s to
    /// 1h.
    #[arg(long, default_value = "30s", value_parser = grace())]
    shutdown_grace: Duration,
    /// Durability of the journal and outbox: `full` survives power loss,
    /// `normal` a process crash.
    #[arg(long, value_enum, default_value = "full")]
    sync: Durability,
    /// Print the start and stop lines as JSON objects.
    #[arg(long)]
    json: bool,
}

/// Loads `--module` values: files (named by their file name without
/// `.wasm`), or `NAME[@VERSION]` from the registry.
async fn load_modules(
    registry: &Registry,
    db: &Db,
    namespace: &str,
    specs: &[String],
) -> anyhow::Result<Vec<ServedModule>> {
    let mut modules = Vec::new();
    for spec in specs {
        let path = Path::new(spec);
        let served = if path.exists() || spec.ends_with(".wasm") {
            let module = registry
                .load_file(path)
                .await
                .with_context(|| format!("cannot load module {spec}"))?
                .0;
            ServedModule {
                name: crate::worker::file_module_name(path),
                module,
            }
        } else {
            let (name, version) = parse_module_ref(spec)?;
            let record = db.get_module(namespace, name, version)?.with_context(|| {
                format!(
                    "no module {spec} in the registry of namespace {namespace:?} (and no such \
                     file); upload it with `wharf module upload FILE --name {name}`"
                )
            })?;
            let module = registry
                .get(&record)
                .await
                .with_context(|| format!("cannot load module {spec}"))?;
            ServedModule {
                name: name.to_owned(),
                module,
            }
        };
        modules.push(served);
    }
    Ok(modules)
}

/// Resolves on SIGTERM or Ctrl-C.
async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Runs the worker until SIGTERM or Ctrl-C.
pub async fn run(args: WorkerArgs) -> anyhow::Result<()> {
    // Held until the process exits: a second process on this directory
    // would recover and run the same activities.
    let _lock = DataDirLock::acquire(&args.data_dir)?;
    let db = Db::open(&args.data_dir, args.sync)
        .with_context(|| format!("cannot open the data directory {}", args.data_dir.display()))?;
    let engine = Engine::new(&EngineConfig::default())?;
    let registry = Registry::new(engine.clone(), &args.data_dir);
    let modules = load_modules(&registry, &db, &args.module_namespace, &args.modules).await?;
    let activities = Activities::new(&modules)?;

    let identity = args
        .identity
        .unwrap_or_else(|| format!("{}@{}", std::process::id(), temporal::hostname()));
    let tls =
        args.tls || args.tls_ca.is_some() || args.tls_cert.is_some() || args.tls_domain.is_some();
    let config = WorkerConfig {
        server: ServerConfig {
            address: args.temporal.clone(),
            tls: tls.then_some(TlsConfig {
                server_ca: args.tls_ca,
                domain: args.tls_domain,
                client_cert: args.tls_cert,
                client_key: args.tls_key,
            }),
            api_key: args.api_key,
            identity: identity.clone(),
            compress: args.grpc_compression == Compression::Gzip,
        },
        namespace: args.namespace.clone(),
        task_queue: args.task_queue.clone(),
        worker_task_queue: temporal::worker_task_queue_name(&identity),
        max_concurrent: args.max_concurrent as usize,
        max_activities_per_second: args.max_activities_per_second,
        task_queue_activities_per_second: args.task_queue_activities_per_second,
        limits: AttemptLimits {
            memory_bytes: args.memory_limit,
            fuel: args.fuel,
            result_bytes: args.payload_limit,
            heartbeat_bytes: args.payload_limit,
            ..AttemptLimits::default()
        },
        grants: args.grants.grants()?,
        cancel_grace: args.cancel_grace,
        shutdown_grace: args.shutdown_grace,
    };
    let worker_queue = config.worker_task_queue.clone();
    let types = activities.types();
    let worker = temporal::Worker::start(config, engine, activities, db)
        .await
        .with_context(|| format!("cannot start the worker against {}", args.temporal))?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "event": "ready",
                "temporal": args.temporal,
                "namespace": args.namespace,
                "task_queue": args.task_queue,
                "worker_task_queue": worker_queue,
                "identity": identity,
                "activity_types": types,
            })
        );
    } else {
        println!(
            "wharf worker ready: polling task queue {} and worker queue {worker_queue} \
             (namespace {}, {}, identity {identity}); activity types: {}",
            args.task_queue,
            args.namespace,
            args.temporal,
            types.join(", ")
        );
    }
    let _ = std::io::stdout().flush();

    let grace = args.shutdown_grace;
    let summary = worker
        .run(
            async move {
                signal().await;
                eprintln!(
                    "shutting down: polling stopped; running attempts may finish (up to {grace:?}); \
                     signal again to stop them now"
                );
            },
            signal(),
        )
        .await?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "event": "stopped", "summary": summary })
        );
    } else {
        println!(
            "wharf worker stopped: {} attempts, {} reports delivered, {} queued for re-delivery{}",
            summary.attempts,
            summary.delivered,
            summary.queued,
            match summary.lost {
                0 => String::new(),
                n => format!(", {n} lost (the outbox could not be written; see the log)"),
            }
        );
    }
    Ok(())
}
