-- Grants bind to module content. Each configuration variable keeps, beside
-- the grants as written, the module versions (name, version, sha256) they
-- were bound to when the administrator set them (`bound`); each per-module
-- egress entry keeps the same in `egress_bindings` ({"ENTRY": [...]}).
-- Content uploaded later under a granted name is not granted. Grants made
-- by name before this migration are bound to every version of that name
-- that exists now, which is what they reached until then.
ALTER TABLE namespaces ADD COLUMN egress_bindings TEXT NOT NULL DEFAULT '{}';

UPDATE namespaces SET vars = COALESCE((
    SELECT json_group_object(v.key, json_set(v.value, '$.bound', json((
        SELECT json_group_array(json_object(
            'module', m.name, 'version', m.version, 'sha256', m.sha256))
        FROM json_each(v.value, '$.grants') g
        JOIN modules m ON m.namespace = namespaces.name AND m.name = g.value
    ))))
    FROM json_each(namespaces.vars) v
), '{}')
WHERE json_valid(vars) AND json_type(vars) = 'object';

UPDATE namespaces SET egress_bindings = COALESCE((
    SELECT json_group_object(e.key, json((
        SELECT json_group_array(json_object(
            'module', m.name, 'version', m.version, 'sha256', m.sha256))
        FROM modules m
        WHERE m.namespace = namespaces.name AND m.name = e.key
    )))
    FROM json_each(namespaces.egress, '$.modules') e
), '{}')
WHERE json_valid(egress) AND json_type(egress, '$.modules') = 'object';

-- Module contents whose files (component and compiled artifacts) are to be
-- removed from the data directory: written in the transaction that deletes
-- the last module with that content (a namespace's deletion), removed once
-- the files are gone. What a crash leaves here is finished at start.
CREATE TABLE orphaned_contents (
    sha256 TEXT PRIMARY KEY
);
