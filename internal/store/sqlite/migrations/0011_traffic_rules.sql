-- Request rules of a traffic entry (issue 15): a JSON array of
-- {"match":[{"kind","name","op","value"}],"version"|"tag"}, tried in order
-- before the weighted pick. Existing entries have none.
ALTER TABLE traffic ADD COLUMN rules TEXT NOT NULL DEFAULT '[]';
