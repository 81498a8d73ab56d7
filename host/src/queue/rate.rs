//! Events per second over a sliding minute, in one-second buckets, and per
//! minute over the last hour (the dashboard's throughput charts).

use std::sync::Mutex;
use std::time::Instant;

const SECONDS: usize = 60;
const MINUTES: usize = 60;

/// Counts events in one-second buckets over the last minute.
pub struct RateWindow {
    inner: Mutex<Inner>,
}

struct Inner {
    origin: Instant,
    buckets: [u64; SECONDS],
    /// Second (since origin) each bucket was last written in.
    stamps: [u64; SECONDS],
    /// The same by minute, over the last hour.
    minutes: [u64; MINUTES],
    minute_stamps: [u64; MINUTES],
}

impl Default for RateWindow {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                origin: Instant::now(),
                buckets: [0; SECONDS],
                stamps: [u64::MAX; SECONDS],
                minutes: [0; MINUTES],
                minute_stamps: [u64::MAX; MINUTES],
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
            let minute = now / 60;
            let m = (minute % MINUTES as u64) as usize;
            if i.minute_stamps[m] != minute {
                i.minute_stamps[m] = minute;
                i.minutes[m] = 0;
            }
            i.minutes[m] += 1;
        }
    }

    /// Events in each of the last 60 seconds and in each of the last 60
    /// minutes, oldest first (the current second and minute last).
    pub fn history(&self) -> (Vec<u64>, Vec<u64>) {
        let Ok(i) = self.inner.lock() else {
            return (vec![0; SECONDS], vec![0; MINUTES]);
        };
        let now = i.origin.elapsed().as_secs();
        let series = |buckets: &[u64], stamps: &[u64], current: u64| -> Vec<u64> {
            let n = buckets.len() as u64;
            (0..n)
                .map(|back| {
                    let Some(t) = current.checked_sub(n - 1 - back) else {
                        return 0;
                    };
                    let b = (t % n) as usize;
                    if stamps[b] == t {
                        buckets[b]
                    } else {
                        0
                    }
                })
                .collect()
        };
        (
            series(&i.buckets, &i.stamps, now),
            series(&i.minutes, &i.minute_stamps, now / 60),
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_puts_this_second_and_minute_last() {
        let w = RateWindow::default();
        for _ in 0..3 {
            w.record();
        }
        let (seconds, minutes) = w.history();
        assert_eq!((seconds.len(), minutes.len()), (60, 60));
        // Recorded within the last second or two (a slow machine may have
        // crossed a second boundary).
        assert_eq!(seconds[58] + seconds[59], 3, "{seconds:?}");
        assert_eq!(minutes[58] + minutes[59], 3, "{minutes:?}");
        assert_eq!(seconds[..58].iter().sum::<u64>(), 0);
    }
}
