-- Services, immutable versions and the append-only traffic history.
CREATE TABLE services (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    name               TEXT    NOT NULL UNIQUE,
    min_instances      INTEGER NOT NULL,
    max_instances      INTEGER NOT NULL,
    target_concurrency INTEGER NOT NULL,
    idle_timeout_ns    INTEGER NOT NULL,
    pause_after_ns     INTEGER NOT NULL,
    -- the next per-service version number; numbers are never reused
    next_version       INTEGER NOT NULL DEFAULT 1,
    created_at         TEXT    NOT NULL,
    updated_at         TEXT    NOT NULL
);

CREATE TABLE versions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    service_id      INTEGER NOT NULL REFERENCES services(id) ON DELETE CASCADE,
    number          INTEGER NOT NULL,
    image           TEXT    NOT NULL,
    image_id        TEXT    NOT NULL DEFAULT '',
    port            INTEGER NOT NULL,
    env             TEXT    NOT NULL, -- JSON array of KEY=VALUE, in order
    command         TEXT    NOT NULL, -- JSON array
    args            TEXT    NOT NULL, -- JSON array
    memory_limit    INTEGER NOT NULL,
    cpu_limit       REAL    NOT NULL,
    max_concurrency INTEGER NOT NULL,
    timeout_ns      INTEGER NOT NULL,
    readiness_path  TEXT    NOT NULL,
    description     TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    UNIQUE (service_id, number)
);

CREATE TABLE traffic (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    service_id INTEGER NOT NULL REFERENCES services(id) ON DELETE CASCADE,
    weights    TEXT    NOT NULL, -- JSON array of {"version","percent"}
    tags       TEXT    NOT NULL, -- JSON object tag -> version number
    sticky     INTEGER NOT NULL,
    message    TEXT    NOT NULL,
    created_at TEXT    NOT NULL
);

CREATE INDEX traffic_by_service ON traffic (service_id, id);
