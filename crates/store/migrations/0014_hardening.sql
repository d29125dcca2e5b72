-- "Remember me": when the previous validator's one grace use was spent. A validator replaced a
-- moment ago works once more (two tabs resuming together), never twice.
ALTER TABLE remember_series ADD COLUMN prev_used_at BIGINT;

-- The `passme serve` processes running on this database: where each is reached and when it last
-- said it was alive. Operator commands print links with a running server's address.
CREATE TABLE instances (
    id TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    base_url TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);
