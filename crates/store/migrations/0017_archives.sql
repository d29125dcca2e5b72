-- Archives of personal data (`passme archive create`). Every person's records in an archive are
-- encrypted with that person's data key; the key is kept here, wrapped with the master key.
-- Erasing the person deletes the key, which leaves their archived records unreadable until the
-- archive's clean-up removes the file.
CREATE TABLE person_keys (
    account_id TEXT PRIMARY KEY,
    wrapped_key TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE archives (
    id TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    file TEXT NOT NULL,
    persons BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    cleaned_at BIGINT
);
CREATE INDEX archives_expires ON archives (expires_at);
