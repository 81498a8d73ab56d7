//! SQLite: the one source of truth of the embedded mode.
//!
//! One writer thread owns the write connection and commits queued writes in
//! batches (group commit): every job of a batch runs in its own savepoint of
//! one transaction, and each caller is answered only once that transaction is
//! durable. Readers use their own connections, so reads never wait behind a
//! commit. WAL mode; `synchronous=FULL` unless the operator opts into
//! `NORMAL` (faster; a power loss may undo the last acknowledged commits, a
//! process crash cannot).
//!
//! This layer knows nothing of wasm or HTTP. Queries on a concept live in
//! their own module (`modules`, ...).

pub mod activities;
pub mod flow;
pub mod lock;
mod migrations;
pub mod modules;
mod readers;
pub mod retention;
mod run_state;
pub mod temporal;
pub mod tenancy;
mod writer;

pub use writer::{Awaited, Durability, Queued};

use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The data directory or database file could not be opened.
    #[error("cannot open database {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: rusqlite::Error,
    },
    /// The writer thread is gone (the store was shut down).
    #[error("the database writer has stopped")]
    WriterGone,
    /// The batch's commit failed; nothing of it was written.
    #[error("commit failed: {0}")]
    Commit(String),
    /// Stored data could not be decoded.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The disk is full: nothing of the write was kept.
    #[error("the disk holding the database is full; nothing was written")]
    Full,
}

impl StoreError {
    /// Whether the write failed because the disk is full.
    pub fn is_full(&self) -> bool {
        match self {
            StoreError::Full => true,
            StoreError::Sqlite(e) => disk_full(e),
            _ => false,
        }
    }
}

/// Whether SQLite failed for a full disk (`SQLITE_FULL`).
fn disk_full(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
}

/// Handle to the database. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    writer: writer::Writer,
    readers: Arc<readers::Readers>,
}

/// PRAGMAs every connection gets, in one place.
const PRAGMAS: &[(&str, &str)] = &[
    // First: it only takes on a file without tables yet (a new one), so
    // that pages freed by retention can be returned (`store/retention.rs`).
    ("auto_vacuum", "INCREMENTAL"),
    ("journal_mode", "WAL"),
    ("foreign_keys", "ON"),
];

/// How long a connection waits on a locked database before giving up (about
/// 5 s): the `retry`th call sleeps and says whether to try again. SQLite's
/// own busy timeout sleeps 1, 2, 5 ... up to 100 ms between tries, so a lock
/// held for a millisecond could cost a reader tens of them.
fn busy(retry: i32) -> bool {
    let retry = u32::try_from(retry).unwrap_or(0);
    if retry >= 100 + 4_990 {
        return false;
    }
    let pause = if retry < 100 { 100 } else { 1_000 };
    std::thread::sleep(std::time::Duration::from_micros(pause));
    true
}

fn open_conn(path: &Path, durability: Durability) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|source| StoreError::Open {
        path: path.to_owned(),
        source,
    })?;
    for (k, v) in PRAGMAS {
        conn.pragma_update(None, k, v)?;
    }
    conn.pragma_update(None, "synchronous", durability.pragma())?;
    conn.busy_handler(Some(busy))?;
    Ok(conn)
}

/// Converts, once, a file made before `auto_vacuum = INCREMENTAL` was set
/// at creation, so that pages freed by retention go back to the file
/// system. The setting only takes with a `VACUUM`, which rewrites the whole
/// file (seconds per GiB) and needs as much free space again; a conversion
/// that fails is logged and tried at the next start (until then freed pages
/// are reused by new rows, the file only does not shrink).
fn convert_to_incremental_vacuum(conn: &Connection) {
    let mode: Result<i64, _> = conn.pragma_query_value(None, "auto_vacuum", |r| r.get(0));
    if !matches!(mode, Ok(0)) {
        return;
    }
    tracing::info!("converting the database to incremental auto-vacuum (one VACUUM, once)");
    let started = std::time::Instant::now();
    match conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;") {
        Ok(()) => tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "database converted to incremental auto-vacuum"
        ),
        Err(e) => tracing::warn!(
            error = %e,
            "cannot convert the database to incremental auto-vacuum now; tried again at the next start"
        ),
    }
}

impl Db {
    /// Opens (creating if needed) `wharf.db` in `dir`, runs migrations and
    /// starts the writer thread.
    pub fn open(dir: &Path, durability: Durability) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
            path: dir.to_owned(),
            source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
        })?;
        let path = dir.join("wharf.db");
        let mut conn = open_conn(&path, durability)?;
        migrations::run(&mut conn)?;
        convert_to_incremental_vacuum(&conn);
        Ok(Self {
            writer: writer::Writer::start(conn, durability)?,
            readers: Arc::new(readers::Readers::new(path)?),
        })
    }

    /// Runs `f` inside the next group commit; resolves once it is durable.
    /// `f` runs on the writer thread and must be quick.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.writer.write(f, true).await
    }

    /// As [`write`](Self::write), without a savepoint of its own: for the
    /// hot path's writes, which can only fail when the database does. If it
    /// fails, the whole batch it was in is rolled back and reported failed.
    pub async fn write_unguarded<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.writer.write(f, false).await
    }

    /// As [`write_unguarded`](Self::write_unguarded), but queued at once,
    /// when called: every write queued after it is written after it, in the
    /// same transaction or a later one, while the caller goes on before
    /// awaiting the answer.
    pub fn queue_unguarded<T, F>(&self, f: F) -> Queued<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.writer.queue(f, false)
    }

    /// As [`queue_unguarded`](Self::queue_unguarded), for a write that
    /// attempts may begin to run on before it commits: at `--sync full`
    /// its batch waits a little for the ends `awaits` counts, to commit
    /// them with it (see `writer.rs`).
    pub fn queue_unguarded_awaiting<T, F>(&self, f: F, awaits: Awaited) -> Queued<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.writer.queue_awaiting(f, false, Some(awaits))
    }

    /// Queues `f` for the next group commit without waiting for it, unguarded
    /// (see [`write_unguarded`](Self::write_unguarded)). Writes stay in order
    /// with every other write; a failure is only logged.
    pub fn write_detached<F>(&self, f: F)
    where
        F: FnOnce(&Connection) -> Result<(), StoreError> + Send + 'static,
    {
        self.writer.write_detached(f)
    }

    /// Whether the last write failed because the disk is full; it stays so
    /// until a write succeeds.
    pub fn is_full(&self) -> bool {
        self.writer.is_full()
    }

    /// Runs `f` on a reader connection.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.readers.read(f)
    }
}
