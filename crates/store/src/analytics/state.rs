//! The passes' watermarks and the daily salts of the visitor ids.

// The row types, column lists and binding macros are shared by every part.
use super::*;

impl Store {
    pub async fn analytics_state(&self, name: &str) -> Result<Option<i64>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query("SELECT value FROM analytics_state WHERE name = $1").bind(name).fetch_optional(pool).await?;
            Ok(match row { Some(row) => Some(row.try_get("value")?), None => None })
        })
    }

    pub async fn set_analytics_state(&self, name: &str, value: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("INSERT INTO analytics_state (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value")
                .bind(name)
                .bind(value)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// The salt of `day`: the stored one, or `candidate` when this call is the first.
    pub async fn daily_salt(&self, day: i64, candidate: &str) -> Result<String, StoreError> {
        on_pool!(self, pool => {
            sqlx::query("INSERT INTO analytics_salts (day, salt) VALUES ($1, $2) ON CONFLICT (day) DO NOTHING")
                .bind(day)
                .bind(candidate)
                .execute(pool)
                .await?;
            Ok(sqlx::query("SELECT salt FROM analytics_salts WHERE day = $1").bind(day).fetch_one(pool).await?.try_get("salt")?)
        })
    }

    /// Destroys the salts of days before `day`, so those days' visitor ids can never be
    /// recomputed or linked.
    pub async fn destroy_salts_before(&self, day: i64) -> Result<u64, StoreError> {
        on_pool!(self, pool => Ok(sqlx::query("DELETE FROM analytics_salts WHERE day < $1").bind(day).execute(pool).await?.rows_affected()))
    }
}
