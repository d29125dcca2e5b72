//! Page views: written in groups to the unindexed inbox, moved in slices to the indexed table,
//! read back per visitor for the visit pass.

// The row types, column lists and binding macros are shared by every part.
use super::*;

/// A group of up to 64 (what concurrent single-view requests make) is one statement of its exact
/// size, atomic on its own, which saves the round trips of an explicit transaction; larger groups
/// go in power-of-two chunks in one transaction.
async fn insert_events_sqlite(pool: &sqlx::SqlitePool, events: &[EventRow]) -> Result<(), StoreError> {
    const ONE_STATEMENT: usize = 64;
    let insert = |chunk: &[EventRow]| {
        let sql =
            format!("INSERT INTO analytics_inbox ({EVENT_COLUMNS}) VALUES {}", placeholders(Engine::Sqlite, chunk.len(), EVENT_PARAMS));
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for e in chunk {
            query = bind_event!(query, e);
        }
        query
    };
    if events.len() <= ONE_STATEMENT {
        insert(events).execute(pool).await?;
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    for chunk in power_of_two_chunks(events) {
        insert(chunk).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Any number of rows as one statement of one array per column: a single prepared statement,
/// whatever the group size, and no per-row parameters to parse.
async fn insert_events_postgres(pool: &sqlx::PgPool, events: &[EventRow]) -> Result<(), StoreError> {
    let text = |field: fn(&EventRow) -> &str| events.iter().map(field).collect::<Vec<&str>>();
    let number = |field: fn(&EventRow) -> i64| events.iter().map(field).collect::<Vec<i64>>();
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO analytics_inbox ({EVENT_COLUMNS}) SELECT * FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::int8[], \
         $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], \
         $14::text[], $15::text[], $16::text[])"
    )))
    .bind(text(|e| &e.site))
    .bind(number(|e| e.visitor))
    .bind(number(|e| e.ts))
    .bind(number(|e| e.received_at))
    .bind(text(|e| &e.path))
    .bind(text(|e| &e.source))
    .bind(text(|e| &e.utm_source))
    .bind(text(|e| &e.utm_medium))
    .bind(text(|e| &e.utm_campaign))
    .bind(text(|e| &e.browser))
    .bind(text(|e| &e.browser_version))
    .bind(text(|e| &e.os))
    .bind(text(|e| &e.os_version))
    .bind(text(|e| &e.isp))
    .bind(events.iter().map(|e| e.ip.as_deref()).collect::<Vec<Option<&str>>>())
    .bind(text(|e| &e.ip_prefix))
    .execute(pool)
    .await?;
    Ok(())
}

impl Store {
    /// Stores page views in the inbox, all or none, in one statement where the engine allows.
    pub async fn insert_events(&self, events: &[EventRow]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        match self {
            Store::Sqlite(sqlite) => {
                let _turn = self.write_turn().await;
                insert_events_sqlite(&sqlite.pool, events).await
            }
            Store::Postgres(pool) => insert_events_postgres(pool, events).await,
        }
    }

    /// Moves up to `limit` of the oldest page views from the inbox into `analytics_events`, in
    /// visitor order (so the visitor index is written page by page, not at random), in one
    /// transaction. Returns how many moved; less than `limit` means the inbox is empty.
    pub async fn move_inbox(&self, limit: usize) -> Result<u64, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        match self {
            // The INSERT comes first so the transaction is a write from its first statement (no
            // snapshot to upgrade); within it no other writer can add rows between the two.
            Store::Sqlite(sqlite) => {
                let last = "(SELECT MAX(rowid) FROM (SELECT rowid FROM analytics_inbox ORDER BY rowid LIMIT $1))";
                let _turn = self.background_write_turn().await;
                let mut tx = sqlite.pool.begin().await?;
                sqlx::query(AssertSqlSafe(format!(
                    "INSERT INTO analytics_events ({EVENT_COLUMNS}) SELECT {EVENT_COLUMNS} FROM analytics_inbox \
                     WHERE rowid <= {last} ORDER BY site, visitor, ts"
                )))
                .bind(limit)
                .execute(&mut *tx)
                .await?;
                let moved = sqlx::query(AssertSqlSafe(format!("DELETE FROM analytics_inbox WHERE rowid <= {last}")))
                    .bind(limit)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                Ok(moved)
            }
            // Exactly the rows the DELETE removed are inserted; rows committed meanwhile stay.
            Store::Postgres(pool) => Ok(sqlx::query(AssertSqlSafe(format!(
                "WITH moved AS (DELETE FROM analytics_inbox WHERE ctid = ANY(ARRAY(SELECT ctid FROM analytics_inbox LIMIT $1)) \
                 RETURNING {EVENT_COLUMNS}) INSERT INTO analytics_events ({EVENT_COLUMNS}) \
                 SELECT {EVENT_COLUMNS} FROM moved ORDER BY site, visitor, ts"
            )))
            .bind(limit)
            .execute(pool)
            .await?
            .rows_affected()),
        }
    }

    /// When the oldest page view still in the inbox was received.
    pub async fn inbox_oldest_received(&self) -> Result<Option<i64>, StoreError> {
        on_pool!(self, pool => {
            Ok(sqlx::query("SELECT MIN(received_at) AS oldest FROM analytics_inbox").fetch_one(pool).await?.try_get("oldest")?)
        })
    }

    /// Visitors with page views received in `(after, until]`, with the span of those views.
    pub async fn visitors_received(&self, after: i64, until: i64) -> Result<Vec<(String, i64, i64, i64)>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT site, visitor, MIN(ts) AS lo, MAX(ts) AS hi FROM analytics_events \
                 WHERE received_at > $1 AND received_at <= $2 GROUP BY site, visitor",
            )
            .bind(after)
            .bind(until)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push((row.try_get("site")?, row.try_get("visitor")?, row.try_get("lo")?, row.try_get("hi")?));
            }
            Ok(out)
        })
    }

    pub async fn visitor_events(&self, site: &str, visitor: i64, lo: i64, hi: i64) -> Result<Vec<EventRow>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT {EVENT_COLUMNS} FROM analytics_events WHERE site = $1 AND visitor = $2 AND ts >= $3 AND ts <= $4 ORDER BY ts, path"
            )))
            .bind(site)
            .bind(visitor)
            .bind(lo)
            .bind(hi)
            .fetch_all(pool)
            .await?;
            events_from_rows!(rows)
        })
    }

    /// Page views of a site in `[from, to)` of the visitors after `after`, ordered by visitor
    /// and time, at most `limit` (rebuilds).
    pub async fn site_events_page(
        &self,
        site: &str,
        from: i64,
        to: i64,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<EventRow>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT {EVENT_COLUMNS} FROM analytics_events WHERE site = $1 AND ts >= $2 AND ts < $3 AND visitor > $4 \
                 ORDER BY visitor, ts, path LIMIT $5"
            )))
            .bind(site)
            .bind(from)
            .bind(to)
            .bind(after.unwrap_or(i64::MIN))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(pool)
            .await?;
            events_from_rows!(rows)
        })
    }

    /// The page views of `visitors` in `[lo, hi]`, ordered by visitor and time.
    pub async fn events_of_visitors(&self, site: &str, visitors: &[i64], lo: i64, hi: i64) -> Result<Vec<EventRow>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM analytics_events WHERE site = $1 AND ts >= $2 AND ts <= $3 AND visitor IN ({}) ORDER BY visitor, ts, path",
            list(4, visitors.len())
        );
        on_pool!(self, pool => {
            let rows = bind_range_and!(sql, site, lo, hi, visitors.iter().copied()).fetch_all(pool).await?;
            events_from_rows!(rows)
        })
    }
}
