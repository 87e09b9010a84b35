-- The autoscaler's optional requests-per-second target (0 = off).
ALTER TABLE services ADD COLUMN target_rps INTEGER NOT NULL DEFAULT 0;
