//! Sign-in sessions (table `sessions`).

use sqlx::Row;

use crate::{AccountId, Store, StoreError, on_pool};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// SHA-256 of the session token, hex.
    pub id: String,
    pub account_id: AccountId,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub user_agent: String,
    pub ip_prefix: String,
    pub revoked_at: Option<i64>,
    /// Started from a "remember me" cookie rather than a password: sensitive actions re-ask.
    pub remembered: bool,
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
    pub async fn revoke_session(&self, account_id: &AccountId, id: &str, now: i64) -> Result<bool, StoreError> {
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
    pub async fn revoke_sessions_of(&self, account_id: &AccountId, keep: Option<&str>, now: i64) -> Result<u64, StoreError> {
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
    pub async fn sessions_of(&self, account_id: &AccountId, now: i64) -> Result<Vec<SessionRow>, StoreError> {
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
