//! The register of data-subject requests.

use sqlx::Row;

use crate::{AccountId, Store, StoreError, on_pool, row_mapper};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivacyRequestRow {
    pub id: String,
    pub account_id: AccountId,
    pub kind: String,
    pub channel: String,
    pub message: String,
    /// `unverified`, `open`, `done` or `refused`.
    pub status: String,
    pub received_at: i64,
    pub verified_at: Option<i64>,
    pub due_at: i64,
    pub extended_reason: Option<String>,
    pub completed_at: Option<i64>,
    pub outcome: Option<String>,
}

const COLUMNS: &str =
    "id, account_id, kind, channel, message, status, received_at, verified_at, due_at, extended_reason, completed_at, outcome";

row_mapper!(request_of -> PrivacyRequestRow, |row| {
    Ok(PrivacyRequestRow {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        kind: row.try_get("kind")?,
        channel: row.try_get("channel")?,
        message: row.try_get("message")?,
        status: row.try_get("status")?,
        received_at: row.try_get("received_at")?,
        verified_at: row.try_get("verified_at")?,
        due_at: row.try_get("due_at")?,
        extended_reason: row.try_get("extended_reason")?,
        completed_at: row.try_get("completed_at")?,
        outcome: row.try_get("outcome")?,
    })
});

impl Store {
    pub async fn insert_privacy_request(&self, r: &PrivacyRequestRow) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO privacy_requests (id, account_id, kind, channel, message, status, received_at, verified_at, due_at, extended_reason, completed_at, outcome) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(&r.id)
            .bind(&r.account_id)
            .bind(&r.kind)
            .bind(&r.channel)
            .bind(&r.message)
            .bind(&r.status)
            .bind(r.received_at)
            .bind(r.verified_at)
            .bind(r.due_at)
            .bind(&r.extended_reason)
            .bind(r.completed_at)
            .bind(&r.outcome)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    pub async fn privacy_request(&self, id: &str) -> Result<Option<PrivacyRequestRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM privacy_requests WHERE id = $1");
        on_pool!(self, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?;
            row.as_ref().map(request_of).transpose()
        })
    }

    /// The requests with a status, the soonest due first.
    pub async fn privacy_requests_with_status(&self, status: &str, limit: i64) -> Result<Vec<PrivacyRequestRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM privacy_requests WHERE status = $1 ORDER BY due_at, id LIMIT $2");
        on_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(status).bind(limit).fetch_all(pool).await?;
            rows.iter().map(request_of).collect()
        })
    }

    /// A person's requests, newest first.
    pub async fn privacy_requests_of(&self, account_id: &AccountId) -> Result<Vec<PrivacyRequestRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM privacy_requests WHERE account_id = $1 AND status <> 'unverified' ORDER BY received_at DESC, id"
        );
        on_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(account_id).fetch_all(pool).await?;
            rows.iter().map(request_of).collect()
        })
    }

    /// Arms the confirmation link of an unverified request; false when it is no longer unverified.
    pub async fn arm_privacy_request(&self, id: &str, verify_hash: &str, expires: i64) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("UPDATE privacy_requests SET verify_hash = $1, verify_expires = $2 WHERE id = $3 AND status = 'unverified'")
                .bind(verify_hash)
                .bind(expires)
                .bind(id)
                .execute(pool)
                .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// Verifies the request whose unexpired link has this hash, once; returns its id.
    pub async fn verify_privacy_request(&self, verify_hash: &str, now: i64) -> Result<Option<String>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query(
                "UPDATE privacy_requests SET status = 'open', verified_at = $1, verify_hash = NULL, verify_expires = NULL \
                 WHERE verify_hash = $2 AND status = 'unverified' AND verify_expires > $1 RETURNING id",
            )
            .bind(now)
            .bind(verify_hash)
            .fetch_optional(pool)
            .await?;
            Ok(row.map(|r| r.try_get("id")).transpose()?)
        })
    }

    /// Moves the deadline once, with the reason; false when the request is not open or was
    /// already extended.
    pub async fn extend_privacy_request(&self, id: &str, due_at: i64, reason: &str) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("UPDATE privacy_requests SET due_at = $1, extended_reason = $2 WHERE id = $3 AND status = 'open' AND extended_reason IS NULL")
                .bind(due_at)
                .bind(reason)
                .bind(id)
                .execute(pool)
                .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// Closes an open request with its outcome (`done` or `refused`); false when it is not open.
    pub async fn close_privacy_request(&self, id: &str, status: &str, outcome: &str, now: i64) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("UPDATE privacy_requests SET status = $1, outcome = $2, completed_at = $3 WHERE id = $4 AND status = 'open'")
                .bind(status)
                .bind(outcome)
                .bind(now)
                .bind(id)
                .execute(pool)
                .await?;
            Ok(r.rows_affected() == 1)
        })
    }
}

impl Store {
    /// Records an objection; an existing one keeps its date.
    pub async fn put_objection(&self, account_id: &AccountId, purpose: &str, now: i64) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("INSERT INTO objections (account_id, purpose, objected_at) VALUES ($1, $2, $3) ON CONFLICT (account_id, purpose) DO NOTHING")
                .bind(account_id)
                .bind(purpose)
                .bind(now)
                .execute(pool)
                .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    pub async fn delete_objection(&self, account_id: &AccountId, purpose: &str) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("DELETE FROM objections WHERE account_id = $1 AND purpose = $2").bind(account_id).bind(purpose).execute(pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// The purposes a person objects to.
    pub async fn objections_of(&self, account_id: &AccountId) -> Result<Vec<String>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query("SELECT purpose FROM objections WHERE account_id = $1 ORDER BY purpose").bind(account_id).fetch_all(pool).await?;
            rows.iter().map(|r| r.try_get::<String, _>("purpose").map_err(StoreError::from)).collect()
        })
    }
}
