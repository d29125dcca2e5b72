//! Visits (analytics sessions): a visitor's page views with no gap longer than 30 minutes. A
//! pure function of the stored page views, so recomputing a visitor after a late or out-of-order
//! event gives the same visits as if the events had arrived in order.

use passme_store::{EventRow, VisitRow};

pub const VISIT_GAP_MS: i64 = 30 * 60 * 1000;
pub const DAY_MS: i64 = 86_400_000;

/// The UTC day number of a timestamp: reports are per UTC day.
pub fn day_of(ts: i64) -> i64 {
    ts.div_euclid(DAY_MS)
}

/// One visitor's page views, ordered by time, into visits.
pub fn sessionise(events: &[EventRow]) -> Vec<VisitRow> {
    let mut visits = Vec::new();
    let mut start = 0;
    for i in 1..=events.len() {
        if i == events.len() || events[i].ts - events[i - 1].ts > VISIT_GAP_MS {
            visits.push(visit_of(&events[start..i]));
            start = i;
        }
    }
    visits
}

fn visit_of(views: &[EventRow]) -> VisitRow {
    let (first, last) = (&views[0], &views[views.len() - 1]);
    VisitRow {
        site: first.site.clone(),
        visitor: first.visitor,
        started_at: first.ts,
        ended_at: last.ts,
        day: day_of(first.ts),
        landing: first.path.clone(),
        exit_page: last.path.clone(),
        source: first.source.clone(),
        utm_source: first.utm_source.clone(),
        utm_medium: first.utm_medium.clone(),
        utm_campaign: first.utm_campaign.clone(),
        browser: first.browser.clone(),
        os: first.os.clone(),
        isp: first.isp.clone(),
        pageviews: i64::try_from(views.len()).unwrap_or(i64::MAX),
        duration_ms: last.ts - first.ts,
        pages: pages_of(views),
    }
}

/// Each page viewed in the visit and how often, ordered by path.
fn pages_of(views: &[EventRow]) -> Vec<(String, i64)> {
    let mut pages: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
    for view in views {
        *pages.entry(view.path.as_str()).or_default() += 1;
    }
    pages.into_iter().map(|(path, views)| (path.to_string(), views)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn view(visitor: i64, ts: i64, path: &str) -> EventRow {
        EventRow {
            site: "passme".into(),
            visitor,
            ts,
            received_at: ts,
            path: path.into(),
            source: if path == "/" { "google.com".into() } else { String::new() },
            utm_source: String::new(),
            utm_medium: String::new(),
            utm_campaign: String::new(),
            browser: "Firefox".into(),
            browser_version: "128".into(),
            os: "Linux".into(),
            os_version: String::new(),
            isp: "AS3292 TDC".into(),
            ip: None,
            ip_prefix: "192.0.2.0/24".into(),
        }
    }

    #[test]
    fn a_gap_over_thirty_minutes_starts_a_new_visit() {
        let min = 60_000;
        let views = [view(1, 0, "/"), view(1, 10 * min, "/pricing"), view(1, 40 * min, "/signup"), view(1, 71 * min, "/")];
        let visits = sessionise(&views);
        assert_eq!(visits.len(), 2);
        assert_eq!((visits[0].landing.as_str(), visits[0].exit_page.as_str(), visits[0].pageviews), ("/", "/signup", 3));
        assert_eq!(visits[0].duration_ms, 40 * min);
        assert_eq!((visits[1].pageviews, visits[1].duration_ms, visits[1].source.as_str()), (1, 0, "google.com"));
        let pages: Vec<(&str, i64)> = visits[0].pages.iter().map(|(p, n)| (p.as_str(), *n)).collect();
        assert_eq!(pages, [("/", 1), ("/pricing", 1), ("/signup", 1)]);
    }
}
