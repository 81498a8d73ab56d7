//! The bridge to a Temporal cluster: `wharf worker --temporal HOST:PORT`.
//!
//! In this mode a real Temporal cluster is the distributed engine (matching,
//! timers, retries, history) and Wharf is one of its workers: existing
//! workflows in any SDK schedule activities on a task queue, and Wharf runs
//! each attempt in a fresh sandboxed instance of the module that exports the
//! activity type.
//!
//! It is built on Temporal's own Rust core (`temporalio-sdk-core`, the core
//! every official SDK shares) driven directly: the higher-level Rust SDK can
//! only register activities known at compile time, while ours come from
//! uploaded modules.
//!
//! # Layout
//!
//! * [`run`]: the worker: connects, starts one core worker for the task
//!   queue and one for this process's own queue, and shuts down gracefully.
//! * [`poller`]: polls one core worker; runs `Start` tasks in the engine,
//!   routes `Cancel` tasks to the running attempt.
//! * [`activity`]: task fields to `activity-info`, outcomes to [`Report`]s.
//! * [`heartbeat`]: heartbeats through core and into the SQLite journal;
//!   cancellation state of a running attempt.
//! * [`outbox`]: a report the server could not be reached for is written
//!   to SQLite and re-sent until the server has it.
//! * [`deliver`]: sends reports with Temporal's gRPC client.
//!
//! Dependencies: this layer calls the registry, the store and
//! [`crate::worker`], which runs the attempts under the same rules as the
//! embedded mode (with no tenant quotas: the operator's flags are the
//! limits) and says what outcomes mean in Temporal's terms; only the CLI
//! calls it.
//! The embedded mode does not depend on it.

pub mod activity;
pub mod deliver;
pub mod heartbeat;
pub mod outbox;
pub mod poller;
pub mod run;

pub use activity::Report;
pub use run::{run, Worker};

use crate::engine::{AttemptLimits, Grants};
use crate::registry::LoadedModule;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use temporalio_client::{
    ClientTlsOptions, Connection, ConnectionOptions, GrpcCompression, TlsOptions, Url,
};

/// Errors of the Temporal worker mode.
#[derive(Debug, thiserror::Error)]
pub enum TemporalError {
    /// The server address is not usable.
    #[error("invalid Temporal address {address:?}: {reason}")]
    Address {
        /// As given.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A TLS file could not be read.
    #[error("cannot read {path}: {source}")]
    TlsFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The server could not be reached or refused the connection.
    #[error("cannot connect to Temporal at {address}: {reason}")]
    Connect {
        /// Where.
        address: String,
        /// Why.
        reason: String,
    },
    /// Core refused the worker configuration or the namespace.
    #[error("cannot start the worker: {0}")]
    Worker(String),
    /// Two modules export the same activity type.
    #[error(
        "activity type {activity_type:?} is exported by two modules ({first} and {second}); \
         serve them from separate task queues"
    )]
    DuplicateActivityType {
        /// The type.
        activity_type: String,
        /// Content hash of one module.
        first: String,
        /// Content hash of the other.
        second: String,
    },
    /// The poller ended with an error the core considers fatal.
    #[error("polling task queue {task_queue} failed: {reason}")]
    Poll {
        /// The queue.
        task_queue: String,
        /// Why.
        reason: String,
    },
    /// The local database failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// TLS to the server.
#[derive(Clone, Debug, Default)]
pub struct TlsConfig {
    /// PEM file of the CA that signed the server's certificate (the system
    /// roots when absent).
    pub server_ca: Option<PathBuf>,
    /// Name to verify the server's certificate against (the host of the
    /// address when absent).
    pub domain: Option<String>,
    /// PEM file of this worker's certificate, for mutual TLS.
    pub client_cert: Option<PathBuf>,
    /// PEM file of that certificate's private key.
    pub client_key: Option<PathBuf>,
}

/// How to reach the server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// `HOST:PORT`, or a full `http(s)://` URL.
    pub address: String,
    /// TLS, if the server speaks it.
    pub tls: Option<TlsConfig>,
    /// API key sent as a bearer token (Temporal Cloud).
    pub api_key: Option<String>,
    /// Identity this worker reports to the server.
    pub identity: String,
    /// Gzip requests and accept gzipped answers (the Temporal client's
    /// default). Off, a worker near its server spends less CPU per task:
    /// the client builds a fresh compressor for every message.
    pub compress: bool,
}

/// Everything a worker needs besides its modules.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The server.
    pub server: ServerConfig,
    /// Namespace to serve.
    pub namespace: String,
    /// Task queue to poll.
    pub task_queue: String,
    /// This process's own queue (see [`worker_task_queue_name`]).
    pub worker_task_queue: String,
    /// Most attempts running at once in this process.
    pub max_concurrent: usize,
    /// Most activities per second this worker starts.
    pub max_activities_per_second: Option<f64>,
    /// Most activities per second the server dispatches from the queue to
    /// all its workers.
    pub task_queue_activities_per_second: Option<f64>,
    /// Limits of each attempt (its timeout comes from the task); no tenant
    /// quotas lower them.
    pub limits: AttemptLimits,
    /// Outbound HTTP and configuration granted to every attempt.
    pub grants: Grants,
    /// How long an attempt may ignore a cancellation before it is stopped.
    pub cancel_grace: Duration,
    /// On shutdown, how long running attempts may take to finish.
    pub shutdown_grace: Duration,
}

/// A name for this process's own task queue: unique per process and host,
/// so a workflow can route follow-up activities to the same process.
pub fn worker_task_queue_name(identity: &str) -> String {
    let mut random = [0u8; 4];
    crate::random::fill(&mut random);
    let clean: String = identity
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("wharf-{clean}-{}", hex::encode(random))
}

/// This host's name, for the default identity.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The server URL for an address given as `HOST:PORT` or as a URL.
pub fn server_url(address: &str, tls: bool) -> Result<Url, TemporalError> {
    let with_scheme = if address.contains("://") {
        address.to_owned()
    } else {
        format!("{}://{address}", if tls { "https" } else { "http" })
    };
    let url = Url::parse(&with_scheme).map_err(|e| TemporalError::Address {
        address: address.to_owned(),
        reason: e.to_string(),
    })?;
    if url.host_str().is_none() || url.port_or_known_default().is_none() {
        return Err(TemporalError::Address {
            address: address.to_owned(),
            reason: "expected HOST:PORT, e.g. localhost:7233".into(),
        });
    }
    Ok(url)
}

fn read_pem(path: &PathBuf) -> Result<Vec<u8>, TemporalError> {
    std::fs::read(path).map_err(|source| TemporalError::TlsFile {
        path: path.clone(),
        source,
    })
}

fn tls_options(tls: &TlsConfig) -> Result<TlsOptions, TemporalError> {
    let client = match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => Some(
            ClientTlsOptions::builder()
                .client_cert(read_pem(cert)?)
                .client_private_key(read_pem(key)?)
                .build(),
        ),
        (None, None) => None,
        _ => {
            return Err(TemporalError::Address {
                address: String::new(),
                reason: "mutual TLS needs both --tls-cert and --tls-key".into(),
            })
        }
    };
    let ca = tls.server_ca.as_ref().map(read_pem).transpose()?;
    Ok(TlsOptions::builder()
        .maybe_server_root_ca_cert(ca)
        .maybe_domain(tls.domain.clone())
        .maybe_client_tls_options(client)
        .build())
}

/// Connects to the server (one connection, shared by the core workers and
/// the outbox).
pub async fn connect(server: &ServerConfig) -> Result<Connection, TemporalError> {
    let url = server_url(&server.address, server.tls.is_some())?;
    let tls = server.tls.as_ref().map(tls_options).transpose()?;
    let options = ConnectionOptions::new(url)
        .identity(server.identity.clone())
        .maybe_tls_options(tls)
        .maybe_api_key(server.api_key.clone())
        .grpc_compression(if server.compress {
            GrpcCompression::Gzip
        } else {
            GrpcCompression::None
        })
        .build();
    Connection::connect(options)
        .await
        .map_err(|e| TemporalError::Connect {
            address: server.address.clone(),
            reason: e.to_string(),
        })
}

/// A module this worker serves, with the name the process cache knows it
/// by.
#[derive(Clone)]
pub struct ServedModule {
    /// Its registry name, or its file's name without `.wasm`.
    pub name: String,
    /// The loaded component.
    pub module: Arc<LoadedModule>,
}

/// The activity types this worker serves, each with the module that
/// exports it.
#[derive(Clone, Default)]
pub struct Activities {
    by_type: BTreeMap<String, ServedModule>,
}

impl Activities {
    /// Indexes modules by activity type; a type exported twice is an error.
    pub fn new(modules: &[ServedModule]) -> Result<Self, TemporalError> {
        let mut by_type: BTreeMap<String, ServedModule> = BTreeMap::new();
        for m in modules {
            for t in &m.module.activity_types {
                if let Some(other) = by_type.get(t) {
                    if other.module.sha256 == m.module.sha256 {
                        continue;
                    }
                    return Err(TemporalError::DuplicateActivityType {
                        activity_type: t.clone(),
                        first: other.module.sha256.clone(),
                        second: m.module.sha256.clone(),
                    });
                }
                by_type.insert(t.clone(), m.clone());
            }
        }
        Ok(Self { by_type })
    }

    /// The module exporting `activity_type`.
    pub fn get(&self, activity_type: &str) -> Option<&ServedModule> {
        self.by_type.get(activity_type)
    }

    /// All served types, sorted.
    pub fn types(&self) -> Vec<String> {
        self.by_type.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            server_url("localhost:7233", false).unwrap().as_str(),
            "http://localhost:7233/"
        );
        assert_eq!(
            server_url("ns.tmprl.cloud:7233", true).unwrap().scheme(),
            "https"
        );
        assert!(server_url("http://", false).is_err());
    }

    #[test]
    fn worker_queue_names_are_unique_and_clean() {
        let a = worker_task_queue_name("12@my host");
        let b = worker_task_queue_name("12@my host");
        assert_ne!(a, b);
        assert!(a.starts_with("wharf-12-my-host-"), "{a}");
    }
}
