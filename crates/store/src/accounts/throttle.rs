//! Failure counters and blocks for sign-in and mail limits (table `throttle`), shared by every
//! instance on the database.

use sqlx::Row;

use crate::{AccountId, Store, StoreError, on_pool};

impl Store {
    /// Counts a failure for `key` within a window starting no earlier than `window_from`; a key
    /// whose window has passed starts again at 1. Returns the count. One statement on both
    /// engines (`ON CONFLICT … DO UPDATE`), so concurrent failures are all counted.
    pub async fn throttle_failure(&self, key: &str, now: i64, window_from: i64) -> Result<i64, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query(
                "INSERT INTO throttle (key, failures, window_start, blocked_until) VALUES ($1, 1, $2, 0) \
                 ON CONFLICT (key) DO UPDATE SET \
                 failures = CASE WHEN throttle.window_start < $3 THEN 1 ELSE throttle.failures + 1 END, \
                 window_start = CASE WHEN throttle.window_start < $3 THEN $2 ELSE throttle.window_start END \
                 RETURNING failures",
            )
            .bind(key)
            .bind(now)
            .bind(window_from)
            .fetch_one(pool)
            .await?;
            Ok(row.try_get("failures")?)
        })
    }

    pub async fn throttle_block(&self, key: &str, until: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE throttle SET blocked_until = $1 WHERE key = $2 AND blocked_until < $1").bind(until).bind(key).execute(pool).await?;
            Ok(())
        })
    }

    /// When `key` is blocked until, or 0.
    pub async fn throttle_blocked_until(&self, key: &str) -> Result<i64, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query("SELECT blocked_until FROM throttle WHERE key = $1").bind(key).fetch_optional(pool).await?;
            match row {
                Some(row) => Ok(row.try_get("blocked_until")?),
                None => Ok(0),
            }
        })
    }

    pub async fn throttle_clear(&self, key: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM throttle WHERE key = $1").bind(key).execute(pool).await?;
            Ok(())
        })
    }

    /// The networks (truncated addresses) an account signed in from since `since`.
    pub async fn account_networks(&self, account_id: &AccountId, since: i64) -> Result<Vec<String>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query("SELECT DISTINCT ip_prefix FROM sessions WHERE account_id = $1 AND created_at >= $2").bind(account_id).bind(since).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(row.try_get("ip_prefix")?);
            }
            Ok(out)
        })
    }
}
