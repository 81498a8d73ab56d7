//! The writer thread: group commit over one connection.
//!
//! Jobs queue on a channel. The thread takes every job waiting (up to a
//! batch limit), runs them inside one transaction, commits once, and only
//! then answers each caller. A guarded job runs in its own savepoint: if it
//! fails it rolls back alone and the rest of the batch commits. Unguarded
//! jobs (the hot path) skip the savepoint; one that fails rolls the whole
//! batch back and every caller in it is told.

use super::StoreError;
use rusqlite::Connection;
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
/// whether it failed in a way that spoils the whole batch.
type Job = Box<dyn FnOnce(&Connection) -> (Ack, bool) + Send>;

#[derive(Clone)]
pub(super) struct Writer {
    // Unbounded so that a send never waits: callers that need backpressure
    // await their acknowledgement, which waits for the commit.
    jobs: mpsc::UnboundedSender<Job>,
}

impl Writer {
    pub(super) fn start(conn: Connection) -> Result<Self, StoreError> {
        let (jobs, rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("wharf-db-writer".into())
            .spawn(move || run(conn, rx))
            .map_err(|e| StoreError::Corrupt(format!("cannot start writer thread: {e}")))?;
        Ok(Self { jobs })
    }

    pub(super) async fn write<T, F>(&self, f: F, guarded: bool) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let (result, spoils) = run_job(conn, f, guarded);
            let ack: Ack = Box::new(move |commit: Result<(), StoreError>| {
                let _ = tx.send(commit.and(result));
            });
            (ack, spoils)
        });
        self.jobs.send(job).map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    pub(super) fn write_detached<F>(&self, f: F)
    where
        F: FnOnce(&Connection) -> Result<(), StoreError> + Send + 'static,
    {
        let job: Job = Box::new(move |conn| {
            let (result, spoils) = run_job(conn, f, false);
            let ack: Ack = Box::new(move |commit: Result<(), StoreError>| {
                if let Err(e) = commit.and(result) {
                    tracing::error!("background write failed: {e}");
                }
            });
            (ack, spoils)
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
) -> (Result<T, StoreError>, bool) {
    if guarded {
        (in_savepoint(conn, f), false)
    } else {
        let r = f(conn);
        let spoils = r.is_err();
        (r, spoils)
    }
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

fn run(conn: Connection, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            // Dropping the jobs answers their callers with `WriterGone`.
            tracing::error!("cannot begin a transaction: {e}");
            batch.clear();
            continue;
        }
        let mut spoiled = false;
        let acks: Vec<Ack> = batch
            .drain(..)
            .map(|job| {
                let (ack, spoils) = job(&conn);
                spoiled |= spoils;
                ack
            })
            .collect();
        let commit = if spoiled {
            Err("a write in the same batch failed; the batch was rolled back".to_owned())
        } else {
            conn.execute_batch("COMMIT").map_err(|e| e.to_string())
        };
        if commit.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for ack in acks {
            ack(commit.clone().map_err(StoreError::Commit));
        }
    }
}
