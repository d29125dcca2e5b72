//! The analytics dashboard (a staff page) and its JSON report, for analysts and admins. Both
//! show aggregates only (counts per day and per value), never a visitor or an address.

use std::collections::{BTreeMap, HashMap};

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use passme_analytics::report::{self, DayPoint, Report, day_of_date};
use passme_analytics::visits::day_of;
use passme_analytics::{Dimension, asn};
use passme_core::identity::api_tokens::SCOPE_ANALYTICS_READ;
use passme_core::identity::staff::{Role, Staff};
use passme_policy::Lang;

use crate::app::AppState;
use crate::context::PageContext;
use crate::error::ApiError;
use crate::routes::account::current_session;
use crate::routes::api::caller;
use crate::routes::pages::{Chrome, error_page, page};

pub const ROLES: &[Role] = &[Role::Analyst, Role::Admin];
const DEFAULT_DAYS: i64 = 30;

/// Site, range (`from`/`to`, YYYY-MM-DD, UTC, both included) and one filter per dimension.
fn parse_query(state: &AppState, params: &HashMap<String, String>) -> Result<report::Query, ApiError> {
    let today = day_of(state.clock.now_ms());
    let day = |key: &str, default: i64| match params.get(key).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => day_of_date(v).ok_or_else(|| ApiError::bad_request("date_invalid", format!("{key} must be a date, YYYY-MM-DD"))),
    };
    let to_day = day("to", today)?;
    let from_day = day("from", to_day - (DEFAULT_DAYS - 1))?;
    let site = params.get("site").cloned().unwrap_or_else(|| "passme".into());
    if !state.analytics.sites.iter().any(|s| s.id == site) {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "unknown_site", format!("no site {site:?}")));
    }
    let mut filters = Vec::new();
    for (key, value) in params {
        match Dimension::parse(key) {
            Some(dimension) => filters.push((dimension, value.clone())),
            None if ["site", "from", "to", "lang"].contains(&key.as_str()) => {}
            None => return Err(ApiError::bad_request("query_invalid", format!("unknown parameter {key:?}"))),
        }
    }
    filters.sort();
    if to_day < from_day || to_day - from_day >= report::MAX_DAYS {
        return Err(ApiError::bad_request(
            "range_invalid",
            format!("from must not be after to, and the range covers at most {} days", report::MAX_DAYS),
        ));
    }
    Ok(report::Query { site, from_day, to_day, filters })
}

/// Every report of the dashboard in one document: totals, the daily series and the top values
/// of each dimension, for the range and filters given.
#[utoipa::path(get, path = "/api/v1/analytics/report", operation_id = "analytics_report", tag = "analytics", security(("bearer" = []), ("session" = [])),
    params(
        ("site" = Option<String>, Query, description = "Site id (default passme)"),
        ("from" = Option<String>, Query, description = "First day, YYYY-MM-DD (default 29 days before to)"),
        ("to" = Option<String>, Query, description = "Last day, YYYY-MM-DD (default today, UTC)"),
        ("page" = Option<String>, Query, description = "Only visits that viewed this page; likewise landing, exit, source, utm_source, utm_medium, utm_campaign, browser, os, isp"),
    ),
    responses(
        (status = 200, description = "The report", body = Report),
        (status = 400, description = "Bad date (`date_invalid`), range (`range_invalid`) or parameter (`query_invalid`)", body = crate::error::ErrorBody),
        (status = 401, description = "No valid token or session", body = crate::error::ErrorBody),
        (status = 403, description = "Not an analyst, or the token lacks analytics:read", body = crate::error::ErrorBody),
        (status = 404, description = "No such site (`unknown_site`)", body = crate::error::ErrorBody),
    ))]
pub async fn report(State(state): State<AppState>, headers: HeaderMap, Query(params): Query<HashMap<String, String>>) -> Response {
    let account_id = match caller(&state, &headers, SCOPE_ANALYTICS_READ).await {
        Ok(id) => id,
        Err(response) => return response,
    };
    if let Err(e) = Staff::new(state.store.clone(), state.clock.clone()).require(&account_id, ROLES).await {
        return ApiError::from(e).into_response();
    }
    let query = match parse_query(&state, &params) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    match report::report(&state.store, &query, report::TOP).await {
        Ok(report) => axum::Json(report).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

struct Tile {
    label: &'static str,
    value: String,
}

struct Table {
    title: &'static str,
    metric: &'static str,
    rows: Vec<(String, String, String)>,
}

#[derive(Template)]
#[template(path = "analytics.html")]
struct Dashboard {
    chrome: Chrome,
    heading: &'static str,
    site: String,
    from: String,
    to: String,
    labels: [&'static str; 4],
    filters: Vec<(String, String, String)>,
    tiles: Vec<Tile>,
    chart: Chart,
    tables: Vec<Table>,
    dropped: String,
    attribution: &'static str,
    counted_from: &'static str,
}

/// A server-rendered line chart of visitors and page views per day.
struct Chart {
    title: &'static str,
    visitors: String,
    pageviews: String,
    max: i64,
    first: String,
    last: String,
    legend: [&'static str; 2],
    /// The same numbers as a table, for screen readers and without SVG.
    rows: Vec<(String, i64, i64)>,
}

const CHART_W: f64 = 720.0;
const CHART_H: f64 = 180.0;

fn chart(lang: Lang, series: &[DayPoint]) -> Chart {
    let max = series.iter().map(|p| p.summary.pageviews.max(p.summary.visitors)).max().unwrap_or(0).max(1);
    let points = |value: fn(&DayPoint) -> i64| {
        let step = if series.len() > 1 { CHART_W / (series.len() - 1) as f64 } else { 0.0 };
        series
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{:.1},{:.1}", i as f64 * step, CHART_H - value(p) as f64 / max as f64 * CHART_H))
            .collect::<Vec<_>>()
            .join(" ")
    };
    Chart {
        title: lang.pick("Besøgende og sidevisninger pr. dag", "Visitors and page views per day"),
        visitors: points(|p| p.summary.visitors),
        pageviews: points(|p| p.summary.pageviews),
        max,
        first: series.first().map(|p| p.date.clone()).unwrap_or_default(),
        last: series.last().map(|p| p.date.clone()).unwrap_or_default(),
        legend: [lang.pick("Besøgende", "Visitors"), lang.pick("Sidevisninger", "Page views")],
        rows: series.iter().map(|p| (p.date.clone(), p.summary.visitors, p.summary.pageviews)).collect(),
    }
}

fn dimension_title(lang: Lang, dimension: Dimension) -> &'static str {
    match dimension {
        Dimension::Page => lang.pick("Sider", "Pages"),
        Dimension::Landing => lang.pick("Landingssider", "Landing pages"),
        Dimension::Exit => lang.pick("Udgangssider", "Exit pages"),
        Dimension::Source => lang.pick("Henvisende sider", "Referrers"),
        Dimension::UtmSource => "utm_source",
        Dimension::UtmMedium => "utm_medium",
        Dimension::UtmCampaign => "utm_campaign",
        Dimension::Browser => lang.pick("Browsere", "Browsers"),
        Dimension::Os => lang.pick("Styresystemer", "Operating systems"),
        Dimension::Isp => lang.pick("Internetudbydere", "Internet service providers"),
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
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let lang = ctx.lang;
    let Some(session) = current_session(&state, &headers).await else {
        return Redirect::to("/login?next=/staff/analytics").into_response();
    };
    if let Err(e) = Staff::new(state.store.clone(), state.clock.clone()).require(&session.account_id, ROLES).await {
        return error_page(&state, lang, &ApiError::from(e));
    }
    let report = match parse_query(&state, &params) {
        Ok(query) => report::report(&state.store, &query, report::TOP).await.map_err(ApiError::from),
        Err(e) => Err(e),
    };
    let report = match report {
        Ok(r) => r,
        Err(e) => return error_page(&state, lang, &e),
    };
    let mut kept: BTreeMap<String, String> = report.filters.clone();
    kept.insert("site".into(), report.site.clone());
    kept.insert("from".into(), report.from.clone());
    kept.insert("to".into(), report.to.clone());
    kept.insert("lang".into(), lang.code().into());
    let t = &report.totals;
    let tiles = vec![
        Tile { label: lang.pick("Besøgende", "Visitors"), value: t.visitors.to_string() },
        Tile { label: lang.pick("Besøg", "Visits"), value: t.sessions.to_string() },
        Tile { label: lang.pick("Sidevisninger", "Page views"), value: t.pageviews.to_string() },
        Tile { label: lang.pick("Afvisningsprocent", "Bounce rate"), value: format!("{:.0} %", t.bounce_rate * 100.0) },
        Tile { label: lang.pick("Besøgets varighed", "Visit duration"), value: duration(t.avg_duration_ms) },
    ];
    let tables = Dimension::ALL
        .into_iter()
        .map(|d| {
            let rows = report.breakdowns.get(d.name()).map(Vec::as_slice).unwrap_or_default();
            let metric = if d == Dimension::Page { lang.pick("Sidevisninger", "Page views") } else { lang.pick("Besøg", "Visits") };
            Table {
                title: dimension_title(lang, d),
                metric,
                rows: rows
                    .iter()
                    .map(|r| {
                        let shown = if r.value.is_empty() { lang.pick("(ingen)", "(none)").to_string() } else { r.value.clone() };
                        let n = if d == Dimension::Page { r.pageviews } else { r.sessions };
                        (shown, link_with(&kept, d.name(), Some(&r.value)), n.to_string())
                    })
                    .collect(),
            }
        })
        .collect();
    let filters = report
        .filters
        .iter()
        .map(|(k, v)| {
            (
                format!("{}: {}", dimension_title(lang, Dimension::parse(k).unwrap_or(Dimension::Page)), v),
                link_with(&kept, k, None),
                k.clone(),
            )
        })
        .collect();
    let dropped: i64 = report.dropped.values().sum();
    let body = Dashboard {
        chrome: Chrome::new(&state, &ctx, lang.pick("Statistik", "Analytics"), "/staff/analytics", true),
        heading: lang.pick("Statistik", "Analytics"),
        site: report.site.clone(),
        from: report.from.clone(),
        to: report.to.clone(),
        labels: [
            lang.pick("Fra", "From"),
            lang.pick("Til", "To"),
            lang.pick("Vis", "Show"),
            lang.pick("Filtre (klik for at fjerne)", "Filters (click to remove)"),
        ],
        filters,
        tiles,
        chart: chart(lang, &report.series),
        tables,
        dropped: match lang {
            Lang::Da => format!("{dropped} sidevisninger fra robotter og henvisningsspam er ikke talt med."),
            Lang::En => format!("{dropped} page views from bots and referrer spam were not counted."),
        },
        attribution: asn::ATTRIBUTION,
        counted_from: if report.counted_from == "rollups" {
            lang.pick("Talt fra de daglige sammentællinger.", "Counted from the daily rollups.")
        } else {
            lang.pick("Talt direkte fra de filtrerede besøg.", "Counted directly from the filtered visits.")
        },
    };
    page(&ctx, &state, false, &body)
}
