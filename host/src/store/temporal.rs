//! Rows of the Temporal worker mode: the heartbeat journal and the result
//! outbox (see `migrations/0003_temporal.sql`).
//!
//! Both are keyed by what Temporal knows an attempt by (namespace, task
//! token). What a report or heartbeat means is the bridge's business; this
//! module stores it as JSON text.

use super::{Db, StoreError};
use rusqlite::{params, Connection, OptionalExtension, Row};

/// Which attempt a row belongs to, as Temporal names it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttemptKey {
    /// Namespace of the activity.
    pub namespace: String,
    /// Task token of the attempt.
    pub task_token: Vec<u8>,
    /// Scheduling workflow, if any.
    pub workflow_id: Option<String>,
    /// Activity id.
    pub activity_id: String,
    /// Activity type.
    pub activity_type: String,
    /// Attempt number, from 1.
    pub attempt: u32,
}

/// The journaled heartbeat of one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatRow {
    /// The attempt.
    pub key: AttemptKey,
    /// JSON array of payloads: the latest details.
    pub details: String,
    /// Heartbeats recorded so far.
    pub heartbeats: u64,
    /// Whether the attempt has ended (these are its last details).
    pub final_: bool,
    /// When written, ms since the Unix epoch.
    pub updated_ms: u64,
}

/// One report waiting in the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxRow {
    /// Row id.
    pub id: i64,
    /// The attempt reported on.
    pub key: AttemptKey,
    /// JSON: what to tell the server.
    pub report: String,
    /// When queued, ms since the Unix epoch.
    pub created_ms: u64,
    /// Failed deliveries so far.
    pub tries: u32,
    /// Why the last delivery failed.
    pub last_error: Option<String>,
}

/// Writes (inserts or replaces) the journaled heartbeat of an attempt. Runs
/// inside a write job.
pub fn put_heartbeat(c: &Connection, row: &HeartbeatRow) -> Result<(), StoreError> {
    let k = &row.key;
    c.prepare_cached(
        "INSERT INTO temporal_heartbeats (task_token, namespace, workflow_id, activity_id, \
         activity_type, attempt, details, heartbeats, final, updated_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
         ON CONFLICT (task_token) DO UPDATE SET details = excluded.details, \
         heartbeats = excluded.heartbeats, final = excluded.final, updated_ms = excluded.updated_ms",
    )?
    .execute(params![
        k.task_token,
        k.namespace,
        k.workflow_id,
        k.activity_id,
        k.activity_type,
        k.attempt,
        row.details,
        row.heartbeats as i64,
        row.final_,
        row.updated_ms as i64,
    ])?;
    Ok(())
}

fn delete_outbox_rows(c: &Connection, ids: &[i64]) -> Result<(), StoreError> {
    let mut stmt = c.prepare_cached("DELETE FROM temporal_outbox WHERE id = ?1")?;
    for id in ids {
        stmt.execute(params![id])?;
    }
    Ok(())
}

const OUTBOX_COLUMNS: &str = "id, namespace, task_token, workflow_id, activity_id, activity_type, \
                              report, created_ms, tries, last_error";

fn outbox_row(r: &Row<'_>) -> rusqlite::Result<OutboxRow> {
    Ok(OutboxRow {
        id: r.get(0)?,
        key: AttemptKey {
            namespace: r.get(1)?,
            task_token: r.get(2)?,
            workflow_id: r.get(3)?,
            activity_id: r.get(4)?,
            activity_type: r.get(5)?,
            attempt: 0,
        },
        report: r.get(6)?,
        created_ms: r.get::<_, i64>(7)? as u64,
        tries: r.get(8)?,
        last_error: r.get(9)?,
    })
}

impl Db {
    /// The journaled heartbeat of an attempt, if it ever heartbeated.
    pub fn heartbeat_journal(&self, task_token: &[u8]) -> Result<Option<HeartbeatRow>, StoreError> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT namespace, workflow_id, activity_id, activity_type, attempt, details, \
                 heartbeats, final, updated_ms FROM temporal_heartbeats WHERE task_token = ?1",
                params![task_token],
                |r| {
                    Ok(HeartbeatRow {
                        key: AttemptKey {
                            namespace: r.get(0)?,
                            task_token: task_token.to_vec(),
                            workflow_id: r.get(1)?,
                            activity_id: r.get(2)?,
                            activity_type: r.get(3)?,
                            attempt: r.get(4)?,
                        },
                        details: r.get(5)?,
                        heartbeats: r.get::<_, i64>(6)? as u64,
                        final_: r.get(7)?,
                        updated_ms: r.get::<_, i64>(8)? as u64,
                    })
                },
            )
            .optional()?)
        })
    }

    /// Deletes the journal rows of attempts that ended before `before_ms`.
    pub async fn prune_heartbeat_journal(&self, before_ms: u64) -> Result<usize, StoreError> {
        self.write(move |c| {
            Ok(c.execute(
                "DELETE FROM temporal_heartbeats WHERE final = 1 AND updated_ms < ?1",
                params![before_ms as i64],
            )?)
        })
        .await
    }

    /// Queues a report whose first send failed (`error`, counted as its
    /// first try), durably, and deletes the rows in `remove` (reports
    /// re-delivered since the last write) in the same transaction. It is
    /// not offered for re-delivery before `next_ms`. Returns the row id.
    pub async fn outbox_push(
        &self,
        key: AttemptKey,
        report: String,
        error: String,
        now_ms: u64,
        next_ms: u64,
        remove: Vec<i64>,
    ) -> Result<i64, StoreError> {
        self.write(move |c| {
            delete_outbox_rows(c, &remove)?;
            c.prepare_cached(
                "INSERT INTO temporal_outbox (namespace, task_token, workflow_id, activity_id, \
                 activity_type, report, created_ms, next_ms, tries, last_error) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1, ?9)",
            )?
            .execute(params![
                key.namespace,
                key.task_token,
                key.workflow_id,
                key.activity_id,
                key.activity_type,
                report,
                now_ms as i64,
                next_ms as i64,
                error,
            ])?;
            Ok(c.last_insert_rowid())
        })
        .await
    }

    /// Deletes delivered (or rejected) reports.
    pub async fn outbox_remove(&self, ids: Vec<i64>) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.write(move |c| delete_outbox_rows(c, &ids)).await
    }

    /// Records a failed delivery and when to try again.
    pub async fn outbox_retry_at(
        &self,
        id: i64,
        next_ms: u64,
        error: String,
    ) -> Result<(), StoreError> {
        self.write(move |c| {
            c.execute(
                "UPDATE temporal_outbox SET tries = tries + 1, next_ms = ?2, last_error = ?3 \
                 WHERE id = ?1",
                params![id, next_ms as i64, error],
            )?;
            Ok(())
        })
        .await
    }

    /// Makes every queued report due now: at start, none is in flight.
    pub async fn outbox_release_all(&self) -> Result<usize, StoreError> {
        self.write(|c| Ok(c.execute("UPDATE temporal_outbox SET next_ms = 0", [])?))
            .await
    }

    /// Reports due for (re-)delivery at `now_ms`, oldest first.
    pub fn outbox_due(&self, now_ms: u64, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {OUTBOX_COLUMNS} FROM temporal_outbox WHERE next_ms <= ?1 \
                 ORDER BY next_ms, id LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![now_ms as i64, limit as i64], outbox_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// When the next queued report is due, if any is queued.
    pub fn outbox_next_due(&self) -> Result<Option<u64>, StoreError> {
        self.read(|c| {
            let next: Option<i64> =
                c.query_row("SELECT MIN(next_ms) FROM temporal_outbox", [], |r| r.get(0))?;
            Ok(next.map(|n| n.max(0) as u64))
        })
    }

    /// Every queued report, oldest first (for inspection and tests).
    pub fn outbox_all(&self) -> Result<Vec<OutboxRow>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {OUTBOX_COLUMNS} FROM temporal_outbox ORDER BY id"
            ))?;
            let rows = stmt.query_map([], outbox_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Durability;

    fn key(token: &[u8]) -> AttemptKey {
        AttemptKey {
            namespace: "default".into(),
            task_token: token.to_vec(),
            workflow_id: Some("wf".into()),
            activity_id: "1".into(),
            activity_type: "greet".into(),
            attempt: 1,
        }
    }

    #[tokio::test]
    async fn outbox_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), Durability::Normal).unwrap();
        let id = db
            .outbox_push(
                key(b"t1"),
                "{}".into(),
                "refused".into(),
                10,
                1_000,
                Vec::new(),
            )
            .await
            .unwrap();
        // The failed first send is recorded with the row, in one write.
        let first = db.outbox_all().unwrap();
        assert_eq!(
            (first[0].tries, first[0].last_error.as_deref()),
            (1, Some("refused"))
        );
        assert!(db.outbox_due(999, 10).unwrap().is_empty(), "leased");
        assert_eq!(db.outbox_next_due().unwrap(), Some(1_000));
        db.outbox_retry_at(id, 500, "unreachable".into())
            .await
            .unwrap();
        let due = db.outbox_due(500, 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].tries, 2);
        assert_eq!(due[0].key.task_token, b"t1");
        assert_eq!(due[0].last_error.as_deref(), Some("unreachable"));
        let second = db
            .outbox_push(key(b"t2"), "{}".into(), "refused".into(), 10, 0, vec![id])
            .await
            .unwrap();
        let all = db.outbox_all().unwrap();
        assert_eq!(all.iter().map(|r| r.id).collect::<Vec<_>>(), [second]);
        db.outbox_remove(vec![second]).await.unwrap();
        assert!(db.outbox_all().unwrap().is_empty());
        assert_eq!(db.outbox_next_due().unwrap(), None);
    }

    #[tokio::test]
    async fn heartbeat_journal_keeps_the_latest() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), Durability::Normal).unwrap();
        for (n, final_) in [(1, false), (2, true)] {
            let row = HeartbeatRow {
                key: key(b"t1"),
                details: format!("[{n}]"),
                heartbeats: n,
                final_,
                updated_ms: n,
            };
            db.write(move |c| put_heartbeat(c, &row)).await.unwrap();
        }
        let row = db.heartbeat_journal(b"t1").unwrap().unwrap();
        assert_eq!(
            (row.details.as_str(), row.heartbeats, row.final_),
            ("[2]", 2, true)
        );
        assert_eq!(db.prune_heartbeat_journal(3).await.unwrap(), 1);
        assert!(db.heartbeat_journal(b"t1").unwrap().is_none());
    }
}
