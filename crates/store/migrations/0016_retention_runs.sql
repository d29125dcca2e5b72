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
