//! Deleting closed runs past their namespace's retention.
//!
//! The service decides the cut-off (its clock, the namespace's retention);
//! this module deletes, in batches of [`BATCH_ROWS`] runs per write so that
//! a large backlog never holds the writer for long: every other write
//! queued meanwhile goes between two batches. A run goes with its attempts,
//! which hold the logs and heartbeat details; its result is in its own row.
//! Freed pages are handed back with an incremental vacuum afterwards.

use super::{Db, StoreError};
use rusqlite::{params, Connection};

/// Runs deleted per write (each with its attempts).
pub const BATCH_ROWS: usize = 500;
/// Free pages returned to the file system after a sweep (4 MiB of 4 KiB
/// pages); the rest are reused by new rows or returned by the next sweep.
const VACUUM_PAGES: u32 = 1000;

/// Deletes up to `limit` runs of `namespace` closed before
/// `closed_before_ms`, with their attempts; returns how many runs.
pub(crate) fn delete_closed_batch(
    conn: &Connection,
    namespace: &str,
    closed_before_ms: u64,
    limit: usize,
) -> Result<usize, StoreError> {
    let before = i64::try_from(closed_before_ms).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut select = conn.prepare_cached(
        "SELECT run_id FROM activities \
         WHERE namespace = ?1 AND closed_ms IS NOT NULL AND closed_ms < ?2 \
         ORDER BY closed_ms LIMIT ?3",
    )?;
    let runs = select
        .query_map(params![namespace, before, limit], |r| r.get::<_, i64>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    let mut attempts = conn.prepare_cached("DELETE FROM attempts WHERE run_id = ?1")?;
    let mut activity = conn.prepare_cached("DELETE FROM activities WHERE run_id = ?1")?;
    for run in &runs {
        attempts.execute([run])?;
        activity.execute([run])?;
    }
    Ok(runs.len())
}

impl Db {
    /// Deletes every run of `namespace` closed before `closed_before_ms`,
    /// batch by batch; returns how many.
    pub async fn delete_closed(
        &self,
        namespace: &str,
        closed_before_ms: u64,
    ) -> Result<usize, StoreError> {
        let mut total = 0usize;
        loop {
            let ns = namespace.to_owned();
            let n = self
                .write(move |c| delete_closed_batch(c, &ns, closed_before_ms, BATCH_ROWS))
                .await?;
            total = total.saturating_add(n);
            if n < BATCH_ROWS {
                break;
            }
        }
        if total > 0 {
            // A no-op on a file made before auto_vacuum was set.
            self.write(|c| {
                c.execute_batch(&format!("PRAGMA incremental_vacuum({VACUUM_PAGES})"))?;
                Ok(())
            })
            .await?;
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Durability;

    /// A run of `ns` with two attempts, closed at `closed_ms` (open if
    /// `None`).
    fn insert(c: &Connection, run_id: i64, ns: &str, closed_ms: Option<i64>) {
        let state = if closed_ms.is_some() {
            "completed"
        } else {
            "started"
        };
        c.execute(
            "INSERT INTO activities (run_id, namespace, activity_id, activity_type, task_queue, \
             state, attempt, input, options, scheduled_ms, attempt_scheduled_ms, result, closed_ms) \
             VALUES (?1, ?2, ?3, 't', 'q', ?4, 2, '[]', '{}', 0, 0, '{}', ?5)",
            params![run_id, ns, format!("a{run_id}"), state, closed_ms],
        )
        .unwrap();
        for attempt in 1..=2 {
            c.execute(
                "INSERT INTO attempts (run_id, attempt, started_ms, log_tail, heartbeat_details) \
                 VALUES (?1, ?2, 0, 'log', '[]')",
                params![run_id, attempt],
            )
            .unwrap();
        }
    }

    fn count(c: &Connection, sql: &str) -> i64 {
        c.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn a_file_made_without_incremental_vacuum_is_converted_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            // As an older version made it: tables before any auto_vacuum.
            let c = Connection::open(dir.path().join("wharf.db")).unwrap();
            c.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
                .unwrap();
            assert_eq!(count(&c, "PRAGMA auto_vacuum"), 0);
        }
        let db = Db::open(dir.path(), Durability::Normal).unwrap();
        db.read(|c| {
            assert_eq!(count(c, "PRAGMA auto_vacuum"), 2);
            assert_eq!(count(c, "SELECT x FROM t"), 1);
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn a_batch_deletes_only_closed_runs_of_the_namespace_before_the_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::super::open_conn(&dir.path().join("t.db"), Durability::Normal).unwrap();
        let mut conn = conn;
        super::super::migrations::run(&mut conn).unwrap();
        conn.execute(
            "INSERT INTO namespaces (name, created_ms) VALUES ('other', 0)",
            [],
        )
        .unwrap();
        insert(&conn, 1, "default", Some(100));
        insert(&conn, 2, "default", Some(200));
        insert(&conn, 3, "default", Some(1_000)); // within retention
        insert(&conn, 4, "default", None); // open
        insert(&conn, 5, "other", Some(100)); // another namespace

        assert_eq!(delete_closed_batch(&conn, "default", 500, 1).unwrap(), 1);
        // Oldest first.
        assert_eq!(
            count(&conn, "SELECT COUNT(*) FROM activities WHERE run_id = 1"),
            0
        );
        assert_eq!(delete_closed_batch(&conn, "default", 500, 10).unwrap(), 1);
        assert_eq!(delete_closed_batch(&conn, "default", 500, 10).unwrap(), 0);

        let left: Vec<i64> = conn
            .prepare("SELECT run_id FROM activities ORDER BY run_id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(left, [3, 4, 5]);
        assert_eq!(
            count(
                &conn,
                "SELECT COUNT(*) FROM attempts WHERE run_id IN (1, 2)"
            ),
            0,
            "attempts (logs, heartbeat details) go with their run"
        );
        assert_eq!(count(&conn, "SELECT COUNT(*) FROM attempts"), 6);
    }

    #[tokio::test]
    async fn delete_closed_goes_through_every_batch_and_new_files_vacuum_incrementally() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), Durability::Normal).unwrap();
        let runs = BATCH_ROWS as i64 * 2 + 7;
        db.write(move |c| {
            for run in 1..=runs {
                insert(c, run, "default", Some(run));
            }
            insert(c, runs + 1, "default", None);
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(
            db.delete_closed("default", u64::MAX).await.unwrap(),
            runs as usize
        );
        db.read(|c| {
            assert_eq!(count(c, "SELECT COUNT(*) FROM activities"), 1);
            assert_eq!(count(c, "SELECT COUNT(*) FROM attempts"), 2);
            // 2 = INCREMENTAL.
            assert_eq!(count(c, "PRAGMA auto_vacuum"), 2);
            Ok(())
        })
        .unwrap();
    }
}
