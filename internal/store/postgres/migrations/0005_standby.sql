-- Warm standbys per service (policy.standby): how many paused instances are
-- kept per version that carries traffic. Existing services keep none.
ALTER TABLE services ADD COLUMN standby INTEGER NOT NULL DEFAULT 0;
