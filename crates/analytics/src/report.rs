//! The dashboard's numbers. Without filters they come from the daily rollups and sketches, so
//! the cost depends on the number of days and distinct values, not on the number of page views.
//! With filters they are counted from the visits that match (exact, and slower on large sites).
//! Either way a visit, its page views and its duration belong to the day the visit started.

use std::collections::BTreeMap;

use passme_core::CoreError;
use passme_store::{BreakdownRow, DayRow, Dimension, Store, Totals};
use serde::Serialize;

use crate::aggregate::Aggregate;
use crate::sketch::Sketch;

/// The longest range one report covers.
pub const MAX_DAYS: i64 = 400;
pub const TOP: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub site: String,
    pub from_day: i64,
    pub to_day: i64,
    pub filters: Vec<(Dimension, String)>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Summary {
    pub visitors: i64,
    pub sessions: i64,
    pub pageviews: i64,
    pub bounces: i64,
    /// Share of visits with one page view, 0–1.
    pub bounce_rate: f64,
    pub avg_duration_ms: i64,
}

impl Summary {
    fn of(totals: Totals, visitors: i64) -> Summary {
        let rate = |n: i64| if totals.sessions == 0 { 0.0 } else { n as f64 / totals.sessions as f64 };
        Summary {
            visitors,
            sessions: totals.sessions,
            pageviews: totals.pageviews,
            bounces: totals.bounces,
            bounce_rate: (rate(totals.bounces) * 10_000.0).round() / 10_000.0,
            avg_duration_ms: if totals.sessions == 0 { 0 } else { totals.duration_ms / totals.sessions },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DayPoint {
    /// The UTC date, YYYY-MM-DD.
    pub date: String,
    #[serde(flatten)]
    pub summary: Summary,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BreakdownEntry {
    pub value: String,
    pub sessions: i64,
    pub pageviews: i64,
    pub bounce_rate: f64,
    pub avg_duration_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Report {
    pub site: String,
    pub from: String,
    pub to: String,
    pub filters: BTreeMap<String, String>,
    /// `rollups` (no filter) or `visits` (filtered, counted exactly).
    pub counted_from: &'static str,
    /// True when unique visitors above 512 a day are estimated (about ±1.6 %).
    pub visitors_estimated: bool,
    pub totals: Summary,
    pub series: Vec<DayPoint>,
    /// The top values of every dimension, by visits (pages by page views).
    pub breakdowns: BTreeMap<String, Vec<BreakdownEntry>>,
    /// Page views not counted, by reason (bots, referrer spam).
    pub dropped: BTreeMap<String, i64>,
}

pub fn date_of_day(day: i64) -> String {
    jiff::Timestamp::from_millisecond(day * crate::visits::DAY_MS).map_or_else(|_| day.to_string(), |t| t.strftime("%Y-%m-%d").to_string())
}

pub fn day_of_date(date: &str) -> Option<i64> {
    let date: jiff::civil::Date = date.parse().ok()?;
    Some(date.duration_since(jiff::civil::date(1970, 1, 1)).as_secs().div_euclid(86_400))
}

pub async fn report(store: &Store, query: &Query, top: usize) -> Result<Report, CoreError> {
    if query.to_day < query.from_day || query.to_day - query.from_day >= MAX_DAYS {
        return Err(CoreError::input("range_invalid"));
    }
    let (site, from, to) = (query.site.as_str(), query.from_day, query.to_day);
    let (days, visitors, estimated, rows) = if query.filters.is_empty() {
        let days = store.rollup_days(site, from, to).await?;
        let mut merged = Sketch::default();
        for day in &days {
            if let Some(sketch) = day.sketch.as_deref().and_then(Sketch::decode) {
                merged.merge(&sketch);
            }
        }
        let estimated = matches!(merged, Sketch::Hll(_));
        (days, merged.count(), estimated, store.rollup_breakdowns(site, from, to).await?)
    } else {
        let mut aggregate = Aggregate::filtered(&query.filters);
        store.each_visit(site, from, to, &query.filters, |visit| aggregate.add(&visit)).await?;
        let (days, visitors) = (aggregate.days(), aggregate.visitors.count());
        let estimated = matches!(aggregate.visitors, Sketch::Hll(_));
        (days, visitors, estimated, aggregate.breakdowns())
    };
    let mut totals = Totals::default();
    let by_day: BTreeMap<i64, &DayRow> = days.iter().map(|d| (d.day, d)).collect();
    let series = (from..=to)
        .map(|day| {
            let row = by_day.get(&day);
            if let Some(row) = row {
                totals += row.totals;
            }
            DayPoint { date: date_of_day(day), summary: row.map_or_else(Summary::default, |r| Summary::of(r.totals, r.visitors)) }
        })
        .collect();
    let dropped = store.dropped(site, from, to).await?.into_iter().collect();
    Ok(Report {
        site: site.to_string(),
        from: date_of_day(from),
        to: date_of_day(to),
        filters: query.filters.iter().map(|(d, v)| (d.name().to_string(), v.clone())).collect(),
        counted_from: if query.filters.is_empty() { "rollups" } else { "visits" },
        visitors_estimated: estimated,
        totals: Summary::of(totals, visitors),
        series,
        breakdowns: top_values(rows, top),
        dropped,
    })
}

fn top_values(rows: Vec<BreakdownRow>, top: usize) -> BTreeMap<String, Vec<BreakdownEntry>> {
    let mut grouped: BTreeMap<Dimension, Vec<BreakdownRow>> = Dimension::ALL.into_iter().map(|d| (d, Vec::new())).collect();
    for row in rows {
        grouped.entry(row.dimension).or_default().push(row);
    }
    grouped
        .into_iter()
        .map(|(dimension, mut rows)| {
            let key = |r: &BreakdownRow| if dimension == Dimension::Page { r.totals.pageviews } else { r.totals.sessions };
            rows.sort_by(|a, b| key(b).cmp(&key(a)).then_with(|| a.value.cmp(&b.value)));
            let entries = rows
                .into_iter()
                .take(top)
                .map(|r| {
                    let s = Summary::of(r.totals, 0);
                    BreakdownEntry {
                        value: r.value,
                        sessions: r.totals.sessions,
                        pageviews: r.totals.pageviews,
                        bounce_rate: s.bounce_rate,
                        avg_duration_ms: s.avg_duration_ms,
                    }
                })
                .collect();
            (dimension.name().to_string(), entries)
        })
        .collect()
}
