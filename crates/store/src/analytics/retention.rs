//! Retention of tracking data: truncating addresses, dropping rows the rollups have counted,
//! erasing sketches.

// The row types, column lists and binding macros are shared by every part.
use super::*;

impl Store {
    /// Retention of `tracking.ip_address`: the full address of page views before `before` is
    /// removed; the truncated prefix stored beside it from the start remains.
    pub async fn truncate_event_ips(&self, before: i64) -> Result<u64, StoreError> {
        on_pool!(self, pool => {
            let mut cleared = 0;
            for table in EVENT_TABLES {
                cleared += sqlx::query(AssertSqlSafe(format!("UPDATE {table} SET ip = NULL WHERE ts < $1 AND ip IS NOT NULL")))
                    .bind(before)
                    .execute(pool)
                    .await?
                    .rows_affected();
            }
            Ok(cleared)
        })
    }

    /// Retention of the raw tracking data: page views and visits before `before` are deleted;
    /// the daily rollups (counts with no visitor) remain.
    pub async fn purge_tracking_before(&self, before: i64) -> Result<u64, StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut events = 0;
            for table in EVENT_TABLES {
                events += sqlx::query(AssertSqlSafe(format!("DELETE FROM {table} WHERE ts < $1"))).bind(before).execute(&mut *tx).await?.rows_affected();
            }
            let visits = sqlx::query("DELETE FROM analytics_sessions WHERE started_at < $1").bind(before).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Ok(events + visits)
        })
    }

    /// Retention of `tracking.visitor_id` in the sketches: a day before `before_day` keeps its
    /// visitor count but loses the sketch derived from visitor ids.
    pub async fn erase_sketches_before(&self, before_day: i64) -> Result<u64, StoreError> {
        on_pool!(self, pool => {
            Ok(sqlx::query("UPDATE analytics_visitor_sketches SET sketch = NULL WHERE day < $1 AND sketch IS NOT NULL")
                .bind(before_day)
                .execute(pool)
                .await?
                .rows_affected())
        })
    }
}
