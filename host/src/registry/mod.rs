//! The module registry: from uploaded bytes to a module ready to run.
//!
//! Upload validates the bytes (see [`validate`]), compiles them in memory on
//! the bounded compile pool (see [`guard`]), checks what the compiled
//! component exports and needs of the instance pool, lists its activity
//! types by calling `activity-types()` in a fresh sandboxed instance under
//! the uploading namespace's memory and fuel quotas, and only once all of
//! that passed writes anything: the artifact, the original component (so
//! an artifact can always be rebuilt) and the module's row in SQLite. A
//! refused upload leaves nothing on disk. Later loads map the artifact from
//! disk; loaded modules are kept in memory by content hash.

mod artifact;
pub mod guard;
mod validate;

use crate::engine::{ActivityModule, AttemptLimits, Engine};
use crate::store::modules::ModuleRecord;
use crate::store::{Db, StoreError};
pub(crate) use artifact::file_digest as artifact_digest;
use artifact::{ArtifactCache, Pending};
use guard::UploadGuard;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::Component;

/// Why a module was refused or could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Not WebAssembly at all.
    #[error("not a WebAssembly component: {0}")]
    NotWasm(String),
    /// A core module rather than a component.
    #[error(
        "this is a core WebAssembly module, not a component; build for the \
         wasm32-wasip2 target (or wrap it with `wasm-tools component new`) \
         against the wharf:activity world"
    )]
    CoreModule,
    /// A component that does not export the activities interface.
    #[error(
        "this component is not a wharf activity module: it does not export \
         wharf:activity/activities@0.1.0 (it exports {exports})"
    )]
    WrongWorld {
        /// What it exports instead.
        exports: String,
    },
    /// Exports another version of the contract.
    #[error(
        "this component exports {found}, but this host speaks \
         wharf:activity/activities@0.1.0; rebuild it against the 0.1.0 WIT"
    )]
    WrongVersion {
        /// The export found.
        found: String,
    },
    /// The component failed validation or compilation.
    #[error("invalid component: {0}")]
    Invalid(String),
    /// It imports something this host does not provide.
    #[error("this component cannot be linked: {0}")]
    Link(String),
    /// `activity-types()` trapped or misbehaved.
    #[error("calling activity-types() failed: {0}")]
    ActivityTypes(String),
    /// It needs more of the shared instance pool than one module may.
    #[error("this component needs more of the host's instance pool than a module may: {0}")]
    OverPoolShare(String),
    /// The same content was refused before; not looked at again.
    #[error("this content was refused before (not compiled again): {0}")]
    Remembered(String),
    /// The namespace's uploads were refused too often lately.
    #[error(
        "too many refused uploads in this namespace ({} in a row, then one per {} s); retry in {} s",
        guard::REFUSAL_BURST,
        guard::REFUSAL_INTERVAL.as_secs(),
        .retry_after.as_secs_f64().ceil()
    )]
    Throttled {
        /// When the next upload is looked at.
        retry_after: Duration,
    },
    /// No module by that name (and version).
    #[error("module {0} not found")]
    NotFound(String),
    /// The namespace was deleted while its upload was checked.
    #[error("namespace {0:?} not found")]
    NamespaceGone(String),
    /// File-system trouble in the data directory or with the given file.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// The database refused.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How a module was made ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(utoipa::ToSchema)]
pub enum LoadSource {
    /// Compiled from the component bytes (then cached).
    Compiled,
    /// Mapped from the precompiled artifact.
    Artifact,
    /// Already in memory.
    Memory,
}

/// A module ready to run, with what is known about it.
pub struct LoadedModule {
    /// Hex SHA-256 of the component bytes.
    pub sha256: String,
    /// Activity types it exports.
    pub activity_types: Vec<String>,
    /// The linked component.
    pub module: ActivityModule,
    /// How it was loaded the first time in this process.
    pub source: LoadSource,
    /// How long that load took.
    pub load_time: Duration,
    /// The artifact compiled in this process, under its temporary name
    /// until the module is accepted.
    pending: Mutex<Option<Pending>>,
}

/// How a component came to be loaded, for [`Registry::finish_load`].
struct Loaded {
    /// The artifact compiled in this process, if it was.
    pending: Option<Pending>,
    source: LoadSource,
    /// When the load began, for [`LoadedModule::load_time`].
    started: Instant,
    /// Activity types already known (the module's record), or `None` to
    /// list them in a fresh instance.
    known_types: Option<Vec<String>>,
}

/// The quotas an upload is checked under: those of the namespace that
/// sends it.
#[derive(Clone, Debug)]
pub struct UploadLimits {
    /// Memory of the instance that lists the activity types.
    pub memory_bytes: usize,
    /// Fuel of that call; `None` is unlimited (the time limit still holds).
    pub fuel: Option<u64>,
}

impl Default for UploadLimits {
    fn default() -> Self {
        let a = AttemptLimits::default();
        Self {
            memory_bytes: a.memory_bytes,
            fuel: a.fuel,
        }
    }
}

/// Longest `activity-types()` may take.
pub const LIST_TIMEOUT: Duration = Duration::from_secs(5);

/// Compiles, caches and looks up modules.
pub struct Registry {
    engine: Engine,
    components_dir: PathBuf,
    artifacts: ArtifactCache,
    loaded: Mutex<HashMap<String, Arc<LoadedModule>>>,
    guard: UploadGuard,
    /// Held while module files are written and recorded, or removed: a
    /// content being removed as orphaned and uploaded again at the same
    /// time keeps its files.
    files: tokio::sync::Mutex<()>,
}

impl Registry {
    /// A registry keeping components and artifacts under `data_dir`.
    pub fn new(engine: Engine, data_dir: &Path) -> Self {
        let artifacts = ArtifactCache::new(data_dir.join("artifacts"), engine.wasmtime());
        artifacts.sweep_pending();
        Self {
            engine,
            components_dir: data_dir.join("components"),
            artifacts,
            loaded: Mutex::new(HashMap::new()),
            guard: UploadGuard::new(),
            files: tokio::sync::Mutex::new(()),
        }
    }

    /// The engine modules are compiled for.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Validates and loads component bytes (for `wharf run` and workers:
    /// the operator's own files, under default limits), compiling them only
    /// if no intact artifact exists. Returns the module and how it was
    /// loaded.
    pub async fn load_bytes(
        &self,
        bytes: Vec<u8>,
    ) -> Result<(Arc<LoadedModule>, LoadSource), RegistryError> {
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let (loaded, source) = self
            .load_checked(&sha256, Arc::new(bytes), &UploadLimits::default())
            .await?;
        self.keep_artifact(&loaded);
        Ok((loaded, source))
    }

    /// Reads a component file and loads it as [`load_bytes`](Self::load_bytes) does.
    pub async fn load_file(
        &self,
        path: &Path,
    ) -> Result<(Arc<LoadedModule>, LoadSource), RegistryError> {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|source| RegistryError::Io {
                context: format!("cannot read {}", path.display()),
                source,
            })?;
        self.load_bytes(bytes).await
    }

    /// Uploads a module to `namespace` under its `limits`: loads it, keeps
    /// its bytes and records it under `name`. Returns the record and
    /// whether it is a new version. A refusal is remembered (see
    /// [`guard`]).
    pub async fn upload(
        &self,
        db: &Db,
        namespace: &str,
        name: &str,
        bytes: Vec<u8>,
        limits: &UploadLimits,
    ) -> Result<(ModuleRecord, bool), RegistryError> {
        let size = bytes.len() as u64;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        self.guard.admit(namespace, &sha256)?;
        let bytes = Arc::new(bytes);
        let loaded = {
            let _turn = self.guard.namespace_turn(namespace).await;
            self.load_checked(&sha256, bytes.clone(), limits).await
        };
        let loaded = match loaded {
            Ok((loaded, _)) => loaded,
            Err(e) => {
                if e.is_refusal() {
                    self.guard.refused(namespace, &sha256, &e);
                }
                return Err(e);
            }
        };
        let _files = self.files.lock().await;
        let path = self.components_dir.join(format!("{}.wasm", loaded.sha256));
        if !path.exists() {
            std::fs::create_dir_all(&self.components_dir)
                .and_then(|()| artifact::write_atomic(&path, &bytes))
                .map_err(|source| RegistryError::Io {
                    context: format!("cannot store component {}", path.display()),
                    source,
                })?;
        }
        self.keep_artifact(&loaded);
        let now = crate::now_ms();
        db.insert_module(
            namespace,
            name,
            &loaded.sha256,
            &loaded.activity_types,
            size,
            now,
        )
        .await?
        .ok_or_else(|| RegistryError::NamespaceGone(namespace.to_owned()))
    }

    /// Loads a recorded module: from memory, from its artifact, or by
    /// recompiling the kept component.
    ///
    /// From an intact artifact, the activity types are the record's: they
    /// were listed from this very content when it was uploaded, so a
    /// restart does not run an instance per module to list them again.
    /// A recompiled component is listed afresh.
    pub async fn get(&self, record: &ModuleRecord) -> Result<Arc<LoadedModule>, RegistryError> {
        let sha256 = record.sha256.as_str();
        if let Some(m) = self.cached(sha256) {
            return Ok(m);
        }
        let path = self.components_dir.join(format!("{sha256}.wasm"));
        let bytes = match self.artifacts.load(self.engine.wasmtime(), sha256) {
            Some((c, file)) => {
                // A record without types (an unreadable column) is listed.
                let known = Some(record.activity_types.clone()).filter(|t| !t.is_empty());
                return self
                    .finish_load(
                        sha256.to_owned(),
                        c,
                        &file,
                        Loaded {
                            pending: None,
                            source: LoadSource::Artifact,
                            started: Instant::now(),
                            known_types: known,
                        },
                        &UploadLimits::default(),
                    )
                    .await;
            }
            None => tokio::fs::read(&path)
                .await
                .map_err(|source| RegistryError::Io {
                    context: format!("cannot read stored component {}", path.display()),
                    source,
                })?,
        };
        let (loaded, _) = self
            .load_checked(sha256, Arc::new(bytes), &UploadLimits::default())
            .await?;
        self.keep_artifact(&loaded);
        Ok(loaded)
    }

    /// The module of content `sha256` if this process has it in memory.
    pub fn cached(&self, sha256: &str) -> Option<Arc<LoadedModule>> {
        self.loaded.lock().ok()?.get(sha256).cloned()
    }

    /// Checks, compiles (unless an artifact or memory has it) and lists the
    /// activity types of `bytes`, writing nothing to disk.
    async fn load_checked(
        &self,
        sha256: &str,
        bytes: Arc<Vec<u8>>,
        limits: &UploadLimits,
    ) -> Result<(Arc<LoadedModule>, LoadSource), RegistryError> {
        validate::check_bytes(&bytes)?;
        if let Some(m) = self.cached(sha256) {
            return Ok((m, LoadSource::Memory));
        }
        validate::check_core_instances(&bytes)?;
        let started = Instant::now();
        let engine = self.engine.wasmtime();
        if let Some((c, file)) = self.artifacts.load(engine, sha256) {
            let loaded = self
                .finish_load(
                    sha256.to_owned(),
                    c,
                    &file,
                    Loaded {
                        pending: None,
                        source: LoadSource::Artifact,
                        started,
                        known_types: None,
                    },
                    limits,
                )
                .await?;
            return Ok((loaded, LoadSource::Artifact));
        }
        let compiled = self.compile(sha256, bytes).await?;
        let pending = self
            .artifacts
            .write_pending(sha256, &compiled)
            .map_err(|source| RegistryError::Io {
                context: "cannot write the compiled artifact".into(),
                source,
            })?;
        drop(compiled);
        // SAFETY: written just now by this process from this engine's own
        // compiler; mapped from the file like any artifact.
        let file = pending.path().to_owned();
        let component = unsafe { Component::deserialize_file(engine, &file) }
            .map_err(|e| RegistryError::Invalid(format!("{e:#}")))?;
        let loaded = self
            .finish_load(
                sha256.to_owned(),
                component,
                &file,
                Loaded {
                    pending: Some(pending),
                    source: LoadSource::Compiled,
                    started,
                    known_types: None,
                },
                limits,
            )
            .await?;
        Ok((loaded, LoadSource::Compiled))
    }

    /// Moves the artifact of an accepted module compiled in this process
    /// into the cache; a failure only costs a compile at next start.
    fn keep_artifact(&self, loaded: &LoadedModule) {
        let Ok(mut pending) = loaded.pending.lock() else {
            return;
        };
        if let Some(p) = pending.as_mut() {
            if let Err(e) = self.artifacts.keep(p) {
                tracing::warn!(sha256 = %loaded.sha256, "cannot keep the compiled artifact: {e}");
            }
        }
    }

    /// Compiles on a blocking thread of the bounded pool (seconds for a
    /// large JS or Python component), within [`guard::COMPILE_TIMEOUT`].
    /// The pool's place is held until the compiler really stops, even past
    /// the timeout.
    async fn compile(&self, sha256: &str, bytes: Arc<Vec<u8>>) -> Result<Vec<u8>, RegistryError> {
        let turn = self.guard.host_turn().await;
        let engine = self.engine.wasmtime().clone();
        let started = Instant::now();
        let task = tokio::task::spawn_blocking(move || {
            let _turn = turn;
            engine.precompile_component(&bytes)
        });
        let compiled = tokio::time::timeout(guard::COMPILE_TIMEOUT, task)
            .await
            .map_err(|_| {
                RegistryError::Invalid(format!(
                    "compiling took longer than {} s",
                    guard::COMPILE_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|e| RegistryError::Invalid(format!("compiler task failed: {e}")))?
            .map_err(|e| RegistryError::Invalid(format!("{e:#}")))?;
        tracing::info!(
            sha256,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "compiled component"
        );
        Ok(compiled)
    }

    async fn finish_load(
        &self,
        sha256: String,
        component: Component,
        file: &Path,
        how: Loaded,
        limits: &UploadLimits,
    ) -> Result<Arc<LoadedModule>, RegistryError> {
        let Loaded {
            pending,
            source,
            started,
            known_types,
        } = how;
        validate::check_exports(self.engine.wasmtime(), &component)?;
        validate::check_pool_share(&component)?;
        let module = self
            .engine
            .link(&component, file)
            .map_err(|e| RegistryError::Link(e.to_string()))?;
        let activity_types = match known_types {
            Some(types) => types,
            None => self.activity_types(&module, limits).await?,
        };
        let loaded = Arc::new(LoadedModule {
            sha256: sha256.clone(),
            activity_types,
            module,
            source,
            load_time: started.elapsed(),
            pending: Mutex::new(pending),
        });
        tracing::info!(
            sha256,
            ?source,
            elapsed_ms = loaded.load_time.as_millis() as u64,
            types = loaded.activity_types.len(),
            "module ready"
        );
        if let Ok(mut map) = self.loaded.lock() {
            map.insert(sha256, loaded.clone());
        }
        Ok(loaded)
    }

    /// Calls `activity-types()` in a fresh instance under the uploader's
    /// memory and fuel quotas and [`LIST_TIMEOUT`].
    async fn activity_types(
        &self,
        module: &ActivityModule,
        limits: &UploadLimits,
    ) -> Result<Vec<String>, RegistryError> {
        let limits = AttemptLimits {
            timeout: Some(LIST_TIMEOUT),
            memory_bytes: limits.memory_bytes,
            fuel: limits.fuel,
            ..AttemptLimits::default()
        };
        self.engine
            .list_activity_types(module, &limits)
            .await
            .map_err(|outcome| RegistryError::ActivityTypes(outcome.describe()))
    }

    /// Removes the files (component, artifact) of contents no module has,
    /// and forgets them in memory. Returns those it removed.
    pub async fn remove_contents(&self, db: &Db, sha256s: Vec<String>) -> Vec<String> {
        let _files = self.files.lock().await;
        // Uploaded again since it was found orphaned: kept.
        let still: Vec<String> = match db.orphaned_contents() {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!("cannot check orphaned module contents: {e}");
                return Vec::new();
            }
        };
        let mut removed = Vec::new();
        for sha in sha256s.into_iter().filter(|s| still.contains(s)) {
            if let Ok(mut map) = self.loaded.lock() {
                map.remove(&sha);
            }
            let component = self.components_dir.join(format!("{sha}.wasm"));
            match self
                .artifacts
                .remove(&sha)
                .and_then(|()| remove_file(&component))
            {
                Ok(()) => removed.push(sha),
                Err(e) => tracing::warn!(sha256 = %sha, "cannot remove module files: {e}"),
            }
        }
        removed
    }
}

/// Removes a file; one already gone is fine.
fn remove_file(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl RegistryError {
    /// A refusal of the content itself (remembered by digest), rather than
    /// trouble of the host's or a throttled upload.
    fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::NotWasm(_)
                | Self::CoreModule
                | Self::WrongWorld { .. }
                | Self::WrongVersion { .. }
                | Self::Invalid(_)
                | Self::Link(_)
                | Self::ActivityTypes(_)
                | Self::OverPoolShare(_)
        )
    }
}
