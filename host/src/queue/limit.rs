//! A queue-wide dispatch rate: a token bucket with a burst, or a pause.
//! The bucket is given the time of each question, so its arithmetic is
//! tested without waiting.

use serde::Serialize;
use std::time::Duration;
use tokio::time::Instant;

/// The configured limit and the bucket behind it.
pub(super) struct RateLimit {
    pub(super) config: RateConfig,
    tokens: f64,
    last: Instant,
}

/// What an operator set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RateConfig {
    /// Tasks dispatched per second; `Some(0.0)` pauses the queue, `None` is
    /// unlimited.
    pub rate: Option<f64>,
    /// Tasks that may go at once after a quiet spell (at least 1).
    pub burst: f64,
    /// Who set it.
    pub set_by: Option<String>,
    /// When, ms since the Unix epoch.
    pub set_ms: Option<u64>,
}

impl RateLimit {
    /// A full bucket at `now`.
    pub(super) fn new(config: RateConfig, now: Instant) -> Self {
        Self {
            tokens: config.burst.max(1.0),
            config,
            last: now,
        }
    }

    /// Whether a token is there at `now`; else how long until one is due
    /// (`None`: paused). Takes nothing.
    pub(super) fn ready_in(&mut self, now: Instant) -> Result<(), Option<Duration>> {
        let Some(rate) = self.config.rate else {
            return Ok(());
        };
        if rate <= 0.0 {
            return Err(None);
        }
        let burst = self.config.burst.max(1.0);
        let refill = now.saturating_duration_since(self.last).as_secs_f64() * rate;
        self.tokens = (self.tokens + refill).min(burst);
        self.last = self.last.max(now);
        if self.tokens >= 1.0 {
            Ok(())
        } else {
            // A rate stored before rates were bounded may be tiny: the wait
            // is then huge, and `from_secs_f64` would panic on it.
            let wait = Duration::try_from_secs_f64((1.0 - self.tokens) / rate);
            Err(Some(wait.unwrap_or(Duration::MAX)))
        }
    }

    /// Takes one token at `now`; else how long until one is due (`None`:
    /// paused).
    pub(super) fn take(&mut self, now: Instant) -> Result<(), Option<Duration>> {
        self.ready_in(now)?;
        if self.config.rate.is_some() {
            self.tokens -= 1.0;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate_and_pause() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut l = RateLimit::new(
            RateConfig {
                rate: Some(10.0),
                burst: 2.0,
                ..RateConfig::default()
            },
            t0,
        );
        assert!(l.take(t0).is_ok());
        assert!(l.take(t0).is_ok());
        assert_eq!(l.take(t0), Err(Some(Duration::from_millis(100))));
        let wait = l.take(ms(40)).unwrap_err().unwrap();
        assert!(wait > Duration::from_millis(59) && wait <= Duration::from_millis(60));
        assert!(l.take(ms(100)).is_ok());
        // A quiet spell refills up to the burst only.
        for _ in 0..2 {
            assert!(l.take(ms(10_000)).is_ok());
        }
        assert!(l.take(ms(10_000)).is_err());
        let mut paused = RateLimit::new(
            RateConfig {
                rate: Some(0.0),
                burst: 1.0,
                ..RateConfig::default()
            },
            t0,
        );
        assert_eq!(paused.take(ms(10_000)), Err(None));
    }

    #[test]
    fn a_tiny_rate_waits_without_panicking() {
        let t0 = Instant::now();
        let mut l = RateLimit::new(
            RateConfig {
                rate: Some(1e-300),
                burst: 1.0,
                ..RateConfig::default()
            },
            t0,
        );
        assert!(l.take(t0).is_ok());
        assert!(l.take(t0).unwrap_err().unwrap() > Duration::from_secs(1 << 40));
    }
}
