-- Issue 15: policy.keep_previous (an instance kept after traffic moves away,
-- default 10m), policy.min_instances_schedule (JSON, "" for none) and
-- policy.singleton. Existing services get the defaults of core.DefaultPolicy.
ALTER TABLE services ADD COLUMN keep_previous_ns INTEGER NOT NULL DEFAULT 600000000000;
ALTER TABLE services ADD COLUMN min_instances_schedule TEXT NOT NULL DEFAULT '';
ALTER TABLE services ADD COLUMN singleton INTEGER NOT NULL DEFAULT 0;
