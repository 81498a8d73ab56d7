//! Per-attempt limits and the resource limiter that enforces memory.
//!
//! The limiter sees every memory and table of the instance (a component links
//! many core modules), so it keeps a running total rather than judging each
//! growth alone. Crossing the limit traps with [`Interrupt::MemoryLimit`] so
//! the outcome is typed, instead of letting the guest see a failed
//! `memory.grow` and die with an unrelated message.

use super::outcome::Interrupt;
use std::time::Duration;

/// Limits of one attempt. Defaults suit an untrusted tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptLimits {
    /// Sum of all linear memories and tables, in bytes.
    pub memory_bytes: usize,
    /// CPU budget in wasmtime fuel units; `None` is unlimited.
    pub fuel: Option<u64>,
    /// Wall-clock budget of the attempt; `None` is unlimited.
    pub timeout: Option<Duration>,
    /// Bytes of stdout/stderr/log lines kept; more is dropped with a marker.
    pub log_bytes: usize,
    /// Largest result payload accepted.
    pub result_bytes: usize,
    /// Largest heartbeat details accepted.
    pub heartbeat_bytes: usize,
}

impl Default for AttemptLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 256 << 20,
            fuel: None,
            timeout: Some(Duration::from_secs(60)),
            log_bytes: 64 << 10,
            result_bytes: 2 << 20,
            heartbeat_bytes: 1 << 20,
        }
    }
}

/// Counts memory and table bytes of one instance against its limit.
pub(crate) struct Limiter {
    limit: usize,
    used: usize,
    /// Highest `used` seen, reported with the attempt.
    pub(crate) peak: usize,
}

impl Limiter {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            used: 0,
            peak: 0,
        }
    }

    fn grow(&mut self, current: usize, desired: usize) -> wasmtime::Result<bool> {
        let extra = desired.saturating_sub(current);
        let total = self.used.saturating_add(extra);
        if total > self.limit {
            return Err(Interrupt::MemoryLimit {
                limit: self.limit,
                requested: total,
            }
            .into());
        }
        self.used = total;
        self.peak = self.peak.max(total);
        Ok(true)
    }
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow(current, desired)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Elements are pointer-sized; count them as bytes of the same budget.
        let size = std::mem::size_of::<usize>();
        self.grow(current.saturating_mul(size), desired.saturating_mul(size))
    }

    fn instances(&self) -> usize {
        1000
    }

    fn tables(&self) -> usize {
        1000
    }

    fn memories(&self) -> usize {
        100
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn counts_all_memories_together() {
        let mut l = Limiter::new(100);
        assert!(l.memory_growing(0, 60, None).unwrap());
        // A second memory may not take the total past the limit.
        assert!(l.memory_growing(0, 50, None).is_err());
        assert!(l.memory_growing(0, 40, None).unwrap());
        assert_eq!(l.peak, 100);
    }
}
