//! Persistence of hash-chained logs: the audit log and the consent ledger share one row shape and
//! this one implementation. The chain itself (hashing, verification) lives in
//! `passme_core::chain`; this module appends rows, reads them in order and prunes old ones while
//! recording an anchor so that verification can start where pruning stopped.

use sqlx::Row;

use crate::{Store, StoreError, on_pool};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub subject: String,
    /// JSON object, never containing secrets.
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

/// Which entries to list: an exact actor, an action prefix (`staff.`), a time range; empty and
/// unbounded parts match everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFilter {
    pub actor: String,
    pub action_prefix: String,
    pub from_ms: i64,
    pub to_ms: i64,
}

impl Default for AuditFilter {
    fn default() -> Self {
        AuditFilter { actor: String::new(), action_prefix: String::new(), from_ms: 0, to_ms: i64::MAX }
    }
}

/// Which chained log. The table names are constants, never input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chain {
    Audit,
    Consent,
}

impl Chain {
    fn table(self) -> &'static str {
        match self {
            Chain::Audit => "audit_log",
            Chain::Consent => "consent_ledger",
        }
    }

    fn anchor_table(self) -> &'static str {
        match self {
            Chain::Audit => "audit_anchor",
            Chain::Consent => "consent_anchor",
        }
    }

    /// SQL for this chain's tables: `{t}` is the log, `{a}` the anchor.
    fn sql(self, template: &str) -> sqlx::AssertSqlSafe<String> {
        sqlx::AssertSqlSafe(template.replace("{t}", self.table()).replace("{a}", self.anchor_table()))
    }
}

/// The last entry removed by retention: verification expects the first remaining entry to follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditAnchor {
    pub seq: i64,
    pub hash: String,
}

macro_rules! audit_from_row {
    ($row:expr) => {{
        let row = $row;
        AuditRow {
            seq: row.try_get("seq")?,
            at: row.try_get("at")?,
            actor: row.try_get("actor")?,
            action: row.try_get("action")?,
            subject: row.try_get("subject")?,
            details: row.try_get("details")?,
            prev_hash: row.try_get("prev_hash")?,
            hash: row.try_get("hash")?,
        }
    }};
}

impl Store {
    /// The newest entry's sequence number and hash, falling back to the anchor, or `None` for an
    /// empty log.
    pub async fn chain_head(&self, chain: Chain) -> Result<Option<AuditAnchor>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query(chain.sql("SELECT seq, hash FROM {t} ORDER BY seq DESC LIMIT 1")).fetch_optional(pool).await?;
            if let Some(row) = row {
                return Ok(Some(AuditAnchor { seq: row.try_get("seq")?, hash: row.try_get("hash")? }));
            }
        });
        self.chain_anchor(chain).await
    }

    pub async fn chain_anchor(&self, chain: Chain) -> Result<Option<AuditAnchor>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query(chain.sql("SELECT seq, hash FROM {a} WHERE id = 1")).fetch_optional(pool).await?;
            match row {
                Some(row) => Ok(Some(AuditAnchor { seq: row.try_get("seq")?, hash: row.try_get("hash")? })),
                None => Ok(None),
            }
        })
    }

    /// Appends one entry. `Conflict` means another writer took this sequence number first; the
    /// caller recomputes against the new head and tries again.
    pub async fn chain_insert(&self, chain: Chain, row: &AuditRow) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(chain.sql("INSERT INTO {t} (seq, at, actor, action, subject, details, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"))
                .bind(row.seq)
                .bind(row.at)
                .bind(&row.actor)
                .bind(&row.action)
                .bind(&row.subject)
                .bind(&row.details)
                .bind(&row.prev_hash)
                .bind(&row.hash)
                .execute(pool)
                .await
                .map_err(crate::error::conflict_or)?;
            Ok(())
        })
    }

    /// Entries with a given subject, in order (for example one visitor's consent history).
    pub async fn chain_entries_for(&self, chain: Chain, subject: &str) -> Result<Vec<AuditRow>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(chain.sql("SELECT seq, at, actor, action, subject, details, prev_hash, hash FROM {t} WHERE subject = $1 ORDER BY seq"))
                .bind(subject)
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(audit_from_row!(row));
            }
            Ok(out)
        })
    }

    /// Up to `limit` entries with `seq > after`, in order.
    pub async fn chain_entries_after(&self, chain: Chain, after: i64, limit: i64) -> Result<Vec<AuditRow>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(chain.sql("SELECT seq, at, actor, action, subject, details, prev_hash, hash FROM {t} WHERE seq > $1 ORDER BY seq LIMIT $2"))
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(audit_from_row!(row));
            }
            Ok(out)
        })
    }

    /// The newest entries older than `before_seq` that match `filter`, at most `limit`.
    pub async fn chain_search(&self, chain: Chain, filter: &AuditFilter, before_seq: i64, limit: i64) -> Result<Vec<AuditRow>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(chain.sql(
                "SELECT seq, at, actor, action, subject, details, prev_hash, hash FROM {t} \
                 WHERE ($1 = '' OR actor = $1) AND ($2 = '' OR substr(action, 1, length($2)) = $2) AND at >= $3 AND at < $4 AND seq < $5 \
                 ORDER BY seq DESC LIMIT $6",
            ))
            .bind(&filter.actor)
            .bind(&filter.action_prefix)
            .bind(filter.from_ms)
            .bind(filter.to_ms)
            .bind(before_seq)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(audit_from_row!(row));
            }
            Ok(out)
        })
    }

    /// Removes entries recorded before `before` and moves the anchor to the last one removed,
    /// in one transaction. Returns how many were removed.
    pub async fn chain_prune_before(&self, chain: Chain, before: i64) -> Result<u64, StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let last = sqlx::query(chain.sql("SELECT seq, hash FROM {t} WHERE seq = (SELECT MAX(seq) FROM {t} WHERE at < $1)"))
                .bind(before)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(last) = last else {
                return Ok(0);
            };
            let seq: i64 = last.try_get("seq")?;
            let hash: String = last.try_get("hash")?;
            let deleted = sqlx::query(chain.sql("DELETE FROM {t} WHERE seq <= $1")).bind(seq).execute(&mut *tx).await?;
            sqlx::query(chain.sql("DELETE FROM {a} WHERE id = 1")).execute(&mut *tx).await?;
            sqlx::query(chain.sql("INSERT INTO {a} (id, seq, hash) VALUES (1, $1, $2)")).bind(seq).bind(&hash).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(deleted.rows_affected())
        })
    }
}
