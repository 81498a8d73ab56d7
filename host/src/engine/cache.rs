//! The host side of `wharf:activity/cache`: bytes by key that outlive the
//! attempt that stored them, on this process only.
//!
//! Every attempt still runs in a fresh instance; what it may find from an
//! earlier attempt is only what that attempt put here on purpose. Entries
//! are scoped to namespace + module name, so tenants and modules never see
//! each other's. Three byte budgets hold, each kept by evicting the least
//! recently used entries: the scope's (`budget`), its namespace's (all its
//! modules together: [`NAMESPACE_SCOPES`] x `budget`) and the host's
//! ([`HOST_SCOPES`] x `budget`), so neither many module names nor many
//! tenants grow the cache without bound. Activities that want a warm cache
//! are routed to the process that holds it through
//! `activity-info.worker-task-queue`.

use super::context::wharf::activity::cache::{CacheError as WitCacheError, Host};
use super::context::AttemptState;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// A namespace's modules together hold at most this many scope budgets.
pub const NAMESPACE_SCOPES: usize = 4;
/// The host holds at most this many scope budgets over all namespaces.
pub const HOST_SCOPES: usize = 16;

/// Scopes by (namespace, module).
type Scopes = HashMap<(String, String), Arc<CacheScope>>;

/// What the scopes share: the map of scopes (to evict across them), the
/// byte counts of each namespace and of the host, and the clock of uses
/// (one for all scopes, so their entries' ages compare).
struct Shared {
    scopes: Mutex<Scopes>,
    namespaces: Mutex<HashMap<String, Arc<AtomicUsize>>>,
    host: AtomicUsize,
    tick: AtomicU64,
    namespace_budget: usize,
    host_budget: usize,
}

/// The caches of every scope on this process. Cheap to clone.
#[derive(Clone)]
pub struct ProcessCache {
    inner: Arc<Shared>,
    budget: usize,
}

impl ProcessCache {
    /// Caches of at most `budget` bytes (keys and values) per scope, with
    /// the namespace and host budgets the module docs describe.
    pub fn new(budget: usize) -> Self {
        Self::with_budgets(
            budget,
            budget.saturating_mul(NAMESPACE_SCOPES),
            budget.saturating_mul(HOST_SCOPES),
        )
    }

    /// Caches with explicit budgets per scope, namespace and host.
    pub fn with_budgets(budget: usize, namespace_budget: usize, host_budget: usize) -> Self {
        Self {
            inner: Arc::new(Shared {
                scopes: Mutex::default(),
                namespaces: Mutex::default(),
                host: AtomicUsize::new(0),
                tick: AtomicU64::new(0),
                namespace_budget,
                host_budget,
            }),
            budget,
        }
    }

    fn scopes(&self) -> MutexGuard<'_, Scopes> {
        self.inner.scopes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops every scope of a deleted namespace.
    pub fn clear_namespace(&self, namespace: &str) {
        let dropped: Vec<Arc<CacheScope>> = {
            let mut map = self.scopes();
            let keys: Vec<_> = map
                .keys()
                .filter(|(ns, _)| ns == namespace)
                .cloned()
                .collect();
            keys.iter().filter_map(|k| map.remove(k)).collect()
        };
        for scope in dropped {
            scope.clear();
        }
        self.inner
            .namespaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(namespace);
    }

    /// Drops the scope of one module of a namespace (every version of it
    /// deleted).
    pub fn clear_module(&self, namespace: &str, module: &str) {
        let dropped = self
            .scopes()
            .remove(&(namespace.to_owned(), module.to_owned()));
        if let Some(scope) = dropped {
            scope.clear();
        }
    }

    /// The cache of one module of one namespace.
    pub fn scope(&self, namespace: &str, module: &str) -> Arc<CacheScope> {
        let ns_bytes = self
            .inner
            .namespaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(namespace.to_owned())
            .or_default()
            .clone();
        let mut map = self.scopes();
        map.entry((namespace.to_owned(), module.to_owned()))
            .or_insert_with(|| {
                Arc::new(CacheScope {
                    budget: self.budget,
                    namespace: namespace.to_owned(),
                    ns_bytes,
                    shared: Arc::downgrade(&self.inner),
                    lru: Mutex::default(),
                })
            })
            .clone()
    }
}

/// An attempt's way to its module's cache: resolved to the scope at the
/// guest's first cache call, so an attempt that never uses the cache takes
/// none of the process-wide locks. On two cores, resolving it for every
/// attempt was among the costs that grew most (`perf`, Rust `noop`).
pub struct CacheHandle {
    cache: ProcessCache,
    namespace: String,
    module: String,
    scope: Option<Arc<CacheScope>>,
}

impl CacheHandle {
    /// The cache of `module` of `namespace` in `cache`, not yet resolved.
    pub fn new(cache: ProcessCache, namespace: String, module: String) -> Self {
        Self {
            cache,
            namespace,
            module,
            scope: None,
        }
    }

    fn scope(&mut self) -> &CacheScope {
        let Self {
            cache,
            namespace,
            module,
            scope,
        } = self;
        scope.get_or_insert_with(|| cache.scope(namespace, module))
    }
}

impl Shared {
    /// Evicts the least recently used entries of `namespace`'s scopes
    /// (`Some`) or of all scopes (`None`) while `over()` holds. One scope
    /// is locked at a time.
    fn evict_while(&self, namespace: Option<&str>, over: impl Fn() -> bool) {
        while over() {
            let candidates: Vec<Arc<CacheScope>> = {
                let map = self.scopes.lock().unwrap_or_else(|e| e.into_inner());
                map.iter()
                    .filter(|((ns, _), _)| namespace.is_none_or(|n| n == ns))
                    .map(|(_, s)| s.clone())
                    .collect()
            };
            let oldest = candidates
                .iter()
                .filter_map(|s| s.oldest().map(|t| (t, s)))
                .min_by_key(|(t, _)| *t);
            let Some((_, scope)) = oldest else { return };
            scope.evict_oldest();
        }
    }
}

/// The cache of one namespace + module.
pub struct CacheScope {
    budget: usize,
    namespace: String,
    ns_bytes: Arc<AtomicUsize>,
    shared: Weak<Shared>,
    lru: Mutex<Lru>,
}

/// Why a value was not stored.
#[derive(Debug, PartialEq, Eq)]
pub enum CacheError {
    /// The value (with its key) alone exceeds the scope's budget.
    TooLarge {
        /// The budget in bytes.
        budget: usize,
    },
}

#[derive(Default)]
struct Lru {
    entries: HashMap<String, (Arc<[u8]>, u64)>,
    by_use: BTreeMap<u64, String>,
    bytes: usize,
}

impl Lru {
    fn touch(&mut self, key: &str, tick: u64) {
        if let Some((_, used)) = self.entries.get_mut(key) {
            self.by_use.remove(used);
            *used = tick;
            self.by_use.insert(tick, key.to_owned());
        }
    }

    /// Removes `key`; the bytes it freed.
    fn remove(&mut self, key: &str) -> usize {
        match self.entries.remove(key) {
            Some((value, used)) => {
                self.by_use.remove(&used);
                let size = key.len() + value.len();
                self.bytes -= size;
                size
            }
            None => 0,
        }
    }

    /// Removes the least recently used entry; the bytes it freed.
    fn pop_oldest(&mut self) -> usize {
        match self.by_use.pop_first() {
            Some((_, oldest)) => match self.entries.remove(&oldest) {
                Some((v, _)) => {
                    let size = oldest.len() + v.len();
                    self.bytes -= size;
                    size
                }
                None => 0,
            },
            None => 0,
        }
    }
}

impl CacheScope {
    fn lock(&self) -> MutexGuard<'_, Lru> {
        self.lru.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn tick(&self) -> u64 {
        self.shared
            .upgrade()
            .map_or(0, |s| s.tick.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Counts `freed` bytes out of the namespace's and the host's totals.
    fn release(&self, freed: usize) {
        if freed == 0 {
            return;
        }
        self.ns_bytes.fetch_sub(freed, Ordering::Relaxed);
        if let Some(s) = self.shared.upgrade() {
            s.host.fetch_sub(freed, Ordering::Relaxed);
        }
    }

    fn oldest(&self) -> Option<u64> {
        self.lock().by_use.first_key_value().map(|(t, _)| *t)
    }

    fn evict_oldest(&self) {
        let freed = self.lock().pop_oldest();
        self.release(freed);
    }

    fn clear(&self) {
        let freed = {
            let mut lru = self.lock();
            let freed = lru.bytes;
            *lru = Lru::default();
            freed
        };
        self.release(freed);
    }

    /// The largest entry (key and value) this scope may store.
    fn max_entry(&self) -> usize {
        self.shared.upgrade().map_or(self.budget, |s| {
            self.budget.min(s.namespace_budget).min(s.host_budget)
        })
    }

    /// The value under `key`, if this process has it.
    pub fn get(&self, key: &str) -> Option<Arc<[u8]>> {
        let tick = self.tick();
        let mut lru = self.lock();
        let value = lru.entries.get(key).map(|(v, _)| v.clone())?;
        lru.touch(key, tick);
        Some(value)
    }

    /// Stores `value` under `key`, evicting least recently used entries to
    /// stay within the scope's, the namespace's and the host's budgets.
    pub fn set(&self, key: String, value: Vec<u8>) -> Result<(), CacheError> {
        let size = key.len() + value.len();
        let max = self.max_entry();
        if size > max {
            return Err(CacheError::TooLarge { budget: max });
        }
        let tick = self.tick();
        let freed = {
            let mut lru = self.lock();
            let mut freed = lru.remove(&key);
            while lru.bytes + size > self.budget && !lru.entries.is_empty() {
                freed += lru.pop_oldest();
            }
            lru.by_use.insert(tick, key.clone());
            lru.entries.insert(key, (value.into(), tick));
            lru.bytes += size;
            freed
        };
        self.release(freed);
        self.ns_bytes.fetch_add(size, Ordering::Relaxed);
        if let Some(s) = self.shared.upgrade() {
            s.host.fetch_add(size, Ordering::Relaxed);
            let ns = &self.ns_bytes;
            s.evict_while(Some(&self.namespace), || {
                ns.load(Ordering::Relaxed) > s.namespace_budget
            });
            s.evict_while(None, || s.host.load(Ordering::Relaxed) > s.host_budget);
        }
        Ok(())
    }

    /// Removes `key`.
    pub fn delete(&self, key: &str) {
        let freed = self.lock().remove(key);
        self.release(freed);
    }
}

/// What the guest calls. Without a cache (upload-time listing) nothing is
/// found and nothing is stored.
impl Host for AttemptState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        Ok(self
            .cache
            .as_mut()
            .and_then(|c| c.scope().get(&key))
            .map(|v| v.to_vec()))
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), WitCacheError>> {
        let Some(cache) = &mut self.cache else {
            return Ok(Err(WitCacheError::TooLarge(0)));
        };
        Ok(cache.scope().set(key, value).map_err(|e| match e {
            CacheError::TooLarge { budget } => WitCacheError::TooLarge(budget as u64),
        }))
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<()> {
        if let Some(c) = &mut self.cache {
            c.scope().delete(&key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_apart_and_the_budget_evicts_the_least_recently_used() {
        let cache = ProcessCache::new(30);
        let a = cache.scope("ns", "m");
        assert!(cache.scope("ns", "other").get("k").is_none());
        a.set("k1".into(), vec![1; 10]).unwrap();
        a.set("k2".into(), vec![2; 10]).unwrap();
        assert!(a.get("k1").is_some()); // k2 is now the least recently used
        a.set("k3".into(), vec![3; 10]).unwrap();
        assert!(a.get("k2").is_none());
        assert_eq!(a.get("k1").as_deref(), Some(&[1u8; 10][..]));
        assert_eq!(
            a.set("big".into(), vec![0; 40]),
            Err(CacheError::TooLarge { budget: 30 })
        );
        assert!(cache.scope("other-ns", "m").get("k1").is_none());
        a.delete("k1");
        assert!(a.get("k1").is_none());
        let lru = a.lock();
        assert_eq!((lru.entries.len(), lru.bytes), (1, 12));
    }

    #[test]
    fn namespaces_and_the_host_have_budgets_across_modules() {
        // 30 bytes per module, 50 per namespace, 80 for the host.
        let cache = ProcessCache::with_budgets(30, 50, 80);
        let total = |c: &ProcessCache| c.inner.host.load(Ordering::Relaxed);
        let (m1, m2, m3) = (
            cache.scope("ns", "m1"),
            cache.scope("ns", "m2"),
            cache.scope("ns", "m3"),
        );
        m1.set("a".into(), vec![0; 19]).unwrap(); // 20 bytes each
        m2.set("b".into(), vec![0; 19]).unwrap();
        assert!(m1.get("a").is_some()); // m2's "b" is now the oldest
        m3.set("c".into(), vec![0; 19]).unwrap();
        assert!(m2.get("b").is_none(), "evicted for the namespace budget");
        assert!(m1.get("a").is_some() && m3.get("c").is_some());
        assert_eq!(total(&cache), 40);

        // Other namespaces fill the host: the least recently used anywhere go.
        let other = cache.scope("other", "m");
        let third = cache.scope("third", "m");
        other.set("d".into(), vec![0; 19]).unwrap();
        third.set("e".into(), vec![0; 19]).unwrap();
        assert_eq!(total(&cache), 80);
        let fourth = cache.scope("fourth", "m");
        fourth.set("f".into(), vec![0; 19]).unwrap();
        assert_eq!(total(&cache), 80);
        assert!(m1.get("a").is_none(), "the host's oldest entry went");
        assert!(fourth.get("f").is_some() && third.get("e").is_some());

        // Nothing larger than the smallest budget is stored.
        let tight = ProcessCache::with_budgets(30, 20, 80);
        assert_eq!(
            tight.scope("ns", "m").set("k".into(), vec![0; 25]),
            Err(CacheError::TooLarge { budget: 20 })
        );

        // A deleted namespace's bytes leave the totals.
        cache.clear_namespace("ns");
        cache.clear_namespace("other");
        cache.clear_namespace("third");
        cache.clear_namespace("fourth");
        assert_eq!(total(&cache), 0);
        assert!(cache.scope("ns", "m3").get("c").is_none());
    }
}
