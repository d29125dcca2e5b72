-- "Remember me": one row per series. The selector is public (in the cookie); the validator is
-- stored only as SHA-256, and rotated at every use.

CREATE TABLE remember_series (
    selector TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    validator_hash TEXT NOT NULL,
    prev_validator_hash TEXT,
    prev_valid_until BIGINT,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX remember_series_account ON remember_series (account_id);

ALTER TABLE sessions ADD COLUMN remembered BIGINT NOT NULL DEFAULT 0;
