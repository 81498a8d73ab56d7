//! The sandbox: wasmtime set up to run untrusted activity components.
//!
//! One [`Engine`] per process holds the wasmtime engine, the linker with
//! everything a guest may import (WASI with nothing granted, outbound HTTP
//! under the attempt's egress policy, `wharf:activity/context`,
//! `wharf:activity/config` and `wharf:activity/cache`), and the epoch
//! ticker. An [`ActivityModule`] is a compiled component with its imports
//! resolved once (`InstancePre`); [`Engine::run_attempt`] makes a fresh
//! instance of it for every attempt and returns a typed [`Outcome`].
//!
//! This layer knows nothing of storage, the HTTP API or retries; callers
//! reach it through [`AttemptRequest`] (with the attempt's [`Grants`]) and
//! [`AttemptHooks`].

mod attempt;
mod cache;
mod config;
mod context;
mod egress;
mod http;
mod limits;
mod log;
mod outcome;
mod ticker;
mod vars;

pub use attempt::{AttemptReport, AttemptRequest, Grants};
pub use cache::{CacheError, CacheScope, ProcessCache};
pub use config::{Allocator, EngineConfig, PoolShare};
pub use context::{ActivityInfo, AttemptHooks, NoHooks, StopSignal};
pub use egress::{Denial, EgressLimits, EgressPolicy, EgressRules};
pub use limits::AttemptLimits;
pub use log::AttemptLog;
pub use outcome::{ApplicationError, Outcome};
pub use vars::ConfigGrants;

use context::{ActivityPre, AttemptState};
use std::sync::Arc;
use ticker::Ticker;
use wasmtime::component::{Component, HasSelf, Linker};

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
    engine: wasmtime::Engine,
    linker: Linker<AttemptState>,
    allocator: Allocator,
    ticker: Arc<Ticker>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.ticker.stop();
    }
}

/// A compiled activity component, linked and ready to instantiate.
#[derive(Clone)]
pub struct ActivityModule {
    pre: ActivityPre<AttemptState>,
}

impl Engine {
    /// Builds the engine and starts its epoch ticker.
    pub fn new(cfg: &EngineConfig) -> Result<Self, EngineError> {
        let (engine, allocator) = config::build_engine(cfg).map_err(EngineError::Config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(EngineError::Config)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(EngineError::Config)?;
        context::Activity::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(EngineError::Config)?;

        let weak = engine.weak();
        let ticker = Ticker::start(cfg.epoch_tick, move || match weak.upgrade() {
            Some(engine) => {
                engine.increment_epoch();
                true
            }
            None => false,
        })
        .map_err(|e| EngineError::Config(e.into()))?;
        tracing::debug!(?allocator, "engine ready");
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                linker,
                allocator,
                ticker,
            }),
        })
    }

    /// The underlying wasmtime engine (for compiling and loading artifacts).
    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner.engine
    }

    /// Which instance allocator is in use.
    pub fn allocator(&self) -> Allocator {
        self.inner.allocator
    }

    /// Resolves a component's imports against this host and checks that it
    /// exports the activities interface.
    pub fn link(&self, component: &Component) -> Result<ActivityModule, EngineError> {
        let pre = self
            .inner
            .linker
            .instantiate_pre(component)
            .map_err(EngineError::Link)?;
        let pre = ActivityPre::new(pre).map_err(EngineError::Link)?;
        Ok(ActivityModule { pre })
    }
}
