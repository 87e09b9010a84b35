-- Each service's current (newest) traffic entry, set with every entry
-- appended in the same transaction: reading every service's state joins
-- one entry per service instead of grouping the whole history.
ALTER TABLE services ADD COLUMN traffic_id INTEGER NOT NULL DEFAULT 0;
UPDATE services SET traffic_id = coalesce((SELECT max(id) FROM traffic WHERE traffic.service_id = services.id), 0);
