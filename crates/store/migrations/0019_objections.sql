-- Objections to processing on legitimate interest (GDPR article 21): which purpose a person
-- objects to, and since when. Withdrawing an objection deletes its row.
CREATE TABLE objections (
    account_id TEXT NOT NULL,
    purpose TEXT NOT NULL,
    objected_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, purpose)
);
