-- Wisp's schema on PostgreSQL: the same records as the SQLite store's
-- migrations 0001-0006, in Postgres types. Names are compared and ordered
-- byte by byte (COLLATE "C"), as SQLite does, whatever the database's locale.

CREATE TABLE services (
    id                 bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name               text    COLLATE "C" NOT NULL,
    min_instances      integer NOT NULL,
    max_instances      integer NOT NULL,
    target_concurrency integer NOT NULL,
    target_rps         integer NOT NULL DEFAULT 0,
    idle_timeout_ns    bigint  NOT NULL,
    pause_after_ns     bigint  NOT NULL,
    -- The next per-service version number, taken and moved on under the
    -- row's lock (SELECT ... FOR UPDATE): numbers are never reused.
    next_version       integer NOT NULL DEFAULT 1,
    -- The current (newest) traffic entry, set in the same transaction as
    -- every entry appended; NULL before the first. Not a foreign key: the
    -- entry references its service too, and both go in one cascade.
    traffic_id         bigint,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    CONSTRAINT services_name_key UNIQUE (name)
);

CREATE TABLE versions (
    id              bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service_id      bigint  NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    number          integer NOT NULL,
    image           text    NOT NULL,
    image_id        text    NOT NULL DEFAULT '',
    port            integer NOT NULL,
    env             text[]  NOT NULL, -- KEY=VALUE, in order
    command         text[]  NOT NULL,
    args            text[]  NOT NULL,
    memory_limit    bigint  NOT NULL,
    cpu_limit       double precision NOT NULL,
    max_concurrency integer NOT NULL,
    timeout_ns      bigint  NOT NULL,
    readiness_path  text    NOT NULL,
    description     text    NOT NULL,
    liveness        jsonb,            -- core.Probe; NULL for none
    build_id        bigint  NOT NULL DEFAULT 0,
    source_digest   text    NOT NULL DEFAULT '',
    git_commit      text    NOT NULL DEFAULT '',
    git_describe    text    NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL,
    CONSTRAINT versions_number_key UNIQUE (service_id, number)
);

CREATE TABLE traffic (
    id         bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service_id bigint  NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    weights    jsonb   NOT NULL, -- [{"version","percent"}]
    tags       jsonb   NOT NULL, -- {tag: version number}
    sticky     boolean NOT NULL,
    message    text    NOT NULL,
    created_at timestamptz NOT NULL
);

CREATE INDEX traffic_by_service ON traffic (service_id, id);

CREATE TABLE builds (
    id            bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- A name, not a reference: a build may create its service, and its
    -- record outlives a deleted service.
    service       text    COLLATE "C" NOT NULL,
    status        text    NOT NULL,
    runtime       text    NOT NULL,
    image         text    NOT NULL DEFAULT '',
    image_id      text    NOT NULL DEFAULT '',
    reused        boolean NOT NULL DEFAULT false,
    source_digest text    NOT NULL DEFAULT '',
    git_commit    text    NOT NULL DEFAULT '',
    git_describe  text    NOT NULL DEFAULT '',
    promote       integer NOT NULL,
    version       integer NOT NULL DEFAULT 0,
    error         text    NOT NULL DEFAULT '',
    log           bytea   NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL,
    started_at    timestamptz,
    finished_at   timestamptz
);

CREATE INDEX builds_by_service ON builds (service, id);

-- The change feed: one row per committed change of a service's state,
-- written in the same transaction as the change, under the change lock (see
-- changes.go) so that revisions commit in order. The service is named, not
-- referenced: a change outlives a deleted service. An identity never gives
-- a value twice, even after the newest rows were deleted.
CREATE TABLE changes (
    revision bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service  text   COLLATE "C" NOT NULL
);

-- The highest pruned revision: a reader asking for changes after a lower
-- one has missed some and must resync.
CREATE TABLE changes_horizon (
    id       integer PRIMARY KEY CHECK (id = 1),
    revision bigint  NOT NULL
);
INSERT INTO changes_horizon (id, revision) VALUES (1, 0);
