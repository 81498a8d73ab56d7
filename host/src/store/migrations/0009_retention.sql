-- Retention: closed runs are found by namespace and close time, oldest first.
-- (Files created from now on use auto_vacuum = INCREMENTAL, set before the
-- first table; an existing file is converted by one VACUUM after the
-- migrations, outside any transaction: `convert_to_incremental_vacuum` in
-- store/mod.rs.)
CREATE INDEX activities_closed ON activities (namespace, closed_ms)
    WHERE closed_ms IS NOT NULL;
