-- Billing: what PassMe keeps of subscriptions held by the payment provider. Card data never
-- reaches these tables: checkout and the billing portal are the provider's own pages, and only
-- ids, statuses and dates come back.

-- The provider's customer of an account. We create it before the first checkout, so a checkout
-- session is always bound on the server to the account that started it.
CREATE TABLE billing_customers (
    account_id TEXT PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    customer_id TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

-- A subscription's state as the provider last reported it. The account link is cut when the
-- account is erased; the row itself follows its own retention rule (after the subscription ends).
CREATE TABLE billing_subscriptions (
    subscription_id TEXT PRIMARY KEY,
    account_id TEXT REFERENCES accounts (id) ON DELETE SET NULL,
    customer_id TEXT NOT NULL,
    price_id TEXT NOT NULL,
    status TEXT NOT NULL,
    current_period_end BIGINT,
    cancel_at_period_end BIGINT NOT NULL DEFAULT 0,
    last_event_id TEXT,
    -- The provider's time (unix seconds) of the state stored: an event older than this is stale.
    state_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    -- When we learned the subscription ended (a terminal status); retention counts from here.
    ended_at BIGINT
);
CREATE INDEX billing_subscriptions_account ON billing_subscriptions (account_id);

-- Every provider event received, once: the primary key absorbs duplicate deliveries.
CREATE TABLE billing_events (
    event_id TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    created BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    -- What processing did with it (applied, stale, ignored: why); NULL until processed.
    outcome TEXT
);
CREATE INDEX billing_events_received ON billing_events (received_at);

-- Invoice references: accounting records, kept for the bookkeeping period after the financial
-- year ends, also after the account is erased (then without the account link).
CREATE TABLE billing_invoices (
    invoice_id TEXT PRIMARY KEY,
    account_id TEXT REFERENCES accounts (id) ON DELETE SET NULL,
    subscription_id TEXT,
    number TEXT,
    amount BIGINT NOT NULL,
    currency TEXT NOT NULL,
    issued_at BIGINT NOT NULL,
    status TEXT NOT NULL,
    payment_failed BIGINT NOT NULL DEFAULT 0,
    state_at BIGINT NOT NULL
);
CREATE INDEX billing_invoices_account ON billing_invoices (account_id, issued_at);
CREATE INDEX billing_invoices_issued ON billing_invoices (issued_at);
