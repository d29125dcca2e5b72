//! Storage for service tracking: page views (written in groups to an unindexed inbox, then moved),
//! visits derived from them, daily rollups and the daily visitor sketches. Every report belongs
//! to the day its visit started, so the rollups and a recount from the raw rows agree.

use sqlx::{AssertSqlSafe, Row};

use crate::{Engine, Store, StoreError, on_pool};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub site: String,
    pub visitor: i64,
    pub ts: i64,
    pub received_at: i64,
    pub path: String,
    pub source: String,
    pub utm_source: String,
    pub utm_medium: String,
    pub utm_campaign: String,
    pub browser: String,
    pub browser_version: String,
    pub os: String,
    pub os_version: String,
    pub isp: String,
    pub ip: Option<String>,
    pub ip_prefix: String,
}

/// A visit (an analytics session): one visitor's page views with no gap over 30 minutes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitRow {
    pub site: String,
    pub visitor: i64,
    pub started_at: i64,
    pub ended_at: i64,
    pub day: i64,
    pub landing: String,
    pub exit_page: String,
    pub source: String,
    pub utm_source: String,
    pub utm_medium: String,
    pub utm_campaign: String,
    pub browser: String,
    pub os: String,
    pub isp: String,
    pub pageviews: i64,
    pub duration_ms: i64,
    /// The pages viewed and how often, ordered by path.
    pub pages: Vec<(String, i64)>,
}

/// The report dimensions and the visit column each reads. `Page` is the pages viewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dimension {
    Page,
    Landing,
    Exit,
    Source,
    UtmSource,
    UtmMedium,
    UtmCampaign,
    Browser,
    Os,
    Isp,
}

impl Dimension {
    pub const ALL: [Dimension; 10] = [
        Dimension::Page,
        Dimension::Landing,
        Dimension::Exit,
        Dimension::Source,
        Dimension::UtmSource,
        Dimension::UtmMedium,
        Dimension::UtmCampaign,
        Dimension::Browser,
        Dimension::Os,
        Dimension::Isp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Dimension::Page => "page",
            Dimension::Landing => "landing",
            Dimension::Exit => "exit",
            Dimension::Source => "source",
            Dimension::UtmSource => "utm_source",
            Dimension::UtmMedium => "utm_medium",
            Dimension::UtmCampaign => "utm_campaign",
            Dimension::Browser => "browser",
            Dimension::Os => "os",
            Dimension::Isp => "isp",
        }
    }

    pub fn parse(name: &str) -> Option<Dimension> {
        Dimension::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The visit's value for this dimension; `None` for pages, of which a visit has several.
    pub fn of_visit(self, visit: &VisitRow) -> Option<&str> {
        Some(match self {
            Dimension::Page => return None,
            Dimension::Landing => &visit.landing,
            Dimension::Exit => &visit.exit_page,
            Dimension::Source => &visit.source,
            Dimension::UtmSource => &visit.utm_source,
            Dimension::UtmMedium => &visit.utm_medium,
            Dimension::UtmCampaign => &visit.utm_campaign,
            Dimension::Browser => &visit.browser,
            Dimension::Os => &visit.os,
            Dimension::Isp => &visit.isp,
        })
    }

    /// The visit column; `None` for pages, which are listed in the `pages` column.
    fn visit_column(self) -> Option<&'static str> {
        match self {
            Dimension::Page => None,
            Dimension::Landing => Some("landing"),
            Dimension::Exit => Some("exit_page"),
            other => Some(other.name()),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub sessions: i64,
    pub pageviews: i64,
    pub bounces: i64,
    pub duration_ms: i64,
}

impl std::ops::AddAssign for Totals {
    fn add_assign(&mut self, o: Totals) {
        self.sessions += o.sessions;
        self.pageviews += o.pageviews;
        self.bounces += o.bounces;
        self.duration_ms += o.duration_ms;
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayRow {
    pub day: i64,
    pub totals: Totals,
    /// Exact distinct visitors (filtered queries) or the sketch's count (rollups).
    pub visitors: i64,
    pub sketch: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakdownRow {
    pub dimension: Dimension,
    pub value: String,
    pub totals: Totals,
}

const EVENT_COLUMNS: &str = "site, visitor, ts, received_at, path, source, utm_source, utm_medium, utm_campaign, browser, browser_version, os, os_version, isp, ip, ip_prefix";
/// Bind parameters per page view in SQLite's row-wise insert; 256 rows (the largest chunk) stay
/// under its limit.
const EVENT_PARAMS: usize = 16;
/// Where page views are: just received, and moved for the visit pass. Retention covers both.
const EVENT_TABLES: [&str; 2] = ["analytics_inbox", "analytics_events"];
const VISIT_COLUMNS: &str = "site, visitor, started_at, ended_at, day, landing, exit_page, source, utm_source, utm_medium, utm_campaign, browser, os, isp, pageviews, duration_ms, pages";

/// A visit's pages as stored: "path views" pairs separated by spaces. URL paths are
/// percent-encoded and hold no space, and each starts with `/`, unlike a count.
fn encode_pages(pages: &[(String, i64)]) -> String {
    let mut out = String::new();
    for (path, views) in pages {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(path);
        out.push(' ');
        out.push_str(&views.to_string());
    }
    out
}

fn decode_pages(text: &str) -> Vec<(String, i64)> {
    let mut parts = text.split(' ').filter(|p| !p.is_empty());
    let mut pages = Vec::new();
    while let (Some(path), Some(views)) = (parts.next(), parts.next()) {
        pages.push((path.to_string(), views.parse().unwrap_or(0)));
    }
    pages
}

/// The next item of a row stream (sqlx's `fetch`), without pulling in a futures toolkit.
async fn next_row<S: futures_core::Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *stream).poll_next(cx)).await
}
/// Splits rows into chunks of 256, 128, … 1 rows. Groups come in every size; the statement for
/// each size must be prepared (parsing thousands of placeholders) unless cached, so a handful of
/// sizes keeps every insert a cache hit.
fn power_of_two_chunks<T>(mut rows: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if rows.is_empty() {
            return None;
        }
        let n = 1usize << rows.len().min(256).ilog2();
        let (chunk, rest) = rows.split_at(n);
        rows = rest;
        Some(chunk)
    })
}

/// `rows` tuples of `per_row` parameters. SQLite gets anonymous `?`: it resolves each numbered
/// `$N` by a linear scan of the statement's parameter names, which made a 6,400-parameter insert
/// spend most of its time looking names up.
fn placeholders(engine: Engine, rows: usize, per_row: usize) -> String {
    let tuple = |r: usize| match engine {
        Engine::Sqlite => format!("({})", vec!["?"; per_row].join(", ")),
        Engine::Postgres => format!("({})", (1..=per_row).map(|c| format!("${}", r * per_row + c)).collect::<Vec<_>>().join(", ")),
    };
    (0..rows).map(tuple).collect::<Vec<_>>().join(", ")
}

macro_rules! bind_event {
    ($q:expr, $e:expr) => {{
        let e = $e;
        $q.bind(&e.site)
            .bind(e.visitor)
            .bind(e.ts)
            .bind(e.received_at)
            .bind(&e.path)
            .bind(&e.source)
            .bind(&e.utm_source)
            .bind(&e.utm_medium)
            .bind(&e.utm_campaign)
            .bind(&e.browser)
            .bind(&e.browser_version)
            .bind(&e.os)
            .bind(&e.os_version)
            .bind(&e.isp)
            .bind(&e.ip)
            .bind(&e.ip_prefix)
    }};
}

macro_rules! totals_from_row {
    ($row:expr) => {{
        let row = $row;
        Totals {
            sessions: row.try_get("sessions")?,
            pageviews: row.try_get("pageviews")?,
            bounces: row.try_get("bounces")?,
            duration_ms: row.try_get("duration_ms")?,
        }
    }};
}

macro_rules! event_from_row {
    ($row:expr) => {{
        let row = $row;
        EventRow {
            site: row.try_get("site")?,
            visitor: row.try_get("visitor")?,
            ts: row.try_get("ts")?,
            received_at: row.try_get("received_at")?,
            path: row.try_get("path")?,
            source: row.try_get("source")?,
            utm_source: row.try_get("utm_source")?,
            utm_medium: row.try_get("utm_medium")?,
            utm_campaign: row.try_get("utm_campaign")?,
            browser: row.try_get("browser")?,
            browser_version: row.try_get("browser_version")?,
            os: row.try_get("os")?,
            os_version: row.try_get("os_version")?,
            isp: row.try_get("isp")?,
            ip: row.try_get("ip")?,
            ip_prefix: row.try_get("ip_prefix")?,
        }
    }};
}

macro_rules! insert_visits {
    ($engine:expr, $conn:expr, $visits:expr) => {{
        const PER_ROW: usize = 17;
        for chunk in power_of_two_chunks($visits) {
            let sql = format!("INSERT INTO analytics_sessions ({VISIT_COLUMNS}) VALUES {}", placeholders($engine, chunk.len(), PER_ROW));
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for v in chunk {
                query = query
                    .bind(&v.site)
                    .bind(v.visitor)
                    .bind(v.started_at)
                    .bind(v.ended_at)
                    .bind(v.day)
                    .bind(&v.landing)
                    .bind(&v.exit_page)
                    .bind(&v.source)
                    .bind(&v.utm_source)
                    .bind(&v.utm_medium)
                    .bind(&v.utm_campaign)
                    .bind(&v.browser)
                    .bind(&v.os)
                    .bind(&v.isp)
                    .bind(v.pageviews)
                    .bind(v.duration_ms)
                    .bind(encode_pages(&v.pages));
            }
            query.execute($conn).await?;
        }
    }};
}

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

/// `n` numbered parameters from `$first`, for an `IN (...)` list. (Numbered on both engines:
/// SQLite would number anonymous `?` from 1 regardless of the `$N` before them.)
fn list(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

macro_rules! visit_from_row {
    ($row:expr) => {{
        let row = $row;
        VisitRow {
            site: row.try_get("site")?,
            visitor: row.try_get("visitor")?,
            started_at: row.try_get("started_at")?,
            ended_at: row.try_get("ended_at")?,
            day: row.try_get("day")?,
            landing: row.try_get("landing")?,
            exit_page: row.try_get("exit_page")?,
            source: row.try_get("source")?,
            utm_source: row.try_get("utm_source")?,
            utm_medium: row.try_get("utm_medium")?,
            utm_campaign: row.try_get("utm_campaign")?,
            browser: row.try_get("browser")?,
            os: row.try_get("os")?,
            isp: row.try_get("isp")?,
            pageviews: row.try_get("pageviews")?,
            duration_ms: row.try_get("duration_ms")?,
            pages: decode_pages(row.try_get::<&str, _>("pages")?),
        }
    }};
}

macro_rules! events_from_rows {
    ($rows:expr) => {{
        let rows = $rows;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(event_from_row!(row));
        }
        Ok(out)
    }};
}

/// Binds `$1` site, `$2`/`$3` a range, then `$4…` each of `values` (filter values, visitor ids).
macro_rules! bind_range_and {
    ($sql:expr, $site:expr, $from:expr, $to:expr, $values:expr) => {{
        let mut query = sqlx::query(AssertSqlSafe($sql)).bind($site).bind($from).bind($to);
        for value in $values {
            query = query.bind(value);
        }
        query
    }};
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

    pub async fn delete_visits(&self, site: &str, from: i64, to: i64) -> Result<u64, StoreError> {
        on_pool!(self, pool => {
            Ok(sqlx::query("DELETE FROM analytics_sessions WHERE site = $1 AND started_at >= $2 AND started_at < $3")
                .bind(site)
                .bind(from)
                .bind(to)
                .execute(pool)
                .await?
                .rows_affected())
        })
    }

    pub async fn insert_visits(&self, visits: &[VisitRow]) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            insert_visits!(self.engine(), &mut *tx, visits);
            tx.commit().await?;
            Ok(())
        })
    }

    /// The visits of `visitors` that touch `[lo, hi]`: (visitor, start, end).
    pub async fn visits_touching(&self, site: &str, visitors: &[i64], lo: i64, hi: i64) -> Result<Vec<(i64, i64, i64)>, StoreError> {
        let sql = format!(
            "SELECT visitor, started_at, ended_at FROM analytics_sessions WHERE site = $1 AND started_at <= $3 AND ended_at >= $2 AND visitor IN ({})",
            list(4, visitors.len())
        );
        on_pool!(self, pool => {
            let rows = bind_range_and!(sql, site, lo, hi, visitors.iter().copied()).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push((row.try_get("visitor")?, row.try_get("started_at")?, row.try_get("ended_at")?));
            }
            Ok(out)
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

    /// For each (visitor, from, to), replaces the visitor's visits starting in `[from, to]`; then
    /// inserts `visits`. One transaction; returns the days whose visits changed.
    pub async fn replace_visits_many(&self, site: &str, spans: &[(i64, i64, i64)], visits: &[VisitRow]) -> Result<Vec<i64>, StoreError> {
        let _turn = self.background_write_turn().await;
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut days = Vec::new();
            for (visitor, from, to) in spans {
                let old = sqlx::query(
                    "DELETE FROM analytics_sessions WHERE site = $1 AND visitor = $2 AND started_at >= $3 AND started_at <= $4 RETURNING day",
                )
                .bind(site)
                .bind(visitor)
                .bind(from)
                .bind(to)
                .fetch_all(&mut *tx)
                .await?;
                for row in &old {
                    days.push(row.try_get::<i64, _>("day")?);
                }
            }
            insert_visits!(self.engine(), &mut *tx, visits);
            tx.commit().await?;
            days.extend(visits.iter().map(|v| v.day));
            days.sort_unstable();
            days.dedup();
            Ok(days)
        })
    }

    /// Replaces a day's rollups: its totals and every breakdown row, in one transaction.
    pub async fn replace_rollup(&self, site: &str, day: i64, totals: Totals, rows: &[BreakdownRow]) -> Result<(), StoreError> {
        const PER_ROW: usize = 8;
        let total = BreakdownRow { dimension: Dimension::Page, value: String::new(), totals };
        let all: Vec<(&str, &BreakdownRow)> =
            std::iter::once(("", &total)).filter(|_| totals.sessions > 0).chain(rows.iter().map(|r| (r.dimension.name(), r))).collect();
        let _turn = self.background_write_turn().await;
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM analytics_rollup WHERE site = $1 AND day = $2").bind(site).bind(day).execute(&mut *tx).await?;
            for chunk in power_of_two_chunks(&all) {
                let sql = format!(
                    "INSERT INTO analytics_rollup (site, day, dimension, value, sessions, pageviews, bounces, duration_ms) VALUES {}",
                    placeholders(self.engine(), chunk.len(), PER_ROW)
                );
                let mut query = sqlx::query(AssertSqlSafe(sql));
                for (dimension, row) in chunk {
                    query = query
                        .bind(site)
                        .bind(day)
                        .bind(*dimension)
                        .bind(&row.value)
                        .bind(row.totals.sessions)
                        .bind(row.totals.pageviews)
                        .bind(row.totals.bounces)
                        .bind(row.totals.duration_ms);
                }
                query.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    pub async fn put_sketch(&self, site: &str, day: i64, visitors: i64, sketch: &str) -> Result<(), StoreError> {
        let _turn = self.background_write_turn().await;
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO analytics_visitor_sketches (site, day, visitors, sketch) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (site, day) DO UPDATE SET visitors = excluded.visitors, sketch = excluded.sketch",
            )
            .bind(site)
            .bind(day)
            .bind(visitors)
            .bind(sketch)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Daily totals from the rollups, with each day's visitor count and sketch.
    pub async fn rollup_days(&self, site: &str, from_day: i64, to_day: i64) -> Result<Vec<DayRow>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT r.day, r.sessions, r.pageviews, r.bounces, r.duration_ms, v.visitors, v.sketch FROM analytics_rollup r \
                 LEFT JOIN analytics_visitor_sketches v ON v.site = r.site AND v.day = r.day \
                 WHERE r.site = $1 AND r.dimension = '' AND r.day >= $2 AND r.day <= $3 ORDER BY r.day",
            )
            .bind(site)
            .bind(from_day)
            .bind(to_day)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let visitors: Option<i64> = row.try_get("visitors")?;
                out.push(DayRow { day: row.try_get("day")?, totals: totals_from_row!(row), visitors: visitors.unwrap_or(0), sketch: row.try_get("sketch")? });
            }
            Ok(out)
        })
    }

    /// Every dimension's values summed over the days, from the rollups.
    pub async fn rollup_breakdowns(&self, site: &str, from_day: i64, to_day: i64) -> Result<Vec<BreakdownRow>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT dimension, value, CAST(SUM(sessions) AS BIGINT) AS sessions, CAST(SUM(pageviews) AS BIGINT) AS pageviews, \
                 CAST(SUM(bounces) AS BIGINT) AS bounces, CAST(SUM(duration_ms) AS BIGINT) AS duration_ms FROM analytics_rollup \
                 WHERE site = $1 AND day >= $2 AND day <= $3 AND dimension <> '' GROUP BY dimension, value",
            )
            .bind(site)
            .bind(from_day)
            .bind(to_day)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let name: String = row.try_get("dimension")?;
                let Some(dimension) = Dimension::parse(&name) else { continue };
                out.push(BreakdownRow { dimension, value: row.try_get("value")?, totals: totals_from_row!(row) });
            }
            Ok(out)
        })
    }

    /// Calls `f` with every visit of a site that started in `[from_day, to_day]` and matches
    /// every filter, streaming (a range may hold millions). A page filter means the visit viewed
    /// the page.
    pub async fn each_visit(
        &self,
        site: &str,
        from_day: i64,
        to_day: i64,
        filters: &[(Dimension, String)],
        mut f: impl FnMut(VisitRow) + Send,
    ) -> Result<(), StoreError> {
        let mut conditions = vec!["site = $1".to_string(), "day >= $2".into(), "day <= $3".into()];
        for (i, (dimension, _)) in filters.iter().enumerate() {
            let n = i + 4;
            conditions.push(match (dimension.visit_column(), self.engine()) {
                (Some(column), _) => format!("{column} = ${n}"),
                // A quick narrowing only; the decoded pages decide below.
                (None, Engine::Sqlite) => format!("instr(' ' || pages, ' ' || ${n} || ' ') > 0"),
                (None, Engine::Postgres) => format!("strpos(' ' || pages, ' ' || ${n} || ' ') > 0"),
            });
        }
        let sql = format!("SELECT {VISIT_COLUMNS} FROM analytics_sessions WHERE {}", conditions.join(" AND "));
        let pages_wanted: Vec<&str> = filters.iter().filter(|(d, _)| *d == Dimension::Page).map(|(_, v)| v.as_str()).collect();
        on_pool!(self, pool => {
            let query = bind_range_and!(sql, site, from_day, to_day, filters.iter().map(|(_, v)| v));
            let mut rows = query.fetch(pool);
            while let Some(row) = next_row(&mut rows).await {
                let visit = visit_from_row!(row?);
                if pages_wanted.iter().all(|want| visit.pages.iter().any(|(path, _)| path == want)) {
                    f(visit);
                }
            }
            Ok(())
        })
    }

    pub async fn analytics_state(&self, name: &str) -> Result<Option<i64>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query("SELECT value FROM analytics_state WHERE name = $1").bind(name).fetch_optional(pool).await?;
            Ok(match row { Some(row) => Some(row.try_get("value")?), None => None })
        })
    }

    pub async fn set_analytics_state(&self, name: &str, value: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("INSERT INTO analytics_state (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value")
                .bind(name)
                .bind(value)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// The salt of `day`: the stored one, or `candidate` when this call is the first.
    pub async fn daily_salt(&self, day: i64, candidate: &str) -> Result<String, StoreError> {
        on_pool!(self, pool => {
            sqlx::query("INSERT INTO analytics_salts (day, salt) VALUES ($1, $2) ON CONFLICT (day) DO NOTHING")
                .bind(day)
                .bind(candidate)
                .execute(pool)
                .await?;
            Ok(sqlx::query("SELECT salt FROM analytics_salts WHERE day = $1").bind(day).fetch_one(pool).await?.try_get("salt")?)
        })
    }

    /// Destroys the salts of days before `day`, so those days' visitor ids can never be
    /// recomputed or linked.
    pub async fn destroy_salts_before(&self, day: i64) -> Result<u64, StoreError> {
        on_pool!(self, pool => Ok(sqlx::query("DELETE FROM analytics_salts WHERE day < $1").bind(day).execute(pool).await?.rows_affected()))
    }

    pub async fn count_dropped(&self, site: &str, day: i64, reason: &str, events: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO analytics_dropped (site, day, reason, events) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (site, day, reason) DO UPDATE SET events = analytics_dropped.events + excluded.events",
            )
            .bind(site)
            .bind(day)
            .bind(reason)
            .bind(events)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    pub async fn dropped(&self, site: &str, from_day: i64, to_day: i64) -> Result<Vec<(String, i64)>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT reason, CAST(SUM(events) AS BIGINT) AS events FROM analytics_dropped WHERE site = $1 AND day >= $2 AND day <= $3 \
                 GROUP BY reason ORDER BY reason",
            )
            .bind(site)
            .bind(from_day)
            .bind(to_day)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push((row.try_get("reason")?, row.try_get("events")?));
            }
            Ok(out)
        })
    }

    /// Retention of `tracking.ip_address`: the full address of page views before `before` is
    /// removed; the truncated prefix stored beside it from the start remains.
    pub async fn truncate_event_ips(&self, before: i64) -> Result<u64, StoreError> {
        on_pool!(self, pool => {
            let mut cleared = 0;
            for table in EVENT_TABLES {
                cleared += sqlx::query(AssertSqlSafe(format!("UPDATE {table} SET ip = NULL WHERE ts < $1 AND ip IS NOT NULL")))
                    .bind(before)
                    .execute(pool)
                    .await?
                    .rows_affected();
            }
            Ok(cleared)
        })
    }

    /// Retention of the raw tracking data: page views and visits before `before` are deleted;
    /// the daily rollups (counts with no visitor) remain.
    pub async fn purge_tracking_before(&self, before: i64) -> Result<u64, StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut events = 0;
            for table in EVENT_TABLES {
                events += sqlx::query(AssertSqlSafe(format!("DELETE FROM {table} WHERE ts < $1"))).bind(before).execute(&mut *tx).await?.rows_affected();
            }
            let visits = sqlx::query("DELETE FROM analytics_sessions WHERE started_at < $1").bind(before).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Ok(events + visits)
        })
    }

    /// Retention of `tracking.visitor_id` in the sketches: a day before `before_day` keeps its
    /// visitor count but loses the sketch derived from visitor ids.
    pub async fn erase_sketches_before(&self, before_day: i64) -> Result<u64, StoreError> {
        on_pool!(self, pool => {
            Ok(sqlx::query("UPDATE analytics_visitor_sketches SET sketch = NULL WHERE day < $1 AND sketch IS NOT NULL")
                .bind(before_day)
                .execute(pool)
                .await?
                .rows_affected())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::power_of_two_chunks;

    #[test]
    fn inserts_use_a_handful_of_statement_sizes() {
        let rows: Vec<u32> = (0..1000).collect();
        let sizes: Vec<usize> = power_of_two_chunks(&rows).map(<[u32]>::len).collect();
        assert_eq!(sizes, [256, 256, 256, 128, 64, 32, 8]);
        assert_eq!(sizes.iter().sum::<usize>(), 1000);
        assert_eq!(power_of_two_chunks::<u32>(&[]).count(), 0);
    }
}
