//! "Remember me" series (table `remember_series`): the split-token pattern's selector and hashed
//! validators.

use sqlx::Row;

use crate::{AccountId, Store, StoreError, on_pool};

/// One "remember me" series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RememberRow {
    pub selector: String,
    pub account_id: AccountId,
    pub validator_hash: String,
    pub prev_validator_hash: Option<String>,
    pub prev_valid_until: Option<i64>,
    pub expires_at: i64,
}

impl Store {
    pub async fn insert_remember(&self, row: &RememberRow, now: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO remember_series (selector, account_id, validator_hash, created_at, last_used_at, expires_at) VALUES ($1, $2, $3, $4, $4, $5)",
            )
            .bind(&row.selector)
            .bind(&row.account_id)
            .bind(&row.validator_hash)
            .bind(now)
            .bind(row.expires_at)
            .execute(pool)
            .await
            .map_err(crate::error::conflict_or)?;
            Ok(())
        })
    }

    pub async fn remember(&self, selector: &str) -> Result<Option<RememberRow>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query("SELECT selector, account_id, validator_hash, prev_validator_hash, prev_valid_until, expires_at FROM remember_series WHERE selector = $1")
                .bind(selector)
                .fetch_optional(pool)
                .await?;
            match row {
                Some(row) => Ok(Some(RememberRow {
                    selector: row.try_get("selector")?,
                    account_id: row.try_get("account_id")?,
                    validator_hash: row.try_get("validator_hash")?,
                    prev_validator_hash: row.try_get("prev_validator_hash")?,
                    prev_valid_until: row.try_get("prev_valid_until")?,
                    expires_at: row.try_get("expires_at")?,
                })),
                None => Ok(None),
            }
        })
    }

    /// Rotates the validator if it is still `expected` (compare-and-set: of two racing uses only
    /// one rotates). The old one stays valid until `grace_until`.
    pub async fn rotate_remember(
        &self,
        selector: &str,
        expected: &str,
        new_hash: &str,
        grace_until: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query(
                "UPDATE remember_series SET prev_validator_hash = validator_hash, prev_valid_until = $1, prev_used_at = NULL, validator_hash = $2, last_used_at = $3 \
                 WHERE selector = $4 AND validator_hash = $5",
            )
            .bind(grace_until)
            .bind(new_hash)
            .bind(now)
            .bind(selector)
            .bind(expected)
            .execute(pool)
            .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// Spends the one grace use of the previous validator `presented` (compare-and-set: of two
    /// racing uses only one succeeds). False when it is not the previous validator, its grace
    /// window has passed, or its use is already spent.
    pub async fn use_remember_grace(&self, selector: &str, presented: &str, now: i64) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query(
                "UPDATE remember_series SET prev_used_at = $1, last_used_at = $1 \
                 WHERE selector = $2 AND prev_validator_hash = $3 AND prev_valid_until >= $1 AND prev_used_at IS NULL",
            )
            .bind(now)
            .bind(selector)
            .bind(presented)
            .execute(pool)
            .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    pub async fn delete_remember(&self, selector: &str) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("DELETE FROM remember_series WHERE selector = $1").bind(selector).execute(pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }

    pub async fn delete_remember_of(&self, account_id: &AccountId) -> Result<u64, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("DELETE FROM remember_series WHERE account_id = $1").bind(account_id).execute(pool).await?;
            Ok(r.rows_affected())
        })
    }
}
