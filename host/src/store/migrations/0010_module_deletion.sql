-- Module deletion: the highest version each deleted module name had, so an
-- upload under the name later takes a new number and `name@version` (in
-- attempt and deployment history) never names two different contents.
CREATE TABLE deleted_module_versions (
    namespace    TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    last_version INTEGER NOT NULL,
    PRIMARY KEY (namespace, name)
);
