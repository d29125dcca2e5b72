//! Mailed one-time links: address confirmation, password reset, e-mail change (table
//! `account_tokens`, hashes only).

use sqlx::Row;

use crate::{AccountId, Store, StoreError, on_pool};

impl Store {
    /// Stores a mailed token's hash; `new_email` is the address an e-mail change will switch to.
    pub async fn insert_account_token(
        &self,
        id: &str,
        account_id: &AccountId,
        purpose: &str,
        new_email: Option<&str>,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("INSERT INTO account_tokens (id, account_id, purpose, created_at, expires_at, new_email) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(id)
                .bind(account_id)
                .bind(purpose)
                .bind(now)
                .bind(expires_at)
                .bind(new_email)
                .execute(pool)
                .await
                .map_err(crate::error::conflict_or)?;
            Ok(())
        })
    }

    /// Marks a live token of this purpose used and returns its account (and, for an e-mail
    /// change, the new address); `None` when unknown, expired, already used or of another
    /// purpose. One statement, so a token works once even when two requests race.
    pub async fn use_account_token(&self, id: &str, purpose: &str, now: i64) -> Result<Option<(AccountId, Option<String>)>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query(
                "UPDATE account_tokens SET used_at = $1 WHERE id = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > $1 RETURNING account_id, new_email",
            )
            .bind(now)
            .bind(id)
            .bind(purpose)
            .fetch_optional(pool)
            .await?;
            match row {
                Some(row) => Ok(Some((row.try_get("account_id")?, row.try_get("new_email")?))),
                None => Ok(None),
            }
        })
    }

    /// The account a live token of this purpose belongs to, without using it up (a page that
    /// shows what the link is for before its form uses it).
    pub async fn account_token_holder(&self, id: &str, purpose: &str, now: i64) -> Result<Option<AccountId>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query("SELECT account_id FROM account_tokens WHERE id = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3")
                .bind(id)
                .bind(purpose)
                .bind(now)
                .fetch_optional(pool)
                .await?;
            row.map(|r| r.try_get("account_id")).transpose().map_err(Into::into)
        })
    }

    pub async fn set_email_verified(&self, account_id: &AccountId, now: i64) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("UPDATE accounts SET email_verified_at = COALESCE(email_verified_at, $1), updated_at = $1 WHERE id = $2").bind(now).bind(account_id).execute(pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }
}
