-- Single-use tokens mailed to account holders (address verification, password reset). Stored as
-- the SHA-256 of the token, like sessions.

CREATE TABLE account_tokens (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX account_tokens_created ON account_tokens (created_at);
