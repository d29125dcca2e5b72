-- Running as a fleet: what several `passme serve` processes on one database decide together.
--
-- Named leases: one holder at a time across every instance (the minute pass of visits and
-- rollups), renewed while the holder works, taken over once it lapses. The row also says when
-- the last holder finished and how long it took, for `passme status`.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT,
    held_until BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    took_ms BIGINT,
    runs BIGINT NOT NULL DEFAULT 0
);

-- Token buckets shared by every instance (tracking's per-address limit). Keys are keyed hashes
-- of an address; instances take tokens in blocks, so only senders heavier than a visitor's few
-- page views ever have a row.
CREATE TABLE rate_buckets (
    key TEXT PRIMARY KEY,
    tokens DOUBLE PRECISION NOT NULL,
    granted DOUBLE PRECISION NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX rate_buckets_at ON rate_buckets (at);
