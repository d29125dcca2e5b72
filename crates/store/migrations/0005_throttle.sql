-- Failure counters for throttling sign-in. Keys are keyed hashes (HMAC) of an address, a network
-- or both: the table holds no readable address.

CREATE TABLE throttle (
    key TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    window_start BIGINT NOT NULL,
    blocked_until BIGINT NOT NULL
);
CREATE INDEX throttle_window ON throttle (window_start);
