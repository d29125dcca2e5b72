//! Accounts and sessions rows. Rules (password policy, timeouts, who may revoke what) live in
//! `passme_core::identity`.

use sqlx::Row;

use crate::{Store, StoreError, on_pool};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    pub id: String,
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// SHA-256 of the session token, hex.
    pub id: String,
    pub account_id: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub user_agent: String,
    pub ip_prefix: String,
    pub revoked_at: Option<i64>,
    /// Started from a "remember me" cookie rather than a password: sensitive actions re-ask.
    pub remembered: bool,
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

macro_rules! session_from_row {
    ($row:expr) => {{
        let row = $row;
        SessionRow {
            id: row.try_get("id")?,
            account_id: row.try_get("account_id")?,
            created_at: row.try_get("created_at")?,
            last_seen_at: row.try_get("last_seen_at")?,
            expires_at: row.try_get("expires_at")?,
            user_agent: row.try_get("user_agent")?,
            ip_prefix: row.try_get("ip_prefix")?,
            revoked_at: row.try_get("revoked_at")?,
            remembered: row.try_get::<i64, _>("remembered")? != 0,
        }
    }};
}

impl Store {
    /// `Conflict` when the e-mail key is taken.
    pub async fn insert_account(&self, account: &AccountRow) -> Result<(), StoreError> {
        on_pool!(self, pool => {
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
            .execute(pool)
            .await
            .map_err(crate::error::conflict_or)?;
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

    pub async fn account(&self, id: &str) -> Result<Option<AccountRow>, StoreError> {
        on_pool!(self, pool => {
            match sqlx::query("SELECT * FROM accounts WHERE id = $1").bind(id).fetch_optional(pool).await? {
                Some(row) => Ok(Some(account_from_row!(&row))),
                None => Ok(None),
            }
        })
    }

    pub async fn set_password_hash(&self, account_id: &str, hash: &str, now: i64) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("UPDATE accounts SET password_hash = $1, updated_at = $2 WHERE id = $3").bind(hash).bind(now).bind(account_id).execute(pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }

    pub async fn set_account_status(&self, account_id: &str, status: AccountStatus, now: i64) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("UPDATE accounts SET status = $1, updated_at = $2 WHERE id = $3").bind(status.name()).bind(now).bind(account_id).execute(pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }

    pub async fn insert_session(&self, session: &SessionRow) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO sessions (id, account_id, created_at, last_seen_at, expires_at, user_agent, ip_prefix, remembered) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&session.id)
            .bind(&session.account_id)
            .bind(session.created_at)
            .bind(session.last_seen_at)
            .bind(session.expires_at)
            .bind(&session.user_agent)
            .bind(&session.ip_prefix)
            .bind(i64::from(session.remembered))
            .execute(pool)
            .await
            .map_err(crate::error::conflict_or)?;
            Ok(())
        })
    }

    pub async fn session(&self, id: &str) -> Result<Option<SessionRow>, StoreError> {
        on_pool!(self, pool => {
            match sqlx::query("SELECT * FROM sessions WHERE id = $1").bind(id).fetch_optional(pool).await? {
                Some(row) => Ok(Some(session_from_row!(&row))),
                None => Ok(None),
            }
        })
    }

    pub async fn touch_session(&self, id: &str, now: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2 AND revoked_at IS NULL").bind(now).bind(id).execute(pool).await?;
            Ok(())
        })
    }

    /// Revokes one session of an account; false when it is not that account's, or already ended.
    pub async fn revoke_session(&self, account_id: &str, id: &str, now: i64) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND account_id = $3 AND revoked_at IS NULL")
                .bind(now)
                .bind(id)
                .bind(account_id)
                .execute(pool)
                .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// Revokes every live session of an account except `keep`. Returns how many ended.
    pub async fn revoke_sessions_of(&self, account_id: &str, keep: Option<&str>, now: i64) -> Result<u64, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE account_id = $2 AND revoked_at IS NULL AND id <> COALESCE($3, '')")
                .bind(now)
                .bind(account_id)
                .bind(keep)
                .execute(pool)
                .await?;
            Ok(r.rows_affected())
        })
    }

    /// Live (not revoked, not expired) sessions of an account, newest first.
    pub async fn sessions_of(&self, account_id: &str, now: i64) -> Result<Vec<SessionRow>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query("SELECT * FROM sessions WHERE account_id = $1 AND revoked_at IS NULL AND expires_at > $2 ORDER BY created_at DESC, id")
                .bind(account_id)
                .bind(now)
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(session_from_row!(row));
            }
            Ok(out)
        })
    }
}

impl Store {
    /// Stores a mailed token's hash; `new_email` is the address an e-mail change will switch to.
    pub async fn insert_account_token(
        &self,
        id: &str,
        account_id: &str,
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
    pub async fn use_account_token(&self, id: &str, purpose: &str, now: i64) -> Result<Option<(String, Option<String>)>, StoreError> {
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

    pub async fn set_email_verified(&self, account_id: &str, now: i64) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("UPDATE accounts SET email_verified_at = COALESCE(email_verified_at, $1), updated_at = $1 WHERE id = $2").bind(now).bind(account_id).execute(pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// Deletes tokens created before `before`. Returns how many.
    pub async fn purge_account_tokens(&self, before: i64) -> Result<u64, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("DELETE FROM account_tokens WHERE created_at < $1").bind(before).execute(pool).await?;
            Ok(r.rows_affected())
        })
    }
}

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

    /// Deletes counters whose window started before `before` and that block nothing any more.
    pub async fn purge_throttle(&self, before: i64) -> Result<u64, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("DELETE FROM throttle WHERE window_start < $1 AND blocked_until < $1").bind(before).execute(pool).await?;
            Ok(r.rows_affected())
        })
    }

    /// The networks (truncated addresses) an account signed in from since `since`.
    pub async fn account_networks(&self, account_id: &str, since: i64) -> Result<Vec<String>, StoreError> {
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

/// One "remember me" series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RememberRow {
    pub selector: String,
    pub account_id: String,
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

    pub async fn delete_remember_of(&self, account_id: &str) -> Result<u64, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("DELETE FROM remember_series WHERE account_id = $1").bind(account_id).execute(pool).await?;
            Ok(r.rows_affected())
        })
    }
}

impl Store {
    /// The account's interface preferences: (theme, language, text size), each possibly unset.
    pub async fn account_prefs(&self, account_id: &str) -> Result<(Option<String>, Option<String>, Option<String>), StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query("SELECT pref_theme, pref_lang, pref_text FROM accounts WHERE id = $1").bind(account_id).fetch_optional(pool).await?;
            match row {
                Some(row) => Ok((row.try_get("pref_theme")?, row.try_get("pref_lang")?, row.try_get("pref_text")?)),
                None => Ok((None, None, None)),
            }
        })
    }

    pub async fn set_account_prefs(&self, account_id: &str, theme: &str, lang: &str, text: &str, now: i64) -> Result<(), StoreError> {
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
}

/// A personal access token as listed to its owner (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenRow {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub scopes: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl Store {
    /// Grants a role; granting one already held changes nothing. Returns whether it was new.
    pub async fn grant_role(&self, account_id: &str, role: &str, by: &str, now: i64) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("INSERT INTO account_roles (account_id, role, granted_at, granted_by) VALUES ($1, $2, $3, $4) ON CONFLICT (account_id, role) DO NOTHING")
                .bind(account_id)
                .bind(role)
                .bind(now)
                .bind(by)
                .execute(pool)
                .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    pub async fn revoke_role(&self, account_id: &str, role: &str) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("DELETE FROM account_roles WHERE account_id = $1 AND role = $2").bind(account_id).bind(role).execute(pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }

    pub async fn roles_of(&self, account_id: &str) -> Result<Vec<String>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query("SELECT role FROM account_roles WHERE account_id = $1 ORDER BY role").bind(account_id).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(row.try_get("role")?);
            }
            Ok(out)
        })
    }

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

    pub async fn api_tokens_of(&self, account_id: &str) -> Result<Vec<ApiTokenRow>, StoreError> {
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
    pub async fn revoke_api_tokens_of(&self, account_id: &str, now: i64) -> Result<u64, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE account_id = $2 AND revoked_at IS NULL").bind(now).bind(account_id).execute(pool).await?;
            Ok(r.rows_affected())
        })
    }

    /// Revokes one of an account's tokens; false when it is not that account's.
    pub async fn revoke_api_token(&self, account_id: &str, id: &str, now: i64) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND account_id = $3 AND revoked_at IS NULL").bind(now).bind(id).bind(account_id).execute(pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }
}

impl Store {
    /// Changes the address; `Conflict` when another account holds it by now.
    pub async fn set_account_email(&self, account_id: &str, email: &str, email_key: &str, now: i64) -> Result<(), StoreError> {
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
}

impl Store {
    /// Deletes sessions that ended (revoked or expired) before `before`.
    pub async fn purge_ended_sessions(&self, before: i64) -> Result<u64, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("DELETE FROM sessions WHERE COALESCE(revoked_at, expires_at) < $1").bind(before).execute(pool).await?;
            Ok(r.rows_affected())
        })
    }

    /// Deletes "remember me" series last used before `before`.
    pub async fn purge_idle_remember(&self, before: i64) -> Result<u64, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("DELETE FROM remember_series WHERE last_used_at < $1").bind(before).execute(pool).await?;
            Ok(r.rows_affected())
        })
    }
}

/// Closed accounts and the retention of what they leave behind. Each function applies one
/// declared rule to accounts closed before `before`.
impl Store {
    pub async fn close_account(&self, account_id: &str, now: i64) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("UPDATE accounts SET status = 'closed', closed_at = $1, updated_at = $1 WHERE id = $2 AND status <> 'closed'").bind(now).bind(account_id).execute(pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// Deletes closed accounts; their sessions, series, links, roles and tokens go with them
    /// (ON DELETE CASCADE).
    pub async fn purge_closed_accounts(&self, before: i64) -> Result<u64, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("DELETE FROM accounts WHERE status = 'closed' AND closed_at < $1").bind(before).execute(pool).await?;
            Ok(r.rows_affected())
        })
    }

    /// Erases the password hash of closed accounts (the account can no longer be signed in to).
    pub async fn erase_closed_password_hashes(&self, before: i64) -> Result<u64, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("UPDATE accounts SET password_hash = '' WHERE status = 'closed' AND closed_at < $1 AND password_hash <> ''").bind(before).execute(pool).await?;
            Ok(r.rows_affected())
        })
    }

    pub async fn erase_closed_prefs(&self, before: i64) -> Result<u64, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query(
                "UPDATE accounts SET pref_theme = NULL, pref_lang = NULL, pref_text = NULL WHERE status = 'closed' AND closed_at < $1 \
                 AND (pref_theme IS NOT NULL OR pref_lang IS NOT NULL OR pref_text IS NOT NULL)",
            )
            .bind(before)
            .execute(pool)
            .await?;
            Ok(r.rows_affected())
        })
    }

    pub async fn purge_closed_roles(&self, before: i64) -> Result<u64, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("DELETE FROM account_roles WHERE account_id IN (SELECT id FROM accounts WHERE status = 'closed' AND closed_at < $1)").bind(before).execute(pool).await?;
            Ok(r.rows_affected())
        })
    }

    pub async fn purge_closed_api_tokens(&self, before: i64) -> Result<u64, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("DELETE FROM api_tokens WHERE account_id IN (SELECT id FROM accounts WHERE status = 'closed' AND closed_at < $1)").bind(before).execute(pool).await?;
            Ok(r.rows_affected())
        })
    }
}
