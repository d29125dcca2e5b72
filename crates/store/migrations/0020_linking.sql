-- Linked third-party accounts (OpenID Connect / OAuth 2.0), their tokens sealed in the vault,
-- the flows in progress, partner profile data and what is inferred from it.

-- The vault's data keys, each sealed by the master key. The newest (highest seq) encrypts; all
-- decrypt. Kept in the database so every instance of a fleet sees a rotation at once.
CREATE TABLE vault_keys (
    id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL UNIQUE,
    wrapped TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- One row per (issuer, subject), unique for ever: after an unlink the row stays for the declared
-- grace period, so the same external account cannot be linked to a second user meanwhile.
CREATE TABLE linked_accounts (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    email TEXT,
    email_verified BIGINT NOT NULL DEFAULT 0,
    linked_at BIGINT NOT NULL,
    last_used_at BIGINT,
    needs_consent_at BIGINT,
    unlinked_at BIGINT
);
CREATE UNIQUE INDEX linked_accounts_subject ON linked_accounts (issuer, subject);
CREATE INDEX linked_accounts_account ON linked_accounts (account_id);
CREATE INDEX linked_accounts_unlinked ON linked_accounts (unlinked_at) WHERE unlinked_at IS NOT NULL;

-- Tokens as vault blobs (`v1:key_id:nonce:ciphertext`); `key_id` says which key the row's blobs
-- are under, so a rewrap finds what is left without decrypting anything.
CREATE TABLE linked_tokens (
    link_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    key_id TEXT NOT NULL,
    id_token TEXT,
    access_token TEXT,
    refresh_token TEXT,
    access_expires_at BIGINT,
    -- A refresh in progress holds this lease, so two refreshes of one link never overlap.
    refresh_lease_until BIGINT,
    updated_at BIGINT NOT NULL
);
CREATE INDEX linked_tokens_key ON linked_tokens (key_id, link_id);

-- A sign-in or link in progress, found by the hash of its `state`, bound to the browser that
-- started it (a hash of its CSRF cookie). Single use; the PKCE verifier and the nonce are derived
-- from the state with the master key, so nothing secret is stored here.
CREATE TABLE link_flows (
    state_hash TEXT PRIMARY KEY,
    browser_hash TEXT NOT NULL,
    provider TEXT NOT NULL,
    intent TEXT NOT NULL,
    account_id TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX link_flows_created ON link_flows (created_at);

-- The declared public profile fields a provider sent, kept only with personalisation consent.
CREATE TABLE partner_profiles (
    link_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    claims TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE INDEX partner_profiles_account ON partner_profiles (account_id);
CREATE INDEX partner_profiles_received ON partner_profiles (received_at);

-- What was inferred: a suggested service or setting, with the reason shown to the person.
CREATE TABLE suggestions (
    account_id TEXT NOT NULL,
    item TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    dismissed_at BIGINT,
    PRIMARY KEY (account_id, item)
);
CREATE INDEX suggestions_created ON suggestions (created_at);

-- Consents a signed-in person gives to a purpose (personalisation); withdrawing deletes the row
-- and everything kept under it.
CREATE TABLE account_consents (
    account_id TEXT NOT NULL,
    purpose TEXT NOT NULL,
    given_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, purpose)
);
