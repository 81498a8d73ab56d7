//! Rows of `namespaces`, `namespace_tokens` and `settings`.

use super::{Db, StoreError};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

/// A namespace as recorded; `quotas`, `egress` and `vars` are JSON owned by
/// the service.
#[derive(Clone, PartialEq, Eq)]
pub struct NamespaceRow {
    /// Name.
    pub name: String,
    /// JSON of the namespace's quotas.
    pub quotas: String,
    /// JSON of the namespace's outbound HTTP policy.
    pub egress: String,
    /// JSON of the module versions each per-module egress entry is bound to.
    pub egress_bindings: String,
    /// JSON of the namespace's configuration variables (secrets among
    /// them: this type has no `Debug` or `Serialize` so they are not shown
    /// by accident).
    pub vars: String,
    /// Creation time, ms since the Unix epoch.
    pub created_ms: u64,
}

/// A bearer token of a namespace (its secret is never stored).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct TokenRow {
    /// Public identifier, for listing and revoking.
    pub id: String,
    /// Namespace it grants.
    pub namespace: String,
    /// SHA-256 of the token, hex.
    #[serde(skip)]
    pub sha256: String,
    /// Creation time.
    pub created_ms: u64,
    /// Revocation time, if revoked.
    pub revoked_ms: Option<u64>,
}

impl Db {
    /// Every namespace.
    pub fn namespaces(&self) -> Result<Vec<NamespaceRow>, StoreError> {
        self.read(|c| {
            let mut s = c.prepare(
                "SELECT name, quotas, egress, egress_bindings, vars, created_ms FROM namespaces ORDER BY name",
            )?;
            let rows = s.query_map([], |r| {
                Ok(NamespaceRow {
                    name: r.get(0)?,
                    quotas: r.get(1)?,
                    egress: r.get(2)?,
                    egress_bindings: r.get(3)?,
                    vars: r.get(4)?,
                    created_ms: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Creates a namespace; false if the name is taken.
    pub async fn create_namespace(&self, row: NamespaceRow) -> Result<bool, StoreError> {
        self.write(move |c| {
            let n = c.execute(
                "INSERT OR IGNORE INTO namespaces (name, quotas, egress, egress_bindings, vars, created_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![row.name, row.quotas, row.egress, row.egress_bindings, row.vars, row.created_ms],
            )?;
            Ok(n == 1)
        })
        .await
    }

    /// Replaces a namespace's quotas.
    pub async fn update_quotas(&self, name: &str, quotas: String) -> Result<(), StoreError> {
        self.set_namespace_json(name, "quotas", quotas).await
    }

    /// Replaces a namespace's outbound HTTP policy and the module versions
    /// its per-module entries are bound to, together.
    pub async fn update_egress(
        &self,
        name: &str,
        egress: String,
        bindings: String,
    ) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.write(move |c| {
            c.execute(
                "UPDATE namespaces SET egress=?2, egress_bindings=?3 WHERE name=?1",
                params![name, egress, bindings],
            )?;
            Ok(())
        })
        .await
    }

    /// Replaces a namespace's configuration variables.
    pub async fn update_vars(&self, name: &str, vars: String) -> Result<(), StoreError> {
        self.set_namespace_json(name, "vars", vars).await
    }

    async fn set_namespace_json(
        &self,
        name: &str,
        column: &'static str,
        json: String,
    ) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.write(move |c| {
            // `column` is one of our own constants, never input.
            c.execute(
                &format!("UPDATE namespaces SET {column}=?2 WHERE name=?1"),
                params![name, json],
            )?;
            Ok(())
        })
        .await
    }

    /// Deletes a namespace and everything of it, in one transaction: its
    /// row, then every row of every table with a `namespace` column
    /// (activities with their attempts, modules, deployments and their
    /// history, limits, queue settings, tokens...), so a table added later
    /// is covered too. Module contents no other namespace has are recorded
    /// in `orphaned_contents` in the same transaction and returned: the
    /// caller removes their files, then calls
    /// [`contents_removed`](Self::contents_removed).
    pub async fn delete_namespace(&self, name: &str) -> Result<Vec<String>, StoreError> {
        let name = name.to_owned();
        self.write(move |c| {
            c.execute(
                "DELETE FROM attempts WHERE run_id IN (SELECT run_id FROM activities WHERE namespace=?1)",
                params![name],
            )?;
            let orphaned: Vec<String> = {
                let mut s = c.prepare(
                    "SELECT DISTINCT sha256 FROM modules m WHERE namespace=?1 AND NOT EXISTS \
                     (SELECT 1 FROM modules o WHERE o.sha256=m.sha256 AND o.namespace<>?1)",
                )?;
                let rows = s.query_map(params![name], |r| r.get(0))?;
                rows.collect::<Result<_, _>>()?
            };
            let tables: Vec<String> = {
                let mut s = c.prepare(
                    "SELECT m.name FROM sqlite_master m WHERE m.type='table' AND EXISTS \
                     (SELECT 1 FROM pragma_table_info(m.name) p WHERE p.name='namespace')",
                )?;
                let rows = s.query_map([], |r| r.get(0))?;
                rows.collect::<Result<_, _>>()?
            };
            for table in tables {
                // The name comes from the schema, quoted as an identifier.
                c.execute(
                    &format!("DELETE FROM \"{}\" WHERE namespace=?1", table.replace('"', "\"\"")),
                    params![name],
                )?;
            }
            c.execute("DELETE FROM namespaces WHERE name=?1", params![name])?;
            for sha in &orphaned {
                c.execute(
                    "INSERT OR IGNORE INTO orphaned_contents (sha256) VALUES (?1)",
                    params![sha],
                )?;
            }
            Ok(orphaned)
        })
        .await
    }

    /// Module contents recorded as orphaned whose files are still to be
    /// removed, leaving out any a module has again (uploaded since).
    pub fn orphaned_contents(&self) -> Result<Vec<String>, StoreError> {
        self.read(|c| {
            let mut s = c.prepare(
                "SELECT sha256 FROM orphaned_contents o WHERE NOT EXISTS \
                 (SELECT 1 FROM modules m WHERE m.sha256=o.sha256)",
            )?;
            let rows = s.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Forgets orphaned contents whose files are gone (or that a module
    /// has again).
    pub async fn contents_removed(&self, sha256s: Vec<String>) -> Result<(), StoreError> {
        self.write(move |c| {
            for sha in &sha256s {
                c.execute(
                    "DELETE FROM orphaned_contents WHERE sha256=?1",
                    params![sha],
                )?;
            }
            c.execute(
                "DELETE FROM orphaned_contents WHERE sha256 IN (SELECT sha256 FROM modules)",
                [],
            )?;
            Ok(())
        })
        .await
    }

    /// Records a token.
    pub async fn insert_token(&self, row: TokenRow) -> Result<(), StoreError> {
        self.write(move |c| {
            c.execute(
                "INSERT INTO namespace_tokens (id, namespace, sha256, created_ms) VALUES (?1, ?2, ?3, ?4)",
                params![row.id, row.namespace, row.sha256, row.created_ms],
            )?;
            Ok(())
        })
        .await
    }

    /// Revokes a token of a namespace; false if there is no such live token.
    pub async fn revoke_token(&self, namespace: &str, id: &str) -> Result<bool, StoreError> {
        let (ns, id) = (namespace.to_owned(), id.to_owned());
        let now = crate::now_ms();
        self.write(move |c| {
            let n = c.execute(
                "UPDATE namespace_tokens SET revoked_ms=?3 WHERE namespace=?1 AND id=?2 AND revoked_ms IS NULL",
                params![ns, id, now],
            )?;
            Ok(n == 1)
        })
        .await
    }

    /// Tokens, live and revoked, of every namespace.
    pub fn tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        self.read(|c| {
            let mut s = c.prepare(
                "SELECT id, namespace, sha256, created_ms, revoked_ms FROM namespace_tokens ORDER BY created_ms",
            )?;
            let rows = s.query_map([], |r| {
                Ok(TokenRow {
                    id: r.get(0)?,
                    namespace: r.get(1)?,
                    sha256: r.get(2)?,
                    created_ms: r.get(3)?,
                    revoked_ms: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// A host setting.
    pub fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT value FROM settings WHERE key=?1",
                params![key],
                |r| r.get(0),
            )
            .optional()?)
        })
    }

    /// Sets a host setting.
    pub async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let (k, v) = (key.to_owned(), value.to_owned());
        self.write(move |c| {
            c.execute(
                "INSERT OR REPLACE INTO settings (key, value) VALUES (?1, ?2)",
                params![k, v],
            )?;
            Ok(())
        })
        .await
    }

    /// Number of module versions of a namespace.
    pub fn module_count(&self, namespace: &str) -> Result<u64, StoreError> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT COUNT(*) FROM modules WHERE namespace=?1",
                params![namespace],
                |r| r.get(0),
            )?)
        })
    }
}
