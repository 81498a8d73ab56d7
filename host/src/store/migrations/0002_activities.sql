-- Namespaces: tenants. `default` always exists.
CREATE TABLE namespaces (
    name       TEXT PRIMARY KEY,
    created_ms INTEGER NOT NULL
);
INSERT INTO namespaces (name, created_ms) VALUES ('default', 0);

-- One row per run of an activity. An activity id may have several runs over
-- time (id reuse); the newest is the one addressed by id.
CREATE TABLE activities (
    run_id               INTEGER PRIMARY KEY,
    namespace            TEXT    NOT NULL,
    activity_id          TEXT    NOT NULL,
    activity_type        TEXT    NOT NULL,
    task_queue           TEXT    NOT NULL,
    state                TEXT    NOT NULL, -- scheduled, started, completed, failed, cancelled, timed_out
    attempt              INTEGER NOT NULL, -- current (or last) attempt, from 1
    input                TEXT    NOT NULL, -- JSON array of payloads
    options              TEXT    NOT NULL, -- JSON: timeouts, retry policy, priority
    scheduled_ms         INTEGER NOT NULL, -- first scheduled
    attempt_scheduled_ms INTEGER NOT NULL, -- when the current attempt may start
    started_ms           INTEGER,          -- current attempt started
    awaiting_async       INTEGER NOT NULL DEFAULT 0,
    task_token           TEXT,             -- of the current attempt
    heartbeat_details    TEXT,             -- JSON array of payloads
    heartbeat_ms         INTEGER,
    cancel_requested     INTEGER NOT NULL DEFAULT 0,
    last_failure         TEXT,             -- JSON
    result               TEXT,             -- JSON payload
    closed_ms            INTEGER
);
CREATE INDEX activities_by_id ON activities (namespace, activity_id, run_id);
CREATE INDEX activities_open ON activities (state) WHERE closed_ms IS NULL;
CREATE INDEX activities_by_state ON activities (namespace, state, run_id);

-- One row per attempt.
CREATE TABLE attempts (
    run_id            INTEGER NOT NULL,
    attempt           INTEGER NOT NULL,
    started_ms        INTEGER NOT NULL,
    ended_ms          INTEGER,
    outcome           TEXT,  -- completed, failed, trapped, timed_out, worker_lost, ...
    failure_type      TEXT,
    failure_message   TEXT,
    log_tail          TEXT,
    heartbeat_details TEXT,  -- JSON array of payloads, the last of the attempt
    module            TEXT,  -- name@version it ran
    PRIMARY KEY (run_id, attempt)
);

-- Which module version serves a task queue.
CREATE TABLE deployments (
    namespace      TEXT    NOT NULL,
    task_queue     TEXT    NOT NULL,
    module_name    TEXT    NOT NULL,
    module_version INTEGER NOT NULL,
    max_concurrent INTEGER NOT NULL,
    updated_ms     INTEGER NOT NULL,
    PRIMARY KEY (namespace, task_queue)
);
