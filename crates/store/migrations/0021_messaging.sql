-- Messaging: the log of every message (never its body), a person's choices per topic and
-- channel, the suppression list, Web Push subscriptions, announcements in progress, partner
-- audience exports and the service's own signing keys.

-- One row per message, keyed by its idempotency key: enqueueing the same message twice is a no-op.
-- What was sent to whom and how it went; the body is not kept.
CREATE TABLE message_log (
    id TEXT PRIMARY KEY,
    account_id TEXT,
    campaign_id TEXT,
    channel TEXT NOT NULL,
    template TEXT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX message_log_account ON message_log (account_id);
CREATE INDEX message_log_campaign ON message_log (campaign_id, status);
CREATE INDEX message_log_created ON message_log (created_at);

-- A person's choice per topic (service, marketing, partner) and channel (email, push, audience).
-- `grant_id` names the consent an 'on' rests on; unsubscribe links carry it.
CREATE TABLE message_prefs (
    account_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    channel TEXT NOT NULL,
    state TEXT NOT NULL,
    grant_id TEXT,
    changed_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, topic, channel)
);
CREATE INDEX message_prefs_changed ON message_prefs (state, changed_at);

-- Addresses nothing optional is sent to: SHA-256 of the normalised address, never the address.
CREATE TABLE suppressions (
    address_hash TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX suppressions_created ON suppressions (created_at);

-- A browser's push subscription: the push service's endpoint and the browser's keys (sealed).
CREATE TABLE push_subscriptions (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    sealed_keys TEXT NOT NULL,
    device TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_sent_at BIGINT
);
CREATE UNIQUE INDEX push_subscriptions_endpoint ON push_subscriptions (endpoint);
CREATE INDEX push_subscriptions_account ON push_subscriptions (account_id);

-- A staff announcement and how far its fan-out got (`cursor`: the last account queued). Who sent
-- it is in the audit log.
CREATE TABLE campaigns (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    segment TEXT NOT NULL,
    channels TEXT NOT NULL,
    subject_da TEXT NOT NULL,
    subject_en TEXT NOT NULL,
    body_da TEXT NOT NULL,
    body_en TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    cursor TEXT,
    queued BIGINT NOT NULL DEFAULT 0,
    finished_at BIGINT
);

-- Every audience shared with a marketing partner: who asked, when, how many people.
CREATE TABLE partner_exports (
    id TEXT PRIMARY KEY,
    partner TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    people BIGINT NOT NULL,
    status TEXT NOT NULL,
    delivered_at BIGINT
);
CREATE INDEX partner_exports_created ON partner_exports (created_at);

-- Who was in an export (hashed address), so a withdrawal can ask the partner to delete it.
CREATE TABLE partner_audience (
    export_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    email_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (export_id, account_id)
);
CREATE INDEX partner_audience_account ON partner_audience (account_id);
CREATE INDEX partner_audience_created ON partner_audience (created_at);

-- The service's own key pairs (the VAPID key for Web Push), the private half sealed by the master
-- key; shared by every instance.
CREATE TABLE signing_keys (
    purpose TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,
    sealed_private TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
