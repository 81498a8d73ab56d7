//! Versioned schema migrations, applied in order at start.
//!
//! The schema version is SQLite's `user_version`; each migration is a SQL
//! file that runs in its own transaction together with the version bump, so
//! a crash mid-migration leaves the previous version intact.

use super::StoreError;
use rusqlite::Connection;

/// Migrations in order; the index + 1 is the schema version they produce.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_modules.sql"),
    include_str!("migrations/0002_activities.sql"),
    include_str!("migrations/0003_temporal.sql"),
    include_str!("migrations/0004_tenancy.sql"),
    include_str!("migrations/0005_queue_config.sql"),
    include_str!("migrations/0006_egress.sql"),
    include_str!("migrations/0008_flow.sql"),
];

pub(super) fn run(conn: &mut Connection) -> Result<(), StoreError> {
    let current: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if current > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "database schema version {current} is newer than this wharf ({}); upgrade wharf",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "applied database migration");
    }
    Ok(())
}
