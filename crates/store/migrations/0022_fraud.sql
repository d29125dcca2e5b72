-- Fraud scanning: what each sign-up, sign-in, checkout and link looked like (keyed hashes of the
-- network, device, card and address, never the values), the rules as versioned data, every
-- decision with the rules that fired and the signal values they read, and the allow and deny
-- lists under a key that is replaced yearly.

CREATE TABLE fraud_events (
    id TEXT PRIMARY KEY,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    success BIGINT NOT NULL,
    account_id TEXT,
    network TEXT NOT NULL,
    asn BIGINT,
    device TEXT,
    card TEXT,
    email TEXT
);
CREATE INDEX fraud_events_at ON fraud_events (at);
CREATE INDEX fraud_events_network ON fraud_events (network, at);
CREATE INDEX fraud_events_account ON fraud_events (account_id, at);
CREATE INDEX fraud_events_device ON fraud_events (device, at);
CREATE INDEX fraud_events_card ON fraud_events (card, at);
CREATE INDEX fraud_events_email ON fraud_events (email, at);

-- Each change to a rule is a new version; decisions name the version that fired.
CREATE TABLE fraud_rules (
    id TEXT NOT NULL,
    version BIGINT NOT NULL,
    name TEXT NOT NULL,
    expression TEXT NOT NULL,
    outcome TEXT NOT NULL,
    enabled BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (id, version)
);

-- `fired` and `inputs` are JSON: the rules that fired and the signal values they read.
CREATE TABLE fraud_decisions (
    id TEXT PRIMARY KEY,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    account_id TEXT,
    outcome TEXT NOT NULL,
    fired TEXT NOT NULL,
    inputs TEXT NOT NULL,
    review TEXT NOT NULL,
    appeal TEXT,
    appealed_at BIGINT,
    label TEXT,
    reviewed_by TEXT,
    reviewed_at BIGINT,
    review_note TEXT
);
CREATE INDEX fraud_decisions_at ON fraud_decisions (at);
CREATE INDEX fraud_decisions_review ON fraud_decisions (review, at);
CREATE INDEX fraud_decisions_account ON fraud_decisions (account_id, at);

-- One salt per year; the list key is derived from it and the master key. Deleting the salt makes
-- the list entries made under it unrecognisable.
CREATE TABLE fraud_list_keys (
    id TEXT PRIMARY KEY,
    salt TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE fraud_lists (
    id TEXT PRIMARY KEY,
    list TEXT NOT NULL,
    kind TEXT NOT NULL,
    value_hash TEXT NOT NULL,
    key_id TEXT NOT NULL,
    key_created_at BIGINT NOT NULL,
    reason TEXT NOT NULL,
    added_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT
);
CREATE INDEX fraud_lists_value ON fraud_lists (value_hash);
CREATE INDEX fraud_lists_key ON fraud_lists (key_created_at);

-- The rules a new installation starts with, after the canonical rule set in the fraud notes:
-- thresholds to tune against the analysts' labels (each change is a new version).
INSERT INTO fraud_rules (id, version, name, expression, outcome, enabled, created_by, created_at) VALUES
    ('credential_stuffing', 1, 'Sign-in from a network with many failed sign-ins, new to the account', 'event.kind == "signin" && network.failures_10m >= 10 && !account.known_network', 'block', 1, 'system', 0),
    ('network_signup_burst', 1, 'Many sign-ups from one network', 'event.kind == "signup" && network.signups_1h >= 3', 'review', 1, 'system', 0),
    ('disposable_address', 1, 'Sign-up with a disposable address', 'event.kind == "signup" && email.disposable', 'review', 1, 'system', 0),
    ('address_variant', 1, 'Sign-up with a variant of an address seen lately', 'event.kind == "signup" && email.signups_30d >= 1', 'review', 1, 'system', 0),
    ('shared_device', 1, 'Several accounts on one device', 'device.accounts_24h >= 3', 'review', 1, 'system', 0),
    ('hosting_network', 1, 'Sign-up or checkout from a datacenter', 'event.kind in ["signup", "checkout"] && network.hosting', 'review', 1, 'system', 0),
    ('network_travel', 1, 'Sign-in from a third internet provider within an hour', 'event.kind == "signin" && account.other_asns_1h >= 2', 'challenge', 1, 'system', 0),
    ('card_testing', 1, 'Many declined payments', 'event.kind in ["checkout", "payment"] && (card.declines_1h >= 3 || account.declines_1h >= 5)', 'block', 1, 'system', 0),
    ('many_cards', 1, 'More than three cards in a day', 'event.kind in ["checkout", "payment"] && account.cards_24h >= 3', 'review', 1, 'system', 0),
    ('shared_card', 1, 'One card on several accounts', 'event.kind in ["checkout", "payment"] && card.accounts_24h >= 1', 'review', 1, 'system', 0),
    ('scripted_signup', 1, 'Sign-up from a datacenter address that loaded no page', 'event.kind == "signup" && network.hosting && address.pageviews_1h == 0', 'review', 1, 'system', 0),
    ('fresh_account_checkout', 1, 'Checkout minutes after sign-up', 'event.kind == "checkout" && account.age_minutes < 5', 'review', 1, 'system', 0);
