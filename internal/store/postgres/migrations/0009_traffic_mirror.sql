-- The mirror of a traffic entry (issue 15): {"version","percent",
-- "all_methods","ignore_headers","ignore_fields"}, or NULL when the entry
-- mirrors nothing. Existing entries mirror nothing.
ALTER TABLE traffic ADD COLUMN mirror jsonb;
