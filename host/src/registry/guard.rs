//! What keeps uploads from costing the host more than their share.
//!
//! Compiling a component costs seconds of a core and is the one thing a
//! tenant can make the host do by sending bytes, so compiles run on blocking
//! threads, at most one per core for the host and one at a time per
//! namespace (others wait their turn), each with a time limit. A refused
//! upload is remembered by its content digest (the last
//! [`REMEMBERED`] of them), so sending the same bytes again is answered
//! from memory, and refusals are counted per namespace: after
//! [`REFUSAL_BURST`] in a row, one more is accepted every
//! [`REFUSAL_INTERVAL`], the rest are answered 429 without being looked at.

use super::RegistryError;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Refused contents remembered, host-wide.
pub const REMEMBERED: usize = 1024;
/// Refused uploads a namespace may make in a row.
pub const REFUSAL_BURST: f64 = 10.0;
/// Then one more per this interval.
pub const REFUSAL_INTERVAL: Duration = Duration::from_secs(6);
/// Compiles of one namespace at once.
pub const COMPILES_PER_NAMESPACE: usize = 1;
/// Longest a compile may take before the upload is refused.
pub const COMPILE_TIMEOUT: Duration = Duration::from_secs(300);

/// The compile pool, the refusal memory and the per-namespace counts.
pub(super) struct UploadGuard {
    host: Arc<Semaphore>,
    namespaces: Mutex<HashMap<String, Arc<Semaphore>>>,
    refusals: Mutex<Refusals>,
}

#[derive(Default)]
struct Refusals {
    /// Content digest -> (why it was refused, when: a tick of `by_age`).
    refused: HashMap<String, (String, u64)>,
    by_age: BTreeMap<u64, String>,
    tick: u64,
    /// Namespace -> (refusals it may still make, last refill).
    buckets: HashMap<String, (f64, Instant)>,
}

impl Refusals {
    /// Takes one refusal from `namespace`'s allowance; how long until one
    /// is available when none is.
    fn take(&mut self, namespace: &str, take: bool) -> Result<(), Duration> {
        let now = Instant::now();
        let per_sec = 1.0 / REFUSAL_INTERVAL.as_secs_f64();
        let b = self
            .buckets
            .entry(namespace.to_owned())
            .or_insert((REFUSAL_BURST, now));
        b.0 = (b.0 + now.duration_since(b.1).as_secs_f64() * per_sec).min(REFUSAL_BURST);
        b.1 = now;
        if b.0 < 1.0 {
            return Err(Duration::from_secs_f64((1.0 - b.0) / per_sec));
        }
        if take {
            b.0 -= 1.0;
        }
        Ok(())
    }
}

impl UploadGuard {
    pub(super) fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            host: Arc::new(Semaphore::new(cores)),
            namespaces: Mutex::default(),
            refusals: Mutex::default(),
        }
    }

    fn refusals(&self) -> MutexGuard<'_, Refusals> {
        self.refusals.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Before anything is done with an upload of `sha256` to `namespace`:
    /// the earlier refusal of the same content, or a refusal because the
    /// namespace made too many.
    pub(super) fn admit(&self, namespace: &str, sha256: &str) -> Result<(), RegistryError> {
        let mut r = self.refusals();
        if let Some((why, _)) = r.refused.get(sha256) {
            let why = why.clone();
            // A repeat counts against the namespace as a refusal would.
            let _ = r.take(namespace, true);
            return Err(RegistryError::Remembered(why));
        }
        r.take(namespace, false)
            .map_err(|retry_after| RegistryError::Throttled { retry_after })
    }

    /// Remembers that `sha256` was refused, and counts it for `namespace`.
    pub(super) fn refused(&self, namespace: &str, sha256: &str, why: &RegistryError) {
        let mut r = self.refusals();
        let _ = r.take(namespace, true);
        r.tick += 1;
        let tick = r.tick;
        if let Some((_, old)) = r.refused.insert(sha256.to_owned(), (why.to_string(), tick)) {
            r.by_age.remove(&old);
        }
        r.by_age.insert(tick, sha256.to_owned());
        while r.refused.len() > REMEMBERED {
            let Some((_, oldest)) = r.by_age.pop_first() else {
                break;
            };
            r.refused.remove(&oldest);
        }
    }

    /// Waits for `namespace`'s turn to compile.
    pub(super) async fn namespace_turn(&self, namespace: &str) -> Option<OwnedSemaphorePermit> {
        let sem = {
            let mut map = self.namespaces.lock().unwrap_or_else(|e| e.into_inner());
            // Semaphores nobody waits on are dropped, so deleted and idle
            // namespaces leave nothing behind.
            map.retain(|_, s| Arc::strong_count(s) > 1);
            map.entry(namespace.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(COMPILES_PER_NAMESPACE)))
                .clone()
        };
        sem.acquire_owned().await.ok()
    }

    /// Waits for a core to compile on.
    pub(super) async fn host_turn(&self) -> Option<OwnedSemaphorePermit> {
        self.host.clone().acquire_owned().await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_remembered_and_throttled_per_namespace() {
        let g = UploadGuard::new();
        let why = RegistryError::Invalid("bad".into());
        assert!(g.admit("a", "sha0").is_ok());
        g.refused("a", "sha0", &why);
        assert!(
            matches!(g.admit("b", "sha0"), Err(RegistryError::Remembered(m)) if m.contains("bad"))
        );
        for i in 1..REFUSAL_BURST as usize {
            g.refused("a", &format!("sha{i}"), &why);
        }
        assert!(matches!(
            g.admit("a", "new"),
            Err(RegistryError::Throttled { retry_after }) if retry_after <= REFUSAL_INTERVAL
        ));
        // Another namespace is not held back by a's refusals.
        assert!(g.admit("c", "new").is_ok());
        for i in 0..REMEMBERED + 10 {
            g.refused("c", &format!("many{i}"), &why);
        }
        assert_eq!(g.refusals().refused.len(), REMEMBERED);
        assert!(g.admit("d", "many0").is_ok(), "the oldest is forgotten");
    }
}
