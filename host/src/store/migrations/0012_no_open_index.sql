-- `activities_open` (state) WHERE closed_ms IS NULL served no query: recovery
-- reads open runs in run id order and SQLite plans that as a scan of the
-- table by its primary key. It cost an index insert at every start and a
-- delete at every close.
DROP INDEX IF EXISTS activities_open;
