//! Dashboard query time over a large site: `--events` page views (default 10 million) spread
//! over 30 days, stored through the same insert the ingestion's group commit uses, turned into
//! visits and rollups by `Rollups::rebuild` (as `passme analytics rebuild` does), then the 30-day
//! overview with every breakdown queried `--runs` times warm (default 20), unfiltered (from the
//! rollups) and with a browser filter (from the visits). SQLite in `--data DIR` (default a
//! temporary folder; an existing database there is reused, skipping generation), or PostgreSQL
//! with `--postgres URL`. Prints the load and rebuild rates and the query times.
//!
//!     cargo run --release -p passme-bench --bin dashboard -- --events 10000000

use std::time::{Duration, Instant};

use passme_analytics::report::{self, Query, TOP};
use passme_analytics::rollup::Rollups;
use passme_analytics::visits::DAY_MS;
use passme_bench::{arg, percentile_ms};
use passme_core::clock;
use passme_store::{Dimension, EventRow, Store, StoreOptions};

const DAYS: i64 = 30;
const BROWSERS: [(&str, &str); 6] = [
    ("Chrome", "Windows"),
    ("Chrome", "Android"),
    ("Mobile Safari", "iOS"),
    ("Safari", "Mac OS X"),
    ("Firefox", "Linux"),
    ("Edge", "Windows"),
];

/// A small deterministic generator (xorshift), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let events: usize = arg("--events", 10_000_000);
    let runs: usize = arg("--runs", 20);
    let postgres: String = arg("--postgres", String::new());
    let data: String = arg("--data", String::new());
    let temp = tempfile::tempdir()?;
    let data_dir = if data.is_empty() { temp.path().to_path_buf() } else { data.into() };
    let options = StoreOptions {
        database_url: (!postgres.is_empty()).then(|| secrecy::SecretString::from(postgres.clone())),
        data_dir,
        max_connections: 4,
    };
    let store = Store::connect(&options).await?;
    store.migrate().await?;
    let engine = store.engine().name();
    let last_day = jiff::Timestamp::now().as_millisecond() / DAY_MS;
    let first_day = last_day - (DAYS - 1);
    let existing = store.scalar_i64("SELECT COUNT(*) AS n FROM analytics_events").await?;
    println!("dashboard bench on {engine}: {events} page views over {DAYS} days");
    if existing == 0 {
        load(&store, events, first_day).await?;
        let started = Instant::now();
        let visits = Rollups::new(store.clone(), clock::system()).rebuild("passme", first_day, last_day).await?;
        let took = started.elapsed().as_secs_f64();
        println!("rebuild: {visits} visits and {DAYS} days of rollups in {took:.1} s ({:.0} page views/s)", events as f64 / took);
    } else {
        println!("reusing the {existing} page views already stored");
    }
    let rollup_rows = store.scalar_i64("SELECT COUNT(*) AS n FROM analytics_rollup").await?;
    println!("rollup rows: {rollup_rows}");
    let overview = Query { site: "passme".into(), from_day: first_day, to_day: last_day, filters: Vec::new() };
    let by_browser = Query { filters: vec![(Dimension::Browser, "Firefox".into())], ..overview.clone() };
    let by_page = Query { filters: vec![(Dimension::Page, "/page/7".into())], ..overview.clone() };
    for (name, query, runs) in [
        ("30-day overview, every breakdown (rollups)", &overview, runs),
        ("same, filtered by browser (visits)", &by_browser, runs.min(5)),
        ("same, filtered by page (visits)", &by_page, runs.min(5)),
    ] {
        report::report(&store, query, TOP).await?;
        let mut times: Vec<Duration> = Vec::with_capacity(runs);
        let mut visitors = 0;
        for _ in 0..runs {
            let started = Instant::now();
            let report = report::report(&store, query, TOP).await?;
            times.push(started.elapsed());
            visitors = report.totals.visitors;
        }
        times.sort();
        println!(
            "{name}: median {:.1} ms, p90 {:.1} ms, max {:.1} ms over {runs} warm runs ({visitors} visitors)",
            percentile_ms(&times, 0.5),
            percentile_ms(&times, 0.9),
            percentile_ms(&times, 1.0)
        );
    }
    Ok(())
}

/// Generates visits day by day: each visitor comes 1–3 times a day with 1–8 page views, from one
/// of 200 pages, 30 referrers, 6 browser/OS pairs and 500 ISPs.
async fn load(store: &Store, events: usize, first_day: i64) -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let per_day = events / DAYS as usize;
    let started = Instant::now();
    let mut written = 0usize;
    let mut buffer: Vec<EventRow> = Vec::with_capacity(4_000);
    for d in 0..DAYS {
        let day_start = (first_day + d) * DAY_MS;
        let mut today = 0;
        while today < per_day {
            // Returning visitors: a pool of three times the daily visits.
            let visitor = i64::try_from(rng.below((per_day as u64 / 4).max(1) * 3)).unwrap_or(0) + 1;
            let (browser, os) = BROWSERS[rng.below(BROWSERS.len() as u64) as usize];
            let source = if rng.below(3) == 0 { String::new() } else { format!("ref{}.example", rng.below(30)) };
            let asn = 1000 + rng.below(500);
            let isp = format!("AS{asn} Network {asn}");
            let mut ts = day_start + i64::try_from(rng.below(DAY_MS as u64 - 3_600_000)).unwrap_or(0);
            for _ in 0..=rng.below(8) {
                buffer.push(EventRow {
                    site: "passme".into(),
                    visitor,
                    ts,
                    received_at: ts,
                    path: format!("/page/{}", rng.below(200)),
                    source: source.clone(),
                    utm_source: String::new(),
                    utm_medium: String::new(),
                    utm_campaign: String::new(),
                    browser: browser.into(),
                    browser_version: "126".into(),
                    os: os.into(),
                    os_version: String::new(),
                    isp: isp.clone(),
                    ip: None,
                    ip_prefix: "10.0.0.0/24".into(),
                });
                ts += i64::try_from(rng.below(300_000)).unwrap_or(0) + 1_000;
                today += 1;
            }
            if buffer.len() >= 4_000 {
                store.insert_events(&buffer).await?;
                written += buffer.len();
                buffer.clear();
            }
        }
    }
    store.insert_events(&buffer).await?;
    written += buffer.len();
    let took = started.elapsed().as_secs_f64();
    println!("load: {written} page views in {took:.1} s ({:.0} /s through the group-commit insert)", written as f64 / took);
    Ok(())
}
