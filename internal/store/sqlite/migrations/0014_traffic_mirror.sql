-- The mirror of a traffic entry (issue 15): a JSON object {"version",
-- "percent","all_methods","ignore_headers","ignore_fields"}, or '' when the
-- entry mirrors nothing. Existing entries mirror nothing.
ALTER TABLE traffic ADD COLUMN mirror TEXT NOT NULL DEFAULT '';
