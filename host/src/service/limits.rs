//! Flow control a namespace sets: concurrency limits (at most N attempts at
//! once of an activity type, on every queue or on one queue, or of a
//! concurrency key), enforced by the host-wide gates of
//! [`crate::queue::gate`]; and queue dispatch rates, enforced by each
//! queue. Both persisted.

use super::{bounds, Service, ServiceError, Shared};
use crate::queue::gate::{GateKey, GateView, Scope};
use crate::store::flow::LimitRow;

impl Service {
    /// Sets a queue's dispatch rate (`rate: None` clears it; `Some(0.0)`
    /// pauses the queue). Persisted; `set_by` names who did it.
    pub async fn set_queue_rate(
        &self,
        ns: &str,
        task_queue: &str,
        rate: Option<f64>,
        burst: Option<f64>,
        set_by: &str,
    ) -> Result<crate::queue::RateConfig, ServiceError> {
        let s = &self.shared;
        s.check_namespace(ns)?;
        let check = || {
            bounds::id("task_queue", task_queue)?;
            if let Some(r) = rate {
                bounds::rate("rate", r, "pause")?;
            }
            match burst {
                Some(b) => bounds::burst("burst", b),
                None => Ok(()),
            }
        };
        check().map_err(ServiceError::InvalidArgument)?;
        let burst = burst.unwrap_or_else(|| rate.unwrap_or(1.0).clamp(1.0, bounds::MAX_BURST));
        let row = crate::store::activities::QueueRateRow {
            namespace: ns.to_owned(),
            task_queue: task_queue.to_owned(),
            rate,
            burst,
            set_by: Some(set_by.to_owned()),
            set_ms: s.clock.now_ms(),
        };
        s.db.save_queue_rate(row.clone()).await?;
        let config = rate_config(&row);
        s.lock()
            .queue(ns, task_queue, &s.clock)
            .set_rate(config.clone());
        Ok(config)
    }

    /// Sets (`Some`) or removes (`None`) the limit of `key`
    /// (`type:T`, `key:K` or `queue:Q/type:T`). Takes effect at once:
    /// running attempts count, waiting ones go as places free. Returns the
    /// limit as recorded, `None` once removed.
    pub async fn set_limit(
        &self,
        ns: &str,
        key: &str,
        max_concurrent: Option<u32>,
        set_by: &str,
    ) -> Result<Option<LimitRow>, ServiceError> {
        let s = &self.shared;
        s.check_namespace(ns)?;
        let scope: Scope = key.parse().map_err(ServiceError::InvalidArgument)?;
        if max_concurrent == Some(0) {
            return Err(ServiceError::InvalidArgument(
                "max_concurrent must be at least 1 (pause a queue with its rate instead)".into(),
            ));
        }
        let row = LimitRow {
            namespace: ns.to_owned(),
            key: scope.to_string(),
            max_concurrent: max_concurrent.unwrap_or(0),
            set_by: Some(set_by.to_owned()),
            set_ms: s.clock.now_ms(),
        };
        s.db.save_limit(row.clone(), max_concurrent).await?;
        let gates = s.lock().gates.clone();
        gates.set_limit(
            GateKey {
                namespace: ns.into(),
                scope,
            },
            max_concurrent,
        );
        Ok(max_concurrent.map(|_| row))
    }

    /// The namespace's limits with what runs and waits under each.
    pub fn limits(&self, ns: &str) -> Result<Vec<GateView>, ServiceError> {
        let s = &self.shared;
        s.check_namespace(ns)?;
        let gates = s.lock().gates.clone();
        Ok(gates.views(ns))
    }
}

impl Shared {
    /// Re-applies a stored limit at start.
    pub(super) fn restore_limit(&self, row: &LimitRow) {
        match row.key.parse::<Scope>() {
            Ok(scope) => {
                let gates = self.lock().gates.clone();
                gates.set_limit(
                    GateKey {
                        namespace: row.namespace.as_str().into(),
                        scope,
                    },
                    Some(row.max_concurrent),
                );
            }
            Err(e) => tracing::error!(namespace = row.namespace, "ignoring stored limit: {e}"),
        }
    }
}

/// A queue's rate as the queue applies it, from its stored row.
pub(super) fn rate_config(
    row: &crate::store::activities::QueueRateRow,
) -> crate::queue::RateConfig {
    crate::queue::RateConfig {
        rate: row.rate,
        burst: row.burst,
        set_by: row.set_by.clone(),
        set_ms: Some(row.set_ms),
    }
}
