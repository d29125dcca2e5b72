//! Storage for data-subject rights: erasing a person's rows table by table, searching every
//! personal column for what might be left, erasure receipts and legal holds.

use sqlx::{AssertSqlSafe, Row};

use crate::{AccountId, Store, StoreError, on_pool};

/// A table or column name from the policy's tables or the live schema, never from a request:
/// only lowercase letters, digits and underscores may be spliced into SQL.
fn identifier(name: &str) -> Result<&str, StoreError> {
    let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid { Ok(name) } else { Err(StoreError::Invalid(format!("not a table or column name: {name:?}"))) }
}

/// What an erasure did, as its receipt keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureReceiptRow {
    pub id: String,
    pub requested_at: i64,
    pub completed_at: Option<i64>,
    pub verified_at: Option<i64>,
    /// JSON: rows removed per table.
    pub removed: String,
    /// JSON: what a legal duty keeps, per table, with the rule that ends it.
    pub kept: String,
    /// JSON: what the search found outside the legal duties (empty once verified).
    pub leftovers: String,
}

/// A legal hold on a person or on a data category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegalHoldRow {
    pub id: String,
    pub account_id: Option<AccountId>,
    pub category: Option<String>,
    pub reason: String,
    pub placed_by: String,
    pub placed_at: i64,
    pub until_at: i64,
    pub lifted_at: Option<i64>,
}

impl Store {
    /// Deletes the rows of `table` whose `column` equals `value`.
    pub async fn delete_rows_where(&self, table: &str, column: &str, value: &str) -> Result<u64, StoreError> {
        let sql = format!("DELETE FROM {} WHERE {} = $1", identifier(table)?, identifier(column)?);
        on_pool!(self, pool => {
            let r = sqlx::query(AssertSqlSafe(sql)).bind(value).execute(pool).await?;
            Ok(r.rows_affected())
        })
    }

    /// Deletes the rows of `table` in which any of `columns` contains `needle` (as text), except
    /// the row whose `id` is `except` (the job doing the deleting).
    pub async fn delete_rows_mentioning(&self, table: &str, columns: &[&str], needle: &str, except: &str) -> Result<u64, StoreError> {
        let sql = format!("DELETE FROM {} WHERE ({}) AND id <> $2", identifier(table)?, mentions(columns)?);
        on_pool!(self, pool => {
            let r = sqlx::query(AssertSqlSafe(sql)).bind(needle).bind(except).execute(pool).await?;
            Ok(r.rows_affected())
        })
    }

    /// How many rows of `table` hold `needle` in any of `columns` (as text, anywhere in the
    /// value). One scan of the table.
    pub async fn count_rows_mentioning(&self, table: &str, columns: &[&str], needle: &str) -> Result<i64, StoreError> {
        if columns.is_empty() {
            return Ok(0);
        }
        let sql = format!("SELECT COUNT(*) AS n FROM {} WHERE {}", identifier(table)?, mentions(columns)?);
        on_pool!(self, pool => {
            let row = sqlx::query(AssertSqlSafe(sql)).bind(needle).fetch_one(pool).await?;
            Ok(row.try_get("n")?)
        })
    }

    /// [`Store::count_rows_mentioning`] without the row whose `id` is `except`.
    pub async fn count_rows_mentioning_except(&self, table: &str, columns: &[&str], needle: &str, except: &str) -> Result<i64, StoreError> {
        let sql = format!("SELECT COUNT(*) AS n FROM {} WHERE ({}) AND id <> $2", identifier(table)?, mentions(columns)?);
        on_pool!(self, pool => {
            let row = sqlx::query(AssertSqlSafe(sql)).bind(needle).bind(except).fetch_one(pool).await?;
            Ok(row.try_get("n")?)
        })
    }

    /// The rows of `table` whose value in any of `links` is `value`, each as its `columns`' values
    /// in text form.
    pub async fn rows_where(
        &self,
        table: &str,
        columns: &[&str],
        links: &[&str],
        value: &str,
    ) -> Result<Vec<Vec<Option<String>>>, StoreError> {
        let mut select = Vec::with_capacity(columns.len());
        for column in columns {
            select.push(format!("CAST({0} AS TEXT) AS {0}", identifier(column)?));
        }
        let mut conditions = Vec::with_capacity(links.len());
        for link in links {
            conditions.push(format!("{} = $1", identifier(link)?));
        }
        let sql = format!("SELECT {} FROM {} WHERE {}", select.join(", "), identifier(table)?, conditions.join(" OR "));
        on_pool!(self, pool => {
            let rows = sqlx::query(AssertSqlSafe(sql)).bind(value).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let mut values = Vec::with_capacity(columns.len());
                for i in 0..columns.len() {
                    values.push(row.try_get::<Option<String>, _>(i)?);
                }
                out.push(values);
            }
            Ok(out)
        })
    }

    pub async fn insert_erasure_receipt(&self, receipt: &ErasureReceiptRow) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO erasure_receipts (id, requested_at, completed_at, verified_at, removed, kept, leftovers) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&receipt.id)
            .bind(receipt.requested_at)
            .bind(receipt.completed_at)
            .bind(receipt.verified_at)
            .bind(&receipt.removed)
            .bind(&receipt.kept)
            .bind(&receipt.leftovers)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Completes a receipt: the counts of this pass are added to those of an earlier,
    /// interrupted one by the caller, which read it first.
    pub async fn complete_erasure_receipt(&self, receipt: &ErasureReceiptRow) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE erasure_receipts SET completed_at = $1, verified_at = $2, removed = $3, kept = $4, leftovers = $5 WHERE id = $6")
                .bind(receipt.completed_at)
                .bind(receipt.verified_at)
                .bind(&receipt.removed)
                .bind(&receipt.kept)
                .bind(&receipt.leftovers)
                .bind(&receipt.id)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    pub async fn erasure_receipt(&self, id: &str) -> Result<Option<ErasureReceiptRow>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query("SELECT id, requested_at, completed_at, verified_at, removed, kept, leftovers FROM erasure_receipts WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?;
            match row {
                Some(row) => Ok(Some(ErasureReceiptRow {
                    id: row.try_get("id")?,
                    requested_at: row.try_get("requested_at")?,
                    completed_at: row.try_get("completed_at")?,
                    verified_at: row.try_get("verified_at")?,
                    removed: row.try_get("removed")?,
                    kept: row.try_get("kept")?,
                    leftovers: row.try_get("leftovers")?,
                })),
                None => Ok(None),
            }
        })
    }

    pub async fn insert_legal_hold(&self, hold: &LegalHoldRow) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO legal_holds (id, account_id, category, reason, placed_by, placed_at, until_at, lifted_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&hold.id)
            .bind(&hold.account_id)
            .bind(&hold.category)
            .bind(&hold.reason)
            .bind(&hold.placed_by)
            .bind(hold.placed_at)
            .bind(hold.until_at)
            .bind(hold.lifted_at)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Ends a hold now; false when there is no such hold in force.
    pub async fn lift_legal_hold(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("UPDATE legal_holds SET lifted_at = $1 WHERE id = $2 AND lifted_at IS NULL AND until_at > $1")
                .bind(now)
                .bind(id)
                .execute(pool)
                .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// The holds in force at `now`, newest first.
    pub async fn legal_holds_in_force(&self, now: i64) -> Result<Vec<LegalHoldRow>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT id, account_id, category, reason, placed_by, placed_at, until_at, lifted_at FROM legal_holds \
                 WHERE lifted_at IS NULL AND until_at > $1 ORDER BY placed_at DESC, id",
            )
            .bind(now)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push(LegalHoldRow {
                    id: row.try_get("id")?,
                    account_id: row.try_get("account_id")?,
                    category: row.try_get("category")?,
                    reason: row.try_get("reason")?,
                    placed_by: row.try_get("placed_by")?,
                    placed_at: row.try_get("placed_at")?,
                    until_at: row.try_get("until_at")?,
                    lifted_at: row.try_get("lifted_at")?,
                });
            }
            Ok(out)
        })
    }
}

/// `col1 LIKE … OR col2 LIKE …` with the needle as `$1`, matched literally (the wildcards `%` and
/// `_` in it are escaped).
fn mentions(columns: &[&str]) -> Result<String, StoreError> {
    let mut parts = Vec::with_capacity(columns.len());
    for column in columns {
        parts.push(format!(
            "CAST({} AS TEXT) LIKE '%' || REPLACE(REPLACE(REPLACE($1, '\\', '\\\\'), '%', '\\%'), '_', '\\_') || '%' ESCAPE '\\'",
            identifier(column)?
        ));
    }
    Ok(parts.join(" OR "))
}
