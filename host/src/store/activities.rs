//! Rows of `activities`, `attempts` and `deployments`.
//!
//! An activity row has a fixed part, written once at start, and a mutable
//! part ([`ActivityProgress`]) rewritten whole on every transition; the
//! service owns the meaning of both. The run's state is read into a
//! [`RunState`] here and written back under the same names, so nothing
//! above this layer handles the stored strings; a row whose state cannot
//! be read is reported as unreadable, never guessed.

pub use super::run_state::{Closed, RunState};
use super::{Db, StoreError};
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;
use std::sync::Arc;

/// The part of an activity fixed at start.
#[derive(Clone, Debug)]
pub struct ActivityFixed {
    /// Unique per run, assigned by the service.
    pub run_id: i64,
    /// Namespace.
    pub namespace: String,
    /// Activity id (idempotency key within the namespace).
    pub activity_id: String,
    /// Activity type.
    pub activity_type: String,
    /// Task queue.
    pub task_queue: String,
    /// JSON array of payloads.
    pub input: Arc<str>,
    /// JSON of the options.
    pub options: String,
    /// First scheduled, ms since the Unix epoch.
    pub scheduled_ms: u64,
}

/// The part of an activity that transitions rewrite.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ActivityProgress {
    /// Where the run is.
    pub state: RunState,
    /// Current or last attempt, from 1.
    pub attempt: u32,
    /// When the current attempt may start.
    pub attempt_scheduled_ms: u64,
    /// When the current (or last) attempt started.
    pub started_ms: Option<u64>,
    /// JSON array of payloads: the latest heartbeat details.
    pub heartbeat_details: Option<String>,
    /// When they were recorded.
    pub heartbeat_ms: Option<u64>,
    /// Cancellation was requested.
    pub cancel_requested: bool,
    /// JSON of the last failure.
    pub last_failure: Option<String>,
    /// JSON of the result payload.
    pub result: Option<String>,
}

/// One attempt as recorded.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AttemptRow {
    /// Run it belongs to.
    pub run_id: i64,
    /// Attempt number.
    pub attempt: u32,
    /// Start, ms since the Unix epoch.
    pub started_ms: u64,
    /// End, if ended.
    pub ended_ms: Option<u64>,
    /// Outcome kind.
    pub outcome: Option<String>,
    /// Failure type, if it failed.
    pub failure_type: Option<String>,
    /// Failure message, if it failed.
    pub failure_message: Option<String>,
    /// Tail of the attempt log.
    pub log_tail: Option<String>,
    /// JSON array of the attempt's last heartbeat details.
    pub heartbeat_details: Option<String>,
    /// `name@version` of the module it ran.
    pub module: Option<String>,
    /// CPU time the guest threads spent on it, in microseconds; `None` for
    /// an attempt that ran no guest (or was recorded before it was kept).
    pub cpu_us: Option<u64>,
}

const FIXED: &str =
    "run_id, namespace, activity_id, activity_type, task_queue, input, options, scheduled_ms";
const PROGRESS: &str =
    "state, attempt, attempt_scheduled_ms, started_ms, awaiting_async, task_token, \
     heartbeat_details, heartbeat_ms, cancel_requested, last_failure, result, closed_ms";

fn fixed_from(r: &Row<'_>) -> rusqlite::Result<ActivityFixed> {
    Ok(ActivityFixed {
        run_id: r.get(0)?,
        namespace: r.get(1)?,
        activity_id: r.get(2)?,
        activity_type: r.get(3)?,
        task_queue: r.get(4)?,
        input: Arc::from(r.get::<_, String>(5)?),
        options: r.get(6)?,
        scheduled_ms: r.get(7)?,
    })
}

fn progress_from(r: &Row<'_>, at: usize) -> rusqlite::Result<ActivityProgress> {
    let name: String = r.get(at)?;
    let state = RunState::from_columns(&name, r.get(at + 4)?, r.get(at + 5)?, r.get(at + 11)?)
        .map_err(|why| {
            rusqlite::Error::FromSqlConversionFailure(at, rusqlite::types::Type::Text, why.into())
        })?;
    Ok(ActivityProgress {
        state,
        attempt: r.get(at + 1)?,
        attempt_scheduled_ms: r.get(at + 2)?,
        started_ms: r.get(at + 3)?,
        heartbeat_details: r.get(at + 6)?,
        heartbeat_ms: r.get(at + 7)?,
        cancel_requested: r.get(at + 8)?,
        last_failure: r.get(at + 9)?,
        result: r.get(at + 10)?,
    })
}

fn both_from(r: &Row<'_>) -> rusqlite::Result<(ActivityFixed, ActivityProgress)> {
    Ok((fixed_from(r)?, progress_from(r, 8)?))
}

/// Open runs as recovery reads them: the readable ones, and the run ids of
/// those that cannot be read with why.
pub type OpenRuns = (Vec<(ActivityFixed, ActivityProgress)>, Vec<(i64, String)>);

/// Closes a run that cannot be read as failed with `failure` (JSON), and
/// makes its row readable again (a value of the wrong type or out of range
/// becomes 0, null or text), so that describe shows why it failed.
pub fn fail_unreadable(
    c: &Connection,
    run_id: i64,
    failure: &str,
    now_ms: u64,
) -> Result<(), StoreError> {
    let whole = |col: &str, max: &str| {
        format!("{col} = CASE WHEN typeof({col}) = 'integer' AND {col} BETWEEN 0 AND {max} THEN {col} ELSE 0 END")
    };
    let maybe = |col: &str| {
        format!(
            "{col} = CASE WHEN typeof({col}) = 'integer' AND {col} >= 0 THEN {col} ELSE NULL END"
        )
    };
    let text = |col: &str| format!("{col} = CAST({col} AS TEXT)");
    let sets = [
        whole("attempt", "4294967295"),
        whole("scheduled_ms", "9223372036854775807"),
        whole("attempt_scheduled_ms", "9223372036854775807"),
        whole("cancel_requested", "1"),
        maybe("started_ms"),
        maybe("heartbeat_ms"),
        text("namespace"),
        text("activity_id"),
        text("activity_type"),
        text("task_queue"),
        text("input"),
        text("options"),
        text("heartbeat_details"),
        text("result"),
    ]
    .join(", ");
    c.execute(
        &format!(
            "UPDATE activities SET {sets}, state = 'failed', closed_ms = ?2, last_failure = ?3, \
             awaiting_async = 0, task_token = NULL WHERE run_id = ?1"
        ),
        params![run_id, now_ms, failure],
    )?;
    Ok(())
}

/// Inserts a new activity run.
pub fn insert_activity(
    c: &Connection,
    f: &ActivityFixed,
    p: &ActivityProgress,
) -> Result<(), StoreError> {
    c.prepare_cached(&format!(
        "INSERT INTO activities ({FIXED}, {PROGRESS}) VALUES \
         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)"
    ))?
    .execute(params![
        f.run_id,
        f.namespace,
        f.activity_id,
        f.activity_type,
        f.task_queue,
        &*f.input,
        f.options,
        f.scheduled_ms,
        p.state.as_str(),
        p.attempt,
        p.attempt_scheduled_ms,
        p.started_ms,
        p.state.awaiting_async(),
        p.state.task_token(),
        p.heartbeat_details,
        p.heartbeat_ms,
        p.cancel_requested,
        p.last_failure,
        p.result,
        p.state.closed_ms(),
    ])?;
    Ok(())
}

/// Rewrites the mutable part of a run.
pub fn save_progress(c: &Connection, run_id: i64, p: &ActivityProgress) -> Result<(), StoreError> {
    c.prepare_cached(
        "UPDATE activities SET state=?2, attempt=?3, attempt_scheduled_ms=?4, started_ms=?5, \
         awaiting_async=?6, task_token=?7, heartbeat_details=?8, heartbeat_ms=?9, \
         cancel_requested=?10, last_failure=?11, result=?12, closed_ms=?13 WHERE run_id=?1",
    )?
    .execute(params![
        run_id,
        p.state.as_str(),
        p.attempt,
        p.attempt_scheduled_ms,
        p.started_ms,
        p.state.awaiting_async(),
        p.state.task_token(),
        p.heartbeat_details,
        p.heartbeat_ms,
        p.cancel_requested,
        p.last_failure,
        p.result,
        p.state.closed_ms(),
    ])?;
    Ok(())
}

/// Records heartbeat details between transitions.
pub fn save_heartbeat(
    c: &Connection,
    run_id: i64,
    details: &str,
    at_ms: u64,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "UPDATE activities SET heartbeat_details=?2, heartbeat_ms=?3 WHERE run_id=?1",
    )?
    .execute(params![run_id, details, at_ms])?;
    Ok(())
}

/// Inserts or replaces an attempt row.
pub fn save_attempt(c: &Connection, a: &AttemptRow) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT OR REPLACE INTO attempts (run_id, attempt, started_ms, ended_ms, outcome, \
         failure_type, failure_message, log_tail, heartbeat_details, module, cpu_us) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        a.run_id,
        a.attempt,
        a.started_ms,
        a.ended_ms,
        a.outcome,
        a.failure_type,
        a.failure_message,
        a.log_tail,
        a.heartbeat_details,
        a.module,
        a.cpu_us,
    ])?;
    Ok(())
}

/// Filters of [`Db::list_activities`].
#[derive(Clone, Debug, Default)]
pub struct ActivityFilter {
    /// Only in this state.
    pub state: Option<String>,
    /// Only of this type.
    pub activity_type: Option<String>,
    /// Only on this queue.
    pub task_queue: Option<String>,
    /// At most this many, newest first.
    pub limit: u32,
}

impl Db {
    /// Every run not yet closed, for recovery at start; and the run ids of
    /// open rows that cannot be read (a value of the wrong type or out of
    /// range), with why, so that recovery fails them instead of stopping.
    pub fn open_activities(&self) -> Result<OpenRuns, StoreError> {
        self.read(|c| {
            let mut s = c.prepare(&format!(
                "SELECT {FIXED}, {PROGRESS} FROM activities WHERE closed_ms IS NULL ORDER BY run_id"
            ))?;
            let mut rows = s.query([])?;
            let (mut readable, mut unreadable) = (Vec::new(), Vec::new());
            while let Some(r) = rows.next()? {
                match both_from(r) {
                    Ok(run) => readable.push(run),
                    // `run_id` is the INTEGER PRIMARY KEY: always readable.
                    Err(e) => unreadable.push((r.get(0)?, e.to_string())),
                }
            }
            Ok((readable, unreadable))
        })
    }

    /// One run by run id.
    pub fn run(
        &self,
        run_id: i64,
    ) -> Result<Option<(ActivityFixed, ActivityProgress)>, StoreError> {
        self.read(|c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {FIXED}, {PROGRESS} FROM activities WHERE run_id=?1"
            ))?
            .query_row(params![run_id], both_from)
            .optional()?)
        })
    }

    /// Highest run id ever assigned.
    pub fn max_run_id(&self) -> Result<i64, StoreError> {
        self.read(|c| {
            Ok(
                c.query_row("SELECT COALESCE(MAX(run_id), 0) FROM activities", [], |r| {
                    r.get(0)
                })?,
            )
        })
    }

    /// The newest run of an activity id.
    pub fn latest_run(
        &self,
        namespace: &str,
        activity_id: &str,
    ) -> Result<Option<(ActivityFixed, ActivityProgress)>, StoreError> {
        self.read(|c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {FIXED}, {PROGRESS} FROM activities WHERE namespace=?1 AND activity_id=?2 \
                 ORDER BY run_id DESC LIMIT 1"
            ))?
            .query_row(params![namespace, activity_id], both_from)
            .optional()?)
        })
    }

    /// Runs of a namespace matching `filter`, newest first.
    pub fn list_activities(
        &self,
        namespace: &str,
        filter: &ActivityFilter,
    ) -> Result<Vec<(ActivityFixed, ActivityProgress)>, StoreError> {
        self.read(|c| {
            let mut s = c.prepare_cached(&format!(
                "SELECT {FIXED}, {PROGRESS} FROM activities WHERE namespace=?1 \
                 AND (?2 IS NULL OR state=?2) AND (?3 IS NULL OR activity_type=?3) \
                 AND (?4 IS NULL OR task_queue=?4) ORDER BY run_id DESC LIMIT ?5"
            ))?;
            let rows = s.query_map(
                params![
                    namespace,
                    filter.state,
                    filter.activity_type,
                    filter.task_queue,
                    filter.limit
                ],
                both_from,
            )?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Attempts of a run, in order.
    pub fn attempts(&self, run_id: i64) -> Result<Vec<AttemptRow>, StoreError> {
        self.read(|c| {
            let mut s = c.prepare_cached(
                "SELECT run_id, attempt, started_ms, ended_ms, outcome, failure_type, failure_message, \
                 log_tail, heartbeat_details, module, cpu_us FROM attempts WHERE run_id=?1 \
                 ORDER BY attempt",
            )?;
            let rows = s.query_map(params![run_id], |r| {
                Ok(AttemptRow {
                    run_id: r.get(0)?,
                    attempt: r.get(1)?,
                    started_ms: r.get(2)?,
                    ended_ms: r.get(3)?,
                    outcome: r.get(4)?,
                    failure_type: r.get(5)?,
                    failure_message: r.get(6)?,
                    log_tail: r.get(7)?,
                    heartbeat_details: r.get(8)?,
                    module: r.get(9)?,
                    cpu_us: r.get(10)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Whether a namespace exists.
    pub fn namespace_exists(&self, namespace: &str) -> Result<bool, StoreError> {
        self.read(|c| {
            Ok(c.prepare_cached("SELECT 1 FROM namespaces WHERE name=?1")?
                .exists(params![namespace])?)
        })
    }

    /// Records a queue's rate limit (`rate: None` clears it).
    pub async fn save_queue_rate(&self, row: QueueRateRow) -> Result<(), StoreError> {
        self.write(move |c| {
            c.execute(
                "INSERT OR REPLACE INTO task_queue_config (namespace, task_queue, rate, burst, set_by, set_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![row.namespace, row.task_queue, row.rate, row.burst, row.set_by, row.set_ms],
            )?;
            Ok(())
        })
        .await
    }

    /// Every queue's rate limit.
    pub fn queue_rates(&self) -> Result<Vec<QueueRateRow>, StoreError> {
        self.read(|c| {
            let mut s = c.prepare(
                "SELECT namespace, task_queue, rate, burst, set_by, set_ms FROM task_queue_config",
            )?;
            let rows = s.query_map([], |r| {
                Ok(QueueRateRow {
                    namespace: r.get(0)?,
                    task_queue: r.get(1)?,
                    rate: r.get(2)?,
                    burst: r.get(3)?,
                    set_by: r.get(4)?,
                    set_ms: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }
}

/// A queue's rate limit as recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueRateRow {
    /// Namespace.
    pub namespace: String,
    /// Queue.
    pub task_queue: String,
    /// Tasks/s; 0 pauses; `None` is unlimited.
    pub rate: Option<f64>,
    /// Burst.
    pub burst: f64,
    /// Who set it.
    pub set_by: Option<String>,
    /// When.
    pub set_ms: u64,
}
