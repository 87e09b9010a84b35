-- Rollouts (docs/rollouts.md): one row per rollout of a service. spec holds
-- the steps, the interval and the thresholds (JSON of core.RolloutSpec);
-- last_check the last check's numbers (JSON of core.RolloutCheck, '' before
-- the first). A service has at most one running or paused rollout.
CREATE TABLE rollouts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    service_id      INTEGER NOT NULL REFERENCES services(id) ON DELETE CASCADE,
    target          INTEGER NOT NULL,
    spec            TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    step            INTEGER NOT NULL,
    step_started_at TEXT    NOT NULL,
    before_entry    INTEGER NOT NULL,
    last_entry      INTEGER NOT NULL,
    replaces        TEXT    NOT NULL, -- JSON array of version numbers
    last_check      TEXT    NOT NULL DEFAULT '',
    reason          TEXT    NOT NULL DEFAULT '',
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL
);
CREATE INDEX rollouts_by_service ON rollouts (service_id, id);
CREATE UNIQUE INDEX rollouts_one_active ON rollouts (service_id) WHERE state IN ('running', 'paused');
