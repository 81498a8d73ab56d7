//! The host side of `wharf:activity/cache`: bytes by key that outlive the
//! attempt that stored them, on this process only.
//!
//! Every attempt still runs in a fresh instance; what it may find from an
//! earlier attempt is only what that attempt put here on purpose. Entries
//! are scoped to namespace + module name, so tenants and modules never see
//! each other's, and each scope has a byte budget kept by evicting the least
//! recently used entries. Activities that want a warm cache are routed to
//! the process that holds it through `activity-info.worker-task-queue`.

use super::context::wharf::activity::cache::{CacheError as WitCacheError, Host};
use super::context::AttemptState;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// Scopes by (namespace, module).
type Scopes = HashMap<(String, String), Arc<CacheScope>>;

/// The caches of every scope on this process. Cheap to clone.
#[derive(Clone)]
pub struct ProcessCache {
    inner: Arc<Mutex<Scopes>>,
    budget: usize,
}

impl ProcessCache {
    /// Caches of at most `budget` bytes (keys and values) per scope.
    pub fn new(budget: usize) -> Self {
        Self {
            inner: Arc::default(),
            budget,
        }
    }

    /// The cache of one module of one namespace.
    pub fn scope(&self, namespace: &str, module: &str) -> Arc<CacheScope> {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.entry((namespace.to_owned(), module.to_owned()))
            .or_insert_with(|| {
                Arc::new(CacheScope {
                    budget: self.budget,
                    lru: Mutex::default(),
                })
            })
            .clone()
    }
}

/// The cache of one namespace + module.
pub struct CacheScope {
    budget: usize,
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
    tick: u64,
    bytes: usize,
}

impl Lru {
    fn touch(&mut self, key: &str) {
        self.tick += 1;
        let tick = self.tick;
        if let Some((_, used)) = self.entries.get_mut(key) {
            self.by_use.remove(used);
            *used = tick;
            self.by_use.insert(tick, key.to_owned());
        }
    }

    fn remove(&mut self, key: &str) {
        if let Some((value, used)) = self.entries.remove(key) {
            self.by_use.remove(&used);
            self.bytes -= key.len() + value.len();
        }
    }
}

impl CacheScope {
    fn lock(&self) -> MutexGuard<'_, Lru> {
        self.lru.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value under `key`, if this process has it.
    pub fn get(&self, key: &str) -> Option<Arc<[u8]>> {
        let mut lru = self.lock();
        let value = lru.entries.get(key).map(|(v, _)| v.clone())?;
        lru.touch(key);
        Some(value)
    }

    /// Stores `value` under `key`, evicting least recently used entries to
    /// stay within the budget.
    pub fn set(&self, key: String, value: Vec<u8>) -> Result<(), CacheError> {
        let size = key.len() + value.len();
        if size > self.budget {
            return Err(CacheError::TooLarge {
                budget: self.budget,
            });
        }
        let mut lru = self.lock();
        lru.remove(&key);
        while lru.bytes + size > self.budget {
            let Some((_, oldest)) = lru.by_use.pop_first() else {
                break;
            };
            if let Some((v, _)) = lru.entries.remove(&oldest) {
                lru.bytes -= oldest.len() + v.len();
            }
        }
        lru.tick += 1;
        let tick = lru.tick;
        lru.by_use.insert(tick, key.clone());
        lru.entries.insert(key, (value.into(), tick));
        lru.bytes += size;
        Ok(())
    }

    /// Removes `key`.
    pub fn delete(&self, key: &str) {
        self.lock().remove(key);
    }
}

/// What the guest calls. Without a cache (upload-time listing) nothing is
/// found and nothing is stored.
impl Host for AttemptState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        Ok(self
            .cache
            .as_ref()
            .and_then(|c| c.get(&key))
            .map(|v| v.to_vec()))
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), WitCacheError>> {
        let Some(cache) = &self.cache else {
            return Ok(Err(WitCacheError::TooLarge(0)));
        };
        Ok(cache.set(key, value).map_err(|e| match e {
            CacheError::TooLarge { budget } => WitCacheError::TooLarge(budget as u64),
        }))
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<()> {
        if let Some(c) = &self.cache {
            c.delete(&key);
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
}
