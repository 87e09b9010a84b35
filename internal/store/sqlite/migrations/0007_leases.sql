-- Leases for leader election among the processes that share this store
-- (package leader). expires_ms is Unix milliseconds.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
);
