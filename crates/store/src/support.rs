//! Customer support: cases, their messages, signals and canned replies.

use sqlx::Row;

use crate::{AccountId, Store, StoreError, on_pool, row_mapper};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketRow {
    pub id: String,
    pub account_id: Option<AccountId>,
    pub email: String,
    pub lang: String,
    pub subject: String,
    /// `new` (nobody answered yet), `open`, `pending` (waiting for the person) or `closed`.
    pub state: String,
    /// `form` or `proactive`.
    pub source: String,
    pub signal: Option<String>,
    pub proactive_day: Option<i64>,
    pub assignee: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub first_response_due: i64,
    pub resolution_due: i64,
    pub first_response_at: Option<i64>,
    pub closed_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketMessageRow {
    pub id: String,
    pub ticket_id: String,
    pub account_id: Option<AccountId>,
    /// `person`, `staff` or `system`.
    pub author: String,
    pub staff_id: Option<String>,
    pub body: String,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CannedRow {
    pub id: String,
    pub title_da: String,
    pub title_en: String,
    pub body_da: String,
    pub body_en: String,
}

const TICKET_COLUMNS: &str = "id, account_id, email, lang, subject, state, source, signal, proactive_day, assignee, created_at, updated_at, \
     first_response_due, resolution_due, first_response_at, closed_at";
const MESSAGE_COLUMNS: &str = "id, ticket_id, account_id, author, staff_id, body, at";

row_mapper!(ticket_from_row -> TicketRow, |row| {
    Ok(TicketRow {
        id: row.try_get("id")?,
        account_id: row.try_get::<Option<String>, _>("account_id")?.map(AccountId::new),
        email: row.try_get("email")?,
        lang: row.try_get("lang")?,
        subject: row.try_get("subject")?,
        state: row.try_get("state")?,
        source: row.try_get("source")?,
        signal: row.try_get("signal")?,
        proactive_day: row.try_get("proactive_day")?,
        assignee: row.try_get("assignee")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        first_response_due: row.try_get("first_response_due")?,
        resolution_due: row.try_get("resolution_due")?,
        first_response_at: row.try_get("first_response_at")?,
        closed_at: row.try_get("closed_at")?,
    })
});

row_mapper!(message_from_row -> TicketMessageRow, |row| {
    Ok(TicketMessageRow {
        id: row.try_get("id")?,
        ticket_id: row.try_get("ticket_id")?,
        account_id: row.try_get::<Option<String>, _>("account_id")?.map(AccountId::new),
        author: row.try_get("author")?,
        staff_id: row.try_get("staff_id")?,
        body: row.try_get("body")?,
        at: row.try_get("at")?,
    })
});

/// The insert of one case message, bound, for either engine's transaction.
macro_rules! insert_message {
    ($m:expr) => {{
        let m: &TicketMessageRow = $m;
        sqlx::query(
            "INSERT INTO support_messages (id, ticket_id, account_id, author, staff_id, body, at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&m.id)
        .bind(&m.ticket_id)
        .bind(&m.account_id)
        .bind(&m.author)
        .bind(&m.staff_id)
        .bind(&m.body)
        .bind(m.at)
    }};
}

impl Store {
    /// Stores a case with its first message. A proactive case for a person who has one that day
    /// already is not stored: `false`.
    pub async fn open_ticket(&self, ticket: &TicketRow, first: &TicketMessageRow) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO support_tickets ({TICKET_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
                 ON CONFLICT DO NOTHING"
            )))
            .bind(&ticket.id)
            .bind(&ticket.account_id)
            .bind(&ticket.email)
            .bind(&ticket.lang)
            .bind(&ticket.subject)
            .bind(&ticket.state)
            .bind(&ticket.source)
            .bind(&ticket.signal)
            .bind(ticket.proactive_day)
            .bind(&ticket.assignee)
            .bind(ticket.created_at)
            .bind(ticket.updated_at)
            .bind(ticket.first_response_due)
            .bind(ticket.resolution_due)
            .bind(ticket.first_response_at)
            .bind(ticket.closed_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                return Ok(false);
            }
            insert_message!(first).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Adds a message and moves the case to `state`; a staff answer also marks the first response.
    pub async fn add_ticket_message(&self, message: &TicketMessageRow, state: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            insert_message!(message).execute(&mut *tx).await?;
            sqlx::query(
                "UPDATE support_tickets SET state = $2, updated_at = $3, closed_at = NULL, \
                 first_response_at = CASE WHEN $4 = 'staff' AND first_response_at IS NULL THEN $3 ELSE first_response_at END \
                 WHERE id = $1",
            )
            .bind(&message.ticket_id)
            .bind(state)
            .bind(message.at)
            .bind(&message.author)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    pub async fn assign_ticket(&self, id: &str, staff_id: &str, now: i64) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query(
                "UPDATE support_tickets SET assignee = $2, updated_at = $3, state = CASE WHEN state = 'new' THEN 'open' ELSE state END \
                 WHERE id = $1 AND state <> 'closed'",
            )
            .bind(id)
            .bind(staff_id)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    pub async fn close_ticket(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("UPDATE support_tickets SET state = 'closed', closed_at = $2, updated_at = $2 WHERE id = $1 AND state <> 'closed'")
                .bind(id)
                .bind(now)
                .execute(pool)
                .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// Closes cases that waited for the person since before `before`; returns how many.
    pub async fn close_waiting_tickets(&self, before: i64, now: i64) -> Result<u64, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("UPDATE support_tickets SET state = 'closed', closed_at = $2, updated_at = $2 WHERE state = 'pending' AND updated_at < $1")
                .bind(before)
                .bind(now)
                .execute(pool)
                .await?;
            Ok(r.rows_affected())
        })
    }

    pub async fn ticket(&self, id: &str) -> Result<Option<TicketRow>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {TICKET_COLUMNS} FROM support_tickets WHERE id = $1")))
                .bind(id)
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(ticket_from_row).transpose()
        })
    }

    /// Cases not closed, the one whose first answer is due soonest first.
    pub async fn open_tickets(&self, limit: i64) -> Result<Vec<TicketRow>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {TICKET_COLUMNS} FROM support_tickets WHERE state <> 'closed' \
                 ORDER BY CASE WHEN first_response_at IS NULL THEN first_response_due ELSE resolution_due END, id LIMIT $1"
            )))
            .bind(limit)
            .fetch_all(pool)
            .await?;
            rows.iter().map(ticket_from_row).collect()
        })
    }

    pub async fn tickets_of(&self, account_id: &AccountId) -> Result<Vec<TicketRow>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {TICKET_COLUMNS} FROM support_tickets WHERE account_id = $1 ORDER BY created_at DESC, id"
            )))
            .bind(account_id)
            .fetch_all(pool)
            .await?;
            rows.iter().map(ticket_from_row).collect()
        })
    }

    pub async fn ticket_messages(&self, ticket_id: &str) -> Result<Vec<TicketMessageRow>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {MESSAGE_COLUMNS} FROM support_messages WHERE ticket_id = $1 ORDER BY at, id"
            )))
            .bind(ticket_id)
            .fetch_all(pool)
            .await?;
            rows.iter().map(message_from_row).collect()
        })
    }

    pub async fn record_support_signal(
        &self,
        id: &str,
        account_id: &AccountId,
        kind: &str,
        at: i64,
        detail: &str,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("INSERT INTO support_signals (id, account_id, kind, at, detail) VALUES ($1, $2, $3, $4, $5)")
                .bind(id)
                .bind(account_id)
                .bind(kind)
                .bind(at)
                .bind(detail)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// How many signals of `kind` the person had since `since`.
    pub async fn support_signals_since(&self, account_id: &AccountId, kind: &str, since: i64) -> Result<i64, StoreError> {
        on_pool!(self, pool => {
            Ok(sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM support_signals WHERE account_id = $1 AND kind = $2 AND at >= $3")
                .bind(account_id)
                .bind(kind)
                .bind(since)
                .fetch_one(pool)
                .await?)
        })
    }

    /// Whether the person ever had a case opened from `signal`.
    pub async fn has_proactive_ticket(&self, account_id: &AccountId, signal: &str) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let n = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM support_tickets WHERE account_id = $1 AND signal = $2")
                .bind(account_id)
                .bind(signal)
                .fetch_one(pool)
                .await?;
            Ok(n > 0)
        })
    }

    /// Active, confirmed accounts made between `from` and `to` that were not used after their
    /// first hour (no session seen later): who may be stuck after signing up.
    pub async fn quiet_new_accounts(&self, from: i64, to: i64) -> Result<Vec<(AccountId, String, Option<String>)>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT a.id, a.email, a.pref_lang FROM accounts a WHERE a.status = 'active' AND a.email_verified_at IS NOT NULL \
                 AND a.created_at >= $1 AND a.created_at < $2 \
                 AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.account_id = a.id AND s.last_seen_at > a.created_at + 3600000) \
                 ORDER BY a.created_at LIMIT 1000",
            )
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| Ok((AccountId::new(r.try_get::<String, _>("id")?), r.try_get("email")?, r.try_get("pref_lang")?)))
                .collect()
        })
    }

    pub async fn canned_replies(&self) -> Result<Vec<CannedRow>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query("SELECT id, title_da, title_en, body_da, body_en FROM support_canned ORDER BY id").fetch_all(pool).await?;
            rows.iter()
                .map(|r| {
                    Ok(CannedRow {
                        id: r.try_get("id")?,
                        title_da: r.try_get("title_da")?,
                        title_en: r.try_get("title_en")?,
                        body_da: r.try_get("body_da")?,
                        body_en: r.try_get("body_en")?,
                    })
                })
                .collect()
        })
    }
}
