-- Erasure receipts: what an erasure removed per table, what it kept for a legal duty and until
-- when, and when a search of every personal column found nothing else left. No personal content:
-- the person keeps the receipt's random id.
CREATE TABLE erasure_receipts (
    id TEXT PRIMARY KEY,
    requested_at BIGINT NOT NULL,
    completed_at BIGINT,
    verified_at BIGINT,
    removed TEXT NOT NULL,
    kept TEXT NOT NULL,
    leftovers TEXT NOT NULL
);

-- Legal holds placed by the privacy officer: a person's data, or a whole category, is kept past
-- its retention (and a person's erasure waits) until the hold ends or is lifted.
CREATE TABLE legal_holds (
    id TEXT PRIMARY KEY,
    account_id TEXT,
    category TEXT,
    reason TEXT NOT NULL,
    placed_by TEXT NOT NULL,
    placed_at BIGINT NOT NULL,
    until_at BIGINT NOT NULL,
    lifted_at BIGINT
);
CREATE INDEX legal_holds_account ON legal_holds (account_id);
