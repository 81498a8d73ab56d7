//! Heartbeats and cancellation of one running attempt.
//!
//! A guest's `heartbeat(details)` goes to core, which throttles it and sends
//! it to the server, and to the local journal in SQLite. Cancellation does not
//! come back in the heartbeat reply: core turns the server's answer into a
//! `Cancel` task on the poll stream, and the poller marks the attempt's
//! [`CancelState`]; the guest learns of it on its next `heartbeat()` or
//! `is-cancelled()`, and an attempt that ignores it is stopped after a grace
//! period.
//!
//! The journal keeps the latest details per attempt. Heartbeats are
//! coalesced: while a journal write is queued, newer details replace the
//! pending ones, so a guest heartbeating in a tight loop costs one row
//! update per group commit, not one per call.

use super::activity::payload_to_proto;
use crate::engine::{AttemptHooks, StopSignal};
use crate::payload::Payload;
use crate::store::temporal::{put_heartbeat, AttemptKey, HeartbeatRow};
use crate::store::{Db, StoreError};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use temporalio_common::protos::coresdk::ActivityHeartbeat;
use temporalio_sdk_core::Worker as CoreWorker;

/// Whether (and why) the server asked a running attempt to stop.
#[derive(Default)]
pub struct CancelState {
    requested: AtomicBool,
    reason: Mutex<Option<i32>>,
    /// Stops the attempt when it ignores the request.
    pub stop: StopSignal,
}

impl CancelState {
    /// Marks the attempt cancelled for `reason` (an `ActivityCancelReason`)
    /// and stops it after `grace` unless it ended by then.
    pub fn request(&self, reason: i32, grace: Duration) {
        if let Ok(mut r) = self.reason.lock() {
            r.get_or_insert(reason);
        }
        if self.requested.swap(true, Ordering::SeqCst) {
            return;
        }
        let stop = self.stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            stop.trigger();
        });
    }

    /// Whether cancellation was requested.
    pub fn is_requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// The reason of the first request, if any.
    pub fn reason(&self) -> Option<i32> {
        self.reason.lock().ok().and_then(|r| *r)
    }
}

/// The local journal of one attempt's heartbeats.
pub struct Journal {
    db: Db,
    key: AttemptKey,
    pending: Mutex<Option<Vec<Payload>>>,
    queued: AtomicBool,
    count: AtomicU64,
}

impl Journal {
    /// A journal for the attempt `key`.
    pub fn new(db: Db, key: AttemptKey) -> Arc<Self> {
        Arc::new(Self {
            db,
            key,
            pending: Mutex::new(None),
            queued: AtomicBool::new(false),
            count: AtomicU64::new(0),
        })
    }

    /// Journals details without waiting; coalesced with any write still
    /// queued.
    pub fn record(self: &Arc<Self>, details: &[Payload]) {
        let n = self.count.fetch_add(1, Ordering::SeqCst) + 1;
        if let Ok(mut p) = self.pending.lock() {
            *p = Some(details.to_vec());
        }
        if self.queued.swap(true, Ordering::SeqCst) {
            return;
        }
        let me = self.clone();
        self.db.write_detached(move |c| {
            me.queued.store(false, Ordering::SeqCst);
            let details = me.pending.lock().ok().and_then(|mut p| p.take());
            match details {
                Some(d) => put_heartbeat(c, &me.row(&d, n.max(me.count()), false)),
                None => Ok(()),
            }
        });
    }

    /// Journals the attempt's last details as final and waits until they
    /// are durable.
    pub async fn finish(self: &Arc<Self>, last: &[Payload]) -> Result<(), StoreError> {
        let row = self.row(last, self.count(), true);
        if let Ok(mut p) = self.pending.lock() {
            p.take();
        }
        self.db.write(move |c| put_heartbeat(c, &row)).await
    }

    /// Heartbeats recorded so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    fn row(&self, details: &[Payload], heartbeats: u64, final_: bool) -> HeartbeatRow {
        HeartbeatRow {
            key: self.key.clone(),
            // Serialising payloads cannot fail.
            details: serde_json::to_string(details).unwrap_or_else(|_| "[]".into()),
            heartbeats,
            final_,
            updated_ms: crate::now_ms(),
        }
    }
}

/// The engine's hooks for an attempt run for Temporal.
pub struct TemporalHooks {
    /// The core worker that polled the task.
    pub core: Arc<CoreWorker>,
    /// The attempt's task token.
    pub task_token: Vec<u8>,
    /// Set by the poller when the server cancels.
    pub cancel: Arc<CancelState>,
    /// The local journal.
    pub journal: Arc<Journal>,
}

impl AttemptHooks for TemporalHooks {
    fn heartbeat(&self, details: &[Payload]) -> bool {
        // Non-blocking: core queues it and throttles sends to the server.
        self.core.record_activity_heartbeat(ActivityHeartbeat {
            task_token: self.task_token.clone(),
            details: details.iter().map(payload_to_proto).collect(),
        });
        self.journal.record(details);
        self.cancel.is_requested()
    }

    fn is_cancelled(&self) -> bool {
        self.cancel.is_requested()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Durability;
    use serde_json::json;

    #[tokio::test]
    async fn journal_coalesces_and_finishes() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), Durability::Normal).unwrap();
        let key = AttemptKey {
            namespace: "default".into(),
            task_token: b"tok".to_vec(),
            activity_id: "1".into(),
            activity_type: "wordcount".into(),
            attempt: 1,
            ..AttemptKey::default()
        };
        let journal = Journal::new(db.clone(), key);
        for i in 0..1000 {
            journal.record(&[Payload::json(&json!({ "next": i }))]);
        }
        let last = [Payload::json(&json!({ "next": 1000 }))];
        journal.finish(&last).await.unwrap();
        let row = db.heartbeat_journal(b"tok").unwrap().unwrap();
        assert!(row.final_);
        assert_eq!(row.heartbeats, 1000);
        let details: Vec<Payload> = serde_json::from_str(&row.details).unwrap();
        assert_eq!(details, last);
    }

    #[tokio::test]
    async fn cancel_stops_after_grace() {
        let state = CancelState::default();
        assert!(!state.is_requested());
        state.request(1, Duration::from_millis(10));
        state.request(3, Duration::from_millis(10));
        assert!(state.is_requested());
        assert_eq!(state.reason(), Some(1), "the first reason is kept");
        tokio::time::timeout(Duration::from_secs(5), state.stop.triggered())
            .await
            .expect("stopped after the grace period");
    }
}
