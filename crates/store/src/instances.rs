//! The registry of running `passme serve` processes.

use sqlx::Row;

use crate::{Store, StoreError, on_pool};

/// A running server, as it registered itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRow {
    pub id: String,
    pub version: String,
    /// Where people reach it: the public URL, or its listen address.
    pub base_url: String,
    pub started_at: i64,
    pub heartbeat_at: i64,
}

impl Store {
    /// Registers a server, or refreshes its heartbeat when it is registered already.
    pub async fn heartbeat_instance(&self, row: &InstanceRow) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO instances (id, version, base_url, started_at, heartbeat_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
            )
            .bind(&row.id)
            .bind(&row.version)
            .bind(&row.base_url)
            .bind(row.started_at)
            .bind(row.heartbeat_at)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Removes a server that stops; also removes every registration silent since `stale_before`.
    pub async fn remove_instance(&self, id: &str, stale_before: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM instances WHERE id = $1 OR heartbeat_at < $2").bind(id).bind(stale_before).execute(pool).await?;
            Ok(())
        })
    }

    /// Servers that said they were alive since `since`, the latest heartbeat first.
    pub async fn live_instances(&self, since: i64) -> Result<Vec<InstanceRow>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query("SELECT id, version, base_url, started_at, heartbeat_at FROM instances WHERE heartbeat_at >= $1 ORDER BY heartbeat_at DESC, id")
                .bind(since)
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(InstanceRow {
                    id: row.try_get("id")?,
                    version: row.try_get("version")?,
                    base_url: row.try_get("base_url")?,
                    started_at: row.try_get("started_at")?,
                    heartbeat_at: row.try_get("heartbeat_at")?,
                });
            }
            Ok(out)
        })
    }
}
