//! Retention: closed activities are deleted once their namespace's
//! retention (a quota, 7 days unless set) has passed since they closed,
//! as a Temporal namespace's retention does. Afterwards they answer 404
//! exactly as an id never used does.
//!
//! One task sweeps every [`SWEEP_INTERVAL`], the cut-off taken from the
//! service's clock; the store deletes in small batches through the writer
//! (`store/retention.rs`). Closed runs leave the service's maps (open runs,
//! ids, tokens) when they close; the same task drops the task queues that
//! hold nothing any more (see [`Shared::forget_idle_queues`]).

use super::Shared;
use std::sync::Weak;
use std::time::Duration;

/// How often closed activities past retention are looked for.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Starts the sweeping task; it ends with the service.
pub(super) fn start(shared: Weak<Shared>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(SWEEP_INTERVAL).await;
            let Some(s) = shared.upgrade() else { break };
            if *s.stopping.borrow() {
                break;
            }
            s.sweep_retention().await;
            s.forget_idle_queues();
        }
    });
}

impl Shared {
    /// Deletes what every namespace keeps no longer.
    async fn sweep_retention(&self) {
        let now_ms = self.clock.now_ms();
        let namespaces: Vec<(String, Duration)> = self
            .lock()
            .namespaces
            .iter()
            .map(|(name, t)| (name.clone(), t.quotas().retention))
            .collect();
        for (ns, retention) in namespaces {
            let cut_off = now_ms.saturating_sub(super::bounds::millis(retention));
            match self.db.delete_closed(&ns, cut_off).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(namespace = %ns, deleted = n, "closed activities past retention deleted")
                }
                Err(e) => {
                    tracing::warn!(namespace = %ns, error = %e, "retention sweep failed; retried at the next")
                }
            }
        }
    }

    /// Drops the task queues that hold nothing but their name (no
    /// deployment, backlog, running attempt or rate; see
    /// [`TaskQueue::is_idle`](crate::queue::TaskQueue::is_idle)) and that no
    /// one holds at the moment. Every start to a new queue name makes a
    /// queue: without this, a tenant starting on ever new names would grow
    /// the server's memory without end (100 000 names kept 840 MB after
    /// their activities had closed). A queue is made again, as new, by the
    /// next start or deployment that names it.
    ///
    /// Under the state lock, which every other way to a queue takes: a
    /// queue that only the map holds cannot be handed out meanwhile.
    pub(super) fn forget_idle_queues(&self) {
        let mut st = self.lock();
        let before = st.queues.len();
        st.queues
            .retain(|_, q| std::sync::Arc::strong_count(q) > 1 || !q.is_idle());
        let dropped = before - st.queues.len();
        if dropped > 0 {
            tracing::debug!(dropped, "idle task queues dropped");
        }
    }
}
