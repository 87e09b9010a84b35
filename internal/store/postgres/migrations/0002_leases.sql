-- Leases for leader election among the replicas that share this database
-- (package leader). Expiry is on the database's clock, so the replicas'
-- clocks need not agree.
CREATE TABLE leases (
    name       TEXT COLLATE "C" PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
