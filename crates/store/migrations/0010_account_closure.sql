-- When an account was closed; its declared retention rules count from here.
ALTER TABLE accounts ADD COLUMN closed_at BIGINT;
