//! The sandbox: wasmtime set up to run untrusted activity components.
//!
//! One [`Engine`] per process holds its shards (see [`shard`]: a wasmtime
//! engine each, with its instance pool and the linker with everything a
//! guest may import: WASI with nothing granted, outbound HTTP under the
//! attempt's egress policy, `wharf:activity/context`,
//! `wharf:activity/config` and `wharf:activity/cache`) and the epoch
//! ticker that advances them all. An [`ActivityModule`] is a compiled
//! component with its imports resolved once (`InstancePre`) on every
//! shard; [`Engine::run_attempt`] makes a fresh instance of it on the
//! calling thread's shard for every attempt and returns a typed
//! [`Outcome`].
//!
//! This layer knows nothing of storage, the HTTP API or retries; callers
//! reach it through [`AttemptRequest`] (with the attempt's [`Grants`]) and
//! [`AttemptHooks`].

mod attempt;
mod cache;
mod config;
mod context;
#[cfg(target_os = "linux")]
mod cpus;
mod egress;
mod http;
mod limits;
mod log;
mod outcome;
pub mod shard;
mod ticker;
mod vars;

pub use attempt::{AttemptReport, AttemptRequest, Grants, Watch};
pub use cache::{CacheError, CacheHandle, CacheScope, ProcessCache};
pub use config::{Allocator, EngineConfig, PoolShare, MAX_SHARDS};
pub use context::{ActivityInfo, AttemptHooks, NoHooks, StopSignal};
pub use egress::{Denial, EgressLimits, EgressPolicy, EgressRules};
pub use limits::AttemptLimits;
pub use log::AttemptLog;
pub use outcome::{ApplicationError, Outcome};
pub use vars::ConfigGrants;

use context::{ActivityPre, AttemptState};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use ticker::Ticker;
use wasmtime::component::{Component, ComponentExportIndex, HasSelf, Linker};

/// Default budget of one module's `wharf:activity/cache` on a process.
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

/// The WIT interface every activity module must export.
pub const ACTIVITIES_INTERFACE: &str = "wharf:activity/activities@0.1.0";

/// Failures to set up the engine or to link a component.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// wasmtime refused the configuration.
    #[error("cannot configure wasmtime: {0:#}")]
    Config(wasmtime::Error),
    /// The component imports something this host does not provide, or does
    /// not export the activities interface.
    #[error("{0:#}")]
    Link(wasmtime::Error),
}

/// The process-wide sandbox. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    /// Never empty; the first compiles and checks uploads.
    shards: Box<[Shard]>,
    allocator: Allocator,
    ticker: Arc<Ticker>,
    /// How often the epoch advances while guests run.
    tick: Duration,
}

/// One wasmtime engine, with its own instance pool, and its linker.
struct Shard {
    engine: wasmtime::Engine,
    linker: Linker<AttemptState>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.ticker.stop();
    }
}

/// A compiled activity component, linked and ready to instantiate on each
/// of its engine's shards.
#[derive(Clone)]
pub struct ActivityModule {
    pres: Arc<[Linked]>,
}

/// A component linked on one shard.
struct Linked {
    pre: ActivityPre<AttemptState>,
    /// The `run` function of the activities interface.
    run: ComponentExportIndex,
    /// `run` of an instance of this component had the type `run` is called
    /// with: every later instance's has it too, so attempts skip the check
    /// (see `attempt.rs`).
    run_checked: AtomicBool,
}

impl ActivityModule {
    /// The module as loaded on shard `index` (of the engine it was linked
    /// by).
    fn on(&self, index: usize) -> &Linked {
        &self.pres[index % self.pres.len()]
    }
}

impl Engine {
    /// Builds the engine's shards and starts its epoch ticker.
    pub fn new(cfg: &EngineConfig) -> Result<Self, EngineError> {
        let (engines, allocator) = config::build_engines(cfg).map_err(EngineError::Config)?;
        let shards = engines
            .into_iter()
            .map(|engine| {
                let mut linker = Linker::new(&engine);
                wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(EngineError::Config)?;
                wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
                    .map_err(EngineError::Config)?;
                context::Activity::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
                    .map_err(EngineError::Config)?;
                Ok(Shard { engine, linker })
            })
            .collect::<Result<Box<[_]>, EngineError>>()?;
        let weak: Vec<_> = shards.iter().map(|s| s.engine.weak()).collect();
        let ticker = Ticker::start(cfg.epoch_tick, shards.len(), move || {
            let mut any = false;
            for engine in weak.iter().filter_map(|w| w.upgrade()) {
                engine.increment_epoch();
                any = true;
            }
            any
        })
        .map_err(|e| EngineError::Config(e.into()))?;
        tracing::debug!(?allocator, shards = shards.len(), "engine ready");
        Ok(Self {
            inner: Arc::new(Inner {
                shards,
                allocator,
                ticker,
                tick: cfg.epoch_tick,
            }),
        })
    }

    /// How often the epoch advances while guests run.
    pub fn tick(&self) -> Duration {
        self.inner.tick
    }

    /// Marks a watched attempt ([`AttemptRequest::watch`]) as outliving
    /// its first tick and makes sure the epoch advances for it: now if its
    /// guest runs already, else from when it begins.
    pub fn outlived(&self, watch: &Watch) {
        watch.set_outlived();
        self.inner.ticker.kick();
    }

    /// Advances every shard's epoch now: running guests yield at their
    /// next check.
    pub fn yield_guests(&self) {
        for s in &self.inner.shards {
            s.engine.increment_epoch();
        }
    }

    /// How many shards the engine has.
    pub fn shards(&self) -> usize {
        self.inner.shards.len()
    }

    fn shard(&self, index: usize) -> &Shard {
        &self.inner.shards[index % self.inner.shards.len()]
    }

    /// The first shard's wasmtime engine, which compiles and checks
    /// components (every shard is configured alike, so its artifacts load
    /// on all).
    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.shard(0).engine
    }

    /// Which instance allocator is in use.
    pub fn allocator(&self) -> Allocator {
        self.inner.allocator
    }

    /// Resolves a component's imports against this host and checks that it
    /// exports the activities interface. `component` was loaded by
    /// [`Engine::wasmtime`] from the artifact at `artifact`, which the other
    /// shards then map too.
    pub fn link(
        &self,
        component: &Component,
        artifact: &Path,
    ) -> Result<ActivityModule, EngineError> {
        let mut pres = Vec::with_capacity(self.shards());
        for (i, shard) in self.inner.shards.iter().enumerate() {
            let own;
            let component = if i == 0 {
                component
            } else {
                // SAFETY: the artifact was checked and mapped by the first
                // shard just before; every shard has the same configuration.
                own = unsafe { Component::deserialize_file(&shard.engine, artifact) }
                    .map_err(EngineError::Link)?;
                &own
            };
            let pre = shard
                .linker
                .instantiate_pre(component)
                .map_err(EngineError::Link)?;
            let pre = ActivityPre::new(pre).map_err(EngineError::Link)?;
            // The bindings found the interface and its `run` just before.
            let run = component
                .get_export_index(None, ACTIVITIES_INTERFACE)
                .and_then(|iface| component.get_export_index(Some(&iface), "run"))
                .ok_or_else(|| {
                    EngineError::Link(wasmtime::format_err!(
                        "the component exports no `run` in {ACTIVITIES_INTERFACE}"
                    ))
                })?;
            pres.push(Linked {
                pre,
                run,
                run_checked: AtomicBool::new(false),
            });
        }
        Ok(ActivityModule { pres: pres.into() })
    }
}
