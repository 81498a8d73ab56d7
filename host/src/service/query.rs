//! Reading activities and queues: describe, list, long-poll for a result.

use super::activity::{self, ActivityView};
use super::{Service, ServiceError};
use crate::queue::QueueStats;
use crate::store::activities::ActivityFilter;
use serde::Serialize;
use std::time::Duration;

/// A task queue as the API shows it.
#[derive(Debug, Serialize)]
pub struct QueueView {
    /// Namespace.
    pub namespace: String,
    /// Queue name.
    pub name: String,
    /// Serving module, as `name@version`, if deployed.
    pub deployment: Option<String>,
    /// Backlog, running, slots, rates.
    #[serde(flatten)]
    pub stats: QueueStats,
    /// Activities waiting in backoff before their next attempt.
    pub in_backoff: usize,
    /// Attempts awaiting asynchronous completion.
    pub awaiting_async: usize,
}

impl Service {
    /// Describes an activity (its newest run) with its attempt history.
    pub fn describe(&self, ns: &str, activity_id: &str) -> Result<ActivityView, ServiceError> {
        let s = &self.shared;
        s.check_namespace(ns)?;
        let open = s
            .lock()
            .by_id
            .get(&(ns.to_owned(), activity_id.to_owned()))
            .copied();
        let run_id = match open {
            Some(r) => r,
            None => {
                s.db.latest_run(ns, activity_id)?
                    .ok_or_else(|| ServiceError::ActivityNotFound(activity_id.to_owned()))?
                    .0
                    .run_id
            }
        };
        self.describe_run(run_id)
    }

    /// Waits up to `wait` for the activity to close, then describes it.
    pub async fn result(
        &self,
        ns: &str,
        activity_id: &str,
        wait: Duration,
    ) -> Result<ActivityView, ServiceError> {
        let s = &self.shared;
        s.check_namespace(ns)?;
        let closed = {
            let st = s.lock();
            st.by_id
                .get(&(ns.to_owned(), activity_id.to_owned()))
                .and_then(|r| st.open.get(r))
                .filter(|a| !a.is_closed())
                .map(|a| (a.fixed.run_id, a.closed.clone()))
        };
        if let Some((run_id, notify)) = closed {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Re-check: it may have closed before the waiter was registered.
            let still_open = s.lock().open.contains_key(&run_id);
            if still_open {
                let _ = tokio::time::timeout(wait, notified).await;
            }
        }
        self.describe(ns, activity_id)
    }

    /// Lists activities, newest first.
    pub fn list(
        &self,
        ns: &str,
        filter: &ActivityFilter,
    ) -> Result<Vec<ActivityView>, ServiceError> {
        self.check_namespace(ns)?;
        let rows = self.shared.db.list_activities(ns, filter)?;
        Ok(rows.iter().map(|(f, p)| activity::view(f, p)).collect())
    }

    /// Describes a task queue; a queue nobody used yet is simply empty.
    pub fn describe_queue(&self, ns: &str, name: &str) -> Result<QueueView, ServiceError> {
        let s = &self.shared;
        s.check_namespace(ns)?;
        let mut st = s.lock();
        let queue = st.queue(ns, name);
        let (mut in_backoff, mut awaiting_async) = (0, 0);
        let now = crate::now_ms();
        for a in st.open.values() {
            if a.fixed.namespace == ns && a.fixed.task_queue == name {
                if a.progress.state == activity::state::SCHEDULED
                    && a.progress.attempt_scheduled_ms > now
                {
                    in_backoff += 1;
                }
                if a.progress.awaiting_async {
                    awaiting_async += 1;
                }
            }
        }
        drop(st);
        Ok(QueueView {
            namespace: ns.to_owned(),
            name: name.to_owned(),
            deployment: queue
                .deployment()
                .map(|d| format!("{}@{}", d.name, d.version)),
            stats: queue.stats(),
            in_backoff,
            awaiting_async,
        })
    }
}
