//! A queue-wide dispatch rate: a token bucket with a burst, or a pause.

use serde::Serialize;
use std::time::{Duration, Instant};

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
    pub(super) fn new(config: RateConfig) -> Self {
        Self {
            tokens: config.burst.max(1.0),
            config,
            last: Instant::now(),
        }
    }

    /// Whether a token is there now; else how long until one is due
    /// (`None`: paused). Takes nothing.
    pub(super) fn ready_in(&mut self) -> Result<(), Option<Duration>> {
        let Some(rate) = self.config.rate else {
            return Ok(());
        };
        if rate <= 0.0 {
            return Err(None);
        }
        let now = Instant::now();
        let burst = self.config.burst.max(1.0);
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * rate).min(burst);
        self.last = now;
        if self.tokens >= 1.0 {
            Ok(())
        } else {
            // A rate stored before rates were bounded may be tiny: the wait
            // is then huge, and `from_secs_f64` would panic on it.
            let wait = Duration::try_from_secs_f64((1.0 - self.tokens) / rate);
            Err(Some(wait.unwrap_or(Duration::MAX)))
        }
    }

    /// Takes one token; else how long until one is due (`None`: paused).
    pub(super) fn take(&mut self) -> Result<(), Option<Duration>> {
        self.ready_in()?;
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
        let mut l = RateLimit::new(RateConfig {
            rate: Some(10.0),
            burst: 2.0,
            ..RateConfig::default()
        });
        assert!(l.take().is_ok());
        assert!(l.take().is_ok());
        let wait = l.take().unwrap_err().unwrap();
        assert!(wait <= Duration::from_millis(100) && wait > Duration::from_millis(50));
        let mut paused = RateLimit::new(RateConfig {
            rate: Some(0.0),
            burst: 1.0,
            ..RateConfig::default()
        });
        assert_eq!(paused.take(), Err(None));
    }

    #[test]
    fn a_tiny_rate_waits_without_panicking() {
        let mut l = RateLimit::new(RateConfig {
            rate: Some(1e-300),
            burst: 1.0,
            ..RateConfig::default()
        });
        assert!(l.take().is_ok());
        assert!(l.take().unwrap_err().unwrap() > Duration::from_secs(1 << 40));
    }
}
