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
            self.readers.lock().idle.push(c);
            self.readers.returned.notify_one();
        }
    }
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

    #[test]
    fn reads_beyond_the_bound_wait_for_a_connection_and_all_succeed() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("t.db");
        let setup =
            super::super::open_conn(&path, super::super::Durability::Normal).expect("database");
        setup
            .execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (7);")
            .expect("table");
        let readers = Arc::new(Readers::new(path).expect("readers"));
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
}
