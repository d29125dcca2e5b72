//! Personal access tokens (table `api_tokens`, hashes only).

use sqlx::Row;

use crate::{AccountId, Store, StoreError, on_pool};

/// A personal access token as listed to its owner (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenRow {
    pub id: String,
    pub account_id: AccountId,
    pub name: String,
    pub scopes: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl Store {
    pub async fn insert_api_token(&self, row: &ApiTokenRow) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("INSERT INTO api_tokens (id, account_id, name, scopes, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(&row.id)
                .bind(&row.account_id)
                .bind(&row.name)
                .bind(&row.scopes)
                .bind(row.created_at)
                .execute(pool)
                .await
                .map_err(crate::error::conflict_or)?;
            Ok(())
        })
    }

    pub async fn api_token(&self, id: &str) -> Result<Option<ApiTokenRow>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query("SELECT id, account_id, name, scopes, created_at, last_used_at, revoked_at FROM api_tokens WHERE id = $1").bind(id).fetch_optional(pool).await?;
            match row {
                Some(row) => Ok(Some(ApiTokenRow {
                    id: row.try_get("id")?,
                    account_id: row.try_get("account_id")?,
                    name: row.try_get("name")?,
                    scopes: row.try_get("scopes")?,
                    created_at: row.try_get("created_at")?,
                    last_used_at: row.try_get("last_used_at")?,
                    revoked_at: row.try_get("revoked_at")?,
                })),
                None => Ok(None),
            }
        })
    }

    pub async fn api_tokens_of(&self, account_id: &AccountId) -> Result<Vec<ApiTokenRow>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query("SELECT id, account_id, name, scopes, created_at, last_used_at, revoked_at FROM api_tokens WHERE account_id = $1 AND revoked_at IS NULL ORDER BY created_at, id")
                .bind(account_id)
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(ApiTokenRow {
                    id: row.try_get("id")?,
                    account_id: row.try_get("account_id")?,
                    name: row.try_get("name")?,
                    scopes: row.try_get("scopes")?,
                    created_at: row.try_get("created_at")?,
                    last_used_at: row.try_get("last_used_at")?,
                    revoked_at: row.try_get("revoked_at")?,
                });
            }
            Ok(out)
        })
    }

    pub async fn touch_api_token(&self, id: &str, now: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2").bind(now).bind(id).execute(pool).await?;
            Ok(())
        })
    }

    /// Revokes every live token of an account; returns how many.
    pub async fn revoke_api_tokens_of(&self, account_id: &AccountId, now: i64) -> Result<u64, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE account_id = $2 AND revoked_at IS NULL").bind(now).bind(account_id).execute(pool).await?;
            Ok(r.rows_affected())
        })
    }

    /// Revokes one of an account's tokens; false when it is not that account's.
    pub async fn revoke_api_token(&self, account_id: &AccountId, id: &str, now: i64) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND account_id = $3 AND revoked_at IS NULL").bind(now).bind(id).bind(account_id).execute(pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }
}
