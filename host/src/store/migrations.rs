//! Versioned schema migrations, applied in order at start.
//!
//! The schema version is SQLite's `user_version`; each migration is a SQL
//! file that runs in its own transaction together with the version bump, so
//! a crash mid-migration leaves the previous version intact.

use super::StoreError;
use rusqlite::Connection;

/// One migration file, by name (`NNNN_what`, NNNN the version it produces).
macro_rules! migration {
    ($name:literal) => {
        ($name, include_str!(concat!("migrations/", $name, ".sql")))
    };
}

/// Migrations in order; the index + 1 is the schema version they produce,
/// and the number their file name starts with.
const MIGRATIONS: &[(&str, &str)] = &[
    migration!("0001_modules"),
    migration!("0002_activities"),
    migration!("0003_temporal"),
    migration!("0004_tenancy"),
    migration!("0005_queue_config"),
    migration!("0006_egress"),
    migration!("0007_flow"),
    migration!("0008_module_grants"),
    migration!("0009_retention"),
    migration!("0010_module_deletion"),
    migration!("0011_attempt_cpu"),
    migration!("0012_no_open_index"),
];

pub(super) fn run(conn: &mut Connection) -> Result<(), StoreError> {
    let current: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if current > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "database schema version {current} is newer than this wharf ({}); upgrade wharf",
            MIGRATIONS.len()
        )));
    }
    for (i, (_, sql)) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "applied database migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_numbered_as_the_versions_they_produce() {
        for (i, (name, _)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(
                name.get(..4),
                Some(format!("{:04}", i + 1).as_str()),
                "{name}"
            );
        }
    }

    #[test]
    fn grants_by_name_are_bound_to_the_versions_existing_at_migration() {
        let mut c = Connection::open_in_memory().unwrap();
        let at = MIGRATIONS
            .iter()
            .position(|(_, m)| m.contains("orphaned_contents"))
            .unwrap();
        for (_, sql) in &MIGRATIONS[..at] {
            c.execute_batch(sql).unwrap();
        }
        c.pragma_update(None, "user_version", at).unwrap();
        c.execute_batch(
            r#"
            INSERT INTO namespaces (name, created_ms, vars, egress) VALUES ('acme', 0,
              '{"K": {"value": "v", "grants": ["billing", "*", "none"]}, "L": {"value": "w"}}',
              '{"allow_hosts": ["h"], "modules": {"billing": ["h"], "ghost": ["h"]}}');
            INSERT INTO modules VALUES ('acme', 'billing', 1, 'aa', '[]', 1, 0);
            INSERT INTO modules VALUES ('acme', 'billing', 2, 'bb', '[]', 1, 0);
            INSERT INTO modules VALUES ('other', 'billing', 1, 'cc', '[]', 1, 0);
            "#,
        )
        .unwrap();
        run(&mut c).unwrap();
        let (vars, bindings): (String, String) = c
            .query_row(
                "SELECT vars, egress_bindings FROM namespaces WHERE name='acme'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        let vars: serde_json::Value = serde_json::from_str(&vars).unwrap();
        let mut shas: Vec<&str> = vars["K"]["bound"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["sha256"].as_str().unwrap())
            .collect();
        shas.sort_unstable();
        assert_eq!(shas, ["aa", "bb"], "{vars}");
        assert_eq!(vars["K"]["value"], "v");
        assert_eq!(vars["K"]["grants"][1], "*");
        assert_eq!(vars["L"]["bound"], serde_json::json!([]), "{vars}");
        let bindings: serde_json::Value = serde_json::from_str(&bindings).unwrap();
        assert_eq!(
            bindings["billing"].as_array().map(Vec::len),
            Some(2),
            "{bindings}"
        );
        assert_eq!(bindings["ghost"], serde_json::json!([]), "{bindings}");
        // Default namespace (no modules, empty JSON) migrates to empty.
        let (vars, bindings): (String, String) = c
            .query_row(
                "SELECT vars, egress_bindings FROM namespaces WHERE name='default'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((vars.as_str(), bindings.as_str()), ("{}", "{}"));
    }
}
