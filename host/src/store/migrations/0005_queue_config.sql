-- Operator settings of a task queue: its queue-wide dispatch rate.
CREATE TABLE task_queue_config (
    namespace  TEXT    NOT NULL,
    task_queue TEXT    NOT NULL,
    rate       REAL,              -- tasks/s; 0 pauses; NULL is unlimited
    burst      REAL    NOT NULL,
    set_by     TEXT,
    set_ms     INTEGER NOT NULL,
    PRIMARY KEY (namespace, task_queue)
);
