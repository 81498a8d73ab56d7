//! Concurrency limits of a namespace: at most N attempts at once of an
//! activity type (on every queue, or on one queue) or of a concurrency key.
//! Persisted; enforced by the host-wide gates of [`crate::queue::gate`].

use super::{Service, ServiceError, Shared};
use crate::queue::gate::{GateKey, GateView, Scope};
use crate::store::flow::LimitRow;

impl Service {
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
            set_ms: crate::now_ms(),
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
