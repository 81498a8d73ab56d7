//! Events per second over a sliding minute, in one-second buckets.

use std::sync::Mutex;
use std::time::Instant;

const SECONDS: usize = 60;

/// Counts events in one-second buckets over the last minute.
pub struct RateWindow {
    inner: Mutex<Inner>,
}

struct Inner {
    origin: Instant,
    buckets: [u64; SECONDS],
    /// Second (since origin) each bucket was last written in.
    stamps: [u64; SECONDS],
}

impl Default for RateWindow {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                origin: Instant::now(),
                buckets: [0; SECONDS],
                stamps: [u64::MAX; SECONDS],
            }),
        }
    }
}

impl RateWindow {
    /// Counts one event now.
    pub fn record(&self) {
        if let Ok(mut i) = self.inner.lock() {
            let now = i.origin.elapsed().as_secs();
            let b = (now % SECONDS as u64) as usize;
            if i.stamps[b] != now {
                i.stamps[b] = now;
                i.buckets[b] = 0;
            }
            i.buckets[b] += 1;
        }
    }

    /// Average events per second over the last minute (or since creation).
    pub fn per_second(&self) -> f64 {
        let Ok(i) = self.inner.lock() else { return 0.0 };
        let elapsed = i.origin.elapsed();
        let now = elapsed.as_secs();
        let total: u64 = (0..SECONDS)
            .filter(|&b| i.stamps[b] != u64::MAX && now - i.stamps[b] < SECONDS as u64)
            .map(|b| i.buckets[b])
            .sum();
        total as f64 / elapsed.as_secs_f64().clamp(1.0, SECONDS as f64)
    }
}
