//! Rows of `activities`, `attempts` and `deployments`.
//!
//! An activity row has a fixed part, written once at start, and a mutable
//! part ([`ActivityProgress`]) rewritten whole on every transition; the
//! service owns the meaning of both. The run's state is read into a
//! [`RunState`] here and written back under the same names, so nothing
//! above this layer handles the stored strings; a row whose state cannot
//! be read is reported as unreadable, never guessed.
//!
//! Payloads (input, heartbeat details, last failure, result) stay here:
//! the reads the service keeps in memory ([`Db::open_activities`],
//! [`Db::latest_run`]) leave them out, the attempt that needs them reads
//! them when it starts ([`Db::run_payloads`]), and a progress written
//! without one keeps the stored value ([`save_progress`]).

pub use super::run_state::{Closed, RunState, STATES};
use super::{Db, StoreError};
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;
use std::sync::LazyLock;

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
    /// JSON array of payloads: the latest heartbeat details. Payload
    /// fields (this one, `last_failure`, `result`) are `None` in what is
    /// read for memory, and a `None` written keeps the stored value.
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
    /// Wall time until its instance was ready, in microseconds: for its
    /// trace only, not stored.
    #[serde(skip)]
    pub instantiate_us: Option<u64>,
}

const FIXED: &str = "run_id, namespace, activity_id, activity_type, task_queue, scheduled_ms";
const PROGRESS: &str =
    "state, attempt, attempt_scheduled_ms, started_ms, awaiting_async, task_token, \
     heartbeat_details, heartbeat_ms, cancel_requested, last_failure, result, closed_ms";
/// [`PROGRESS`] without its payloads, for what the service keeps in memory.
const PROGRESS_LEAN: &str = "state, attempt, attempt_scheduled_ms, started_ms, awaiting_async, \
     task_token, NULL, heartbeat_ms, cancel_requested, NULL, NULL, closed_ms";
/// Columns after [`FIXED`] start here.
const AFTER_FIXED: usize = 6;

fn fixed_from(r: &Row<'_>) -> rusqlite::Result<ActivityFixed> {
    Ok(ActivityFixed {
        run_id: r.get(0)?,
        namespace: r.get(1)?,
        activity_id: r.get(2)?,
        activity_type: r.get(3)?,
        task_queue: r.get(4)?,
        scheduled_ms: r.get(5)?,
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
    Ok((fixed_from(r)?, progress_from(r, AFTER_FIXED)?))
}

fn stored_from(r: &Row<'_>) -> rusqlite::Result<StoredRun> {
    let (fixed, progress) = both_from(r)?;
    Ok(StoredRun {
        fixed,
        progress,
        input: r.get(AFTER_FIXED + 12)?,
        options: r.get(AFTER_FIXED + 13)?,
    })
}

/// Which run [`Db::run_with_attempts`] reads.
#[derive(Clone, Copy, Debug)]
pub enum RunKey<'a> {
    /// The run with this id.
    Id(i64),
    /// The newest run of an activity id.
    Latest {
        namespace: &'a str,
        activity_id: &'a str,
    },
}

fn run_in(c: &Connection, run_id: i64) -> Result<Option<StoredRun>, StoreError> {
    Ok(c.prepare_cached(&format!(
        "SELECT {FIXED}, {PROGRESS}, input, options FROM activities WHERE run_id=?1"
    ))?
    .query_row(params![run_id], stored_from)
    .optional()?)
}

/// Attempts of a run, in order.
fn attempts_in(c: &Connection, run_id: i64) -> Result<Vec<AttemptRow>, StoreError> {
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
            instantiate_us: None,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A run as stored, its input included: what describe and list show.
#[derive(Clone, Debug)]
pub struct StoredRun {
    /// The part fixed at start.
    pub fixed: ActivityFixed,
    /// Where it is, with its payloads.
    pub progress: ActivityProgress,
    /// JSON array of the input payloads.
    pub input: String,
    /// JSON of the options.
    pub options: String,
}

impl StoredRun {
    /// Bytes of its payloads and options, as stored.
    pub fn payload_bytes(&self) -> usize {
        let p = &self.progress;
        [&p.heartbeat_details, &p.last_failure, &p.result]
            .into_iter()
            .flatten()
            .fold(self.input.len() + self.options.len(), |n, s| {
                n.saturating_add(s.len())
            })
    }
}

/// Most bytes of payloads one page of the list carries: a page of 1000
/// runs with inputs and results at the payload limit would otherwise take
/// gigabytes of memory for one request.
pub const MAX_LIST_BYTES: usize = 16 << 20;

/// One page of the list.
#[derive(Debug)]
pub struct ListPage {
    /// The runs, newest first.
    pub runs: Vec<StoredRun>,
    /// More runs matched within the limit than [`MAX_LIST_BYTES`] of
    /// payloads held; the page ends before them (it holds at least one).
    pub truncated: bool,
}

/// An open run as recovery reads it: without payloads, with the bytes
/// they take in the database.
#[derive(Clone, Debug)]
pub struct OpenRun {
    /// The part fixed at start.
    pub fixed: ActivityFixed,
    /// Where it is (payload fields `None`).
    pub progress: ActivityProgress,
    /// Bytes of its stored input.
    pub input_bytes: u64,
    /// Bytes of its stored heartbeat details.
    pub heartbeat_bytes: u64,
    /// JSON of the options (parsed, then dropped, by recovery).
    pub options: String,
}

/// One batch of open runs as recovery reads them: the readable ones, the
/// run ids of those that cannot be read with why, and the highest run id
/// of the batch (`None`: there are no more).
pub struct OpenRuns {
    /// Readable runs.
    pub readable: Vec<OpenRun>,
    /// Runs that cannot be read, with why.
    pub unreadable: Vec<(i64, String)>,
    /// Highest run id read; the next batch starts after it.
    pub last: Option<i64>,
}

/// The payloads an attempt starts with, as stored.
#[derive(Clone, Debug)]
pub struct RunPayloads {
    /// JSON array of the input payloads.
    pub input: String,
    /// JSON array of the latest heartbeat details.
    pub heartbeat_details: Option<String>,
}

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

/// The list query: a namespace's runs newest first, every filter optional
/// (`?2`-`?9`, NULL or 0 for none), `?5` the limit.
///
/// One walk of `activities_by_state` (namespace, state, run_id) per state,
/// newest first, each stopping at the limit, merged: a page reads at most
/// six times its limit of rows, however many runs the namespace holds. (A
/// single walk by namespace would read and sort all of them for each page:
/// the state filter is optional, so it is no index constraint there.)
fn list_sql() -> String {
    let walks: Vec<String> = STATES
        .iter()
        .map(|state| {
            format!(
                "SELECT * FROM (SELECT {FIXED}, {PROGRESS}, input, options FROM activities \
                 WHERE namespace=?1 AND state='{state}' AND (?2 IS NULL OR ?2='{state}') \
                 AND (?3 IS NULL OR activity_type=?3) AND (?4 IS NULL OR task_queue=?4) \
                 AND (?6 = 0 OR (closed_ms IS NULL AND attempt > 1)) \
                 AND (?7 IS NULL OR substr(activity_id, 1, length(?7)) = ?7) \
                 AND (?8 IS NULL OR scheduled_ms >= ?8) AND (?9 IS NULL OR scheduled_ms < ?9) \
                 ORDER BY run_id DESC LIMIT ?5)"
            )
        })
        .collect();
    format!(
        "{} ORDER BY run_id DESC LIMIT ?5",
        walks.join(" UNION ALL ")
    )
}

/// Inserts a new activity run with its options (JSON) and input (JSON
/// array of payloads).
pub fn insert_activity(
    c: &Connection,
    f: &ActivityFixed,
    options: &str,
    input: &str,
    p: &ActivityProgress,
) -> Result<(), StoreError> {
    // Built once: every start runs it.
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "INSERT INTO activities ({FIXED}, options, input, {PROGRESS}) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)"
        )
    });
    c.prepare_cached(&SQL)?.execute(params![
        f.run_id,
        f.namespace,
        f.activity_id,
        f.activity_type,
        f.task_queue,
        f.scheduled_ms,
        options,
        input,
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

/// Rewrites the mutable part of a run. A payload field that is `None`
/// keeps what is stored: memory does not hold payloads, and none is ever
/// cleared once set. False when the run has no row (its start never
/// committed).
pub fn save_progress(
    c: &Connection,
    run_id: i64,
    p: &ActivityProgress,
) -> Result<bool, StoreError> {
    c.prepare_cached(
        "UPDATE activities SET state=?2, attempt=?3, attempt_scheduled_ms=?4, started_ms=?5, \
         awaiting_async=?6, task_token=?7, heartbeat_details=COALESCE(?8, heartbeat_details), \
         heartbeat_ms=?9, cancel_requested=?10, last_failure=COALESCE(?11, last_failure), \
         result=COALESCE(?12, result), closed_ms=?13 WHERE run_id=?1",
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
    ])
    .map(|rows| rows == 1)
    .map_err(Into::into)
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

/// Inserts or replaces an attempt row. An attempt without heartbeat
/// details of its own shows those it was given (the run's latest).
pub fn save_attempt(c: &Connection, a: &AttemptRow) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT OR REPLACE INTO attempts (run_id, attempt, started_ms, ended_ms, outcome, \
         failure_type, failure_message, log_tail, heartbeat_details, module, cpu_us) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, \
         COALESCE(?9, (SELECT heartbeat_details FROM activities WHERE run_id = ?1)), ?10, ?11)",
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
    /// Only open runs past their first attempt (retrying: in a backoff or
    /// running attempt 2 or later).
    pub retrying: bool,
    /// Only of this type.
    pub activity_type: Option<String>,
    /// Only on this queue.
    pub task_queue: Option<String>,
    /// Only those whose id starts so.
    pub id_prefix: Option<String>,
    /// Only those first scheduled at or after this (ms since the Unix epoch).
    pub scheduled_after_ms: Option<u64>,
    /// Only those first scheduled before this.
    pub scheduled_before_ms: Option<u64>,
    /// At most this many, newest first.
    pub limit: u32,
}

impl Db {
    /// Up to `limit` runs not yet closed after run id `after`, in run id
    /// order, for recovery at start, without their payloads (only their
    /// sizes); and the run ids of open rows that cannot be read (a value of
    /// the wrong type or out of range), with why, so that recovery fails
    /// them instead of stopping.
    pub fn open_activities(&self, after: i64, limit: u32) -> Result<OpenRuns, StoreError> {
        self.read(|c| {
            // `octet_length` reads a value's size from its header, not the value.
            let mut s = c.prepare_cached(&format!(
                "SELECT {FIXED}, {PROGRESS_LEAN}, octet_length(input), \
                 octet_length(heartbeat_details), options FROM activities \
                 WHERE closed_ms IS NULL AND run_id > ?1 ORDER BY run_id LIMIT ?2"
            ))?;
            let mut rows = s.query(params![after, limit])?;
            let mut batch = OpenRuns {
                readable: Vec::new(),
                unreadable: Vec::new(),
                last: None,
            };
            while let Some(r) = rows.next()? {
                // `run_id` is the INTEGER PRIMARY KEY: always readable.
                batch.last = Some(r.get(0)?);
                let rest = |r: &Row<'_>| -> rusqlite::Result<(u64, u64, String)> {
                    let n = |i| {
                        r.get::<_, Option<i64>>(i)
                            .map(|n| n.unwrap_or(0).max(0) as u64)
                    };
                    Ok((
                        n(AFTER_FIXED + 12)?,
                        n(AFTER_FIXED + 13)?,
                        r.get(AFTER_FIXED + 14)?,
                    ))
                };
                match both_from(r).and_then(|run| Ok((run, rest(r)?))) {
                    Ok(((fixed, progress), (input_bytes, heartbeat_bytes, options))) => {
                        batch.readable.push(OpenRun {
                            fixed,
                            progress,
                            input_bytes,
                            heartbeat_bytes,
                            options,
                        })
                    }
                    Err(e) => batch.unreadable.push((r.get(0)?, e.to_string())),
                }
            }
            Ok(batch)
        })
    }

    /// A run with its attempts, read from one snapshot: the run `run_id`,
    /// or without it the newest run of `activity_id` in `namespace`.
    pub fn run_with_attempts(
        &self,
        run: RunKey<'_>,
    ) -> Result<Option<(StoredRun, Vec<AttemptRow>)>, StoreError> {
        self.read(|c| {
            super::readers::snapshot(c, |c| {
                let run_id = match run {
                    RunKey::Id(id) => Some(id),
                    RunKey::Latest {
                        namespace,
                        activity_id,
                    } => c
                        .prepare_cached(
                            "SELECT run_id FROM activities WHERE namespace=?1 AND activity_id=?2 \
                             ORDER BY run_id DESC LIMIT 1",
                        )?
                        .query_row(params![namespace, activity_id], |r| r.get(0))
                        .optional()?,
                };
                let Some(stored) = run_id.map(|id| run_in(c, id)).transpose()?.flatten() else {
                    return Ok(None);
                };
                let attempts = attempts_in(c, stored.fixed.run_id)?;
                Ok(Some((stored, attempts)))
            })
        })
    }

    /// The payloads attempt of a run starts with: its input and latest
    /// heartbeat details (`None` if the run is gone).
    pub fn run_payloads(&self, run_id: i64) -> Result<Option<RunPayloads>, StoreError> {
        self.read(|c| {
            Ok(
                c.prepare_cached(
                    "SELECT input, heartbeat_details FROM activities WHERE run_id=?1",
                )?
                .query_row(params![run_id], |r| {
                    Ok(RunPayloads {
                        input: r.get(0)?,
                        heartbeat_details: r.get(1)?,
                    })
                })
                .optional()?,
            )
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

    /// The newest run of an activity id, without its payloads.
    pub fn latest_run(
        &self,
        namespace: &str,
        activity_id: &str,
    ) -> Result<Option<(ActivityFixed, ActivityProgress)>, StoreError> {
        self.read(|c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {FIXED}, {PROGRESS_LEAN} FROM activities WHERE namespace=?1 AND activity_id=?2 \
                 ORDER BY run_id DESC LIMIT 1"
            ))?
            .query_row(params![namespace, activity_id], both_from)
            .optional()?)
        })
    }

    /// Runs of a namespace matching `filter`, newest first, with their
    /// payloads, up to [`MAX_LIST_BYTES`] of them.
    pub fn list_activities(
        &self,
        namespace: &str,
        filter: &ActivityFilter,
    ) -> Result<ListPage, StoreError> {
        self.read(|c| {
            static SQL: LazyLock<String> = LazyLock::new(list_sql);
            let mut s = c.prepare_cached(&SQL)?;
            let rows = s.query_map(
                params![
                    namespace,
                    filter.state,
                    filter.activity_type,
                    filter.task_queue,
                    filter.limit,
                    filter.retrying,
                    filter.id_prefix,
                    filter
                        .scheduled_after_ms
                        .map(|ms| ms.min(i64::MAX as u64) as i64),
                    filter
                        .scheduled_before_ms
                        .map(|ms| ms.min(i64::MAX as u64) as i64),
                ],
                stored_from,
            )?;
            let mut page = ListPage {
                runs: Vec::new(),
                truncated: false,
            };
            let mut bytes = 0usize;
            for row in rows {
                let row = row?;
                bytes = bytes.saturating_add(row.payload_bytes());
                if bytes > MAX_LIST_BYTES && !page.runs.is_empty() {
                    page.truncated = true;
                    break;
                }
                page.runs.push(row);
            }
            Ok(page)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `sql` (the list query, or its plan) over namespace `default`
    /// with only `state` and `limit` set.
    fn list<T>(
        c: &Connection,
        sql: &str,
        state: Option<&str>,
        limit: u32,
        row: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Vec<T> {
        let none = None::<String>;
        c.prepare(sql)
            .unwrap()
            .query_map(
                params!["default", state, none, none, limit, 0, none, none, none],
                row,
            )
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Both keys find the run with its own attempts, in order; the latest
    /// is the highest run id of the activity id in its namespace only.
    #[tokio::test]
    async fn a_run_is_read_with_its_attempts_by_run_id_or_as_the_latest() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), super::super::Durability::Normal).unwrap();
        db.write(|c| {
            for (run_id, ns, id, attempts) in [
                (1, "default", "a", 2),
                (2, "default", "a", 3),
                (3, "other", "a", 1),
            ] {
                c.execute(
                    "INSERT INTO activities (run_id, namespace, activity_id, activity_type, \
                     task_queue, scheduled_ms, options, input, state, attempt, \
                     attempt_scheduled_ms, closed_ms) \
                     VALUES (?1, ?2, ?3, 't', 'q', 0, '{}', '[]', 'completed', ?4, 0, 1)",
                    params![run_id, ns, id, attempts],
                )?;
                for attempt in (1..=attempts).rev() {
                    c.execute(
                        "INSERT INTO attempts (run_id, attempt, started_ms, log_tail, \
                         heartbeat_details) VALUES (?1, ?2, ?3, '', '[]')",
                        params![run_id, attempt, run_id * 10 + attempt],
                    )?;
                }
            }
            Ok(())
        })
        .await
        .unwrap();
        let read = |key| {
            db.run_with_attempts(key).unwrap().map(|(run, attempts)| {
                let attempts: Vec<(i64, u32, u64)> = attempts
                    .iter()
                    .map(|a| (a.run_id, a.attempt, a.started_ms))
                    .collect();
                (run.fixed.run_id, run.fixed.namespace, attempts)
            })
        };
        let latest = |namespace, activity_id| RunKey::Latest {
            namespace,
            activity_id,
        };
        assert_eq!(
            read(RunKey::Id(1)),
            Some((1, "default".into(), vec![(1, 1, 11), (1, 2, 12)]))
        );
        assert_eq!(
            read(latest("default", "a")),
            Some((
                2,
                "default".into(),
                vec![(2, 1, 21), (2, 2, 22), (2, 3, 23)]
            ))
        );
        assert_eq!(
            read(latest("other", "a")),
            Some((3, "other".into(), vec![(3, 1, 31)]))
        );
        assert_eq!(read(RunKey::Id(4)), None);
        assert_eq!(read(latest("default", "b")), None);
        assert_eq!(read(latest("nobody", "a")), None);
    }

    /// A page of the list walks the state index by namespace and state,
    /// never a whole namespace.
    #[test]
    fn the_list_walks_the_index_by_namespace_and_state() {
        let mut c = Connection::open_in_memory().unwrap();
        super::super::migrations::run(&mut c).unwrap();
        let plan: Vec<String> = list(
            &c,
            &format!("EXPLAIN QUERY PLAN {}", list_sql()),
            None,
            100,
            |r| r.get(3),
        );
        let walks: Vec<&String> = plan.iter().filter(|l| l.contains("activities")).collect();
        assert_eq!(walks.len(), STATES.len(), "{plan:?}");
        for w in walks {
            assert!(
                w.contains("activities_by_state (namespace=? AND state=?)"),
                "{plan:?}"
            );
        }
    }

    /// The merged walks answer as one query would: newest first, filtered,
    /// at most the limit.
    #[test]
    fn the_list_merges_states_newest_first_within_the_limit() {
        let mut c = Connection::open_in_memory().unwrap();
        super::super::migrations::run(&mut c).unwrap();
        for run_id in 1..=40i64 {
            let state = STATES[(run_id as usize * 7) % STATES.len()];
            let closed = matches!(state, "scheduled" | "started").then_some(());
            c.execute(
                "INSERT INTO activities (run_id, namespace, activity_id, activity_type, \
                 task_queue, scheduled_ms, options, input, state, attempt, \
                 attempt_scheduled_ms, closed_ms) \
                 VALUES (?1, ?2, ?3, 't', 'q', ?1, '{}', '[]', ?4, 1, ?1, ?5)",
                params![
                    run_id,
                    if run_id % 10 == 0 { "other" } else { "default" },
                    format!("a{run_id}"),
                    state,
                    closed.map_or(Some(run_id), |()| None),
                ],
            )
            .unwrap();
        }
        let ids = |state: Option<&str>, limit: u32| -> Vec<i64> {
            list(&c, &list_sql(), state, limit, |r| r.get(0))
        };
        let expect = |state: Option<&str>, limit: usize| -> Vec<i64> {
            (1..=40i64)
                .rev()
                .filter(|id| id % 10 != 0)
                .filter(|id| state.is_none_or(|s| STATES[(*id as usize * 7) % STATES.len()] == s))
                .take(limit)
                .collect()
        };
        assert_eq!(ids(None, 7), expect(None, 7));
        assert_eq!(ids(None, 100), expect(None, 100));
        assert_eq!(ids(Some("failed"), 3), expect(Some("failed"), 3));
        assert_eq!(ids(Some("started"), 100), expect(Some("started"), 100));
    }
}
