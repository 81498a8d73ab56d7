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
//! At `--sync full` a batch may linger before it commits: a start's row
//! is queued with the attempts that run before it commits ([`Awaited`]),
//! and while one of them runs and its end has not come, the batch waits
//! for more jobs, up to as long as a commit takes here (at most
//! [`MAX_LINGER`]). A short attempt's end then shares its start's flush
//! instead of waiting for one of its own: fewer flushes on an idle server,
//! and on a disk whose flush takes longer than a client's round trip, a
//! result sooner. A start whose attempt runs longer is answered up to that
//! wait later.
//!
//! A batch that fails because the disk is full (`SQLITE_FULL`) answers its
//! callers [`StoreError::Full`] and marks the store full until a batch
//! commits again: the writer goes on, so writes succeed again as soon as
//! there is room, without a restart.

use super::StoreError;
use rusqlite::Connection;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

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
    /// The name `wharf serve --sync` takes.
    pub fn name(self) -> &'static str {
        match self {
            Durability::Full => "full",
            Durability::Normal => "normal",
        }
    }

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

/// A job and the attempts its batch waits for, if any.
struct Item {
    job: Job,
    awaits: Option<Awaited>,
}

/// The attempts running while a queued write waits to commit, whose ends
/// its batch waits for (see the module's comment). Counted up as each
/// begins and down as its end's job runs, on the writer thread, so that
/// the batch sees the end the moment it is in the transaction.
#[derive(Clone, Debug, Default)]
pub struct Awaited(Arc<AtomicUsize>);

impl Awaited {
    /// One more attempt runs whose end the write waits for.
    pub fn begin(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }

    /// The end of an attempt counted by [`begin`](Self::begin) is written;
    /// call it from the end's job.
    pub fn arrived(&self) {
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// Whether an awaited end has not come yet.
    fn waiting(&self) -> bool {
        self.0.load(Ordering::Acquire) > 0
    }
}

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
    jobs: mpsc::Sender<Item>,
    /// The last batch failed for a full disk.
    full: Arc<AtomicBool>,
}

impl Writer {
    /// Starts the writer thread over `conn`; its batches linger for
    /// awaited ends only at `Durability::Full`, where a commit waits for a
    /// flush (without one a commit is as quick as the wait would be).
    pub(super) fn start(conn: Connection, durability: Durability) -> Result<Self, StoreError> {
        let linger = match durability {
            Durability::Full => Linger::UpToCommit,
            Durability::Normal => Linger::Off,
        };
        Self::lingering(conn, linger)
    }

    fn lingering(conn: Connection, linger: Linger) -> Result<Self, StoreError> {
        let (jobs, rx) = mpsc::channel();
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
        self.queue(f, guarded).await
    }

    /// Queues `f` now, in order after every job queued before this call;
    /// the returned future resolves once its batch has committed.
    pub(super) fn queue<T, F>(&self, f: F, guarded: bool) -> Queued<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.queue_awaiting(f, guarded, None)
    }

    /// As [`queue`](Self::queue); the batch that takes it waits for the
    /// ends `awaits` counts before it commits (see the module's comment).
    pub(super) fn queue_awaiting<T, F>(
        &self,
        f: F,
        guarded: bool,
        awaits: Option<Awaited>,
    ) -> Queued<T>
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
        let _ = self.jobs.send(Item { job, awaits });
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
        if self.jobs.send(Item { job, awaits: None }).is_err() {
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

/// Longest a batch lingers for awaited ends, whatever a commit takes: a
/// start whose attempt runs longer is answered at most this much later.
const MAX_LINGER: Duration = Duration::from_millis(1);

/// What the writer found on its queue.
enum Next {
    Job(Item),
    /// Nothing came before the deadline.
    Late,
    /// Every sender is gone.
    Gone,
}

/// The next job, waiting for it until `deadline` (or for ever). Between its
/// looks the thread yields, so the polling takes only a CPU nothing else
/// wants; after [`POLL_BEFORE_SLEEP`] it sleeps until a job comes.
fn next_job(rx: &mpsc::Receiver<Item>, deadline: Option<Instant>) -> Next {
    let started = Instant::now();
    let poll_until = deadline.map_or(started + POLL_BEFORE_SLEEP, |d| {
        d.min(started + POLL_BEFORE_SLEEP)
    });
    loop {
        for _ in 0..64 {
            match rx.try_recv() {
                Ok(item) => return Next::Job(item),
                Err(mpsc::TryRecvError::Disconnected) => return Next::Gone,
                Err(mpsc::TryRecvError::Empty) => std::hint::spin_loop(),
            }
        }
        let now = Instant::now();
        if now >= poll_until {
            return match deadline {
                None => rx.recv().map_or(Next::Gone, Next::Job),
                Some(d) => match rx.recv_timeout(d.saturating_duration_since(now)) {
                    Ok(item) => Next::Job(item),
                    Err(mpsc::RecvTimeoutError::Timeout) => Next::Late,
                    Err(mpsc::RecvTimeoutError::Disconnected) => Next::Gone,
                },
            };
        }
        std::thread::yield_now();
    }
}

/// Moves the jobs waiting into `batch`, until it holds `up_to`.
fn take_waiting(rx: &mpsc::Receiver<Item>, batch: &mut Vec<Item>, up_to: usize) {
    while batch.len() < up_to {
        match rx.try_recv() {
            Ok(item) => batch.push(item),
            Err(_) => break,
        }
    }
}

/// One transaction's jobs as they run: their answers, how they went, and
/// the ends they wait for.
struct Batch {
    acks: Vec<Ack>,
    failed: Failed,
    /// Jobs it may still take.
    room: usize,
    awaits: Vec<Awaited>,
}

impl Batch {
    fn new() -> Self {
        Self {
            acks: Vec::new(),
            failed: Failed::default(),
            room: MAX_BATCH,
            awaits: Vec::new(),
        }
    }

    /// Runs `items`, then those that came while they ran (up to the batch
    /// limit): they would otherwise wait for this commit, then their own.
    /// Under load that makes fewer, larger commits. None joins a batch that
    /// is already spoiled.
    fn run(&mut self, conn: &Connection, rx: &mpsc::Receiver<Item>, items: &mut Vec<Item>) {
        while !items.is_empty() {
            self.room = self.room.saturating_sub(items.len());
            for Item { job, awaits } in items.drain(..) {
                self.awaits.extend(awaits);
                let (ack, f) = job(conn);
                self.failed.spoils |= f.spoils;
                self.failed.full |= f.full;
                self.acks.push(ack);
            }
            if !self.failed.spoils {
                take_waiting(rx, items, self.room);
            }
        }
    }

    /// Whether an end it waits for has not come.
    fn awaiting(&self) -> bool {
        !self.failed.spoils && self.room > 0 && self.awaits.iter().any(Awaited::waiting)
    }
}

/// How long a batch waits for the ends it awaits.
#[derive(Clone, Copy, Debug)]
enum Linger {
    Off,
    /// As long as commits take here, smoothed, up to [`MAX_LINGER`]: a
    /// flush shared is worth waiting for only while the wait is shorter
    /// than a flush of one's own.
    UpToCommit,
    /// A fixed time, for tests.
    #[cfg(test)]
    For(Duration),
}

/// How long commits take, smoothed.
#[derive(Default)]
struct CommitTime(Duration);

impl CommitTime {
    fn record(&mut self, took: Duration) {
        self.0 = (self.0 * 7 + took) / 8;
    }

    /// How long a batch awaiting ends may wait for them; `None`: not at all.
    fn linger(&self, linger: Linger) -> Option<Duration> {
        match linger {
            Linger::Off => None,
            Linger::UpToCommit => Some(self.0.min(MAX_LINGER)),
            #[cfg(test)]
            Linger::For(d) => Some(d),
        }
    }
}

fn run(conn: Connection, rx: mpsc::Receiver<Item>, full: &AtomicBool, linger: Linger) {
    let mut items = Vec::with_capacity(MAX_BATCH);
    let mut commit_time = CommitTime::default();
    let mut gone = false;
    while !gone {
        match next_job(&rx, None) {
            Next::Job(first) => items.push(first),
            Next::Late | Next::Gone => break,
        }
        take_waiting(&rx, &mut items, MAX_BATCH);
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            // Dropping the jobs answers their callers with `WriterGone`.
            tracing::error!("cannot begin a transaction: {e}");
            items.clear();
            continue;
        }
        let mut batch = Batch::new();
        batch.run(&conn, &rx, &mut items);
        let lingers = commit_time.linger(linger).filter(|_| batch.awaiting());
        if let Some(wait) = lingers {
            let deadline = Instant::now() + wait;
            while batch.awaiting() {
                match next_job(&rx, Some(deadline)) {
                    Next::Job(item) => {
                        items.push(item);
                        batch.run(&conn, &rx, &mut items);
                    }
                    Next::Late => break,
                    Next::Gone => {
                        gone = true;
                        break;
                    }
                }
            }
        }
        let Batch {
            acks, mut failed, ..
        } = batch;
        let commit = if failed.spoils {
            Err((
                failed.full,
                "a write in the same batch failed; the batch was rolled back".to_owned(),
            ))
        } else {
            let began = Instant::now();
            let done = conn.execute_batch("COMMIT").map_err(|e| {
                let full = super::disk_full(&e);
                failed.full |= full;
                (full, e.to_string())
            });
            commit_time.record(began.elapsed());
            done
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
        writer_lingering(Linger::Off)
    }

    fn writer_lingering(linger: Linger) -> (tempfile::TempDir, Writer) {
        let dir = tempfile::tempdir().expect("temp dir");
        let conn = Connection::open(dir.path().join("w.db")).expect("open");
        conn.execute_batch("CREATE TABLE t (x INTEGER)")
            .expect("table");
        (dir, Writer::lingering(conn, linger).expect("writer"))
    }

    fn insert(x: i64) -> impl FnOnce(&Connection) -> Result<(), StoreError> + Send + 'static {
        move |c| {
            c.execute("INSERT INTO t VALUES (?1)", [x])?;
            Ok(())
        }
    }

    /// A batch awaiting an attempt's end waits for the end's job and
    /// commits it with the rest: the first write is not answered before the
    /// end comes, and once it has come the batch commits without waiting
    /// out its linger.
    #[tokio::test]
    async fn a_batch_awaiting_an_end_commits_it_with_the_write_before() {
        let (_dir, w) = writer_lingering(Linger::For(Duration::from_secs(60)));
        let ends = Awaited::default();
        ends.begin();
        let mut start = w.queue_awaiting(insert(1), false, Some(ends.clone()));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            tokio::time::timeout(Duration::ZERO, &mut start)
                .await
                .is_err(),
            "the write was answered before the end it awaits came"
        );
        let end = w.queue(
            move |c| {
                ends.arrived();
                insert(2)(c)
            },
            false,
        );
        let waited = Instant::now();
        let (start, end) = tokio::join!(start, end);
        assert!(start.is_ok() && end.is_ok());
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "the batch waited out its linger after the end came"
        );
    }

    /// An awaited end that does not come holds the batch no longer than
    /// the linger, and the batch then commits.
    #[tokio::test]
    async fn an_end_that_does_not_come_is_waited_for_no_longer_than_the_linger() {
        let linger = Duration::from_millis(100);
        let (_dir, w) = writer_lingering(Linger::For(linger));
        let ends = Awaited::default();
        ends.begin();
        let queued = Instant::now();
        w.queue_awaiting(insert(1), false, Some(ends.clone()))
            .await
            .expect("committed");
        assert!(queued.elapsed() >= linger);
        let rows = w
            .write(
                |c| Ok(c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))?),
                true,
            )
            .await;
        assert_eq!(rows.ok(), Some(1));
        // Counted down no further than zero, whatever calls it.
        ends.arrived();
        ends.arrived();
        assert!(!ends.waiting());
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
