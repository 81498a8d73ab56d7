//! The result outbox: a report the server could not be reached for is not
//! dropped.
//!
//! The attempt's own task sends its [`Report`] once, at most for
//! [`FIRST_SEND_TIME`]. When the server takes it or refuses it (a task that
//! already timed out, say), that is all: a delivered report costs no write.
//! When the server cannot be reached, the report is written to SQLite
//! (durably) and the retry loop re-sends it with exponential backoff until
//! the server answers; a re-sent row is deleted in the same transaction as
//! the next row's insert, or within a second. Rows left by a previous
//! process are due at once when the next one starts.
//!
//! A process that dies while a report's first send is in flight loses that
//! report, as any Temporal worker would: the server's timeout retries the
//! activity. Writing every report before its first send closed that window
//! of a millisecond or so, at one commit per activity (about a fifth of the
//! worker's CPU per no-op activity, `scripts/bench-temporal`).
//!
//! Sending is behind the [`Deliver`] trait so that the retry logic is tested
//! without a server; when a row is due is read from the outbox's
//! [`Clock`](crate::clock::Clock).

use super::activity::Report;
use crate::clock::SharedClock;
use crate::store::temporal::{AttemptKey, OutboxRow};
use crate::store::{Db, StoreError};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// Why a report did not reach the server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The server could not be reached (or was unavailable): try again.
    #[error("server unreachable: {0}")]
    Unreachable(String),
    /// The server answered and refused: trying again cannot help.
    #[error("rejected by the server: {0}")]
    Rejected(String),
}

/// Sends a report to the server.
pub trait Deliver: Send + Sync + 'static {
    /// Sends `report` about the attempt `key`.
    fn deliver(
        &self,
        key: &AttemptKey,
        report: &Report,
    ) -> impl Future<Output = Result<(), DeliveryError>> + Send;
}

/// What became of a report handed to [`Outbox::send`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// The server took it.
    Delivered,
    /// The server refused it; it was dropped.
    Rejected(String),
    /// Not delivered yet: queued for re-delivery.
    Queued(String),
    /// Not delivered, and the outbox could not keep it (the database
    /// refused the write): the report is lost, and logged as such.
    Lost(String),
}

/// Logs a report that was not delivered and waits `delay` for its next
/// try.
fn will_resend(key: &AttemptKey, kind: &str, tries: u32, delay: Duration, why: &str) {
    tracing::warn!(activity_id = %key.activity_id, kind, tries, retry_in = ?delay, "report not delivered, will re-send: {why}");
}

/// First re-delivery delay; doubles per failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest delay between two re-deliveries.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Longest a report's first send may take before the report is queued for
/// re-delivery (the call's own retries stop after about 3 s; this bounds a
/// call that hangs).
const FIRST_SEND_TIME: Duration = Duration::from_secs(10);
/// Longest a settled row waits for the next insert to delete it.
const DELETE_DELAY: Duration = Duration::from_secs(1);
/// Rows re-sent per pass of the retry loop.
const BATCH: usize = 64;

/// Delay before the re-delivery following `tries` failures.
pub fn backoff(tries: u32) -> Duration {
    let factor = 1u32 << tries.saturating_sub(1).min(16);
    (FIRST_BACKOFF * factor).min(MAX_BACKOFF)
}

/// The outbox over a database and a way to deliver.
pub struct Outbox<D> {
    db: Db,
    transport: D,
    wake: Notify,
    /// Rows settled but not yet deleted.
    settled: Mutex<Vec<i64>>,
    /// Tells the retry loop that `settled` is no longer empty.
    settled_wake: Notify,
    clock: SharedClock,
    /// [`FIRST_SEND_TIME`], shorter in tests.
    first_send_time: Duration,
}

impl<D: Deliver> Outbox<D> {
    /// An outbox; call [`release_all`](Self::release_all) once at start.
    pub fn new(db: Db, deliver: D) -> Arc<Self> {
        Self::with_clock(db, deliver, crate::clock::system())
    }

    /// As [`new`](Self::new), reading time from `clock`.
    pub fn with_clock(db: Db, deliver: D, clock: SharedClock) -> Arc<Self> {
        Arc::new(Self {
            db,
            transport: deliver,
            wake: Notify::new(),
            settled: Mutex::new(Vec::new()),
            settled_wake: Notify::new(),
            clock,
            first_send_time: FIRST_SEND_TIME,
        })
    }

    /// Makes the reports a previous process left due now.
    pub async fn release_all(&self) -> Result<usize, StoreError> {
        self.db.outbox_release_all().await
    }

    /// Sends `report` once; if the server cannot be reached, queues it
    /// durably for the retry loop.
    pub async fn send(&self, key: &AttemptKey, report: &Report) -> Sent {
        let limit = self.first_send_time;
        let sent = tokio::time::timeout(limit, self.transport.deliver(key, report))
            .await
            .unwrap_or_else(|_| {
                Err(DeliveryError::Unreachable(format!(
                    "no answer within {:?}",
                    limit
                )))
            });
        match sent {
            Err(DeliveryError::Unreachable(why)) => self.queue(key, report, why).await,
            other => self.settle(None, 0, key, report.kind(), other).await,
        }
    }

    /// Writes `report`, whose first send failed for `why`, to the outbox,
    /// due after the first backoff: one write records the report and that
    /// try. [`Sent::Lost`] if the database refused.
    async fn queue(&self, key: &AttemptKey, report: &Report, why: String) -> Sent {
        // Serialising a report cannot fail: payloads and failures are data.
        let body = serde_json::to_string(report).unwrap_or_default();
        let delay = backoff(1);
        let now = self.clock.now_ms();
        let next = now + delay.as_millis() as u64;
        let settled = self.take_settled();
        match self
            .db
            .outbox_push(key.clone(), body, why.clone(), now, next, settled.clone())
            .await
        {
            Ok(_) => {
                will_resend(key, report.kind(), 1, delay, &why);
                self.wake.notify_one();
                Sent::Queued(why)
            }
            Err(e) => {
                // Delivered rows it would have deleted go with the next write.
                if let Ok(mut s) = self.settled.lock() {
                    s.extend(settled);
                }
                tracing::error!(activity_id = %key.activity_id, "cannot queue the undelivered report in the outbox; it is lost: {e}");
                Sent::Lost(why)
            }
        }
    }

    fn take_settled(&self) -> Vec<i64> {
        self.settled
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default()
    }

    fn settle_row(&self, id: Option<i64>) {
        if let (Some(id), Ok(mut s)) = (id, self.settled.lock()) {
            s.push(id);
            if s.len() == 1 {
                self.settled_wake.notify_one();
            }
        }
    }

    /// Deletes the rows of settled reports now.
    pub async fn flush_settled(&self) -> Result<(), StoreError> {
        let ids = self.take_settled();
        if let Err(e) = self.db.outbox_remove(ids.clone()).await {
            // Put them back: they are deleted with the next write.
            if let Ok(mut s) = self.settled.lock() {
                s.extend(ids);
            }
            return Err(e);
        }
        Ok(())
    }

    /// Records what a delivery came to; returns it as [`Sent`].
    async fn settle(
        &self,
        id: Option<i64>,
        tries: u32,
        key: &AttemptKey,
        kind: &str,
        sent: Result<(), DeliveryError>,
    ) -> Sent {
        match sent {
            Ok(()) => {
                self.settle_row(id);
                if tries > 0 {
                    tracing::info!(activity_id = %key.activity_id, kind, tries, "re-delivered a report");
                }
                Sent::Delivered
            }
            Err(DeliveryError::Rejected(why)) => {
                self.settle_row(id);
                tracing::warn!(activity_id = %key.activity_id, kind, "the server refused the report, dropping it: {why}");
                Sent::Rejected(why)
            }
            Err(DeliveryError::Unreachable(why)) => {
                let tries = tries + 1;
                let delay = backoff(tries);
                will_resend(key, kind, tries, delay, &why);
                if let Some(id) = id {
                    let next = self.clock.now_ms() + delay.as_millis() as u64;
                    if let Err(e) = self.db.outbox_retry_at(id, next, why.clone()).await {
                        tracing::error!("cannot reschedule report {id}: {e}");
                    }
                    self.wake.notify_one();
                }
                Sent::Queued(why)
            }
        }
    }

    /// Re-sends every report due now, oldest first. Returns how many
    /// remain queued afterwards.
    pub async fn retry_due(&self) -> Result<usize, StoreError> {
        'passes: loop {
            // Sent rows must be gone before the query, or they are sent again.
            self.flush_settled().await?;
            let due = self.db.outbox_due(self.clock.now_ms(), BATCH)?;
            if due.is_empty() {
                break;
            }
            for row in &due {
                // The server is still away: the row was rescheduled, and the
                // others would only wait for the same connection errors.
                if !self.resend(row).await {
                    break 'passes;
                }
            }
        }
        self.flush_settled().await?;
        Ok(self.db.outbox_all()?.len())
    }

    /// Re-sends one row; true if it left the outbox.
    async fn resend(&self, row: &OutboxRow) -> bool {
        let report: Report = match serde_json::from_str(&row.report) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(id = row.id, "dropping an unreadable outbox row: {e}");
                self.settle_row(Some(row.id));
                return true;
            }
        };
        let sent = self.transport.deliver(&row.key, &report).await;
        !matches!(
            self.settle(Some(row.id), row.tries, &row.key, report.kind(), sent)
                .await,
            Sent::Queued(_)
        )
    }

    /// The retry loop: sleeps until the next queued report is due (or a
    /// send fails), re-sends, deletes settled rows no insert took along
    /// within [`DELETE_DELAY`], and ends when `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut next_due = Some(0);
        let mut flush_at: Option<u64> = None;
        loop {
            if *stop.borrow() {
                return;
            }
            let now = self.clock.now_ms();
            if next_due.is_some_and(|t| t <= now) {
                if let Err(e) = self.retry_due().await {
                    tracing::error!("outbox: {e}");
                }
                next_due = match self.db.outbox_next_due() {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::error!("outbox: {e}");
                        Some(now + MAX_BACKOFF.as_millis() as u64)
                    }
                };
                flush_at = None;
            } else if flush_at.is_some_and(|t| t <= now) {
                if let Err(e) = self.flush_settled().await {
                    tracing::error!("outbox: {e}");
                }
                flush_at = None;
            }
            let wake_at = [next_due, flush_at].into_iter().flatten().min();
            let sleep = match wake_at {
                Some(at) => Duration::from_millis(at.saturating_sub(self.clock.now_ms())),
                None => Duration::from_secs(24 * 3600),
            };
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = self.wake.notified() => next_due = Some(0),
                _ = self.settled_wake.notified() => {
                    flush_at.get_or_insert(self.clock.now_ms() + DELETE_DELAY.as_millis() as u64);
                }
                _ = stop.changed() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::Payload;
    use crate::store::Durability;
    use std::sync::Mutex;

    /// Delivers according to a script of answers; records what it got.
    #[derive(Default)]
    struct Scripted {
        answers: Mutex<Vec<Result<(), DeliveryError>>>,
        got: Mutex<Vec<String>>,
    }

    impl Deliver for Arc<Scripted> {
        async fn deliver(&self, key: &AttemptKey, _report: &Report) -> Result<(), DeliveryError> {
            self.got.lock().unwrap().push(key.activity_id.clone());
            let mut answers = self.answers.lock().unwrap();
            if answers.is_empty() {
                Ok(())
            } else {
                answers.remove(0)
            }
        }
    }

    fn key(id: &str) -> AttemptKey {
        AttemptKey {
            namespace: "default".into(),
            task_token: id.as_bytes().to_vec(),
            activity_id: id.into(),
            activity_type: "greet".into(),
            ..AttemptKey::default()
        }
    }

    fn done() -> Report {
        Report::Completed {
            result: Payload::json(&serde_json::json!("Hello, Ada!")),
        }
    }

    async fn outbox(
        answers: Vec<Result<(), DeliveryError>>,
    ) -> (
        Arc<Outbox<Arc<Scripted>>>,
        Arc<Scripted>,
        Db,
        tempfile::TempDir,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), Durability::Normal).unwrap();
        let d = Arc::new(Scripted {
            answers: Mutex::new(answers),
            ..Scripted::default()
        });
        (Outbox::new(db.clone(), d.clone()), d, db, dir)
    }

    #[tokio::test]
    async fn delivered_and_rejected_reports_are_never_written() {
        let (outbox, _, db, _dir) = outbox(vec![
            Ok(()),
            Err(DeliveryError::Rejected("task not found".into())),
        ])
        .await;
        assert_eq!(outbox.send(&key("a"), &done()).await, Sent::Delivered);
        assert_eq!(
            outbox.send(&key("b"), &done()).await,
            Sent::Rejected("task not found".into())
        );
        // Neither was ever written.
        assert!(db.outbox_all().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_report_the_outbox_cannot_keep_is_lost_not_queued() {
        let down = || Err(DeliveryError::Unreachable("connection refused".into()));
        let (outbox, _, db, dir) = outbox(vec![down()]).await;
        // The database refuses the outbox's insert.
        rusqlite::Connection::open(dir.path().join("wharf.db"))
            .unwrap()
            .execute_batch("DROP TABLE temporal_outbox")
            .unwrap();
        assert_eq!(
            outbox.send(&key("a"), &done()).await,
            Sent::Lost("connection refused".into())
        );
        assert!(db.outbox_all().is_err(), "the table is gone");
    }

    #[tokio::test]
    async fn an_undelivered_report_is_resent_until_the_server_takes_it() {
        let down = || Err(DeliveryError::Unreachable("connection refused".into()));
        let (outbox, d, db, _dir) = outbox(vec![down(), down()]).await;
        assert!(matches!(
            outbox.send(&key("a"), &done()).await,
            Sent::Queued(_)
        ));
        let rows = db.outbox_all().unwrap();
        assert_eq!((rows.len(), rows[0].tries), (1, 1));
        // Not due yet: nothing is re-sent.
        assert_eq!(outbox.retry_due().await.unwrap(), 1);
        assert_eq!(d.got.lock().unwrap().len(), 1);

        // As after a restart: due at once; the server is still down.
        outbox.release_all().await.unwrap();
        assert_eq!(outbox.retry_due().await.unwrap(), 1);
        assert_eq!(db.outbox_all().unwrap()[0].tries, 2);

        // The server is back.
        outbox.release_all().await.unwrap();
        assert_eq!(outbox.retry_due().await.unwrap(), 0);
        assert_eq!(*d.got.lock().unwrap(), ["a", "a", "a"]);
    }

    #[tokio::test]
    async fn the_retry_loop_resends_after_backoff() {
        let (outbox, d, db, _dir) =
            outbox(vec![Err(DeliveryError::Unreachable("down".into()))]).await;
        let (stop_tx, stop) = watch::channel(false);
        let task = tokio::spawn(outbox.clone().run(stop));
        assert!(matches!(
            outbox.send(&key("a"), &done()).await,
            Sent::Queued(_)
        ));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !db.outbox_all().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "not re-sent");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(d.got.lock().unwrap().len(), 2);
        stop_tx.send(true).unwrap();
        task.await.unwrap();
    }

    /// A server that takes the call and never answers.
    struct Hangs;

    impl Deliver for Hangs {
        async fn deliver(&self, _: &AttemptKey, _: &Report) -> Result<(), DeliveryError> {
            std::future::pending().await
        }
    }

    #[tokio::test]
    async fn a_first_send_without_answer_is_queued_after_its_time() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), Durability::Normal).unwrap();
        let mut outbox = Outbox::new(db.clone(), Hangs);
        Arc::get_mut(&mut outbox).unwrap().first_send_time = Duration::from_millis(50);
        let sent = outbox.send(&key("a"), &done()).await;
        assert_eq!(sent, Sent::Queued("no answer within 50ms".into()));
        let rows = db.outbox_all().unwrap();
        assert_eq!((rows.len(), rows[0].tries), (1, 1));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(40), MAX_BACKOFF);
    }
}
