-- The reports of the retention engine's runs, for the privacy officer: per rule, what was
-- examined, changed, or skipped and why. Counts and rule ids only.
CREATE TABLE retention_runs (
    id TEXT PRIMARY KEY,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    dry_run BIGINT NOT NULL,
    source TEXT NOT NULL,
    report TEXT NOT NULL
);

-- What the retention rules select, indexed so that a sweep reads only what is due: without
-- them every batch would scan the whole table again (rows already anonymised included), and
-- the hourly sweep over a quiet database would still read every account and page view.
CREATE INDEX accounts_closed ON accounts (closed_at) WHERE status = 'closed';
CREATE INDEX sessions_ended ON sessions ((COALESCE(revoked_at, expires_at)));
CREATE INDEX remember_series_used ON remember_series (last_used_at);
CREATE INDEX analytics_events_full_ip ON analytics_events (ts) WHERE ip IS NOT NULL;
CREATE INDEX analytics_inbox_full_ip ON analytics_inbox (ts) WHERE ip IS NOT NULL;
CREATE INDEX analytics_events_versions ON analytics_events (ts) WHERE browser_version <> '' OR os_version <> '';
CREATE INDEX analytics_inbox_versions ON analytics_inbox (ts) WHERE browser_version <> '' OR os_version <> '';
CREATE INDEX analytics_events_precise ON analytics_events (ts) WHERE ts % 3600000 <> 0;
CREATE INDEX analytics_events_linked ON analytics_events (ts) WHERE visitor >= 0;
-- Visitor ids are never negative now: negative ones are the retention engine's random values.
UPDATE analytics_inbox SET visitor = visitor & 9223372036854775807 WHERE visitor < 0;
UPDATE analytics_events SET visitor = visitor & 9223372036854775807 WHERE visitor < 0;
UPDATE analytics_sessions SET visitor = visitor & 9223372036854775807 WHERE visitor < 0;
