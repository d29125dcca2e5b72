-- Service tracking. Page views as received (the full IP only until its retention rule removes
-- it; the truncated prefix is kept beside it from the start), sessions derived from them, daily
-- rollups of counts (no visitor id), and one visitor sketch per day for unique-visitor counts.

CREATE TABLE analytics_events (
    site TEXT NOT NULL,
    visitor BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    path TEXT NOT NULL,
    source TEXT NOT NULL,
    utm_source TEXT NOT NULL,
    utm_medium TEXT NOT NULL,
    utm_campaign TEXT NOT NULL,
    browser TEXT NOT NULL,
    browser_version TEXT NOT NULL,
    os TEXT NOT NULL,
    os_version TEXT NOT NULL,
    isp TEXT NOT NULL,
    ip TEXT,
    ip_prefix TEXT NOT NULL
);
CREATE INDEX analytics_events_visitor ON analytics_events (site, visitor, ts);
CREATE INDEX analytics_events_ts ON analytics_events (ts);
CREATE INDEX analytics_events_received ON analytics_events (received_at);

CREATE TABLE analytics_sessions (
    site TEXT NOT NULL,
    visitor BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at BIGINT NOT NULL,
    day BIGINT NOT NULL,
    landing TEXT NOT NULL,
    exit_page TEXT NOT NULL,
    source TEXT NOT NULL,
    utm_source TEXT NOT NULL,
    utm_medium TEXT NOT NULL,
    utm_campaign TEXT NOT NULL,
    browser TEXT NOT NULL,
    os TEXT NOT NULL,
    isp TEXT NOT NULL,
    pageviews BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    PRIMARY KEY (site, visitor, started_at)
);
CREATE INDEX analytics_sessions_day ON analytics_sessions (site, day);

CREATE TABLE analytics_rollup (
    site TEXT NOT NULL,
    day BIGINT NOT NULL,
    dimension TEXT NOT NULL,
    value TEXT NOT NULL,
    sessions BIGINT NOT NULL,
    pageviews BIGINT NOT NULL,
    bounces BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    PRIMARY KEY (site, day, dimension, value)
);

CREATE TABLE analytics_visitor_sketches (
    site TEXT NOT NULL,
    day BIGINT NOT NULL,
    visitors BIGINT NOT NULL,
    sketch TEXT,
    PRIMARY KEY (site, day)
);

CREATE TABLE analytics_salts (
    day BIGINT PRIMARY KEY,
    salt TEXT NOT NULL
);

CREATE TABLE analytics_dropped (
    site TEXT NOT NULL,
    day BIGINT NOT NULL,
    reason TEXT NOT NULL,
    events BIGINT NOT NULL,
    PRIMARY KEY (site, day, reason)
);

CREATE TABLE analytics_state (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
