//! `wharf serve`: the embedded mode. One process, one SQLite file.

use super::args::{parse_duration, parse_size};
use crate::api::{self, ApiLimits};
use crate::engine::{AttemptLimits, Engine, EngineConfig};
use crate::registry::Registry;
use crate::service::{Service, ServiceConfig};
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
    #[arg(long, default_value_t = 100)]
    max_concurrent: u32,
    /// How long a running attempt may ignore a cancellation request.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    cancel_grace: Duration,
    /// On SIGTERM/Ctrl-C, how long running attempts may take to finish.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    shutdown_grace: Duration,
    /// Largest payload (argument, result, heartbeat details).
    #[arg(long, default_value = "2MiB", value_parser = parse_size)]
    payload_limit: usize,
    /// Memories and tables of one attempt.
    #[arg(long, default_value = "256MiB", value_parser = parse_size)]
    memory_limit: usize,
}

/// Runs the server until SIGTERM or Ctrl-C.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    if !args.listen.ip().is_loopback() {
        anyhow::bail!(
            "refusing to listen on {}: without authentication configured, wharf serve \
             listens on loopback only (127.0.0.1 or ::1)",
            args.listen
        );
    }
    let db = Db::open(&args.data_dir, args.sync)
        .with_context(|| format!("cannot open the data directory {}", args.data_dir.display()))?;
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
        ..ServiceConfig::default()
    };
    let worker_queue = cfg.worker_task_queue.clone();
    let service = Service::open(db, registry, cfg).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    println!(
        "wharf listening on http://{addr} (data {}, sync {:?}, worker queue {worker_queue}; \
         single-tenant dev mode: namespace \"default\", no authentication, loopback only)",
        args.data_dir.display(),
        args.sync
    );
    let _ = std::io::stdout().flush();

    let app = api::router(service.clone(), ApiLimits::default());
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the HTTP server failed")?;
    eprintln!(
        "shutting down: letting running attempts finish (up to {:?})",
        args.shutdown_grace
    );
    service.shutdown(args.shutdown_grace).await;
    eprintln!("stopped");
    Ok(())
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
