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

// After the macros above, which the parts use.
mod events;
mod rollups;
mod state;
mod visits;

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
