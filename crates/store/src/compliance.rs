//! Compliance: actions under the terms of service and the register of authority requests.

use crate::{AccountId, Store, StoreError, on_pool, row_mapper};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TermsActionRow {
    pub id: String,
    pub account_id: AccountId,
    /// `suspend` or `close`.
    pub action: String,
    pub clause: String,
    pub reason: String,
    pub decided_by: String,
    pub decided_at: i64,
    pub appeal: Option<String>,
    pub appealed_at: Option<i64>,
    /// `upheld` or `reversed`, once an appeal is decided.
    pub outcome: Option<String>,
    pub outcome_note: Option<String>,
    pub resolved_by: Option<String>,
    pub completed_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorityRequestRow {
    pub id: String,
    pub received_at: i64,
    pub authority: String,
    pub reference: String,
    pub legal_basis: String,
    pub asked: String,
    pub account_id: Option<AccountId>,
    pub disclosed: Option<String>,
    /// `open`, `answered` or `refused`.
    pub status: String,
    pub registered_by: String,
    pub completed_at: Option<i64>,
}

const ACTION_COLUMNS: &str =
    "id, account_id, action, clause, reason, decided_by, decided_at, appeal, appealed_at, outcome, outcome_note, resolved_by, completed_at";
const AUTHORITY_COLUMNS: &str =
    "id, received_at, authority, reference, legal_basis, asked, account_id, disclosed, status, registered_by, completed_at";

row_mapper!(action_from_row -> TermsActionRow, |row| {
    Ok(TermsActionRow {
        id: row.try_get("id")?,
        account_id: AccountId::new(row.try_get::<String, _>("account_id")?),
        action: row.try_get("action")?,
        clause: row.try_get("clause")?,
        reason: row.try_get("reason")?,
        decided_by: row.try_get("decided_by")?,
        decided_at: row.try_get("decided_at")?,
        appeal: row.try_get("appeal")?,
        appealed_at: row.try_get("appealed_at")?,
        outcome: row.try_get("outcome")?,
        outcome_note: row.try_get("outcome_note")?,
        resolved_by: row.try_get("resolved_by")?,
        completed_at: row.try_get("completed_at")?,
    })
});

row_mapper!(authority_from_row -> AuthorityRequestRow, |row| {
    Ok(AuthorityRequestRow {
        id: row.try_get("id")?,
        received_at: row.try_get("received_at")?,
        authority: row.try_get("authority")?,
        reference: row.try_get("reference")?,
        legal_basis: row.try_get("legal_basis")?,
        asked: row.try_get("asked")?,
        account_id: row.try_get::<Option<String>, _>("account_id")?.map(AccountId::new),
        disclosed: row.try_get("disclosed")?,
        status: row.try_get("status")?,
        registered_by: row.try_get("registered_by")?,
        completed_at: row.try_get("completed_at")?,
    })
});

impl Store {
    pub async fn insert_terms_action(&self, a: &TermsActionRow) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO terms_actions (id, account_id, action, clause, reason, decided_by, decided_at, completed_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&a.id)
            .bind(&a.account_id)
            .bind(&a.action)
            .bind(&a.clause)
            .bind(&a.reason)
            .bind(&a.decided_by)
            .bind(a.decided_at)
            .bind(a.completed_at)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    pub async fn terms_action(&self, id: &str) -> Result<Option<TermsActionRow>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {ACTION_COLUMNS} FROM terms_actions WHERE id = $1")))
                .bind(id)
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(action_from_row).transpose()
        })
    }

    /// Actions with an appeal waiting for a decision, oldest first, then the latest others.
    pub async fn terms_actions(&self, limit: i64) -> Result<Vec<TermsActionRow>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {ACTION_COLUMNS} FROM terms_actions \
                 ORDER BY CASE WHEN appealed_at IS NOT NULL AND outcome IS NULL THEN 0 ELSE 1 END, decided_at DESC LIMIT $1"
            )))
            .bind(limit)
            .fetch_all(pool)
            .await?;
            rows.iter().map(action_from_row).collect()
        })
    }

    /// The person's latest action not yet appealed.
    pub async fn appealable_terms_action(&self, account_id: &AccountId) -> Result<Option<TermsActionRow>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {ACTION_COLUMNS} FROM terms_actions WHERE account_id = $1 AND appealed_at IS NULL ORDER BY decided_at DESC LIMIT 1"
            )))
            .bind(account_id)
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(action_from_row).transpose()
        })
    }

    /// Records the person's appeal, once, and reopens the matter.
    pub async fn appeal_terms_action(&self, id: &str, text: &str, now: i64) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("UPDATE terms_actions SET appeal = $2, appealed_at = $3, completed_at = NULL WHERE id = $1 AND appealed_at IS NULL")
                .bind(id)
                .bind(text)
                .bind(now)
                .execute(pool)
                .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// Decides an appeal, once; the matter is then complete.
    pub async fn resolve_terms_appeal(&self, id: &str, outcome: &str, note: &str, by: &str, now: i64) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query(
                "UPDATE terms_actions SET outcome = $2, outcome_note = $3, resolved_by = $4, completed_at = $5 \
                 WHERE id = $1 AND appealed_at IS NOT NULL AND outcome IS NULL",
            )
            .bind(id)
            .bind(outcome)
            .bind(note)
            .bind(by)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    pub async fn insert_authority_request(&self, r: &AuthorityRequestRow) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO authority_requests ({AUTHORITY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            )))
            .bind(&r.id)
            .bind(r.received_at)
            .bind(&r.authority)
            .bind(&r.reference)
            .bind(&r.legal_basis)
            .bind(&r.asked)
            .bind(&r.account_id)
            .bind(&r.disclosed)
            .bind(&r.status)
            .bind(&r.registered_by)
            .bind(r.completed_at)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Records what was disclosed (or that the request was refused) and completes it, once.
    pub async fn complete_authority_request(&self, id: &str, status: &str, disclosed: &str, now: i64) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query(
                "UPDATE authority_requests SET status = $2, disclosed = $3, completed_at = $4 WHERE id = $1 AND status = 'open'",
            )
            .bind(id)
            .bind(status)
            .bind(disclosed)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    pub async fn authority_requests(&self, limit: i64) -> Result<Vec<AuthorityRequestRow>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {AUTHORITY_COLUMNS} FROM authority_requests ORDER BY CASE WHEN status = 'open' THEN 0 ELSE 1 END, received_at DESC LIMIT $1"
            )))
            .bind(limit)
            .fetch_all(pool)
            .await?;
            rows.iter().map(authority_from_row).collect()
        })
    }
}
