-- Flow control: gradual rollouts, the history that rollback walks back, and
-- concurrency limits.
ALTER TABLE deployments ADD COLUMN ramp_version INTEGER;
ALTER TABLE deployments ADD COLUMN ramp_percent INTEGER;

-- Every deployment change of a queue, newest last. A rollback marks the
-- newest live entry rolled back and restores the one before it.
CREATE TABLE deployment_history (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace      TEXT    NOT NULL,
    task_queue     TEXT    NOT NULL,
    module_name    TEXT    NOT NULL,
    module_version INTEGER NOT NULL,
    max_concurrent INTEGER NOT NULL,
    ramp_version   INTEGER,
    ramp_percent   INTEGER,
    deployed_ms    INTEGER NOT NULL,
    rolled_back_ms INTEGER
);
CREATE INDEX deployment_history_by_queue ON deployment_history (namespace, task_queue, id);

-- Most attempts at once per gate: `type:T`, `key:K` or `queue:Q/type:T`.
CREATE TABLE concurrency_limits (
    namespace      TEXT    NOT NULL,
    key            TEXT    NOT NULL,
    max_concurrent INTEGER NOT NULL,
    set_by         TEXT,
    set_ms         INTEGER NOT NULL,
    PRIMARY KEY (namespace, key)
);
