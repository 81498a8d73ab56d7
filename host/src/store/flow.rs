//! Flow-control records: which module version serves each queue (with the
//! history a rollback walks back through) and the concurrency limits.

use super::{Db, StoreError};
use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

/// A deployment as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct DeploymentRow {
    /// Namespace.
    pub namespace: String,
    /// Task queue served.
    pub task_queue: String,
    /// Module name.
    pub module_name: String,
    /// Module version serving the queue.
    pub module_version: u32,
    /// Most attempts running at once on this queue.
    pub max_concurrent: u32,
    /// A newer version being rolled out, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ramp_version: Option<u32>,
    /// Its share of activities, percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ramp_percent: Option<u8>,
    /// Last change, ms since the Unix epoch.
    pub updated_ms: u64,
}

const COLUMNS: &str = "namespace, task_queue, module_name, module_version, max_concurrent, \
                       ramp_version, ramp_percent";

fn deployment_from(r: &Row<'_>, updated_ms: u64) -> rusqlite::Result<DeploymentRow> {
    Ok(DeploymentRow {
        namespace: r.get(0)?,
        task_queue: r.get(1)?,
        module_name: r.get(2)?,
        module_version: r.get(3)?,
        max_concurrent: r.get(4)?,
        ramp_version: r.get(5)?,
        ramp_percent: r.get(6)?,
        updated_ms,
    })
}

fn put_current(c: &rusqlite::Connection, d: &DeploymentRow) -> rusqlite::Result<()> {
    c.execute(
        &format!(
            "INSERT OR REPLACE INTO deployments ({COLUMNS}, updated_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        ),
        params![
            d.namespace,
            d.task_queue,
            d.module_name,
            d.module_version,
            d.max_concurrent,
            d.ramp_version,
            d.ramp_percent,
            d.updated_ms
        ],
    )?;
    Ok(())
}

/// The newest two history entries of a queue not rolled back, newest
/// first, with their ids.
fn live_history(
    c: &rusqlite::Connection,
    namespace: &str,
    task_queue: &str,
    now_ms: u64,
) -> rusqlite::Result<Vec<(i64, DeploymentRow)>> {
    let mut s = c.prepare_cached(&format!(
        "SELECT {COLUMNS}, id FROM deployment_history \
         WHERE namespace=?1 AND task_queue=?2 AND rolled_back_ms IS NULL \
         ORDER BY id DESC LIMIT 2"
    ))?;
    let rows = s.query_map(params![namespace, task_queue], |r| {
        Ok((r.get::<_, i64>(7)?, deployment_from(r, now_ms)?))
    })?;
    rows.collect()
}

/// A concurrency limit as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct LimitRow {
    /// Namespace.
    pub namespace: String,
    /// `type:T`, `key:K` or `queue:Q/type:T`.
    pub key: String,
    /// Most attempts at once.
    pub max_concurrent: u32,
    /// Who set it.
    pub set_by: Option<String>,
    /// When, ms since the Unix epoch.
    pub set_ms: u64,
}

impl Db {
    /// Makes `d` the queue's deployment and appends it to the history;
    /// `false` (nothing written) if a version it names no longer exists.
    pub async fn save_deployment(&self, d: DeploymentRow) -> Result<bool, StoreError> {
        self.write(move |c| {
            // A module deletion checks deployments in its own transaction;
            // checking here in turn means a deploy that loaded a version
            // just before it was deleted cannot record it.
            for version in std::iter::once(d.module_version).chain(d.ramp_version) {
                let exists: bool = c.query_row(
                    "SELECT EXISTS (SELECT 1 FROM modules WHERE namespace=?1 AND name=?2 AND version=?3)",
                    params![d.namespace, d.module_name, version],
                    |r| r.get(0),
                )?;
                if !exists {
                    return Ok(false);
                }
            }
            put_current(c, &d)?;
            c.execute(
                &format!(
                    "INSERT INTO deployment_history ({COLUMNS}, deployed_ms) \
                     SELECT {COLUMNS}, updated_ms FROM deployments \
                     WHERE namespace=?1 AND task_queue=?2"
                ),
                params![d.namespace, d.task_queue],
            )?;
            Ok(true)
        })
        .await
    }

    /// Marks the queue's newest live history entry rolled back and makes the
    /// live one before it current again; that entry, or `None` when there
    /// is nothing to go back to (nothing changes then).
    pub async fn roll_back_deployment(
        &self,
        namespace: &str,
        task_queue: &str,
        now_ms: u64,
    ) -> Result<Option<DeploymentRow>, StoreError> {
        let (ns, q) = (namespace.to_owned(), task_queue.to_owned());
        self.write(move |c| {
            let live = live_history(c, &ns, &q, now_ms)?;
            let [(newest, _), (_, previous)] = live.as_slice() else {
                return Ok(None);
            };
            c.execute(
                "UPDATE deployment_history SET rolled_back_ms=?1 WHERE id=?2",
                params![now_ms, newest],
            )?;
            put_current(c, previous)?;
            Ok(Some(previous.clone()))
        })
        .await
    }

    /// The entry a rollback of the queue would restore.
    pub fn deployment_before_latest(
        &self,
        namespace: &str,
        task_queue: &str,
    ) -> Result<Option<DeploymentRow>, StoreError> {
        self.read(|c| {
            Ok(live_history(c, namespace, task_queue, crate::now_ms())?
                .into_iter()
                .nth(1)
                .map(|(_, row)| row))
        })
    }

    /// Every queue's current deployment.
    pub fn deployments(&self) -> Result<Vec<DeploymentRow>, StoreError> {
        self.read(|c| {
            let mut s = c.prepare(&format!("SELECT {COLUMNS}, updated_ms FROM deployments"))?;
            let rows = s.query_map([], |r| deployment_from(r, r.get(7)?))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// The current deployment of one queue.
    pub fn deployment(
        &self,
        namespace: &str,
        task_queue: &str,
    ) -> Result<Option<DeploymentRow>, StoreError> {
        self.read(|c| {
            Ok(c.query_row(
                &format!(
                    "SELECT {COLUMNS}, updated_ms FROM deployments \
                     WHERE namespace=?1 AND task_queue=?2"
                ),
                params![namespace, task_queue],
                |r| deployment_from(r, r.get(7)?),
            )
            .optional()?)
        })
    }

    /// Sets (`Some`) or removes (`None`) a concurrency limit.
    pub async fn save_limit(
        &self,
        row: LimitRow,
        max_concurrent: Option<u32>,
    ) -> Result<(), StoreError> {
        self.write(move |c| {
            match max_concurrent {
                Some(max) => c.execute(
                    "INSERT OR REPLACE INTO concurrency_limits \
                     (namespace, key, max_concurrent, set_by, set_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![row.namespace, row.key, max, row.set_by, row.set_ms],
                )?,
                None => c.execute(
                    "DELETE FROM concurrency_limits WHERE namespace=?1 AND key=?2",
                    params![row.namespace, row.key],
                )?,
            };
            Ok(())
        })
        .await
    }

    /// Every concurrency limit.
    pub fn limits(&self) -> Result<Vec<LimitRow>, StoreError> {
        self.read(|c| {
            let mut s = c.prepare(
                "SELECT namespace, key, max_concurrent, set_by, set_ms FROM concurrency_limits",
            )?;
            let rows = s.query_map([], |r| {
                Ok(LimitRow {
                    namespace: r.get(0)?,
                    key: r.get(1)?,
                    max_concurrent: r.get(2)?,
                    set_by: r.get(3)?,
                    set_ms: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }
}
