//! The writer thread: group commit over one connection.
//!
//! Jobs queue on a channel. The thread takes every job waiting (up to a
//! batch limit), runs them inside one transaction, commits once, and only
//! then answers each caller. A guarded job runs in its own savepoint: if it
//! fails it rolls back alone and the rest of the batch commits. Unguarded
//! jobs (the hot path) skip the savepoint; one that fails rolls the whole
//! batch back and every caller in it is told.
//!
//! A busy writer lingers: when the batch before showed jobs arriving several
//! at a time, a small batch waits [`LINGER`] for more before it commits.
//! Every commit costs a WAL header, each page it dirtied and, at
//! `--sync full`, an `fsync`; under load the jobs that arrive during one
//! commit are a handful, so most of that was paid again for every few jobs.
//! A job on an idle writer never waits.
//!
//! A batch that fails because the disk is full (`SQLITE_FULL`) answers its
//! callers [`StoreError::Full`] and marks the store full until a batch
//! commits again: the writer goes on, so writes succeed again as soon as
//! there is room, without a restart.

use super::StoreError;
use rusqlite::Connection;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How durable an acknowledged write is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Durability {
    /// `synchronous=FULL`: survives power loss.
    #[default]
    Full,
    /// `synchronous=NORMAL`: survives a process crash; a power loss may undo
    /// the most recent commits.
    Normal,
}

impl Durability {
    pub(super) fn pragma(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        }
    }
}

/// Most jobs in one transaction; bounds the latency a batch adds.
const MAX_BATCH: usize = 2048;

/// How long a busy writer waits for more jobs before it commits a small
/// batch. Measured with `bench throughput` (single starts, two alternating
/// rounds against the writer without it): at `--sync full` server CPU per
/// activity went from 90-91 µs to 77-78 µs and the rate from 15.7-16.3k/s to
/// 18.7-18.9k/s; 2 ms and 4 ms measured the same as 1 ms. It adds at most
/// this much to a write, and only while the writer is busy.
const LINGER: Duration = Duration::from_millis(1);

/// When a batch waits for more jobs.
#[derive(Default)]
struct Linger {
    /// Jobs in the batch committed before.
    last: usize,
}

impl Linger {
    /// A batch before of this many jobs shows them arriving several per
    /// commit: the writer is busy.
    const BUSY: usize = 4;
    /// A batch this large gains little from waiting.
    const LARGE: usize = 256;

    /// Whether a batch of `len` jobs, all that were waiting, should wait
    /// [`LINGER`] for more.
    fn waits(&self, len: usize) -> bool {
        self.last >= Self::BUSY && len < Self::LARGE
    }

    /// Records the batch about to be committed.
    fn committing(&mut self, len: usize) {
        self.last = len;
    }
}

type Ack = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// A job runs inside the batch's transaction and returns its answer plus
/// how it failed, if it did.
type Job = Box<dyn FnOnce(&Connection) -> (Ack, Failed) + Send>;

/// How a job went, for the batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Failed {
    /// It failed in a way that spoils the whole batch.
    spoils: bool,
    /// It failed because the disk is full.
    full: bool,
}

#[derive(Clone)]
pub(super) struct Writer {
    // Unbounded so that a send never waits: callers that need backpressure
    // await their acknowledgement, which waits for the commit.
    jobs: mpsc::UnboundedSender<Job>,
    /// The last batch failed for a full disk.
    full: Arc<AtomicBool>,
}

impl Writer {
    pub(super) fn start(conn: Connection) -> Result<Self, StoreError> {
        Self::start_lingering(conn, LINGER)
    }

    fn start_lingering(conn: Connection, linger: Duration) -> Result<Self, StoreError> {
        let (jobs, rx) = mpsc::unbounded_channel();
        let full = Arc::new(AtomicBool::new(false));
        let flag = full.clone();
        std::thread::Builder::new()
            .name("wharf-db-writer".into())
            .spawn(move || {
                crate::priority::short_slice();
                run(conn, rx, &flag, linger)
            })
            .map_err(|e| StoreError::Corrupt(format!("cannot start writer thread: {e}")))?;
        Ok(Self { jobs, full })
    }

    /// Whether the last batch failed because the disk is full.
    pub(super) fn is_full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }

    pub(super) async fn write<T, F>(&self, f: F, guarded: bool) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let (result, failed) = run_job(conn, f, guarded);
            let ack: Ack = Box::new(move |commit: Result<(), StoreError>| {
                let _ = tx.send(commit.and(result));
            });
            (ack, failed)
        });
        self.jobs.send(job).map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    pub(super) fn write_detached<F>(&self, f: F)
    where
        F: FnOnce(&Connection) -> Result<(), StoreError> + Send + 'static,
    {
        let job: Job = Box::new(move |conn| {
            let (result, failed) = run_job(conn, f, false);
            let ack: Ack = Box::new(move |commit: Result<(), StoreError>| {
                if let Err(e) = commit.and(result) {
                    tracing::error!("background write failed: {e}");
                }
            });
            (ack, failed)
        });
        if self.jobs.send(job).is_err() {
            tracing::error!("background write dropped: the writer has stopped");
        }
    }
}

/// Runs a job. A guarded job runs in its own savepoint and fails alone; an
/// unguarded one (the hot path's writes, which fail only when the database
/// does) skips the savepoint's page copies and, if it fails, spoils the batch.
fn run_job<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    guarded: bool,
) -> (Result<T, StoreError>, Failed) {
    let r = if guarded {
        in_savepoint(conn, f)
    } else {
        f(conn)
    };
    let failed = Failed {
        spoils: !guarded && r.is_err(),
        full: r.as_ref().err().is_some_and(StoreError::is_full),
    };
    (r, failed)
}

fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    // Cached statements: these run three times per activity on the hot path.
    conn.prepare_cached("SAVEPOINT job")?.execute([])?;
    match f(conn) {
        Ok(v) => {
            conn.prepare_cached("RELEASE job")?.execute([])?;
            Ok(v)
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO job; RELEASE job")?;
            Err(e)
        }
    }
}

/// Moves every waiting job into `batch`, up to [`MAX_BATCH`].
fn take_waiting(batch: &mut Vec<Job>, rx: &mut mpsc::UnboundedReceiver<Job>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
}

fn run(conn: Connection, mut rx: mpsc::UnboundedReceiver<Job>, full: &AtomicBool, wait: Duration) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut linger = Linger::default();
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        take_waiting(&mut batch, &mut rx);
        if linger.waits(batch.len()) {
            std::thread::sleep(wait);
            take_waiting(&mut batch, &mut rx);
        }
        linger.committing(batch.len());
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            // Dropping the jobs answers their callers with `WriterGone`.
            tracing::error!("cannot begin a transaction: {e}");
            batch.clear();
            continue;
        }
        let mut failed = Failed::default();
        let acks: Vec<Ack> = batch
            .drain(..)
            .map(|job| {
                let (ack, f) = job(&conn);
                failed.spoils |= f.spoils;
                failed.full |= f.full;
                ack
            })
            .collect();
        let commit = if failed.spoils {
            Err((
                failed.full,
                "a write in the same batch failed; the batch was rolled back".to_owned(),
            ))
        } else {
            conn.execute_batch("COMMIT").map_err(|e| {
                let full = super::disk_full(&e);
                failed.full |= full;
                (full, e.to_string())
            })
        };
        if commit.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        let was_full = full.swap(failed.full, Ordering::Relaxed);
        if was_full != failed.full {
            if failed.full {
                tracing::error!("the disk is full: writes are refused until there is room");
            } else {
                tracing::info!("the database writes again");
            }
        }
        for ack in acks {
            ack(commit.clone().map_err(|(full, why)| {
                if full {
                    StoreError::Full
                } else {
                    StoreError::Commit(why)
                }
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_busy_writer_lingers_and_only_over_small_batches() {
        let mut linger = Linger::default();
        // An idle writer: one job at a time never waits.
        for _ in 0..3 {
            assert!(!linger.waits(1));
            linger.committing(1);
        }
        // A burst is committed at once; the small batch after it waits.
        assert!(!linger.waits(Linger::BUSY));
        linger.committing(Linger::BUSY);
        assert!(linger.waits(1));
        assert!(linger.waits(Linger::LARGE - 1));
        assert!(!linger.waits(Linger::LARGE));
        // Back to single jobs: the next one after a lone job does not wait.
        linger.committing(1);
        assert!(!linger.waits(1));
    }

    #[test]
    fn a_job_sent_while_the_writer_lingers_commits_with_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("db")).unwrap();
        conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (v INTEGER)")
            .unwrap();
        let wal = dir.path().join("db-wal");
        // Long enough that the test's own timing cannot matter.
        let writer = Writer::start_lingering(conn, Duration::from_secs(2)).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            // The log grows only when a batch commits: jobs that find it
            // the same length ran in one transaction.
            let write = |w: Writer, wal: std::path::PathBuf| async move {
                w.write(
                    move |c| {
                        c.execute("INSERT INTO t VALUES (1)", [])?;
                        Ok(std::fs::metadata(&wal).map_or(0, |m| m.len()))
                    },
                    false,
                )
                .await
                .unwrap()
            };
            // A job that holds the writer while a burst queues behind it:
            // the burst is then one batch, and the writer is busy.
            let (started, running) = std::sync::mpsc::channel::<()>();
            let (release, held) = std::sync::mpsc::channel::<()>();
            writer.write_detached(move |_| {
                let _ = started.send(());
                let _ = held.recv_timeout(Duration::from_secs(10));
                Ok(())
            });
            running.recv_timeout(Duration::from_secs(10)).unwrap();
            for _ in 0..2 * Linger::BUSY {
                writer.write_detached(|c| {
                    c.execute("INSERT INTO t VALUES (1)", [])?;
                    Ok(())
                });
            }
            let (ran, burst_ran) = std::sync::mpsc::channel::<()>();
            writer.write_detached(move |_| {
                let _ = ran.send(());
                Ok(())
            });
            release.send(()).unwrap();
            burst_ran.recv_timeout(Duration::from_secs(10)).unwrap();
            // A lone job now waits, and one sent a moment later joins its
            // transaction.
            let first = tokio::spawn(write(writer.clone(), wal.clone()));
            tokio::time::sleep(Duration::from_millis(100)).await;
            let second = tokio::spawn(write(writer.clone(), wal.clone()));
            let (a, b) = (first.await.unwrap(), second.await.unwrap());
            assert!(a > 0, "nothing was committed before");
            assert_eq!(a, b, "the two jobs committed apart");
        });
    }
}
