-- Async calls per service: how many are dispatched at once, how often and
-- how far apart they are retried, and how long they may take before they are
-- dead. Existing services get the defaults of core.DefaultPolicy (10 at once,
-- 5 attempts, backoff 1s to 5m, max age 24h).
ALTER TABLE services ADD COLUMN async_concurrency INTEGER NOT NULL DEFAULT 10;
ALTER TABLE services ADD COLUMN max_attempts INTEGER NOT NULL DEFAULT 5;
ALTER TABLE services ADD COLUMN min_backoff_ns INTEGER NOT NULL DEFAULT 1000000000;
ALTER TABLE services ADD COLUMN max_backoff_ns INTEGER NOT NULL DEFAULT 300000000000;
ALTER TABLE services ADD COLUMN max_age_ns INTEGER NOT NULL DEFAULT 86400000000000;
