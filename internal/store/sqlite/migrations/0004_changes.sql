-- The change feed: one row per committed change of a service's state,
-- written in the same transaction as the change. The service is named, not
-- referenced: a change outlives a deleted service. AUTOINCREMENT never
-- reuses a revision, even after the newest rows were deleted.
CREATE TABLE changes (
    revision INTEGER PRIMARY KEY AUTOINCREMENT,
    service  TEXT    NOT NULL
);

-- The highest pruned revision: a reader asking for changes after a lower
-- one has missed some and must resync.
CREATE TABLE changes_horizon (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    revision INTEGER NOT NULL
);
INSERT INTO changes_horizon (id, revision) VALUES (1, 0);
