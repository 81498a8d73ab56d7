-- Modules uploaded to the registry. A version is a new number per name for
-- each distinct content; uploading the same bytes again returns the old one.
CREATE TABLE modules (
    namespace      TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    sha256         TEXT    NOT NULL,
    activity_types TEXT    NOT NULL, -- JSON array of strings
    size           INTEGER NOT NULL,
    created_ms     INTEGER NOT NULL,
    PRIMARY KEY (namespace, name, version),
    UNIQUE (namespace, name, sha256)
);
