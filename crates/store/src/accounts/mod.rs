//! Accounts: the row, its status, its address, its interface preferences, and closing it. The
//! rules (password policy, who may change what) live in `passme_core::identity`; each table the
//! account owns has its own module here.

mod api_tokens;
mod remember;
mod sessions;
mod staff;
mod throttle;
mod tokens;

pub use api_tokens::ApiTokenRow;
pub use remember::RememberRow;
pub use sessions::SessionRow;

use sqlx::Row;

use crate::{AccountId, Store, StoreError, on_pool};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    pub id: AccountId,
    pub email: String,
    pub email_key: String,
    pub email_verified_at: Option<i64>,
    pub password_hash: String,
    pub status: AccountStatus,
    pub created_at: i64,
}

/// Where an account stands; stored as its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountStatus {
    Active,
    /// Turned off by staff: cannot sign in.
    Disabled,
    /// Closed by its owner; erased by the retention rules after the grace period.
    Closed,
}

impl AccountStatus {
    pub fn name(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Disabled => "disabled",
            AccountStatus::Closed => "closed",
        }
    }

    fn parse(name: &str) -> Result<AccountStatus, StoreError> {
        match name {
            "active" => Ok(AccountStatus::Active),
            "disabled" => Ok(AccountStatus::Disabled),
            "closed" => Ok(AccountStatus::Closed),
            other => Err(StoreError::Database(sqlx::Error::Decode(format!("unknown account status {other:?}").into()))),
        }
    }
}

macro_rules! account_from_row {
    ($row:expr) => {{
        let row = $row;
        AccountRow {
            id: row.try_get("id")?,
            email: row.try_get("email")?,
            email_key: row.try_get("email_key")?,
            email_verified_at: row.try_get("email_verified_at")?,
            password_hash: row.try_get("password_hash")?,
            status: AccountStatus::parse(row.try_get("status")?)?,
            created_at: row.try_get("created_at")?,
        }
    }};
}

impl Store {
    /// Stores a new account, and with it `job` (its verification mail) in the same transaction.
    /// `Conflict` when the e-mail key is taken; then neither is stored.
    pub async fn insert_account(&self, account: &AccountRow, job: Option<&crate::NewJob>) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO accounts (id, email, email_key, email_verified_at, password_hash, status, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
            )
            .bind(&account.id)
            .bind(&account.email)
            .bind(&account.email_key)
            .bind(account.email_verified_at)
            .bind(&account.password_hash)
            .bind(account.status.name())
            .bind(account.created_at)
            .execute(&mut *tx)
            .await
            .map_err(crate::error::conflict_or)?;
            if let Some(job) = job {
                crate::jobs::insert_job!(job, account.created_at).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    pub async fn account_by_email_key(&self, email_key: &str) -> Result<Option<AccountRow>, StoreError> {
        on_pool!(self, pool => {
            match sqlx::query("SELECT * FROM accounts WHERE email_key = $1").bind(email_key).fetch_optional(pool).await? {
                Some(row) => Ok(Some(account_from_row!(&row))),
                None => Ok(None),
            }
        })
    }

    pub async fn account(&self, id: &AccountId) -> Result<Option<AccountRow>, StoreError> {
        on_pool!(self, pool => {
            match sqlx::query("SELECT * FROM accounts WHERE id = $1").bind(id).fetch_optional(pool).await? {
                Some(row) => Ok(Some(account_from_row!(&row))),
                None => Ok(None),
            }
        })
    }

    pub async fn set_password_hash(&self, account_id: &AccountId, hash: &str, now: i64) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("UPDATE accounts SET password_hash = $1, updated_at = $2 WHERE id = $3").bind(hash).bind(now).bind(account_id).execute(pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }

    pub async fn set_account_status(&self, account_id: &AccountId, status: AccountStatus, now: i64) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("UPDATE accounts SET status = $1, updated_at = $2 WHERE id = $3").bind(status.name()).bind(now).bind(account_id).execute(pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// Changes the address; `Conflict` when another account holds it by now.
    pub async fn set_account_email(&self, account_id: &AccountId, email: &str, email_key: &str, now: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE accounts SET email = $1, email_key = $2, email_verified_at = $3, updated_at = $3 WHERE id = $4")
                .bind(email)
                .bind(email_key)
                .bind(now)
                .bind(account_id)
                .execute(pool)
                .await
                .map_err(crate::error::conflict_or)?;
            Ok(())
        })
    }

    /// The account's interface preferences: (theme, language, text size), each possibly unset.
    pub async fn account_prefs(&self, account_id: &AccountId) -> Result<(Option<String>, Option<String>, Option<String>), StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query("SELECT pref_theme, pref_lang, pref_text FROM accounts WHERE id = $1").bind(account_id).fetch_optional(pool).await?;
            match row {
                Some(row) => Ok((row.try_get("pref_theme")?, row.try_get("pref_lang")?, row.try_get("pref_text")?)),
                None => Ok((None, None, None)),
            }
        })
    }

    pub async fn set_account_prefs(&self, account_id: &AccountId, theme: &str, lang: &str, text: &str, now: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE accounts SET pref_theme = $1, pref_lang = $2, pref_text = $3, updated_at = $4 WHERE id = $5")
                .bind(theme)
                .bind(lang)
                .bind(text)
                .bind(now)
                .bind(account_id)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Empties an account row of everything but its id (an erasure under a legal hold on rows
    /// that hang off it); retention removes the row once it is closed long enough.
    pub async fn blank_account(&self, account_id: &AccountId) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE accounts SET email = '', email_key = 'erased:' || id, email_verified_at = NULL, password_hash = '', \
                 pref_theme = NULL, pref_lang = NULL, pref_text = NULL, status = 'closed', closed_at = COALESCE(closed_at, updated_at) WHERE id = $1",
            )
            .bind(account_id)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    pub async fn close_account(&self, account_id: &AccountId, now: i64) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("UPDATE accounts SET status = 'closed', closed_at = $1, updated_at = $1 WHERE id = $2 AND status <> 'closed'").bind(now).bind(account_id).execute(pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }
}
