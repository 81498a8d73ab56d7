-- Multi-tenancy: quotas per namespace, bearer tokens (stored hashed), and
-- host settings such as the admin token's hash.
ALTER TABLE namespaces ADD COLUMN quotas TEXT NOT NULL DEFAULT '{}';

CREATE TABLE namespace_tokens (
    id         TEXT    PRIMARY KEY,
    namespace  TEXT    NOT NULL,
    sha256     TEXT    NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL,
    revoked_ms INTEGER
);
CREATE INDEX namespace_tokens_by_namespace ON namespace_tokens (namespace);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
