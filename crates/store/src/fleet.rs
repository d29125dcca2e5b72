//! What the instances of one deployment decide together: named leases (one holder at a time,
//! renewed while it works) and shared token buckets (a limit for the whole fleet).

use sqlx::Row;

use crate::{Engine, Store, StoreError, on_pool};

/// A named lease as stored: who holds it until when, and how the last holding ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    pub name: String,
    pub holder: Option<String>,
    pub held_until: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub took_ms: Option<i64>,
    pub runs: i64,
}

/// A token bucket's shape: at most `burst` tokens, refilled at `per_ms` tokens a millisecond.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub burst: f64,
    pub per_ms: f64,
}

impl Store {
    /// Takes the lease `name` for `holder` until `until`, when nobody holds it, its holder let it
    /// lapse, or `holder` holds it already. Returns whether `holder` now holds it.
    pub async fn take_lease(&self, name: &str, holder: &str, now: i64, until: i64) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let taken = sqlx::query(
                "INSERT INTO leases (name, holder, held_until, started_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, held_until = excluded.held_until, started_at = excluded.started_at \
                 WHERE leases.holder IS NULL OR leases.held_until < $4 OR leases.holder = excluded.holder",
            )
            .bind(name)
            .bind(holder)
            .bind(until)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(taken.rows_affected() == 1)
        })
    }

    /// Extends a lease `holder` still holds; false once another holder took it over.
    pub async fn renew_lease(&self, name: &str, holder: &str, until: i64) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let renewed = sqlx::query("UPDATE leases SET held_until = $1 WHERE name = $2 AND holder = $3")
                .bind(until)
                .bind(name)
                .bind(holder)
                .execute(pool)
                .await?;
            Ok(renewed.rows_affected() == 1)
        })
    }

    /// Ends `holder`'s holding and records how long it took; false if it had lost the lease.
    pub async fn release_lease(&self, name: &str, holder: &str, now: i64) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let released = sqlx::query(
                "UPDATE leases SET holder = NULL, held_until = 0, finished_at = $1, took_ms = $1 - started_at, runs = runs + 1 \
                 WHERE name = $2 AND holder = $3",
            )
            .bind(now)
            .bind(name)
            .bind(holder)
            .execute(pool)
            .await?;
            Ok(released.rows_affected() == 1)
        })
    }

    pub async fn lease(&self, name: &str) -> Result<Option<LeaseRow>, StoreError> {
        on_pool!(self, pool => {
            let Some(row) = sqlx::query("SELECT name, holder, held_until, started_at, finished_at, took_ms, runs FROM leases WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await?
            else {
                return Ok(None);
            };
            Ok(Some(LeaseRow {
                name: row.try_get("name")?,
                holder: row.try_get("holder")?,
                held_until: row.try_get("held_until")?,
                started_at: row.try_get("started_at")?,
                finished_at: row.try_get("finished_at")?,
                took_ms: row.try_get("took_ms")?,
                runs: row.try_get("runs")?,
            }))
        })
    }

    /// Charges `owed` tokens already spent (the bucket may go into debt for them), then takes up
    /// to `want` more, in one statement. Returns how many were taken: fewer than `want` when the
    /// bucket holds fewer. A missing row is a full bucket.
    pub async fn take_tokens(&self, key: &str, bucket: Bucket, owed: f64, want: f64, now: i64) -> Result<f64, StoreError> {
        let (min, max) = match self.engine() {
            Engine::Sqlite => ("MIN", "MAX"),
            Engine::Postgres => ("LEAST", "GREATEST"),
        };
        // What the bucket holds now: refilled since it was last touched (never backwards, should
        // instances' clocks disagree), at most a burst.
        let available = format!("{min}($2, rate_buckets.tokens + {max}($5 - rate_buckets.at, 0) * $6)");
        let granted = format!("{min}({max}({available} - $3, 0), $4)");
        let sql = format!(
            "INSERT INTO rate_buckets (key, tokens, granted, at) VALUES ($1, $7, $8, $5) \
             ON CONFLICT (key) DO UPDATE SET tokens = {available} - $3 - {granted}, granted = {granted}, at = {max}(rate_buckets.at, $5) \
             RETURNING granted"
        );
        let fresh_granted = (bucket.burst - owed).clamp(0.0, want);
        let fresh_tokens = bucket.burst - owed - fresh_granted;
        on_pool!(self, pool => {
            // Built from constants only (the engine's function names), never from input.
            let row = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(key)
                .bind(bucket.burst)
                .bind(owed)
                .bind(want)
                .bind(now)
                .bind(bucket.per_ms)
                .bind(fresh_tokens)
                .bind(fresh_granted)
                .fetch_one(pool)
                .await?;
            Ok(row.try_get::<f64, _>("granted")?)
        })
    }
}
