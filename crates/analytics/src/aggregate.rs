//! Counting visits: totals, a daily series, unique visitors and a breakdown per dimension. The
//! rollups (a day's visits) and filtered reports (the matching visits of a range) both count
//! through here, so a filtered report can never count differently from the rollups.

use std::collections::{BTreeMap, HashMap};

use passme_store::{BreakdownRow, DayRow, Dimension, Totals, VisitRow};

use crate::sketch::Sketch;

#[derive(Debug, Default)]
pub struct Aggregate {
    /// Under a page filter, a visit's page views are that page's own (as Plausible counts them):
    /// filtering by `/` shows how often `/` was viewed, not every view of the visits that saw it.
    page: Option<String>,
    pub totals: Totals,
    pub visitors: Sketch,
    days: BTreeMap<i64, (Totals, Sketch)>,
    /// Per dimension (in [`Dimension::ALL`] order): value → totals.
    values: [HashMap<String, Totals>; Dimension::ALL.len()],
}

fn count(values: &mut HashMap<String, Totals>, value: &str, totals: Totals) {
    match values.get_mut(value) {
        Some(sum) => *sum += totals,
        None => {
            values.insert(value.to_string(), totals);
        }
    }
}

impl Aggregate {
    /// An aggregation for a report under `filters` (see the `page` field).
    pub fn filtered(filters: &[(Dimension, String)]) -> Aggregate {
        let page = filters.iter().find(|(d, _)| *d == Dimension::Page).map(|(_, v)| v.clone());
        Aggregate { page, ..Aggregate::default() }
    }

    pub fn add(&mut self, visit: &VisitRow) {
        let pageviews = match &self.page {
            Some(page) => visit.pages.iter().filter(|(path, _)| path == page).map(|(_, views)| *views).sum(),
            None => visit.pageviews,
        };
        let one = Totals { sessions: 1, pageviews, bounces: i64::from(visit.pageviews == 1), duration_ms: visit.duration_ms };
        self.totals += one;
        self.visitors.add(visit.visitor);
        let day = self.days.entry(visit.day).or_default();
        day.0 += one;
        day.1.add(visit.visitor);
        for (dimension, values) in Dimension::ALL.iter().zip(self.values.iter_mut()) {
            match dimension.of_visit(visit) {
                Some(value) => count(values, value, one),
                // A page counts the visits that viewed it and how often it was viewed.
                None => {
                    for (path, views) in visit.pages.iter().filter(|(path, _)| self.page.as_ref().is_none_or(|p| p == path)) {
                        count(values, path, Totals { sessions: 1, pageviews: *views, bounces: 0, duration_ms: 0 });
                    }
                }
            }
        }
    }

    /// The daily series, with each day's unique visitors.
    pub fn days(&self) -> Vec<DayRow> {
        self.days
            .iter()
            .map(|(day, (totals, sketch))| DayRow { day: *day, totals: *totals, visitors: sketch.count(), sketch: None })
            .collect()
    }

    pub fn breakdowns(self) -> Vec<BreakdownRow> {
        Dimension::ALL
            .into_iter()
            .zip(self.values)
            .flat_map(|(dimension, values)| values.into_iter().map(move |(value, totals)| BreakdownRow { dimension, value, totals }))
            .collect()
    }
}
