//! The module registry: from uploaded bytes to a module ready to run.
//!
//! Upload validates the bytes (see [`validate`]), compiles them once into an
//! artifact under the data directory, lists the module's activity types by
//! calling `activity-types()` in a fresh sandboxed instance, keeps the
//! original component (so an artifact can always be rebuilt) and records the
//! module in SQLite. Later loads map the artifact from disk; loaded modules
//! are kept in memory by content hash.

mod artifact;
mod validate;

use crate::engine::{ActivityModule, AttemptLimits, Engine};
use crate::store::modules::ModuleRecord;
use crate::store::{Db, StoreError};
use artifact::ArtifactCache;
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
    /// No module by that name (and version).
    #[error("module {0} not found")]
    NotFound(String),
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
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
}

/// Compiles, caches and looks up modules.
pub struct Registry {
    engine: Engine,
    components_dir: PathBuf,
    artifacts: ArtifactCache,
    loaded: Mutex<HashMap<String, Arc<LoadedModule>>>,
}

impl Registry {
    /// A registry keeping components and artifacts under `data_dir`.
    pub fn new(engine: Engine, data_dir: &Path) -> Self {
        let artifacts = ArtifactCache::new(data_dir.join("artifacts"), engine.wasmtime());
        Self {
            engine,
            components_dir: data_dir.join("components"),
            artifacts,
            loaded: Mutex::new(HashMap::new()),
        }
    }

    /// The engine modules are compiled for.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Validates and loads component bytes, compiling them only if no
    /// intact artifact exists. Returns the module and how it was loaded.
    pub async fn load_bytes(
        &self,
        bytes: Vec<u8>,
    ) -> Result<(Arc<LoadedModule>, LoadSource), RegistryError> {
        validate::check_bytes(&bytes)?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        if let Some(m) = self.cached(&sha256) {
            return Ok((m, LoadSource::Memory));
        }
        let started = Instant::now();
        let engine = self.engine.wasmtime().clone();
        let (component, source) = match self.artifacts.load(&engine, &sha256) {
            Some(c) => (c, LoadSource::Artifact),
            None => (self.compile(&sha256, bytes).await?, LoadSource::Compiled),
        };
        let loaded = self.finish_load(sha256, component, source, started).await?;
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

    /// Uploads a module: loads it, keeps its bytes and records it under
    /// `name`. Returns the record and whether it is a new version.
    pub async fn upload(
        &self,
        db: &Db,
        namespace: &str,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<(ModuleRecord, bool), RegistryError> {
        let size = bytes.len() as u64;
        let (loaded, _) = self.load_bytes(bytes.clone()).await?;
        let path = self.components_dir.join(format!("{}.wasm", loaded.sha256));
        if !path.exists() {
            std::fs::create_dir_all(&self.components_dir)
                .and_then(|()| artifact::write_atomic(&path, &bytes))
                .map_err(|source| RegistryError::Io {
                    context: format!("cannot store component {}", path.display()),
                    source,
                })?;
        }
        let now = crate::now_ms();
        Ok(db
            .insert_module(
                namespace,
                name,
                &loaded.sha256,
                &loaded.activity_types,
                size,
                now,
            )
            .await?)
    }

    /// Loads a recorded module by its content hash: from memory, from its
    /// artifact, or by recompiling the kept component.
    pub async fn get(&self, sha256: &str) -> Result<Arc<LoadedModule>, RegistryError> {
        if let Some(m) = self.cached(sha256) {
            return Ok(m);
        }
        let started = Instant::now();
        let engine = self.engine.wasmtime().clone();
        let (component, source) = match self.artifacts.load(&engine, sha256) {
            Some(c) => (c, LoadSource::Artifact),
            None => {
                let path = self.components_dir.join(format!("{sha256}.wasm"));
                let bytes = tokio::fs::read(&path)
                    .await
                    .map_err(|source| RegistryError::Io {
                        context: format!("cannot read stored component {}", path.display()),
                        source,
                    })?;
                (self.compile(sha256, bytes).await?, LoadSource::Compiled)
            }
        };
        self.finish_load(sha256.to_owned(), component, source, started)
            .await
    }

    fn cached(&self, sha256: &str) -> Option<Arc<LoadedModule>> {
        self.loaded.lock().ok()?.get(sha256).cloned()
    }

    /// Compiles on a blocking thread (seconds for a large JS or Python
    /// component), stores the artifact and maps it back from disk.
    async fn compile(&self, sha256: &str, bytes: Vec<u8>) -> Result<Component, RegistryError> {
        let engine = self.engine.wasmtime().clone();
        let started = Instant::now();
        let compiled = tokio::task::spawn_blocking(move || engine.precompile_component(&bytes))
            .await
            .map_err(|e| RegistryError::Invalid(format!("compiler task failed: {e}")))?
            .map_err(|e| RegistryError::Invalid(format!("{e:#}")))?;
        tracing::info!(
            sha256,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "compiled component"
        );
        let path = self
            .artifacts
            .store(sha256, &compiled)
            .map_err(|source| RegistryError::Io {
                context: "cannot write the compiled artifact".into(),
                source,
            })?;
        // SAFETY: just written by this process from this engine's output.
        unsafe { Component::deserialize_file(self.engine.wasmtime(), &path) }
            .map_err(|e| RegistryError::Invalid(format!("{e:#}")))
    }

    async fn finish_load(
        &self,
        sha256: String,
        component: Component,
        source: LoadSource,
        started: Instant,
    ) -> Result<Arc<LoadedModule>, RegistryError> {
        validate::check_exports(self.engine.wasmtime(), &component)?;
        let module = self
            .engine
            .link(&component)
            .map_err(|e| RegistryError::Link(e.to_string()))?;
        let activity_types = self.activity_types(&module).await?;
        let loaded = Arc::new(LoadedModule {
            sha256: sha256.clone(),
            activity_types,
            module,
            source,
            load_time: started.elapsed(),
        });
        tracing::info!(sha256, ?source, elapsed_ms = loaded.load_time.as_millis() as u64, types = ?loaded.activity_types, "module ready");
        if let Ok(mut map) = self.loaded.lock() {
            map.insert(sha256, loaded.clone());
        }
        Ok(loaded)
    }

    /// Calls `activity-types()` in a fresh, limited instance.
    async fn activity_types(&self, module: &ActivityModule) -> Result<Vec<String>, RegistryError> {
        let limits = AttemptLimits {
            timeout: Some(Duration::from_secs(10)),
            ..AttemptLimits::default()
        };
        self.engine
            .list_activity_types(module, &limits)
            .await
            .map_err(|outcome| RegistryError::ActivityTypes(outcome.describe()))
    }
}
