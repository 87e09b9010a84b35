-- Builds from source, and where each version's image came from.
ALTER TABLE versions ADD COLUMN build_id      INTEGER NOT NULL DEFAULT 0;
ALTER TABLE versions ADD COLUMN source_digest TEXT    NOT NULL DEFAULT '';
ALTER TABLE versions ADD COLUMN git_commit    TEXT    NOT NULL DEFAULT '';
ALTER TABLE versions ADD COLUMN git_describe  TEXT    NOT NULL DEFAULT '';

CREATE TABLE builds (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    -- a name, not a reference: a build may create its service, and its
    -- record outlives a deleted service
    service       TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    runtime       TEXT    NOT NULL,
    image         TEXT    NOT NULL DEFAULT '',
    image_id      TEXT    NOT NULL DEFAULT '',
    reused        INTEGER NOT NULL DEFAULT 0,
    source_digest TEXT    NOT NULL DEFAULT '',
    git_commit    TEXT    NOT NULL DEFAULT '',
    git_describe  TEXT    NOT NULL DEFAULT '',
    promote       INTEGER NOT NULL,
    version       INTEGER NOT NULL DEFAULT 0,
    error         TEXT    NOT NULL DEFAULT '',
    log           BLOB    NOT NULL DEFAULT '',
    created_at    TEXT    NOT NULL,
    started_at    TEXT    NOT NULL DEFAULT '',
    finished_at   TEXT    NOT NULL DEFAULT ''
);

CREATE INDEX builds_by_service ON builds (service, id);
