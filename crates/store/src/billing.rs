//! Billing rows: the provider's customer per account, subscription state, received provider
//! events and invoice references. Ordering rules live in the writes themselves (a conditional
//! upsert), so two workers applying events for the same subscription cannot move it backwards.

use sqlx::Row;

use crate::jobs::NewJob;
use crate::{AccountId, Store, StoreError, on_pool};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRow {
    pub subscription_id: String,
    /// None once the account is erased.
    pub account_id: Option<AccountId>,
    pub customer_id: String,
    pub price_id: String,
    pub status: String,
    /// Unix seconds, as the provider counts.
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    pub last_event_id: Option<String>,
    /// The provider's time (unix seconds) of this state.
    pub state_at: i64,
    pub updated_at: i64,
    pub ended_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceRow {
    pub invoice_id: String,
    pub account_id: Option<AccountId>,
    pub subscription_id: Option<String>,
    pub number: Option<String>,
    /// In the currency's minor unit.
    pub amount: i64,
    pub currency: String,
    /// Milliseconds.
    pub issued_at: i64,
    pub status: String,
    pub payment_failed: bool,
    pub state_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingEventRow {
    pub event_id: String,
    pub event_type: String,
    /// The provider's time, unix seconds.
    pub created: i64,
    pub received_at: i64,
    /// Set at once for an event nothing will process (a type we do not handle).
    pub outcome: Option<String>,
}

const SUBSCRIPTION_COLUMNS: &str = "subscription_id, account_id, customer_id, price_id, status, current_period_end, \
     cancel_at_period_end, last_event_id, state_at, updated_at, ended_at";

const INVOICE_COLUMNS: &str =
    "invoice_id, account_id, subscription_id, number, amount, currency, issued_at, status, payment_failed, state_at";

/// How far an invoice has come; of two states reported in the same second the further one wins.
const INVOICE_RANK: &str = "CASE {t}.status WHEN 'draft' THEN 0 WHEN 'open' THEN 1 WHEN 'uncollectible' THEN 2 ELSE 3 END";

macro_rules! subscription_from_row {
    ($row:expr) => {{
        let row = $row;
        SubscriptionRow {
            subscription_id: row.try_get("subscription_id")?,
            account_id: row.try_get("account_id")?,
            customer_id: row.try_get("customer_id")?,
            price_id: row.try_get("price_id")?,
            status: row.try_get("status")?,
            current_period_end: row.try_get("current_period_end")?,
            cancel_at_period_end: row.try_get::<i64, _>("cancel_at_period_end")? != 0,
            last_event_id: row.try_get("last_event_id")?,
            state_at: row.try_get("state_at")?,
            updated_at: row.try_get("updated_at")?,
            ended_at: row.try_get("ended_at")?,
        }
    }};
}

macro_rules! invoice_from_row {
    ($row:expr) => {{
        let row = $row;
        InvoiceRow {
            invoice_id: row.try_get("invoice_id")?,
            account_id: row.try_get("account_id")?,
            subscription_id: row.try_get("subscription_id")?,
            number: row.try_get("number")?,
            amount: row.try_get("amount")?,
            currency: row.try_get("currency")?,
            issued_at: row.try_get("issued_at")?,
            status: row.try_get("status")?,
            payment_failed: row.try_get::<i64, _>("payment_failed")? != 0,
            state_at: row.try_get("state_at")?,
        }
    }};
}

impl Store {
    /// The provider's customer id of an account.
    pub async fn billing_customer_of(&self, account_id: &AccountId) -> Result<Option<String>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query("SELECT customer_id FROM billing_customers WHERE account_id = $1").bind(account_id).fetch_optional(pool).await?;
            Ok(row.map(|r| r.try_get("customer_id")).transpose()?)
        })
    }

    /// The account a provider customer belongs to, if we created it for one.
    pub async fn billing_account_of(&self, customer_id: &str) -> Result<Option<AccountId>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query("SELECT account_id FROM billing_customers WHERE customer_id = $1").bind(customer_id).fetch_optional(pool).await?;
            Ok(row.map(|r| r.try_get("account_id")).transpose()?)
        })
    }

    /// Binds a provider customer to an account; `Conflict` when the account already has one.
    pub async fn insert_billing_customer(&self, account_id: &AccountId, customer_id: &str, now: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("INSERT INTO billing_customers (account_id, customer_id, created_at) VALUES ($1, $2, $3)")
                .bind(account_id)
                .bind(customer_id)
                .bind(now)
                .execute(pool)
                .await
                .map_err(crate::error::conflict_or)?;
            Ok(())
        })
    }

    /// Forgets a customer the provider deleted, so the account's next checkout makes a new one.
    pub async fn unbind_billing_customer(&self, customer_id: &str) -> Result<bool, StoreError> {
        on_pool!(self, pool => Ok(sqlx::query("DELETE FROM billing_customers WHERE customer_id = $1")
            .bind(customer_id)
            .execute(pool)
            .await?
            .rows_affected()
            > 0))
    }

    /// Records a provider event and queues its processing (if any), in one transaction. False
    /// (and nothing queued) when the event id was already recorded: a duplicate delivery.
    pub async fn record_billing_event(&self, event: &BillingEventRow, job: Option<&NewJob>) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let inserted = sqlx::query(
                "INSERT INTO billing_events (event_id, event_type, created, received_at, outcome) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (event_id) DO NOTHING",
            )
            .bind(&event.event_id)
            .bind(&event.event_type)
            .bind(event.created)
            .bind(event.received_at)
            .bind(&event.outcome)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                return Ok(false);
            }
            let Some(job) = job else {
                tx.commit().await?;
                return Ok(true);
            };
            crate::jobs::insert_job!(job, event.received_at)
            .execute(&mut *tx)
            .await
            .map_err(crate::error::conflict_or)?;
            tx.commit().await?;
            Ok(true)
        })
    }

    pub async fn set_billing_event_outcome(&self, event_id: &str, outcome: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE billing_events SET outcome = $1 WHERE event_id = $2").bind(outcome).bind(event_id).execute(pool).await?;
            Ok(())
        })
    }

    pub async fn billing_event_outcome(&self, event_id: &str) -> Result<Option<Option<String>>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query("SELECT outcome FROM billing_events WHERE event_id = $1").bind(event_id).fetch_optional(pool).await?;
            Ok(row.map(|r| r.try_get("outcome")).transpose()?)
        })
    }

    pub async fn billing_subscription(&self, subscription_id: &str) -> Result<Option<SubscriptionRow>, StoreError> {
        let sql = format!("SELECT {SUBSCRIPTION_COLUMNS} FROM billing_subscriptions WHERE subscription_id = $1");
        on_pool!(self, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(subscription_id).fetch_optional(pool).await?;
            Ok(match row { Some(row) => Some(subscription_from_row!(row)), None => None })
        })
    }

    /// An account's subscriptions, the most recently changed first.
    pub async fn billing_subscriptions_of(&self, account_id: &AccountId) -> Result<Vec<SubscriptionRow>, StoreError> {
        let sql = format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM billing_subscriptions WHERE account_id = $1 ORDER BY state_at DESC, updated_at DESC"
        );
        on_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(account_id).fetch_all(pool).await?;
            rows.into_iter().map(|row| Ok(subscription_from_row!(row))).collect()
        })
    }

    /// Every subscription that has not ended, for reconciliation.
    pub async fn open_billing_subscriptions(&self) -> Result<Vec<SubscriptionRow>, StoreError> {
        let sql = format!("SELECT {SUBSCRIPTION_COLUMNS} FROM billing_subscriptions WHERE ended_at IS NULL ORDER BY subscription_id");
        on_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?;
            rows.into_iter().map(|row| Ok(subscription_from_row!(row))).collect()
        })
    }

    /// Stores a subscription's state unless the stored one is newer (a later `state_at`) or has
    /// ended: an ended subscription never comes back. True when the row was written.
    pub async fn put_billing_subscription(&self, row: &SubscriptionRow) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let written = sqlx::query(
                "INSERT INTO billing_subscriptions (subscription_id, account_id, customer_id, price_id, status, current_period_end, \
                 cancel_at_period_end, last_event_id, state_at, updated_at, ended_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (subscription_id) DO UPDATE SET account_id = COALESCE(excluded.account_id, billing_subscriptions.account_id), \
                 customer_id = excluded.customer_id, price_id = excluded.price_id, status = excluded.status, \
                 current_period_end = excluded.current_period_end, cancel_at_period_end = excluded.cancel_at_period_end, \
                 last_event_id = COALESCE(excluded.last_event_id, billing_subscriptions.last_event_id), state_at = excluded.state_at, \
                 updated_at = excluded.updated_at, ended_at = excluded.ended_at \
                 WHERE billing_subscriptions.ended_at IS NULL AND billing_subscriptions.state_at <= excluded.state_at",
            )
            .bind(&row.subscription_id)
            .bind(&row.account_id)
            .bind(&row.customer_id)
            .bind(&row.price_id)
            .bind(&row.status)
            .bind(row.current_period_end)
            .bind(i64::from(row.cancel_at_period_end))
            .bind(&row.last_event_id)
            .bind(row.state_at)
            .bind(row.updated_at)
            .bind(row.ended_at)
            .execute(pool)
            .await?
            .rows_affected();
            Ok(written > 0)
        })
    }

    /// Stores an invoice reference unless the stored state is newer; of two states from the same
    /// second, the further one (paid over open over draft) wins. True when written.
    pub async fn put_billing_invoice(&self, row: &InvoiceRow) -> Result<bool, StoreError> {
        let stored_rank = INVOICE_RANK.replace("{t}", "billing_invoices");
        let new_rank = INVOICE_RANK.replace("{t}", "excluded");
        let sql = format!(
            "INSERT INTO billing_invoices ({INVOICE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (invoice_id) DO UPDATE SET account_id = COALESCE(billing_invoices.account_id, excluded.account_id), \
             subscription_id = COALESCE(excluded.subscription_id, billing_invoices.subscription_id), \
             number = COALESCE(excluded.number, billing_invoices.number), amount = excluded.amount, currency = excluded.currency, \
             issued_at = excluded.issued_at, status = excluded.status, payment_failed = excluded.payment_failed, state_at = excluded.state_at \
             WHERE billing_invoices.state_at < excluded.state_at \
             OR (billing_invoices.state_at = excluded.state_at AND {new_rank} >= {stored_rank})"
        );
        on_pool!(self, pool => {
            let written = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&row.invoice_id)
                .bind(&row.account_id)
                .bind(&row.subscription_id)
                .bind(&row.number)
                .bind(row.amount)
                .bind(&row.currency)
                .bind(row.issued_at)
                .bind(&row.status)
                .bind(i64::from(row.payment_failed))
                .bind(row.state_at)
                .execute(pool)
                .await?
                .rows_affected();
            Ok(written > 0)
        })
    }

    /// An account's invoices, newest first.
    pub async fn billing_invoices_of(&self, account_id: &AccountId, limit: i64) -> Result<Vec<InvoiceRow>, StoreError> {
        let sql =
            format!("SELECT {INVOICE_COLUMNS} FROM billing_invoices WHERE account_id = $1 ORDER BY issued_at DESC, invoice_id LIMIT $2");
        on_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(account_id).bind(limit).fetch_all(pool).await?;
            rows.into_iter().map(|row| Ok(invoice_from_row!(row))).collect()
        })
    }

    pub async fn billing_invoice(&self, invoice_id: &str) -> Result<Option<InvoiceRow>, StoreError> {
        let sql = format!("SELECT {INVOICE_COLUMNS} FROM billing_invoices WHERE invoice_id = $1");
        on_pool!(self, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(invoice_id).fetch_optional(pool).await?;
            Ok(match row { Some(row) => Some(invoice_from_row!(row)), None => None })
        })
    }
}
