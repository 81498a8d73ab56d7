//! Engine configuration: how wasmtime is set up once per process.
//!
//! The pooling allocator with copy-on-write memory images makes a fresh
//! instance per attempt cheap. Two of its knobs only pay off together
//! (`linear_memory_keep_resident` re-copies the whole resident heap on every
//! reset unless `pagemap_scan` can find the dirty pages), so they are enabled
//! as a pair, only when the kernel supports the scan. When the pool cannot
//! reserve its address space at all, the engine falls back to on-demand
//! allocation with a warning rather than refusing to start.
//!
//! Measured without effect on the per-attempt cost of the JS and Python
//! `noop` examples (`wharf bench instantiate`, p50 within ±4%, wasmtime 48):
//! fuel off; `linear_memory_keep_resident` 64 MiB; `table_keep_resident`
//! 1 MiB; `async_stack_keep_resident` 1 MiB; `table_elements` 8192;
//! `max_memory_size` 256 MiB.
//!
//! Wasmtime 50 resumes the dirty-page scan past its region buffer, so JS and
//! Python attempts take no page faults (48: 42 and 127 per attempt) and no
//! longer contend for the process's memory-map lock. Its scan also stopped
//! requiring present pages, and on Linux 6.18 an empty page-table entry then
//! counts as dirty: every untouched page of each touched page table was
//! zeroed on every reset (47 % of a Rust `noop` attempt in `memset`, `perf`).
//! The workspace patches that one scan (`vendor/README.md`). Re-checked on
//! the patched 50.0.1 (`wharf bench instantiate`, release, 2026-11-29, 2
//! vCPUs shared with other builds at load 5-8, so only large differences
//! count; CPU-time p50):
//! * these settings: Rust 12.2 µs, JS 300 µs, Python 872 µs, 0 faults;
//! * `table_keep_resident(0)`: Rust 26.1 µs, JS 694 µs, Python 864 µs, 1, 13
//!   and 13 faults per attempt; 1 MiB: no gain in three alternating pairs
//!   (JS 532/336/478 µs against 314/317/376 µs);
//! * `linear_memory_keep_resident` 4 MiB or 64 MiB: no gain (JS 451 and
//!   607 µs, Python 1384 and 804 µs in the same series);
//! * memory protection keys (the CPU has them): the host's in-place reset
//!   then faults on the key-protected slot (SIGSEGV in `memset`), so they
//!   stay off and wasmtime's `memory-protection-keys` feature is not built;
//! * `Component::initialize_copy_on_write_image` at load: 1-4 µs per
//!   component, since the image is mapped from the artifact file: nothing to
//!   move off the first attempt, not called;
//! * `async_stack_keep_resident` only applies with `async_stack_zeroing`,
//!   which is off (stacks are not zeroed between attempts).
//! * eager table initialisation (`table_lazy_init(false)`): JS 1728 µs
//!   against 289 µs, Python 830 µs against 875 µs (its shared table is
//!   filled at instantiation either way), so tables stay lazy.
//!
//! Every shard's engine (see `shard.rs`) is built from these same settings,
//! so one compile serves them all.

use std::time::Duration;
use wasmtime::{Config, Enabled, InstanceAllocationStrategy, PoolingAllocationConfig};

/// What one component may take of the shared instance pool, checked when a
/// module is uploaded. The pool holds this much for every instance it may
/// hold at once (`max_instances`, at least the host's running attempts), so
/// a tenant's component built to be as large as allowed can never crowd
/// out another's attempts: every accepted component always fits.
///
/// The caps leave ample room above what the kits produce (core instances
/// counted in the examples: componentize-py 14, componentize-js 4, Rust 3).
pub struct PoolShare;

impl PoolShare {
    /// Core instances one component may create.
    pub const CORE_INSTANCES: u32 = 64;
    /// Linear memories of one component.
    pub const MEMORIES: u32 = 4;
    /// Tables of one component.
    pub const TABLES: u32 = 32;
}

/// Settings that shape the wasmtime engine. Per-attempt limits live in
/// [`super::AttemptLimits`]; these are process-wide.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Use the pooling instance allocator (falls back to on-demand if the
    /// reservation fails).
    pub pooling: bool,
    /// Maximum number of instances alive at once in the pool.
    pub max_instances: u32,
    /// Largest linear memory any attempt may grow to; per-attempt limits are
    /// enforced below this by the resource limiter.
    pub max_memory_bytes: usize,
    /// How often the epoch advances: the granularity of deadlines and of
    /// yielding to other attempts on the same runtime.
    pub epoch_tick: Duration,
    /// Maximum wasm stack per attempt.
    pub max_wasm_stack: usize,
    /// Wasmtime engines to split attempts over, one per core up to
    /// [`MAX_SHARDS`] (see `shard.rs`). Each has a pool of `max_instances`:
    /// a thread's attempts all use its one shard.
    pub shards: usize,
}

/// Most shards an engine has: each pool reserves address space for every
/// memory it may hold (about 16 TiB at the defaults), and a process has
/// 128 TiB.
pub const MAX_SHARDS: usize = 4;

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            pooling: true,
            max_instances: 1000,
            max_memory_bytes: 4 << 30,
            epoch_tick: Duration::from_millis(1),
            max_wasm_stack: 1 << 20,
            shards: std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(MAX_SHARDS),
        }
    }
}

/// Which allocator the engine ended up with, for describe output and benches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Allocator {
    /// Pooling with dirty-page scanning and resident memory kept warm.
    PoolingPagemapScan,
    /// Pooling, plain copy-on-write reset (kernel lacks `PAGEMAP_SCAN`).
    Pooling,
    /// Memory mapped on demand per instance.
    OnDemand,
}

/// Builds the shards' wasmtime engines, all configured as the first, which
/// falls back as the module docs describe. A pool that cannot reserve its
/// address space ends the list there (the first is always built).
pub(super) fn build_engines(
    cfg: &EngineConfig,
) -> wasmtime::Result<(Vec<wasmtime::Engine>, Allocator)> {
    let (first, allocator) = build_engine(cfg)?;
    let mut engines = vec![first];
    while engines.len() < cfg.shards.clamp(1, MAX_SHARDS) {
        let pool = match allocator {
            Allocator::PoolingPagemapScan => Some(pooling(cfg, true)),
            Allocator::Pooling => Some(pooling(cfg, false)),
            Allocator::OnDemand => None,
        };
        match wasmtime::Engine::new(&base_config(cfg, pool)) {
            Ok(engine) => engines.push(engine),
            Err(e) => {
                tracing::warn!(
                    "engine shard {} could not be built ({e:#}); running with {}",
                    engines.len(),
                    engines.len()
                );
                break;
            }
        }
    }
    Ok((engines, allocator))
}

/// Builds one wasmtime engine, falling back as the module docs describe.
fn build_engine(cfg: &EngineConfig) -> wasmtime::Result<(wasmtime::Engine, Allocator)> {
    if cfg.pooling {
        match wasmtime::Engine::new(&base_config(cfg, Some(pooling(cfg, true)))) {
            Ok(engine) => return Ok((engine, Allocator::PoolingPagemapScan)),
            Err(e) => tracing::debug!("pooling with pagemap_scan unavailable: {e:#}"),
        }
        match wasmtime::Engine::new(&base_config(cfg, Some(pooling(cfg, false)))) {
            Ok(engine) => return Ok((engine, Allocator::Pooling)),
            Err(e) => tracing::warn!(
                "pooling allocator could not reserve its memory ({e:#}); \
                 falling back to on-demand allocation, attempts will start slower"
            ),
        }
    }
    let engine = wasmtime::Engine::new(&base_config(cfg, None))?;
    Ok((engine, Allocator::OnDemand))
}

fn base_config(cfg: &EngineConfig, pool: Option<PoolingAllocationConfig>) -> Config {
    let mut c = Config::new();
    c.wasm_component_model(true)
        .epoch_interruption(true)
        // Fuel instrumentation is compiled into every module so that any
        // namespace can set a CPU budget without recompiling; unlimited
        // attempts simply get the maximum.
        .consume_fuel(true)
        .max_wasm_stack(cfg.max_wasm_stack)
        .async_stack_size(cfg.max_wasm_stack + (1 << 20));
    if let Some(pool) = pool {
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    c
}

fn pooling(cfg: &EngineConfig, pagemap_scan: bool) -> PoolingAllocationConfig {
    let n = cfg.max_instances;
    let mut p = PoolingAllocationConfig::default();
    // Every instance the pool may hold gets a full share (see `PoolShare`);
    // the per-component limits are the upload caps.
    p.total_component_instances(n)
        .total_core_instances(n.saturating_mul(PoolShare::CORE_INSTANCES))
        .total_memories(n.saturating_mul(PoolShare::MEMORIES))
        .total_tables(n.saturating_mul(PoolShare::TABLES))
        .total_stacks(n)
        .max_core_instances_per_component(PoolShare::CORE_INSTANCES)
        .max_memories_per_component(PoolShare::MEMORIES)
        .max_tables_per_component(PoolShare::TABLES)
        .max_memories_per_module(2)
        .max_tables_per_module(10)
        .table_elements(20_000)
        .max_component_instance_size(1 << 20)
        .max_core_instance_size(1 << 20)
        .max_memory_size(cfg.max_memory_bytes);
    if pagemap_scan {
        p.pagemap_scan(Enabled::Yes)
            .linear_memory_keep_resident(16 << 20)
            .table_keep_resident(64 << 10);
    }
    p
}
