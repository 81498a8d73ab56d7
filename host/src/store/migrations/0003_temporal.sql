-- Temporal worker mode (`wharf worker --temporal`). The Temporal cluster is
-- the source of truth there; these tables only make sure that nothing a
-- worker computed is lost on the way to it.

-- Heartbeat journal: the latest details of each attempt, keyed by its task
-- token, rewritten on every heartbeat (coalesced) and marked final when the
-- attempt ends. Finished rows are pruned after a day.
CREATE TABLE temporal_heartbeats (
    task_token    BLOB    PRIMARY KEY,
    namespace     TEXT    NOT NULL,
    workflow_id   TEXT,
    activity_id   TEXT    NOT NULL,
    activity_type TEXT    NOT NULL,
    attempt       INTEGER NOT NULL,
    details       TEXT    NOT NULL, -- JSON array of payloads
    heartbeats    INTEGER NOT NULL, -- count so far
    final         INTEGER NOT NULL DEFAULT 0,
    updated_ms    INTEGER NOT NULL
);
CREATE INDEX temporal_heartbeats_final ON temporal_heartbeats (final, updated_ms);

-- Result outbox: every report to the server is written here before it is
-- sent, and deleted once the server accepted or rejected it. A row whose
-- delivery failed (server unreachable) is re-sent with backoff.
CREATE TABLE temporal_outbox (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace     TEXT    NOT NULL,
    task_token    BLOB    NOT NULL,
    workflow_id   TEXT,
    activity_id   TEXT    NOT NULL,
    activity_type TEXT    NOT NULL,
    report        TEXT    NOT NULL, -- JSON: what to tell the server
    created_ms    INTEGER NOT NULL,
    tries         INTEGER NOT NULL DEFAULT 0,
    next_ms       INTEGER NOT NULL, -- not re-sent before this time
    last_error    TEXT
);
CREATE INDEX temporal_outbox_next ON temporal_outbox (next_ms);
