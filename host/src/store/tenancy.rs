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
    /// JSON of the namespace's configuration variables (secrets among
    /// them: this type has no `Debug` or `Serialize` so they are not shown
    /// by accident).
    pub vars: String,
    /// Creation time, ms since the Unix epoch.
    pub created_ms: u64,
}

/// A bearer token of a namespace (its secret is never stored).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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
                "SELECT name, quotas, egress, vars, created_ms FROM namespaces ORDER BY name",
            )?;
            let rows = s.query_map([], |r| {
                Ok(NamespaceRow {
                    name: r.get(0)?,
                    quotas: r.get(1)?,
                    egress: r.get(2)?,
                    vars: r.get(3)?,
                    created_ms: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Creates a namespace; false if the name is taken.
    pub async fn create_namespace(&self, row: NamespaceRow) -> Result<bool, StoreError> {
        self.write(move |c| {
            let n = c.execute(
                "INSERT OR IGNORE INTO namespaces (name, quotas, egress, vars, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![row.name, row.quotas, row.egress, row.vars, row.created_ms],
            )?;
            Ok(n == 1)
        })
        .await
    }

    /// Replaces a namespace's quotas.
    pub async fn update_quotas(&self, name: &str, quotas: String) -> Result<(), StoreError> {
        self.set_namespace_json(name, "quotas", quotas).await
    }

    /// Replaces a namespace's outbound HTTP policy.
    pub async fn update_egress(&self, name: &str, egress: String) -> Result<(), StoreError> {
        self.set_namespace_json(name, "egress", egress).await
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

    /// Deletes a namespace and revokes its tokens.
    pub async fn delete_namespace(&self, name: &str) -> Result<(), StoreError> {
        let name = name.to_owned();
        let now = crate::now_ms();
        self.write(move |c| {
            c.execute("DELETE FROM namespaces WHERE name=?1", params![name])?;
            c.execute(
                "UPDATE namespace_tokens SET revoked_ms=?2 WHERE namespace=?1 AND revoked_ms IS NULL",
                params![name, now],
            )?;
            c.execute("DELETE FROM deployments WHERE namespace=?1", params![name])?;
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
