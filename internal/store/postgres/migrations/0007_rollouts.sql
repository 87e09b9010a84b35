-- Rollouts (docs/rollouts.md): one row per rollout of a service. spec holds
-- the steps, the interval and the thresholds (JSON of core.RolloutSpec);
-- last_check the last check's numbers (JSON of core.RolloutCheck, NULL
-- before the first). A service has at most one running or paused rollout.
CREATE TABLE rollouts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service_id      bigint      NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    target          integer     NOT NULL,
    spec            jsonb       NOT NULL,
    state           text        NOT NULL,
    step            integer     NOT NULL,
    step_started_at timestamptz NOT NULL,
    before_entry    bigint      NOT NULL,
    last_entry      bigint      NOT NULL,
    replaces        jsonb       NOT NULL,
    last_check      jsonb,
    reason          text        NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX rollouts_by_service ON rollouts (service_id, id);
CREATE UNIQUE INDEX rollouts_one_active ON rollouts (service_id) WHERE state IN ('running', 'paused');
