-- A version's optional liveness probe, as JSON (core.Probe); '' for none.
ALTER TABLE versions ADD COLUMN liveness TEXT NOT NULL DEFAULT '';
