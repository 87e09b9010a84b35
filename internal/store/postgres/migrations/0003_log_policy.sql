-- Logs per service (issue 12): request logs on or off, and how much of the
-- service's log stream is kept, by size and by age. Existing services get
-- the defaults of core.DefaultPolicy.
ALTER TABLE services ADD COLUMN request_logs BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE services ADD COLUMN log_max_bytes BIGINT NOT NULL DEFAULT 52428800;
ALTER TABLE services ADD COLUMN log_max_age_ns BIGINT NOT NULL DEFAULT 604800000000000;
