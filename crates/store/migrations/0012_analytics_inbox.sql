-- Page views land here first: a table with no index, so acknowledging a page view costs an
-- append rather than three B-tree inserts. The minute pass moves the rows into analytics_events,
-- sorted by visitor, in bulk. Same columns and meaning as analytics_events.

CREATE TABLE analytics_inbox (
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

-- The pages a visit viewed, with their view counts ("/a 2 /b 1": paths are percent-encoded, so
-- they hold no space). The page breakdown and the page filter read them instead of joining the
-- visits back to the raw page views.
ALTER TABLE analytics_sessions ADD COLUMN pages TEXT NOT NULL DEFAULT '';
