-- The register of requests under the GDPR (access, export, rectification, erasure, objection)
-- that come by the contact form, by e-mail, or from the privacy centre: who asked (once their
-- identity is verified), what, when it is due, any extension and why, and the outcome.
CREATE TABLE privacy_requests (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    channel TEXT NOT NULL,
    message TEXT NOT NULL,
    status TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    verified_at BIGINT,
    -- The SHA-256 of the mailed confirmation link's token, while it is unused.
    verify_hash TEXT,
    verify_expires BIGINT,
    due_at BIGINT NOT NULL,
    extended_reason TEXT,
    completed_at BIGINT,
    outcome TEXT
);
CREATE INDEX privacy_requests_due ON privacy_requests (status, due_at);
CREATE INDEX privacy_requests_account ON privacy_requests (account_id);
CREATE UNIQUE INDEX privacy_requests_verify ON privacy_requests (verify_hash);
