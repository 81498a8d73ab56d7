-- Outbound HTTP policy of each namespace (JSON owned by the service; '{}'
-- denies every request) and its configuration variables with the modules
-- each is granted to (JSON: {"KEY": {"value": "...", "grants": ["module"]}}).
ALTER TABLE namespaces ADD COLUMN egress TEXT NOT NULL DEFAULT '{}';
ALTER TABLE namespaces ADD COLUMN vars TEXT NOT NULL DEFAULT '{}';
