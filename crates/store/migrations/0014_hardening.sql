-- "Remember me": when the previous validator's one grace use was spent. A validator replaced a
-- moment ago works once more (two tabs resuming together), never twice.
ALTER TABLE remember_series ADD COLUMN prev_used_at BIGINT;
