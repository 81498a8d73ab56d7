//! The writer thread: group commit over one connection.
//!
//! Jobs queue on a channel. The thread takes every job waiting (up to a
//! batch limit), runs them inside one transaction, takes those that came
//! meanwhile into it too, commits once, and only then answers each caller.
//! A guarded job runs in its own savepoint: if it fails it rolls back
//! alone and the rest of the batch commits. Unguarded jobs (the hot path)
//! skip the savepoint; one that fails rolls the whole batch back and every
//! caller in it is told.
//!
//! A batch that fails because the disk is full (`SQLITE_FULL`) answers its
//! callers [`StoreError::Full`] and marks the store full until a batch
//! commits again: the writer goes on, so writes succeed again as soon as
//! there is room, without a restart.

use super::StoreError;
use rusqlite::Connection;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
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

type Ack = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// A job runs inside the batch's transaction and returns its answer plus
/// how it failed, if it did.
type Job = Box<dyn FnOnce(&Connection) -> (Ack, Failed) + Send>;

/// A queued write's answer: resolves once its batch has committed (or
/// failed).
pub struct Queued<T>(oneshot::Receiver<Result<T, StoreError>>);

impl<T> std::future::Future for Queued<T> {
    type Output = Result<T, StoreError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(StoreError::WriterGone)))
    }
}

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
        let (jobs, rx) = mpsc::unbounded_channel();
        let full = Arc::new(AtomicBool::new(false));
        let flag = full.clone();
        std::thread::Builder::new()
            .name("wharf-db-writer".into())
            .spawn(move || {
                crate::priority::short_slice();
                run(conn, rx, &flag)
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
        self.queue(f, guarded).await
    }

    /// Queues `f` now, in order after every job queued before this call;
    /// the returned future resolves once its batch has committed.
    pub(super) fn queue<T, F>(&self, f: F, guarded: bool) -> Queued<T>
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
        // A refused send drops the job, and with it `tx`: the receiver
        // then answers `WriterGone`.
        let _ = self.jobs.send(job);
        Queued(rx)
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

/// How long the writer keeps looking at its queue after a batch before it
/// sleeps. A thread woken on an idle CPU of the virtual machine wharf is
/// measured on runs about 40 µs later (two threads on two CPUs passing a
/// futex back and forth: 83 - 86 µs a round trip, 0.3 µs when the waiting
/// side polls); on an idle server the next job, the end of the attempt the
/// last start dispatched or the next start, usually comes within this.
const POLL_BEFORE_SLEEP: Duration = Duration::from_micros(200);

/// The next job, or `None` once every sender is gone. Between its looks the
/// thread yields, so the polling takes only a CPU nothing else wants.
fn next_job(rx: &mut mpsc::UnboundedReceiver<Job>) -> Option<Job> {
    let started = Instant::now();
    loop {
        for _ in 0..64 {
            match rx.try_recv() {
                Ok(job) => return Some(job),
                Err(mpsc::error::TryRecvError::Disconnected) => return None,
                Err(mpsc::error::TryRecvError::Empty) => std::hint::spin_loop(),
            }
        }
        if started.elapsed() >= POLL_BEFORE_SLEEP {
            return rx.blocking_recv();
        }
        std::thread::yield_now();
    }
}

/// Moves the jobs waiting into `batch`, until it holds `up_to`.
fn take_waiting(rx: &mut mpsc::UnboundedReceiver<Job>, batch: &mut Vec<Job>, up_to: usize) {
    while batch.len() < up_to {
        match rx.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
}

fn run(conn: Connection, mut rx: mpsc::UnboundedReceiver<Job>, full: &AtomicBool) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = next_job(&mut rx) {
        batch.push(first);
        take_waiting(&mut rx, &mut batch, MAX_BATCH);
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            // Dropping the jobs answers their callers with `WriterGone`.
            tracing::error!("cannot begin a transaction: {e}");
            batch.clear();
            continue;
        }
        let mut failed = Failed::default();
        let mut acks: Vec<Ack> = Vec::with_capacity(batch.len());
        let mut room = MAX_BATCH;
        // Jobs that came while the batch ran join it (up to the batch
        // limit): they would otherwise wait for this commit, then their own.
        // Under load that makes fewer, larger commits. None joins a batch
        // that is already spoiled.
        while !batch.is_empty() {
            room = room.saturating_sub(batch.len());
            acks.extend(batch.drain(..).map(|job| {
                let (ack, f) = job(&conn);
                failed.spoils |= f.spoils;
                failed.full |= f.full;
                ack
            }));
            if !failed.spoils {
                take_waiting(&mut rx, &mut batch, room);
            }
        }
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

    fn writer() -> (tempfile::TempDir, Writer) {
        let dir = tempfile::tempdir().expect("temp dir");
        let conn = Connection::open(dir.path().join("w.db")).expect("open");
        conn.execute_batch("CREATE TABLE t (x INTEGER)")
            .expect("table");
        (dir, Writer::start(conn).expect("writer"))
    }

    /// Queues a job that inserts a row (and then fails, unless `first_ok`),
    /// and while it runs, `second`: whether each committed, and the rows
    /// in the table after.
    async fn while_one_runs(
        first_ok: bool,
        second: impl FnOnce(&Connection) -> Result<(), StoreError> + Send + 'static,
    ) -> (bool, bool, Option<i64>) {
        let (_dir, w) = writer();
        let (running_tx, running_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let first = w.queue(
            move |c| {
                c.execute("INSERT INTO t VALUES (1)", [])?;
                let _ = running_tx.send(());
                let _ = go_rx.recv();
                if first_ok {
                    Ok(())
                } else {
                    Err(StoreError::Commit("refused".into()))
                }
            },
            false,
        );
        running_rx.recv().expect("the first job runs");
        let second = w.queue(second, false);
        go_tx.send(()).expect("the first job waits");
        let (second, first) = (second.await.is_ok(), first.await.is_ok());
        let rows = w
            .write(
                |c| Ok(c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?),
                true,
            )
            .await;
        (first, second, rows.ok())
    }

    /// A job queued while a batch runs commits with that batch: here the
    /// later job fails, and the earlier one, in the same transaction, is
    /// rolled back with it.
    #[tokio::test]
    async fn a_job_queued_while_a_batch_runs_joins_its_transaction() {
        let refused = |_: &Connection| Err(StoreError::Commit("refused".into()));
        assert_eq!(
            while_one_runs(true, refused).await,
            (false, false, Some(0)),
            "the first job committed apart from the second"
        );
    }

    /// Nothing joins a batch that is already spoiled: a job queued after
    /// the failing one commits on its own.
    #[tokio::test]
    async fn no_job_joins_a_spoiled_batch() {
        let insert = |c: &Connection| {
            c.execute("INSERT INTO t VALUES (1)", [])?;
            Ok(())
        };
        assert_eq!(while_one_runs(false, insert).await, (false, true, Some(1)));
    }
}
