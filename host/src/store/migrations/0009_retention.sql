-- Retention: closed runs are found by namespace and close time, oldest first.
-- (Files created from now on use auto_vacuum = INCREMENTAL, set before the
-- first table; an existing file keeps its mode until converted offline with
-- `PRAGMA auto_vacuum = INCREMENTAL; VACUUM;`, which rewrites the whole file
-- (not cheap on a large one, and impossible inside this transaction), so it
-- is left to the operator (README, Retention). Without it,
-- deleted pages are still reused by new rows; the file only does not shrink.)
CREATE INDEX activities_closed ON activities (namespace, closed_ms)
    WHERE closed_ms IS NOT NULL;
