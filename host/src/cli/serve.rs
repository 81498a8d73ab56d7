//! `wharf serve`: the embedded mode. One process, one SQLite file.

use super::args::{duration_in, grace, memory_limit, payload_limit, size_in};
use crate::api::{self, auth, ApiLimits, Auth};
use crate::engine::{AttemptLimits, Engine, EngineConfig};
use crate::registry::Registry;
use crate::service::bounds;
use crate::service::{tokens, Service, ServiceConfig};
use crate::store::lock::DataDirLock;
use crate::store::{Db, Durability};
use anyhow::Context as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Arguments of `wharf serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Where the database, components and compiled artifacts live.
    #[arg(long, env = "WHARF_DATA_DIR", default_value = "wharf-data")]
    data_dir: PathBuf,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:7070")]
    listen: SocketAddr,
    /// Durability of acknowledged writes: `full` survives power loss;
    /// `normal` is faster and survives a process crash, but a power loss may
    /// undo the last acknowledged writes.
    #[arg(long, value_enum, default_value = "full")]
    sync: Durability,
    /// Worker slots of a queue unless its deployment says otherwise.
    #[arg(long, default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(bounds::MAX_CONCURRENT)))]
    max_concurrent: u32,
    /// How long a running attempt may ignore a cancellation request, 0s to
    /// 1h.
    #[arg(long, default_value = "10s", value_parser = grace())]
    cancel_grace: Duration,
    /// On SIGTERM/Ctrl-C, how long running attempts may take to finish, 0s
    /// to 1h.
    #[arg(long, default_value = "30s", value_parser = grace())]
    shutdown_grace: Duration,
    /// Largest payload (argument, result, heartbeat details), 1KiB to
    /// 256MiB.
    #[arg(long, default_value = "2MiB", value_parser = payload_limit())]
    payload_limit: usize,
    /// Require bearer tokens: an admin token is made at the first start and
    /// printed once (or taken from --admin-token-file). Once a data
    /// directory has an admin token, it always requires tokens.
    #[arg(long)]
    auth: bool,
    /// File holding the admin token to use (implies --auth).
    #[arg(long)]
    admin_token_file: Option<PathBuf>,
    /// Memories and tables of one attempt, 1MiB to 4GiB (a 32-bit
    /// memory's most).
    #[arg(long, default_value = "256MiB", value_parser = memory_limit())]
    memory_limit: usize,
    /// Attempts running at once on this host over all namespaces (at most
    /// the instance pool's 1000); when more are ready, namespaces take turns.
    #[arg(long, default_value_t = 900, value_parser = clap::value_parser!(u32).range(1..=1000))]
    max_running: u32,
    /// Export a trace of every activity (a span per activity and per
    /// attempt, with dispatch, instantiate, run and commit) to this
    /// OpenTelemetry collector, over OTLP/HTTP with JSON
    /// (e.g. http://127.0.0.1:4318; spans go to its /v1/traces).
    #[arg(long, env = "WHARF_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// Budget of each module's `wharf:activity/cache` on this process, 0
    /// (no cache) to 16GiB.
    #[arg(long, default_value = "64MiB", value_parser = size_in(0..=(16 << 30), "0 to 16GiB"))]
    cache_size: usize,
    /// Request bodies (uploads, starts) held in memory at once over all
    /// requests, 1MiB to 1TiB; a body that finds it spent is refused with
    /// 503 and Retry-After.
    #[arg(long, default_value = "1GiB", value_parser = size_in(api::BODY_MEMORY_RANGE, "1MiB to 1TiB"))]
    max_body_memory: usize,
    /// How long a request body may stop arriving before the request is cut
    /// off with 408 and its memory given back, 1s to 1h.
    #[arg(long, default_value = "30s",
          value_parser = duration_in(*api::BODY_IDLE_RANGE.start(), *api::BODY_IDLE_RANGE.end()))]
    body_idle_timeout: Duration,
    /// Connections served at once, 1 to 1000000; more wait until one
    /// closes. A connection that sends no request headers for 30 s is
    /// closed.
    #[arg(long, default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(
              i64::from(*api::listen::MAX_CONNECTIONS_RANGE.start())
                  ..=i64::from(*api::listen::MAX_CONNECTIONS_RANGE.end())))]
    max_connections: u32,
    /// Threads of the runtime that serves the API and schedules attempts,
    /// 1 to 64 (default: one per core). Attempts run on threads of their
    /// own, one per core, and the database on its writer's.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub(super) control_threads: Option<u16>,
}

/// Runs the server until SIGTERM or Ctrl-C.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    // Held until the process exits: a second process on this directory
    // would recover and run the same activities.
    let _lock = DataDirLock::acquire(&args.data_dir)?;
    let db = Db::open(&args.data_dir, args.sync)
        .with_context(|| format!("cannot open the data directory {}", args.data_dir.display()))?;
    let new_admin_token = setup_admin_token(&db, &args).await?;
    let auth = Arc::new(Auth::load(&db)?);
    if !auth.enabled() && !args.listen.ip().is_loopback() {
        anyhow::bail!(
            "refusing to listen on {}: without authentication configured, wharf serve \
             listens on loopback only (127.0.0.1 or ::1); start it with --auth to allow this",
            args.listen
        );
    }
    let engine = Engine::new(&EngineConfig::default())?;
    let registry = Arc::new(Registry::new(engine, &args.data_dir));
    let cfg = ServiceConfig {
        cancel_grace: args.cancel_grace,
        payload_limit: args.payload_limit,
        default_max_concurrent: args.max_concurrent,
        attempt_limits: AttemptLimits {
            memory_bytes: args.memory_limit,
            ..AttemptLimits::default()
        },
        cache_bytes: args.cache_size,
        max_running: args.max_running as usize,
        traces: match &args.otlp_endpoint {
            Some(url) => Some(crate::otlp::Exporter::start(url)?),
            None => None,
        },
        ..ServiceConfig::default()
    };
    let worker_queue = cfg.worker_task_queue.clone();
    let service = Service::open(db, registry, cfg).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let mode = if auth.enabled() {
        "multi-tenant: bearer tokens required"
    } else {
        "single-tenant dev mode: namespace \"default\", no authentication, loopback only"
    };
    println!(
        "wharf listening on http://{addr} (data {}, sync {:?}, worker queue {worker_queue}; {mode})",
        args.data_dir.display(),
        args.sync
    );
    if let Some(token) = new_admin_token {
        println!("admin token (shown once, keep it): {token}");
    }
    let _ = std::io::stdout().flush();

    let app = api::router(
        service.clone(),
        ApiLimits::default(),
        auth,
        api::BodyBudget::new(args.max_body_memory, args.body_idle_timeout),
    );
    api::listen::serve(listener, app, args.max_connections, shutdown_signal()).await;
    eprintln!(
        "shutting down: letting running attempts finish (up to {:?})",
        args.shutdown_grace
    );
    service.shutdown(args.shutdown_grace).await;
    eprintln!("stopped");
    Ok(())
}

/// Installs the admin token from --admin-token-file, or makes one at the
/// first start with --auth. Returns a newly made token, to print once.
async fn setup_admin_token(db: &Db, args: &ServeArgs) -> anyhow::Result<Option<String>> {
    if let Some(path) = &args.admin_token_file {
        let token = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the admin token file {}", path.display()))?;
        let token = token.trim();
        anyhow::ensure!(
            token.len() >= 16,
            "the admin token in {} is shorter than 16 characters",
            path.display()
        );
        db.set_setting(auth::ADMIN_TOKEN_SETTING, &tokens::hash(token))
            .await?;
        return Ok(None);
    }
    if args.auth && db.setting(auth::ADMIN_TOKEN_SETTING)?.is_none() {
        let token = tokens::new_secret("wharf_admin_");
        db.set_setting(auth::ADMIN_TOKEN_SETTING, &tokens::hash(&token))
            .await?;
        return Ok(Some(token));
    }
    Ok(None)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
