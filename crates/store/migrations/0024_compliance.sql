-- Compliance: actions under the terms of service (suspending or closing an account, with the
-- reason the person is told and their appeal) and the register of requests from authorities
-- (what was asked, on which legal basis, and what was disclosed).

CREATE TABLE terms_actions (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    action TEXT NOT NULL,
    clause TEXT NOT NULL,
    reason TEXT NOT NULL,
    decided_by TEXT NOT NULL,
    decided_at BIGINT NOT NULL,
    appeal TEXT,
    appealed_at BIGINT,
    outcome TEXT,
    outcome_note TEXT,
    resolved_by TEXT,
    completed_at BIGINT
);
CREATE INDEX terms_actions_account ON terms_actions (account_id, decided_at);
CREATE INDEX terms_actions_completed ON terms_actions (completed_at);

CREATE TABLE authority_requests (
    id TEXT PRIMARY KEY,
    received_at BIGINT NOT NULL,
    authority TEXT NOT NULL,
    reference TEXT NOT NULL,
    legal_basis TEXT NOT NULL,
    asked TEXT NOT NULL,
    account_id TEXT,
    disclosed TEXT,
    status TEXT NOT NULL,
    registered_by TEXT NOT NULL,
    completed_at BIGINT
);
CREATE INDEX authority_requests_account ON authority_requests (account_id);
CREATE INDEX authority_requests_completed ON authority_requests (completed_at);
