//! The analytics dashboard (a staff page) and its JSON report, for analysts and admins. Both
//! show aggregates only (counts per day and per value), never a visitor or an address.

use std::collections::{BTreeMap, HashMap};

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use passme_analytics::Dimension;
use passme_analytics::report::{self, DayPoint, Report, day_of_date};
use passme_analytics::visits::day_of;
use passme_messages::Texts;

use crate::app::AppState;
use crate::context::PageContext;
use crate::error::WebError;
use crate::extract::{Analysts, AnalyticsRead, Caller, Roles, Staff};
use crate::routes::pages::{Chrome, page};

const DEFAULT_DAYS: i64 = 30;

/// Site, range (`from`/`to`, YYYY-MM-DD, UTC, both included) and one filter per dimension.
fn parse_query(state: &AppState, params: &HashMap<String, String>) -> Result<report::Query, WebError> {
    let today = day_of(state.clock.now_ms());
    let day = |key: &str, default: i64| match params.get(key).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => day_of_date(v).ok_or_else(|| WebError::bad_request("date_invalid").with_detail(key.to_string())),
    };
    let to_day = day("to", today)?;
    let from_day = day("from", to_day - (DEFAULT_DAYS - 1))?;
    let site = params.get("site").cloned().unwrap_or_else(|| "passme".into());
    if !state.analytics.sites.iter().any(|s| s.id == site) {
        return Err(WebError::new(StatusCode::NOT_FOUND, "unknown_site"));
    }
    let mut filters = Vec::new();
    for (key, value) in params {
        match Dimension::parse(key) {
            Some(dimension) => filters.push((dimension, value.clone())),
            None if ["site", "from", "to", "lang", "done"].contains(&key.as_str()) => {}
            None => return Err(WebError::bad_request("query_invalid").with_detail(key.clone())),
        }
    }
    filters.sort();
    if to_day < from_day || to_day - from_day >= report::MAX_DAYS {
        return Err(WebError::bad_request("range_invalid"));
    }
    Ok(report::Query { site, from_day, to_day, filters })
}
/// Every report of the dashboard in one document: totals, the daily series and the top values
/// of each dimension, for the range and filters given.
#[utoipa::path(get, path = "/api/v1/analytics/report", operation_id = "analytics_report", tag = "analytics", security(("bearer" = []), ("session" = [])),
    params(
        ("site" = Option<String>, Query, description = "Site id (default passme)"),
        ("from" = Option<String>, Query, format = Date, description = "First day, YYYY-MM-DD (default 29 days before to)"),
        ("to" = Option<String>, Query, format = Date, description = "Last day, YYYY-MM-DD (default today, UTC)"),
        ("page" = Option<String>, Query, description = "Only visits that viewed this page; likewise landing, exit, source, utm_source, utm_medium, utm_campaign, browser, os, isp"),
    ),
    responses(
        (status = 200, description = "The report", body = Report),
        (status = 400, description = "Bad date (`date_invalid`), range (`range_invalid`) or parameter (`query_invalid`)", body = crate::error::ErrorBody),
        (status = 401, description = "No valid token or session", body = crate::error::ErrorBody),
        (status = 403, description = "Not an analyst, or the token lacks analytics:read", body = crate::error::ErrorBody),
        (status = 404, description = "No such site (`unknown_site`)", body = crate::error::ErrorBody),
    ))]
pub async fn report(
    State(state): State<AppState>,
    caller: Caller<AnalyticsRead>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<axum::Json<Report>, WebError> {
    state.identity.staff.require(&caller.account_id, Analysts::ALLOWED).await?;
    let query = parse_query(&state, &params)?;
    Ok(axum::Json(report::report(&state.store, &query, report::TOP).await?))
}

struct Tile {
    label: &'static str,
    value: String,
}

struct Table {
    title: &'static str,
    /// The column of values: "Page", "Browser" (never the table's title again).
    column: &'static str,
    metric: &'static str,
    rows: Vec<(String, String, String)>,
}

#[derive(Template)]
#[template(path = "analytics.html")]
struct Dashboard {
    chrome: Chrome,
    site: String,
    from: String,
    to: String,
    /// (label, link that removes it).
    filters: Vec<(String, String)>,
    tiles: Vec<Tile>,
    chart: Chart,
    tables: Vec<Table>,
    dropped: String,
    attribution: &'static str,
    counted_from: &'static str,
}

/// A server-rendered line chart of visitors and page views per day, with axes, date ticks and
/// each day's numbers on hover and keyboard focus (no JavaScript).
struct Chart {
    visitors: String,
    pageviews: String,
    /// Y-axis ticks: (y, label).
    y_ticks: Vec<(f64, String)>,
    /// X-axis ticks: (x, date).
    x_ticks: Vec<(f64, String)>,
    days: Vec<ChartDay>,
    /// The same numbers as a table, for screen readers and without SVG.
    rows: Vec<(String, i64, i64)>,
}

struct ChartDay {
    x: f64,
    width: f64,
    /// Where the value label stands (kept inside the plot).
    label_x: f64,
    text: String,
}

const PLOT_LEFT: f64 = 48.0;
const PLOT_W: f64 = 700.0;
const PLOT_TOP: f64 = 12.0;
const PLOT_H: f64 = 180.0;

fn chart(t: Texts, series: &[DayPoint]) -> Chart {
    let max = series.iter().map(|p| p.summary.pageviews.max(p.summary.visitors)).max().unwrap_or(0).max(1);
    let step = if series.len() > 1 { PLOT_W / (series.len() - 1) as f64 } else { 0.0 };
    let x = |i: usize| PLOT_LEFT + i as f64 * step;
    let y = |v: i64| PLOT_TOP + PLOT_H - v as f64 / max as f64 * PLOT_H;
    let points = |value: fn(&DayPoint) -> i64| {
        series.iter().enumerate().map(|(i, p)| format!("{:.1},{:.1}", x(i), y(value(p)))).collect::<Vec<_>>().join(" ")
    };
    let ticks = 6.min(series.len());
    let x_ticks = (0..ticks)
        .map(|k| {
            let i = if ticks > 1 { k * (series.len() - 1) / (ticks - 1) } else { 0 };
            (x(i), series[i].date.clone())
        })
        .collect();
    let days = series
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let width = step.max(8.0);
            ChartDay {
                x: x(i) - width / 2.0,
                width,
                label_x: x(i).clamp(PLOT_LEFT + 60.0, PLOT_LEFT + PLOT_W - 60.0),
                text: t.analytics_chart_day(&p.date, p.summary.visitors, p.summary.pageviews),
            }
        })
        .collect();
    Chart {
        visitors: points(|p| p.summary.visitors),
        pageviews: points(|p| p.summary.pageviews),
        y_ticks: [0, max / 2, max].into_iter().map(|v| (y(v), v.to_string())).collect(),
        x_ticks,
        days,
        rows: series.iter().map(|p| (p.date.clone(), p.summary.visitors, p.summary.pageviews)).collect(),
    }
}

/// A dimension's title, the name of its column, and what an empty value means in it.
fn dimension_texts(t: Texts, dimension: Dimension) -> (&'static str, &'static str, &'static str) {
    match dimension {
        Dimension::Page => (t.analytics_pages(), t.analytics_page(), t.analytics_none()),
        Dimension::Landing => (t.analytics_landing_pages(), t.analytics_page(), t.analytics_none()),
        Dimension::Exit => (t.analytics_exit_pages(), t.analytics_page(), t.analytics_none()),
        Dimension::Source => (t.analytics_sources(), t.analytics_source(), t.analytics_direct()),
        Dimension::UtmSource => ("utm_source", t.analytics_value(), t.analytics_none()),
        Dimension::UtmMedium => ("utm_medium", t.analytics_value(), t.analytics_none()),
        Dimension::UtmCampaign => ("utm_campaign", t.analytics_value(), t.analytics_none()),
        Dimension::Browser => (t.analytics_browsers(), t.analytics_browser(), t.analytics_unknown()),
        Dimension::Os => (t.analytics_systems(), t.analytics_system(), t.analytics_unknown()),
        Dimension::Isp => (t.analytics_isps(), t.analytics_isp(), t.analytics_unknown()),
    }
}

fn duration(ms: i64) -> String {
    let s = ms / 1000;
    format!("{}:{:02}", s / 60, s % 60)
}

fn link_with(params: &BTreeMap<String, String>, key: &str, value: Option<&str>) -> String {
    let mut params = params.clone();
    match value {
        Some(v) => params.insert(key.to_string(), v.to_string()),
        None => params.remove(key),
    };
    format!("/staff/analytics?{}", url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&params).finish())
}

/// The dashboard page: range picker, filters, the chart and every breakdown.
pub async fn dashboard(
    State(state): State<AppState>,
    ctx: PageContext,
    _: Staff<Analysts>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, WebError> {
    let (lang, t) = (ctx.lang, ctx.t);
    let query = parse_query(&state, &params)?;
    let report = report::report(&state.store, &query, report::TOP).await?;
    let mut kept: BTreeMap<String, String> = report.filters.clone();
    kept.insert("site".into(), report.site.clone());
    kept.insert("from".into(), report.from.clone());
    kept.insert("to".into(), report.to.clone());
    kept.insert("lang".into(), lang.code().into());
    let totals = &report.totals;
    let tiles = vec![
        Tile { label: t.analytics_visitors(), value: totals.visitors.to_string() },
        Tile { label: t.analytics_visits(), value: totals.sessions.to_string() },
        Tile { label: t.analytics_pageviews(), value: totals.pageviews.to_string() },
        Tile { label: t.analytics_bounce_rate(), value: format!("{:.0} %", totals.bounce_rate * 100.0) },
        Tile { label: t.analytics_duration(), value: duration(totals.avg_duration_ms) },
    ];
    let shown = |d: Dimension, value: &str| if value.is_empty() { dimension_texts(t, d).2.to_string() } else { value.to_string() };
    let tables = Dimension::ALL
        .into_iter()
        .map(|d| {
            let rows = report.breakdowns.get(d.name()).map(Vec::as_slice).unwrap_or_default();
            let (title, column, _) = dimension_texts(t, d);
            Table {
                title,
                column,
                metric: if d == Dimension::Page { t.analytics_pageviews() } else { t.analytics_visits() },
                rows: rows
                    .iter()
                    .map(|r| {
                        let n = if d == Dimension::Page { r.pageviews } else { r.sessions };
                        (shown(d, &r.value), link_with(&kept, d.name(), Some(&r.value)), n.to_string())
                    })
                    .collect(),
            }
        })
        .collect();
    let filters = report
        .filters
        .iter()
        .filter_map(|(k, v)| {
            let d = Dimension::parse(k)?;
            Some((format!("{}: {}", dimension_texts(t, d).0, shown(d, v)), link_with(&kept, k, None)))
        })
        .collect();
    let dropped: i64 = report.dropped.values().sum();
    let body = Dashboard {
        chrome: Chrome::new(&state, &ctx, t.analytics_heading(), true),
        site: report.site.clone(),
        from: report.from.clone(),
        to: report.to.clone(),
        filters,
        tiles,
        chart: chart(t, &report.series),
        tables,
        dropped: t.analytics_dropped(dropped),
        attribution: t.analytics_attribution(),
        counted_from: if report.counted_from == "rollups" { t.analytics_from_rollups() } else { t.analytics_from_visits() },
    };
    Ok(page(&ctx, &state, false, &body))
}
