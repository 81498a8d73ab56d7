//! The reader connections: a bounded pool, so that reads under load reuse a
//! few warm connections instead of opening one per concurrent read.
//!
//! In `wharf bench isolation`, while the writer committed hundreds of times
//! a second, opening a connection with the writer's settings (WAL,
//! auto-vacuum) took 22-234 ms, and every concurrent read beyond the pooled
//! connections opened one; opened with only what a reader needs, 0.1-3.6
//! ms. Readers therefore skip the database-wide settings the writer already
//! made, a few are opened at start, at most [`MAX`] exist, and a read beyond
//! that waits for one to come back.

use super::{busy, StoreError};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};

/// Most reader connections open at once.
const MAX: usize = 8;

/// Reader connections opened with the database.
const WARM: usize = 2;

pub(super) struct Readers {
    path: PathBuf,
    pool: Mutex<Pool>,
    returned: Condvar,
}

#[derive(Default)]
struct Pool {
    idle: Vec<Connection>,
    /// Connections open, idle or lent.
    open: usize,
}

impl Readers {
    /// A pool for the database at `path` (already set up by the writer),
    /// with a few connections opened now.
    pub(super) fn new(path: PathBuf) -> Result<Self, StoreError> {
        let mut idle = Vec::with_capacity(MAX);
        for _ in 0..WARM {
            idle.push(open(&path)?);
        }
        Ok(Self {
            path,
            pool: Mutex::new(Pool {
                open: idle.len(),
                idle,
            }),
            returned: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on a reader connection, waiting for one if [`MAX`] are lent.
    pub(super) fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = {
            let mut pool = self.lock();
            loop {
                if let Some(c) = pool.idle.pop() {
                    break Some(c);
                }
                if pool.open < MAX {
                    pool.open += 1;
                    break None;
                }
                pool = self.returned.wait(pool).unwrap_or_else(|e| e.into_inner());
            }
        };
        let conn = match conn {
            Some(c) => c,
            None => match open(&self.path) {
                Ok(c) => c,
                Err(e) => {
                    self.lock().open -= 1;
                    self.returned.notify_one();
                    return Err(e);
                }
            },
        };
        let lent = Lent {
            readers: self,
            conn: Some(conn),
        };
        match &lent.conn {
            Some(c) => f(c),
            // Present until the guard is dropped.
            None => Err(StoreError::Corrupt("no reader connection".into())),
        }
    }
}

/// A connection lent to one read; back in the pool when dropped, whether
/// the read returned or panicked.
struct Lent<'a> {
    readers: &'a Readers,
    conn: Option<Connection>,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            let mut pool = self.readers.lock();
            // A read left inside a transaction (a snapshot whose end
            // failed) would show every later read that old snapshot: such
            // a connection is closed, not pooled.
            if c.is_autocommit() {
                pool.idle.push(c);
            } else {
                pool.open -= 1;
            }
            drop(pool);
            self.readers.returned.notify_one();
        }
    }
}

/// Runs `f`'s reads in one transaction: they see one snapshot of the
/// database and take its read lock once, where statements of their own
/// would each take and release it.
pub(super) fn snapshot<T>(
    c: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    c.prepare_cached("BEGIN")?.execute([])?;
    let r = f(c);
    // Ending a read transaction changes nothing, so it ends the same way
    // whether the reads succeeded; one SQLite already ended (after some
    // errors) needs no end. A failed read keeps its own error over the
    // end's, and a connection the end failed on is closed when it is
    // given back.
    if !c.is_autocommit() {
        let ended = c
            .prepare_cached("COMMIT")
            .and_then(|mut end| end.execute([]));
        if let (Err(e), Ok(_)) = (ended, &r) {
            return Err(e.into());
        }
    }
    r
}

/// A connection that only reads.
fn open(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|source| StoreError::Open {
        path: path.to_owned(),
        source,
    })?;
    conn.busy_handler(Some(busy))?;
    conn.pragma_update(None, "query_only", "ON")?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// A database with table `t` holding `x`, its writer connection and
    /// its readers; the directory lives as long as the first.
    fn database(x: i64) -> (tempfile::TempDir, Connection, Readers) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("t.db");
        let writer =
            super::super::open_conn(&path, super::super::Durability::Normal).expect("database");
        writer
            .execute_batch(&format!("CREATE TABLE t(x); INSERT INTO t VALUES ({x});"))
            .expect("table");
        let readers = Readers::new(path).expect("readers");
        (dir, writer, readers)
    }

    #[test]
    fn reads_beyond_the_bound_wait_for_a_connection_and_all_succeed() {
        let (_dir, _writer, readers) = database(7);
        let readers = Arc::new(readers);
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let threads: Vec<_> = (0..3 * MAX)
            .map(|_| {
                let (readers, now, most) = (readers.clone(), now.clone(), most.clone());
                std::thread::spawn(move || {
                    readers.read(|c| {
                        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(n, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        now.fetch_sub(1, Ordering::SeqCst);
                        Ok(c.query_row("SELECT x FROM t", [], |r| r.get::<_, i64>(0))?)
                    })
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().expect("reader thread").expect("read"), 7);
        }
        assert_eq!(most.load(Ordering::SeqCst), MAX);
        assert_eq!(readers.lock().open, MAX);
        // A read that panics gives its connection back.
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            readers.read(|_| -> Result<(), StoreError> { panic!("a read that panics") })
        }));
        assert!(panicked.is_err());
        assert_eq!(readers.lock().idle.len(), MAX);
        // Readers cannot write.
        let write = readers.read(|c| Ok(c.execute("INSERT INTO t VALUES (8)", [])?));
        assert!(write.is_err());
    }

    /// A snapshot's reads agree with each other, and a connection left
    /// inside a transaction never serves a later read its old snapshot.
    #[test]
    fn snapshots_end_and_a_connection_left_in_one_is_not_reused() {
        let (_dir, writer, readers) = database(1);
        let x = |c: &Connection| -> Result<i64, StoreError> {
            Ok(c.query_row("SELECT max(x) FROM t", [], |r| r.get(0))?)
        };

        // A write between two reads of one snapshot is not seen by either.
        let (first, second) = readers
            .read(|c| {
                snapshot(c, |c| {
                    let first = x(c)?;
                    writer.execute("INSERT INTO t VALUES (2)", [])?;
                    Ok((first, x(c)?))
                })
            })
            .expect("snapshot");
        assert_eq!((first, second), (1, 1));
        assert_eq!(readers.read(x).expect("read"), 2);
        assert_eq!(readers.lock().idle.len(), WARM);

        // A read that fails inside one reports its own error, and its
        // connection goes back to the pool out of the transaction.
        let failed = readers.read(|c| {
            snapshot(c, |c| {
                x(c)?;
                Ok(c.query_row("SELECT nope FROM t", [], |r| r.get::<_, i64>(0))?)
            })
        });
        let message = failed.expect_err("a read of a missing column").to_string();
        assert!(message.contains("nope"), "{message}");
        assert_eq!(readers.lock().idle.len(), WARM);
        assert!(readers.lock().idle.iter().all(Connection::is_autocommit));

        // A read that leaves its transaction open loses its connection.
        let stale = readers
            .read(|c| {
                c.execute_batch("BEGIN")?;
                x(c)
            })
            .expect("read");
        assert_eq!(stale, 2);
        assert_eq!(readers.lock().idle.len(), WARM - 1);
        writer
            .execute("INSERT INTO t VALUES (3)", [])
            .expect("write");
        for _ in 0..MAX {
            assert_eq!(readers.read(x).expect("read"), 3);
        }
    }
}
