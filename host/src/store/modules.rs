//! Rows of the `modules` table: what the registry has accepted, and their
//! deletion (refused while a deployment names them; contents no module has
//! any more are recorded in `orphaned_contents` for the registry to remove,
//! as a namespace's deletion does).

use super::{Db, StoreError};
use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

/// A module version as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ModuleRecord {
    /// Namespace that owns it.
    pub namespace: String,
    /// Name given at upload.
    pub name: String,
    /// 1, 2, 3... per name, one per distinct content.
    pub version: u32,
    /// Hex SHA-256 of the component bytes.
    pub sha256: String,
    /// Activity types the module exports.
    pub activity_types: Vec<String>,
    /// Component size in bytes.
    pub size: u64,
    /// Upload time, ms since the Unix epoch.
    pub created_ms: u64,
}

const COLUMNS: &str = "namespace, name, version, sha256, activity_types, size, created_ms";

fn from_row(r: &Row<'_>) -> rusqlite::Result<ModuleRecord> {
    let types: String = r.get(4)?;
    Ok(ModuleRecord {
        namespace: r.get(0)?,
        name: r.get(1)?,
        version: r.get(2)?,
        sha256: r.get(3)?,
        activity_types: serde_json::from_str(&types).unwrap_or_default(),
        size: r.get(5)?,
        created_ms: r.get(6)?,
    })
}

/// The version of `name` with this content, if any.
fn by_content(
    c: &rusqlite::Connection,
    namespace: &str,
    name: &str,
    sha256: &str,
) -> rusqlite::Result<Option<ModuleRecord>> {
    c.query_row(
        &format!("SELECT {COLUMNS} FROM modules WHERE namespace=?1 AND name=?2 AND sha256=?3"),
        params![namespace, name, sha256],
        from_row,
    )
    .optional()
}

/// What deleting a module (or one version of it) came to.
#[derive(Debug, PartialEq, Eq)]
pub enum ModuleDeletion {
    /// The versions deleted, and the contents that no module of any
    /// namespace has any more (recorded in `orphaned_contents`).
    Deleted {
        /// Versions deleted, ascending.
        versions: Vec<u32>,
        /// Hex SHA-256 of the contents left without a module.
        orphaned: Vec<String>,
    },
    /// No such module or version.
    NotFound,
    /// Queues whose deployment (or rollout) runs a version to delete;
    /// nothing was deleted.
    Deployed(Vec<String>),
}

impl Db {
    /// Deletes module `name` of `namespace` (one version, or all), in one
    /// transaction, unless a queue's deployment or rollout runs a version
    /// to delete. Its version numbers are not given out again.
    pub async fn delete_module(
        &self,
        namespace: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<ModuleDeletion, StoreError> {
        let (ns, name) = (namespace.to_owned(), name.to_owned());
        self.write(move |c| {
            let (versions, shas): (Vec<u32>, Vec<String>) = {
                let mut s = c.prepare_cached(
                    "SELECT version, sha256 FROM modules WHERE namespace=?1 AND name=?2 \
                     AND (?3 IS NULL OR version=?3) ORDER BY version",
                )?;
                let rows = s.query_map(params![ns, name, version], |r| {
                    Ok((r.get::<_, u32>(0)?, r.get::<_, String>(1)?))
                })?;
                rows.collect::<Result<Vec<_>, _>>()?.into_iter().unzip()
            };
            if versions.is_empty() {
                return Ok(ModuleDeletion::NotFound);
            }
            let deployed: Vec<String> = {
                let mut s = c.prepare_cached(
                    "SELECT task_queue FROM deployments WHERE namespace=?1 AND module_name=?2 \
                     AND (?3 IS NULL OR module_version=?3 OR ramp_version=?3) ORDER BY task_queue",
                )?;
                let rows = s.query_map(params![ns, name, version], |r| r.get(0))?;
                rows.collect::<Result<_, _>>()?
            };
            if !deployed.is_empty() {
                return Ok(ModuleDeletion::Deployed(deployed));
            }
            c.execute(
                "DELETE FROM modules WHERE namespace=?1 AND name=?2 AND (?3 IS NULL OR version=?3)",
                params![ns, name, version],
            )?;
            c.execute(
                "INSERT INTO deleted_module_versions (namespace, name, last_version) \
                 VALUES (?1, ?2, ?3) ON CONFLICT (namespace, name) \
                 DO UPDATE SET last_version = MAX(last_version, excluded.last_version)",
                params![ns, name, versions.iter().max()],
            )?;
            let mut orphaned = Vec::new();
            for sha in shas {
                let used: bool = c.query_row(
                    "SELECT EXISTS (SELECT 1 FROM modules WHERE sha256=?1)",
                    params![sha],
                    |r| r.get(0),
                )?;
                if !used && !orphaned.contains(&sha) {
                    c.execute(
                        "INSERT OR IGNORE INTO orphaned_contents (sha256) VALUES (?1)",
                        params![sha],
                    )?;
                    orphaned.push(sha);
                }
            }
            Ok(ModuleDeletion::Deleted { versions, orphaned })
        })
        .await
    }

    /// The version of module `name` with content `sha256`, if recorded.
    pub fn module_by_content(
        &self,
        namespace: &str,
        name: &str,
        sha256: &str,
    ) -> Result<Option<ModuleRecord>, StoreError> {
        self.read(|c| Ok(by_content(c, namespace, name, sha256)?))
    }

    /// Records a module. Uploading content already recorded under this name
    /// returns the existing version; otherwise the next version number is
    /// taken. Returns the record and whether it is new; `None` if the
    /// namespace no longer exists (deleted while the module was checked).
    pub async fn insert_module(
        &self,
        namespace: &str,
        name: &str,
        sha256: &str,
        activity_types: &[String],
        size: u64,
        created_ms: u64,
    ) -> Result<Option<(ModuleRecord, bool)>, StoreError> {
        let (ns, name, sha) = (namespace.to_owned(), name.to_owned(), sha256.to_owned());
        let types = serde_json::to_string(activity_types).unwrap_or_else(|_| "[]".into());
        self.write(move |c| {
            let exists: bool = c.query_row(
                "SELECT EXISTS (SELECT 1 FROM namespaces WHERE name=?1)",
                params![ns],
                |r| r.get(0),
            )?;
            if !exists {
                return Ok(None);
            }
            if let Some(m) = by_content(c, &ns, &name, &sha)? {
                return Ok(Some((m, false)));
            }
            // Numbers of deleted versions are not given out again.
            let version: u32 = c.query_row(
                "SELECT MAX(COALESCE((SELECT MAX(version) FROM modules WHERE namespace=?1 AND name=?2), 0), \
                            COALESCE((SELECT last_version FROM deleted_module_versions \
                                      WHERE namespace=?1 AND name=?2), 0)) + 1",
                params![ns, name],
                |r| r.get(0),
            )?;
            c.execute(
                &format!("INSERT INTO modules ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
                params![ns, name, version, sha, types, size, created_ms],
            )?;
            let m = c.query_row(
                &format!(
                    "SELECT {COLUMNS} FROM modules WHERE namespace=?1 AND name=?2 AND version=?3"
                ),
                params![ns, name, version],
                from_row,
            )?;
            Ok(Some((m, true)))
        })
        .await
    }

    /// All module versions of a namespace, by name then version.
    pub fn list_modules(&self, namespace: &str) -> Result<Vec<ModuleRecord>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM modules WHERE namespace=?1 ORDER BY name, version"
            ))?;
            let rows = stmt.query_map(params![namespace], from_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// One module version; the latest when `version` is `None`.
    pub fn get_module(
        &self,
        namespace: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<ModuleRecord>, StoreError> {
        self.read(|c| {
            let sql = format!(
                "SELECT {COLUMNS} FROM modules WHERE namespace=?1 AND name=?2 \
                 AND (?3 IS NULL OR version=?3) ORDER BY version DESC LIMIT 1"
            );
            Ok(
                c.query_row(&sql, params![namespace, name, version], from_row)
                    .optional()?,
            )
        })
    }
}
