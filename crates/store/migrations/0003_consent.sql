-- The consent ledger: every cookie choice (given, changed, withdrawn), hash-chained exactly like
-- the audit log and with the same columns, so one implementation serves both chains.

CREATE TABLE consent_ledger (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX consent_ledger_at ON consent_ledger (at);
CREATE INDEX consent_ledger_subject ON consent_ledger (subject);

CREATE TABLE consent_anchor (
    id BIGINT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
