//! The retention engine's storage side: one step of a rule (delete or change the rows of a table
//! that a condition selects) counted or applied in bounded batches, leaving alone the rows of a
//! person under a legal hold; and the reports of the runs.

use sqlx::{AssertSqlSafe, Row};

use crate::{Engine, Store, StoreError, on_pool};

/// One table's part of a retention rule. `condition` selects the rows with the cutoff as `$1`;
/// `change` is `None` to delete them, or the `SET` list that anonymises them (its condition must
/// then exclude rows already changed, or the batches would never end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionStep {
    pub table: &'static str,
    pub condition: &'static str,
    pub change: Option<&'static str>,
    /// The column naming the account the row belongs to, if any: rows of a person under a legal
    /// hold are left alone.
    pub account: Option<&'static str>,
    /// The indexed column (or expression) the condition ranges over. Batches are taken in its
    /// order, so each one walks the index from where the rows due begin: without it a batch may
    /// scan the table from the start past every row already anonymised, and a sweep of millions
    /// of rows turns quadratic.
    pub order: Option<&'static str>,
}

/// Stands in a step's `change` for a fresh negative random id per row, in the engine's dialect.
pub const RANDOM_ID: &str = "{random_id}";

impl Store {
    /// A negative random 63-bit value per row: SQLite's `random()`, PostgreSQL's `random()` scaled
    /// to 53 bits (its precision).
    fn random_id_sql(&self) -> &'static str {
        match self.engine() {
            Engine::Sqlite => "(-1 - (random() & 9223372036854775807))",
            Engine::Postgres => "(-1 - floor(random() * 9007199254740992)::bigint)",
        }
    }
}

impl RetentionStep {
    /// The step, with its batches taken in the order of `order`.
    pub const fn by(self, order: &'static str) -> RetentionStep {
        RetentionStep { order: Some(order), ..self }
    }
}

/// A run of the retention engine, as its report is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionRunRow {
    pub id: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub dry_run: bool,
    /// `job` or `cli`.
    pub source: String,
    /// JSON: one entry per rule.
    pub report: String,
}

impl RetentionStep {
    /// The `WHERE` clause: the condition, and no held person's rows (`$2` is now).
    fn selection(&self) -> String {
        match self.account {
            Some(column) => format!(
                "({}) AND ({column} IS NULL OR {column} NOT IN (SELECT account_id FROM legal_holds \
                 WHERE account_id IS NOT NULL AND lifted_at IS NULL AND until_at > $2))",
                self.condition
            ),
            None => format!("({}) AND $2 = $2", self.condition),
        }
    }
}

impl Store {
    /// How many rows the step would change now.
    pub async fn retention_count(&self, step: &RetentionStep, cutoff: i64, now: i64) -> Result<i64, StoreError> {
        let sql = format!("SELECT COUNT(*) AS n FROM {} WHERE {}", step.table, step.selection());
        on_pool!(self, pool => {
            let row = sqlx::query(AssertSqlSafe(sql)).bind(cutoff).bind(now).fetch_one(pool).await?;
            Ok(row.try_get("n")?)
        })
    }

    /// Applies the step to at most `batch` rows, in one statement; returns how many it changed.
    /// Callers repeat until fewer than `batch` change: every batch commits on its own, so a run
    /// killed anywhere leaves a consistent state and the next run goes on from there.
    pub async fn retention_apply(&self, step: &RetentionStep, cutoff: i64, now: i64, batch: i64) -> Result<u64, StoreError> {
        // The physical row id: SQLite's rowid, PostgreSQL's ctid.
        let key = match self.engine() {
            Engine::Sqlite => "rowid",
            Engine::Postgres => "ctid",
        };
        let order = step.order.map(|o| format!(" ORDER BY {o}")).unwrap_or_default();
        let chosen = format!("{key} IN (SELECT {key} FROM {} WHERE {}{order} LIMIT {batch})", step.table, step.selection());
        let sql = match step.change {
            None => format!("DELETE FROM {} WHERE {chosen}", step.table),
            Some(set) => format!("UPDATE {} SET {} WHERE {chosen}", step.table, set.replace(RANDOM_ID, self.random_id_sql())),
        };
        on_pool!(self, pool => {
            let r = sqlx::query(AssertSqlSafe(sql)).bind(cutoff).bind(now).execute(pool).await?;
            Ok(r.rows_affected())
        })
    }

    pub async fn insert_retention_run(&self, run: &RetentionRunRow) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("INSERT INTO retention_runs (id, started_at, finished_at, dry_run, source, report) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(&run.id)
                .bind(run.started_at)
                .bind(run.finished_at)
                .bind(i64::from(run.dry_run))
                .bind(&run.source)
                .bind(&run.report)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Records a run's progress (or its end, with `finished_at`).
    pub async fn update_retention_run(&self, id: &str, report: &str, finished_at: Option<i64>) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE retention_runs SET report = $1, finished_at = $2 WHERE id = $3")
                .bind(report)
                .bind(finished_at)
                .bind(id)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// The newest runs first.
    pub async fn retention_runs(&self, limit: i64) -> Result<Vec<RetentionRunRow>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query("SELECT id, started_at, finished_at, dry_run, source, report FROM retention_runs ORDER BY started_at DESC, id DESC LIMIT $1")
                .bind(limit)
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push(RetentionRunRow {
                    id: row.try_get("id")?,
                    started_at: row.try_get("started_at")?,
                    finished_at: row.try_get("finished_at")?,
                    dry_run: row.try_get::<i64, _>("dry_run")? != 0,
                    source: row.try_get("source")?,
                    report: row.try_get("report")?,
                });
            }
            Ok(out)
        })
    }
}
