//! Service tracking through the real router on both engines: ingestion and its hostile inputs,
//! enrichment with the real IP-to-ASN table, consent and cookieless counting, visits, rollups
//! that agree with a recount from the raw rows, the dashboard, and the retention rules.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use passme_analytics::rollup::Rollups;
use passme_analytics::visits::{DAY_MS, VISIT_GAP_MS};
use passme_core::clock::ManualClock;
use passme_core::consent::{Choices, ConsentCookie};
use passme_core::housekeeping::Housekeeping;
use passme_core::identity::sessions::Sessions;
use passme_core::identity::staff::{Role, Staff};
use passme_policy::proves;
use passme_store::{EventRow, Store};
use passme_testkit::people::count;
use passme_testkit::{TestApp, TestDb, TestResponse, each_engine, sqlite};
use serde_json::{Value, json};

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";
const SAFARI: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
/// 2026-11-02 10:00 UTC.
const T0: i64 = 1_793_613_600_000;
const MIN: i64 = 60_000;

fn page(path: &str) -> String {
    format!("http://passme.test{path}")
}

struct Client<'a> {
    app: &'a TestApp,
    peer: &'a str,
    agent: &'a str,
    headers: Vec<(&'static str, String)>,
}

impl<'a> Client<'a> {
    fn new(app: &'a TestApp, peer: &'a str, agent: &'a str) -> Client<'a> {
        Client { app, peer, agent, headers: Vec::new() }
    }

    fn with(mut self, name: &'static str, value: &str) -> Client<'a> {
        self.headers.push((name, value.to_string()));
        self
    }

    async fn send_raw(&self, content_type: &str, body: impl Into<Body>) -> TestResponse {
        let mut request = Request::post("/api/v1/events").header("content-type", content_type).header("user-agent", self.agent);
        for (name, value) in &self.headers {
            request = request.header(*name, value);
        }
        let mut request = request.body(body.into()).expect("request");
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(format!("{}:40000", self.peer).parse::<std::net::SocketAddr>().expect("peer")));
        self.app.send(request).await
    }

    async fn send(&self, events: Value) -> TestResponse {
        self.send_raw("text/plain;charset=UTF-8", events.to_string()).await
    }

    async fn view(&self, path: &str, referrer: Option<&str>, ts: i64) -> TestResponse {
        let response = self.send(json!({ "site": "passme", "url": page(path), "referrer": referrer, "ts": ts })).await;
        assert_eq!(response.status, 202, "{}", response.text());
        response
    }
}

async fn stored(store: &Store) -> Vec<EventRow> {
    store.move_inbox(usize::MAX).await.expect("move inbox");
    store.site_events_page("passme", 0, i64::MAX, None, 100_000).await.expect("events")
}

fn manual_app(db: TestDb, clock: &ManualClock) -> TestApp {
    TestApp::builder(db).clock(Arc::new(clock.clone())).trusted_proxy("127.0.0.1".parse().expect("ip")).with_isps().build()
}

#[tokio::test]
async fn page_views_are_enriched_with_browser_os_and_isp_and_keep_only_declared_fields() {
    for db in each_engine().await {
        let clock = ManualClock::at(T0);
        let app = manual_app(db, &clock);
        let client = Client::new(&app, "127.0.0.1", FIREFOX).with("x-forwarded-for", "8.8.8.8");
        let response = client
            .send(json!([{ "site": "passme", "url": page("/pricing?utm_source=news&utm_medium=email&utm_campaign=launch&email=a@b.c#x"), "referrer": "https://www.google.com/search?q=x", "ts": T0 }]))
            .await;
        assert_eq!(response.status, 202, "{}", response.text());
        assert_eq!(response.json(), json!({ "stored": 1, "dropped": 0 }));
        let rows = stored(&app.db.store).await;
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!((row.path.as_str(), row.source.as_str()), ("/pricing", "google.com"));
        assert_eq!((row.utm_source.as_str(), row.utm_medium.as_str(), row.utm_campaign.as_str()), ("news", "email", "launch"));
        assert_eq!((row.browser.as_str(), row.browser_version.as_str(), row.os.as_str()), ("Firefox", "128", "Linux"));
        assert_eq!(row.isp, "AS15169 Google LLC", "the ISP comes from the real RouteViews/DB-IP table");
        assert_eq!((row.ip.as_deref(), row.ip_prefix.as_str()), (Some("8.8.8.8"), "8.8.8.0/24"));
        assert_eq!(row.ts, T0);
        // An IPv6 client resolves too.
        let v6 = Client::new(&app, "127.0.0.1", CHROME).with("x-forwarded-for", "2001:4860:4860::8888");
        v6.view("/", None, T0).await;
        let rows = stored(&app.db.store).await;
        let row = rows.iter().find(|r| r.browser == "Chrome").expect("the v6 view");
        assert!(row.isp.starts_with("AS15169 "), "{}", row.isp);
        assert_eq!(row.ip_prefix, "2001:4860:4860::/48");
        // A field the policy does not declare is refused, not ignored.
        let extra = client.send(json!({ "site": "passme", "url": page("/"), "ts": T0, "screen": "1920x1080" })).await;
        assert_eq!((extra.status.as_u16(), extra.error_code().as_str()), (400, "body_invalid_json"));
    }
}

#[tokio::test]
async fn hostile_and_malformed_input_is_refused_with_stable_codes_and_nothing_is_stored() {
    let db = sqlite().await;
    let clock = ManualClock::at(T0);
    let app = manual_app(db, &clock);
    let client = Client::new(&app, "192.0.2.10", FIREFOX);
    let one = |url: String, ts: i64| json!({ "site": "passme", "url": url, "ts": ts });
    let cases: Vec<(&str, TestResponse, u16, &str)> = vec![
        ("malformed JSON", client.send_raw("application/json", "{\"site\": ").await, 400, "body_invalid_json"),
        ("not JSON at all", client.send_raw("application/x-www-form-urlencoded", "a=b").await, 415, "unsupported_media_type"),
        ("10 MB body", client.send_raw("application/json", vec![b' '; 10 * 1024 * 1024]).await, 413, "body_too_large"),
        ("10,000-event batch", client.send(Value::Array(vec![one(page("/"), T0); 10_000])).await, 413, "body_too_large"),
        ("51-event batch", client.send(Value::Array(vec![one(page("/"), T0); 51])).await, 413, "batch_too_large"),
        ("50 KB query string", client.send(one(page(&format!("/?q={}", "a".repeat(50 * 1024))), T0)).await, 400, "url_too_long"),
        ("javascript: scheme", client.send(one("javascript:alert(1)".into(), T0)).await, 400, "invalid_url"),
        ("file: scheme", client.send(one("file:///etc/passwd".into(), T0)).await, 400, "invalid_url"),
        ("control character", client.send(one(page("/a\u{0007}b"), T0)).await, 400, "control_characters"),
        ("far past", client.send(one(page("/"), 0)).await, 400, "timestamp_out_of_window"),
        ("far future", client.send(one(page("/"), T0 + 365 * DAY_MS)).await, 400, "timestamp_out_of_window"),
        ("unknown site", client.send(json!({ "site": "elsewhere", "url": page("/"), "ts": T0 })).await, 400, "unknown_site"),
        ("another site's page", client.send(one("https://evil.example/".into(), T0)).await, 400, "foreign_url"),
        ("string timestamp", client.send(json!({ "site": "passme", "url": page("/"), "ts": "now" })).await, 400, "body_invalid_json"),
        // One bad event refuses the whole batch: a batch is stored whole or not at all.
        ("one bad event in a batch", client.send(json!([one(page("/ok"), T0), one("ftp://x/".into(), T0)])).await, 400, "invalid_url"),
    ];
    for (case, response, status, code) in cases {
        assert_eq!((response.status.as_u16(), response.error_code().as_str()), (status, code), "{case}: {}", response.text());
    }
    assert!(stored(&app.db.store).await.is_empty(), "nothing from a refused request is stored");
}

/// What the policy says is collected is the limit of what is stored: the page, not the session
/// id, address or token a path may carry, and no private network as a source.
#[tokio::test]
async fn paths_and_referrers_are_stored_as_the_page_and_its_public_source_only() {
    for db in each_engine().await {
        let clock = ManualClock::at(T0);
        let app = manual_app(db, &clock);
        let client = Client::new(&app, "127.0.0.1", FIREFOX).with("x-forwarded-for", "192.0.2.60");
        let url = page("/u/victim@x.dk/reset/k3J9xQ2mZ8vL4nR7tB1wY5pC6dF0gH2j;jsessionid=ABC123");
        let response = client.send(json!({ "site": "passme", "url": url, "referrer": "http://10.1.2.3/intranet", "ts": T0 })).await;
        assert_eq!(response.status, 202, "{}", response.text());
        let refused = client.send(json!({ "site": "passme", "url": page("/a%00%0d%0ab"), "ts": T0 })).await;
        assert_eq!((refused.status.as_u16(), refused.error_code()), (400, "control_characters".to_string()));
        let rows = stored(&app.db.store).await;
        assert_eq!(rows.len(), 1, "on {:?}", app.db.store.engine());
        assert_eq!((rows[0].path.as_str(), rows[0].source.as_str()), ("/u/:email/reset/:token", ""));
    }
}

#[tokio::test]
async fn bots_and_referrer_spam_are_dropped_and_counted() {
    let db = sqlite().await;
    let clock = ManualClock::at(T0);
    let app = manual_app(db, &clock);
    for agent in ["Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "HeadlessChrome/126.0.0.0", "curl/8.5.0", ""]
    {
        let response = Client::new(&app, "192.0.2.20", agent).send(json!({ "site": "passme", "url": page("/"), "ts": T0 })).await;
        assert_eq!(response.status, 202, "bots are not told they were spotted");
        assert_eq!(response.json(), json!({ "stored": 0, "dropped": 1 }), "{agent:?}");
    }
    let spam = Client::new(&app, "192.0.2.21", FIREFOX).view("/", Some("http://semalt.com/"), T0).await;
    assert_eq!(spam.json(), json!({ "stored": 0, "dropped": 1 }));
    assert!(stored(&app.db.store).await.is_empty());
    let dropped = app.db.store.dropped("passme", 0, i64::MAX).await.expect("dropped");
    let dropped: BTreeMap<String, i64> = dropped.into_iter().collect();
    assert_eq!(dropped.get("crawler"), Some(&1));
    assert_eq!(dropped.get("automation"), Some(&2));
    assert_eq!(dropped.get("no_user_agent"), Some(&1));
    assert_eq!(dropped.get("referrer_spam"), Some(&1));
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored_and_a_flood_is_limited_per_address() {
    let db = sqlite().await;
    let clock = ManualClock::at(T0);
    // No trusted proxy: the peer's address is the client's.
    let app = TestApp::builder(db).clock(Arc::new(clock.clone())).build();
    let spoofer = Client::new(&app, "198.51.100.7", FIREFOX).with("x-forwarded-for", "8.8.8.8");
    spoofer.view("/", None, T0).await;
    let rows = stored(&app.db.store).await;
    assert_eq!(rows[0].ip.as_deref(), Some("198.51.100.7"), "a forged X-Forwarded-For changes nothing");
    // A flood from one address: the burst passes, then 429 with Retry-After ...
    let flood = Client::new(&app, "198.51.100.8", FIREFOX);
    let batch = Value::Array(vec![json!({ "site": "passme", "url": page("/flood"), "ts": T0 }); 50]);
    let mut refused = None;
    for _ in 0..10 {
        let response = flood.send(batch.clone()).await;
        if response.status == 429 {
            refused = Some(response);
            break;
        }
    }
    let refused = refused.expect("the flood is limited");
    assert_eq!(refused.error_code(), "rate_limited");
    assert!(refused.header("retry-after").is_some());
    // ... while other visitors are served as usual.
    Client::new(&app, "198.51.100.9", CHROME).view("/", None, T0).await;
    clock.advance(20_000);
    flood.view("/later", None, clock_now(&clock)).await;
}

/// Three instances on one database, one address sending round-robin to all three: the fleet
/// lets through what one instance would (a burst of 200 on a frozen clock), not three times it,
/// and within 10 % even while the local shares are still uncharged.
#[tokio::test]
async fn one_address_gets_one_allowance_from_the_whole_fleet() {
    for db in each_engine().await {
        let clock = ManualClock::at(T0);
        let apps: Vec<TestApp> = (0..3).map(|_| manual_app(db.clone(), &clock)).collect();
        for app in &apps {
            app.state.analytics.limit.set_fleet_size(apps.len());
        }
        let single = manual_app(db.clone(), &clock);
        let alone = round_robin(&[&single], "192.0.2.50").await;
        let fleet = round_robin(&apps.iter().collect::<Vec<_>>(), "192.0.2.51").await;
        println!("{:?}: one instance let {alone} through, three instances {fleet}", db.store.engine());
        assert_eq!(alone, 200, "one instance: the burst, on {:?}", db.store.engine());
        assert!(fleet <= alone + alone / 10, "three instances let {fleet} through where one lets {alone}");
        assert!(fleet >= alone - 30, "and not much fewer: {fleet}");
        // Another address is served as usual by every instance.
        for app in &apps {
            assert_eq!(Client::new(app, "127.0.0.1", CHROME).with("x-forwarded-for", "192.0.2.52").view("/", None, T0).await.status, 202);
        }
    }
}

/// Sends 1,500 page views from `ip`, one per request, to the instances in turn; returns how many
/// were accepted.
async fn round_robin(apps: &[&TestApp], ip: &str) -> usize {
    let mut accepted = 0;
    for i in 0..1_500 {
        let client = Client::new(apps[i % apps.len()], "127.0.0.1", FIREFOX).with("x-forwarded-for", ip);
        let response = client.send(json!({ "site": "passme", "url": page(&format!("/rr/{i}")), "ts": T0 })).await;
        match response.status.as_u16() {
            202 => accepted += 1,
            429 => assert_eq!(response.error_code(), "rate_limited"),
            other => panic!("{other}: {}", response.text()),
        }
    }
    accepted
}

fn clock_now(clock: &ManualClock) -> i64 {
    use passme_core::clock::Clock;
    clock.now_ms()
}

fn consent(statistics: bool) -> String {
    let choices = Choices { statistics, ..Choices::NONE };
    let cookie =
        ConsentCookie { id: "AAAAAAAAAAAAAAAAAAAAAA".into(), policy_version: passme_policy::builtin().meta.version.clone(), choices };
    format!("__Host-consent={}", cookie.encode())
}

fn set_cookie(response: &TestResponse, name: &str) -> Option<String> {
    response
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

#[tokio::test]
async fn the_visitor_cookie_needs_statistics_consent_and_dnt_or_gpc_count_as_a_refusal() {
    proves!("cookie.__Host-pm_vid");
    let db = sqlite().await;
    let clock = ManualClock::at(T0);
    let app = manual_app(db, &clock);
    let none = Client::new(&app, "127.0.0.1", FIREFOX).view("/", None, T0).await;
    assert_eq!(set_cookie(&none, "__Host-pm_vid"), None, "no consent, no cookie");
    let refused = Client::new(&app, "127.0.0.1", FIREFOX).with("cookie", &consent(false)).view("/", None, T0).await;
    assert_eq!(set_cookie(&refused, "__Host-pm_vid"), None);
    let granted = Client::new(&app, "127.0.0.1", FIREFOX).with("cookie", &consent(true)).view("/", None, T0).await;
    let cookie = set_cookie(&granted, "__Host-pm_vid").expect("a visitor cookie with statistics consent");
    let declared =
        passme_policy::builtin().cookies.iter().find(|c| c.name.get_ref() == "__Host-pm_vid").expect("declared").lifetime.get_ref().clone();
    assert_eq!(declared, "P13M");
    let thirteen_months = passme_policy::Period::parse(&declared).expect("period").max_millis() / 1000;
    assert!(cookie.contains(&format!("Max-Age={thirteen_months}")), "the declared lifetime: {cookie}");
    assert!(cookie.contains("Secure") && cookie.contains("HttpOnly") && cookie.contains("Path=/"), "{cookie}");
    for signal in ["dnt", "sec-gpc"] {
        let value = cookie.split(';').next().expect("pair").to_string();
        let response = Client::new(&app, "127.0.0.1", FIREFOX)
            .with("cookie", &format!("{}; {value}", consent(true)))
            .with(signal, "1")
            .view("/", None, T0)
            .await;
        let deleted = set_cookie(&response, "__Host-pm_vid").expect("the cookie is removed");
        assert!(deleted.contains("Max-Age=0"), "{signal}: {deleted}");
    }
    // With consent the cookie identifies the visitor across days and addresses.
    let value = cookie.split(';').next().expect("pair").to_string();
    let with_cookie =
        |peer| Client::new(&app, peer, FIREFOX).with("cookie", &format!("{}; {value}", consent(true))).with("x-forwarded-for", peer);
    with_cookie("192.0.2.1").view("/a", None, T0).await;
    clock.advance(DAY_MS);
    with_cookie("192.0.2.99").view("/b", None, T0 + DAY_MS).await;
    let rows = stored(&app.db.store).await;
    let a = rows.iter().find(|r| r.path == "/a").expect("a");
    let b = rows.iter().find(|r| r.path == "/b").expect("b");
    assert_eq!(a.visitor, b.visitor);
}

#[tokio::test]
async fn cookieless_visitors_cannot_be_linked_across_days_and_the_salt_is_destroyed() {
    proves!("retention.tracking.visitor_id");
    for db in each_engine().await {
        let clock = ManualClock::at(T0);
        let app = manual_app(db, &clock);
        let store = app.db.store.clone();
        let client = Client::new(&app, "127.0.0.1", FIREFOX).with("x-forwarded-for", "192.0.2.50");
        client.view("/one", None, T0).await;
        client.view("/two", None, T0 + MIN).await;
        Client::new(&app, "127.0.0.1", CHROME).with("x-forwarded-for", "192.0.2.50").view("/three", None, T0).await;
        clock.advance(DAY_MS);
        client.view("/four", None, T0 + DAY_MS).await;
        let rows = stored(&store).await;
        let id = |p: &str| rows.iter().find(|r| r.path == p).expect(p).visitor;
        assert_eq!(id("/one"), id("/two"), "same address and agent on one day: one visitor");
        assert_ne!(id("/one"), id("/three"), "another agent: another visitor");
        assert_ne!(id("/one"), id("/four"), "the next day: a new salt, unlinkable");
        let rollups = Rollups::new(store.clone(), Arc::new(clock.clone()));
        let report = rollups.run().await.expect("rollup");
        assert_eq!(report.salts_destroyed, 1, "yesterday's salt is destroyed at rotation");
        let salts: i64 = count(&store, "SELECT COUNT(*) AS n FROM analytics_salts").await;
        assert_eq!(salts, 1, "only today's salt exists");
        // After 13 months the raw visitor ids are gone and the sketches lose them; counts stay.
        clock.advance(400 * DAY_MS);
        Housekeeping::new(store.clone(), Arc::new(clock.clone()), passme_policy::builtin()).expect("rules").run().await.expect("run");
        assert!(stored(&store).await.is_empty());
        assert_eq!(count(&store, "SELECT COUNT(*) AS n FROM analytics_sessions").await, 0);
        assert_eq!(count(&store, "SELECT COUNT(*) AS n FROM analytics_visitor_sketches WHERE sketch IS NOT NULL").await, 0);
        assert_eq!(
            count(&store, "SELECT COUNT(*) AS n FROM analytics_visitor_sketches WHERE visitors > 0").await,
            2,
            "daily counts remain"
        );
    }
}

#[tokio::test]
async fn raw_ips_are_truncated_after_48_hours_and_raw_rows_aggregated_after_13_months() {
    proves!("retention.tracking.ip_address", "retention.tracking.pages", "retention.tracking.network", "retention.tracking.client");
    for db in each_engine().await {
        let clock = ManualClock::at(T0);
        let app = manual_app(db, &clock);
        let store = app.db.store.clone();
        Client::new(&app, "127.0.0.1", FIREFOX).with("x-forwarded-for", "8.8.8.8").view("/", None, T0).await;
        Rollups::new(store.clone(), Arc::new(clock.clone())).run().await.expect("rollup");
        let housekeeping = || Housekeeping::new(store.clone(), Arc::new(clock.clone()), passme_policy::builtin()).expect("rules");
        clock.advance(47 * 60 * MIN);
        housekeeping().run().await.expect("run");
        assert_eq!(stored(&store).await[0].ip.as_deref(), Some("8.8.8.8"), "kept while fraud scanning may need it");
        clock.advance(2 * 60 * MIN);
        housekeeping().run().await.expect("run");
        let row = &stored(&store).await[0];
        assert_eq!((row.ip.as_deref(), row.ip_prefix.as_str()), (None, "8.8.8.0/24"), "after 48 hours only the /24 remains");
        clock.advance(396 * DAY_MS);
        housekeeping().run().await.expect("run");
        assert!(stored(&store).await.is_empty(), "raw page views are gone after 13 months");
        let day = T0 / DAY_MS;
        let kept = store.rollup_days("passme", day, day).await.expect("rollups");
        assert_eq!(kept.len(), 1, "the aggregate remains");
        assert_eq!((kept[0].totals.sessions, kept[0].totals.pageviews), (1, 1));
        assert_eq!(count(&store, "SELECT COUNT(*) AS n FROM analytics_sessions").await, 0, "visits, with their ISP and browser, are gone");
        let aggregates = store.rollup_breakdowns("passme", day, day).await.expect("breakdowns");
        let value = |d: passme_store::Dimension| aggregates.iter().find(|r| r.dimension == d).map(|r| (r.value.clone(), r.totals.sessions));
        assert_eq!(value(passme_store::Dimension::Browser), Some(("Firefox".into(), 1)), "the browser survives only as a count");
        assert!(value(passme_store::Dimension::Isp).is_some_and(|(isp, n)| isp.starts_with("AS") && n == 1), "likewise the ISP");
    }
}

/// Visits recomputed independently from raw rows, the way the policy text describes them.
struct Recount {
    visitors: i64,
    sessions: i64,
    pageviews: i64,
    bounces: i64,
    duration: i64,
    breakdown: BTreeMap<(String, String), i64>,
}

/// Counts the visits `keep` keeps; under a page filter (`page`), a visit's page views are that
/// page's own.
fn recount(rows: &[EventRow], keep: impl Fn(&[&EventRow]) -> bool, page: Option<&str>) -> Recount {
    let mut by_visitor: BTreeMap<i64, Vec<&EventRow>> = BTreeMap::new();
    for row in rows {
        by_visitor.entry(row.visitor).or_default().push(row);
    }
    let (mut visitors, mut sessions, mut pageviews, mut bounces, mut duration) = (BTreeSet::new(), 0, 0, 0, 0);
    let mut breakdown = BTreeMap::new();
    for (visitor, mut views) in by_visitor {
        views.sort_by_key(|v| (v.ts, v.path.clone()));
        let mut visits: Vec<Vec<&EventRow>> = Vec::new();
        for view in views {
            match visits.last_mut() {
                Some(visit) if view.ts - visit[visit.len() - 1].ts <= VISIT_GAP_MS => visit.push(view),
                _ => visits.push(vec![view]),
            }
        }
        for visit in visits.iter().filter(|v| keep(v)) {
            visitors.insert(visitor);
            sessions += 1;
            let counted: Vec<&&EventRow> = visit.iter().filter(|v| page.is_none_or(|p| v.path == p)).collect();
            pageviews += counted.len() as i64;
            bounces += i64::from(visit.len() == 1);
            duration += visit[visit.len() - 1].ts - visit[0].ts;
            *breakdown.entry(("landing".to_string(), visit[0].path.clone())).or_default() += 1;
            *breakdown.entry(("exit".to_string(), visit[visit.len() - 1].path.clone())).or_default() += 1;
            *breakdown.entry(("browser".to_string(), visit[0].browser.clone())).or_default() += 1;
            *breakdown.entry(("source".to_string(), visit[0].source.clone())).or_default() += 1;
            for view in counted {
                *breakdown.entry(("page".to_string(), view.path.clone())).or_default() += 1;
            }
        }
    }
    Recount { visitors: visitors.len() as i64, sessions, pageviews, bounces, duration, breakdown }
}

fn report_breakdown(report: &Value) -> BTreeMap<(String, String), i64> {
    let mut out = BTreeMap::new();
    for dimension in ["landing", "exit", "browser", "source", "page"] {
        for entry in report["breakdowns"][dimension].as_array().expect("breakdown") {
            let metric = if dimension == "page" { "pageviews" } else { "sessions" };
            out.insert((dimension.to_string(), entry["value"].as_str().expect("value").to_string()), entry[metric].as_i64().expect("n"));
        }
    }
    out
}

/// A staff member with `role`, signed in: their account id and session cookie.
async fn staff(app: &TestApp, role: Role) -> (passme_store::AccountId, String) {
    let signup = passme_core::identity::accounts::Accounts::new(app.db.store.clone(), app.state.clock.clone())
        .sign_up(&format!("{}@passme.test", role.id()), secrecy::SecretString::from(passme_testkit::PASSWORD))
        .await
        .expect("sign up");
    let passme_core::identity::accounts::SignUp::Created { account_id } = signup else { panic!("a new account") };
    Staff::new(app.db.store.clone(), app.state.clock.clone()).grant(&account_id, role, "test").await.expect("grant");
    let (token, _) = Sessions::new(app.db.store.clone(), app.state.clock.clone())
        .issue(&account_id, FIREFOX, "127.0.0.1".parse().expect("ip"))
        .await
        .expect("session");
    use secrecy::ExposeSecret;
    (account_id, format!("__Host-session={}", token.expose_secret()))
}

async fn analyst(app: &TestApp, role: Role) -> String {
    staff(app, role).await.1
}

async fn get_as(app: &TestApp, cookie: &str, path: &str) -> TestResponse {
    app.send(Request::get(path).header("cookie", cookie).header("accept", "text/html").body(Body::empty()).expect("request")).await
}

#[tokio::test]
async fn visits_and_rollups_agree_with_a_recount_from_raw_rows_even_with_late_events() {
    for db in each_engine().await {
        let clock = ManualClock::at(T0);
        let app = manual_app(db, &clock);
        let store = app.db.store.clone();
        let (ann, bo, cy) = (
            Client::new(&app, "127.0.0.1", FIREFOX).with("x-forwarded-for", "192.0.2.1"),
            Client::new(&app, "127.0.0.1", CHROME).with("x-forwarded-for", "192.0.2.2"),
            Client::new(&app, "127.0.0.1", SAFARI).with("x-forwarded-for", "192.0.2.3"),
        );
        // Moves the clock to `minute` past T0 (it only moves forward) and returns that time.
        let at = |minute: i64| {
            clock.advance(T0 + minute * MIN - clock_now(&clock));
            T0 + minute * MIN
        };
        let rollups = Rollups::new(store.clone(), Arc::new(clock.clone()));
        // Ann: two visits, 45 minutes apart, so far.
        ann.view("/", Some("https://www.google.com/"), at(0)).await;
        ann.view("/pricing", Some(&page("/")), at(5)).await;
        ann.view("/signup", Some("https://news.example/"), at(50)).await;
        at(55);
        rollups.run().await.expect("first pass");
        let day = T0 / DAY_MS;
        let first = store.rollup_days("passme", day, day).await.expect("days");
        assert_eq!(first[0].totals.sessions, 2, "Ann twice");
        // A late, out-of-order event (sent 32 minutes after it happened) fills Ann's gap: her
        // two visits become one.
        at(60);
        ann.view("/features", Some(&page("/pricing")), T0 + 28 * MIN).await;
        at(81);
        let batch = bo
            .send(json!([
                { "site": "passme", "url": page("/blog"), "referrer": "https://duckduckgo.com/", "ts": T0 + 70 * MIN },
                { "site": "passme", "url": page("/blog/2"), "referrer": page("/blog"), "ts": T0 + 71 * MIN },
                { "site": "passme", "url": page("/pricing"), "referrer": page("/blog/2"), "ts": T0 + 80 * MIN },
            ]))
            .await;
        assert_eq!(batch.json(), json!({ "stored": 3, "dropped": 0 }));
        cy.view("/", None, at(90)).await;
        at(91);
        rollups.run().await.expect("second pass");
        let rows = stored(&store).await;
        let Recount { visitors, sessions, pageviews, bounces, duration, breakdown } = recount(&rows, |_| true, None);
        assert_eq!((visitors, sessions), (3, 3), "the late event merged Ann's visits");
        let admin = analyst(&app, Role::Analyst).await;
        let date = passme_analytics::report::date_of_day(day);
        let response = get_as(&app, &admin, &format!("/api/v1/analytics/report?from={date}&to={date}")).await;
        assert_eq!(response.status, 200, "{}", response.text());
        let report = response.json();
        assert_eq!(report["counted_from"], "rollups");
        let totals = &report["totals"];
        assert_eq!(totals["visitors"].as_i64(), Some(visitors));
        assert_eq!(totals["sessions"].as_i64(), Some(sessions));
        assert_eq!(totals["pageviews"].as_i64(), Some(pageviews));
        assert_eq!(totals["bounces"].as_i64(), Some(bounces));
        assert_eq!(totals["avg_duration_ms"].as_i64(), Some(duration / sessions));
        assert_eq!(report_breakdown(&report), breakdown, "every breakdown matches the recount");
        assert_eq!(report["series"][0]["sessions"].as_i64(), Some(sessions));
        // Filtered reports count from the visits and agree with the recount under the same filter.
        for (filter, keep, page) in [
            ("browser=Firefox", Box::new(|v: &[&EventRow]| v[0].browser == "Firefox") as Box<dyn Fn(&[&EventRow]) -> bool>, None),
            ("page=%2Fpricing", Box::new(|v: &[&EventRow]| v.iter().any(|e| e.path == "/pricing")), Some("/pricing")),
            (
                "source=duckduckgo.com&landing=%2Fblog",
                Box::new(|v: &[&EventRow]| v[0].source == "duckduckgo.com" && v[0].path == "/blog"),
                None,
            ),
        ] {
            let response = get_as(&app, &admin, &format!("/api/v1/analytics/report?from={date}&to={date}&{filter}")).await;
            assert_eq!(response.status, 200, "{}", response.text());
            let report = response.json();
            let Recount { visitors, sessions, pageviews, bounces, breakdown, .. } = recount(&rows, keep, page);
            assert_eq!(report["counted_from"], "visits");
            assert_eq!(
                (
                    report["totals"]["visitors"].as_i64(),
                    report["totals"]["sessions"].as_i64(),
                    report["totals"]["pageviews"].as_i64(),
                    report["totals"]["bounces"].as_i64()
                ),
                (Some(visitors), Some(sessions), Some(pageviews), Some(bounces)),
                "{filter}"
            );
            assert_eq!(report_breakdown(&report), breakdown, "{filter}");
        }
    }
}

/// A pass over a large backlog can outlast the minute: the next minute's pass (a job of its own,
/// maybe on another instance) must not rewrite the same visitors' visits meanwhile. Forced to
/// overlap, the second pass is left to the first; run side by side, the passes still agree with
/// a rebuild from the raw rows.
#[tokio::test]
async fn overlapping_minute_passes_run_one_at_a_time_and_agree_with_a_rebuild() {
    for db in each_engine().await {
        let clock = ManualClock::at(T0);
        let app = manual_app(db, &clock);
        let store = app.db.store.clone();
        for (i, ip) in ["192.0.2.21", "192.0.2.22", "192.0.2.23"].into_iter().enumerate() {
            let client = Client::new(&app, "127.0.0.1", FIREFOX).with("x-forwarded-for", ip);
            let views: Vec<Value> =
                (0..4).map(|n| json!({ "site": "passme", "url": page(&format!("/p/{i}/{n}")), "ts": T0 + n * MIN })).collect();
            assert_eq!(client.send(json!(views)).await.status, 202);
        }
        clock.advance(5 * MIN);
        let inbox = || {
            let store = store.clone();
            async move { store.scalar_i64("SELECT COUNT(*) AS n FROM analytics_inbox").await.expect("count") }
        };
        // Another instance's pass holds the lease: this minute's job leaves the work to it.
        let now = clock_now(&clock);
        assert!(store.take_lease(passme_analytics::rollup::PASS_LEASE, "holder_elsewhere", now, now + 30_000).await.expect("lease"));
        let job = passme_store::Job {
            id: "analytics-rollup:test".into(),
            queue: "default".into(),
            kind: passme_analytics::rollup::JOB_KIND.into(),
            payload: "{}".into(),
            status: passme_store::JobStatus::Running,
            attempts: 1,
            max_attempts: 3,
            run_at: now,
            locked_by: None,
            last_error: None,
        };
        let rollups = Rollups::new(store.clone(), Arc::new(clock.clone()));
        passme_analytics::rollup::handler(rollups.clone(), 30_000)(job.clone()).await.expect("the job ends");
        assert_eq!(inbox().await, 12, "nothing moved or rewritten while the other pass runs on {:?}", store.engine());
        let holder = passme_core::lease::Holder { id: "holder_here".into(), lease_ms: 30_000 };
        assert_eq!(rollups.run_exclusive(&holder).await.expect("pass"), None);
        // Its holder finishes; two passes then start side by side.
        assert!(store.release_lease(passme_analytics::rollup::PASS_LEASE, "holder_elsewhere", now).await.expect("release"));
        let other = passme_core::lease::Holder { id: "holder_there".into(), lease_ms: 30_000 };
        let (a, b) = tokio::join!(rollups.run_exclusive(&holder), rollups.run_exclusive(&other));
        let ran = [a.expect("pass"), b.expect("pass")].into_iter().flatten().count();
        assert!(ran >= 1, "at least one ran");
        assert_eq!(inbox().await, 0);
        let day = T0 / DAY_MS;
        let passes = store.rollup_days("passme", day, day).await.expect("days")[0].totals;
        let lease = store.lease(passme_analytics::rollup::PASS_LEASE).await.expect("read").expect("lease");
        assert_eq!((lease.holder, lease.runs), (None, 1 + i64::try_from(ran).expect("small")), "released after each run");
        rollups.rebuild("passme", day, day).await.expect("rebuild");
        let rebuilt = store.rollup_days("passme", day, day).await.expect("days")[0].totals;
        assert_eq!(passes, rebuilt, "the passes agree with a rebuild");
        assert_eq!((rebuilt.sessions, rebuilt.pageviews), (3, 12));
    }
}

#[tokio::test]
async fn the_inbox_is_moved_in_slices_without_losing_or_doubling_a_page_view() {
    for db in each_engine().await {
        let clock = ManualClock::at(T0);
        let app = manual_app(db, &clock);
        let store = app.db.store.clone();
        let client = Client::new(&app, "127.0.0.1", FIREFOX).with("x-forwarded-for", "192.0.2.9");
        let batch: Vec<Value> = (0..7).map(|i| json!({ "site": "passme", "url": page(&format!("/inbox/{i}")), "ts": T0 + i })).collect();
        assert_eq!(client.send(json!(batch)).await.status, 202);
        let count = |table: &'static str| {
            let store = store.clone();
            async move { store.scalar_i64(&format!("SELECT COUNT(*) AS n FROM {table}")).await.expect("count") }
        };
        assert_eq!((count("analytics_inbox").await, count("analytics_events").await), (7, 0), "acknowledged into the inbox");
        assert_eq!(store.inbox_oldest_received().await.expect("oldest"), Some(T0));
        assert_eq!(store.move_inbox(3).await.expect("move"), 3);
        assert_eq!((count("analytics_inbox").await, count("analytics_events").await), (4, 3));
        assert_eq!(store.move_inbox(10).await.expect("move"), 4, "a short slice: the inbox is empty");
        assert_eq!(store.move_inbox(10).await.expect("move"), 0);
        assert_eq!(store.inbox_oldest_received().await.expect("oldest"), None);
        let paths: BTreeSet<String> = stored(&store).await.into_iter().map(|e| e.path).collect();
        assert_eq!(paths, (0..7).map(|i| format!("/inbox/{i}")).collect::<BTreeSet<_>>());
        // The pass moves what arrived since and counts it.
        assert_eq!(client.send(json!({ "site": "passme", "url": page("/inbox/7"), "ts": T0 + 8 })).await.status, 202);
        clock.advance(MIN);
        Rollups::new(store.clone(), Arc::new(clock.clone())).run().await.expect("pass");
        assert_eq!((count("analytics_inbox").await, count("analytics_events").await), (0, 8));
        let day = T0 / DAY_MS;
        assert_eq!(store.rollup_days("passme", day, day).await.expect("days")[0].totals.pageviews, 8);
    }
}

#[tokio::test]
async fn the_dashboard_is_for_analysts_in_danish_and_english_and_shows_no_personal_data() {
    let db = sqlite().await;
    let clock = ManualClock::at(T0);
    let app = manual_app(db, &clock);
    Client::new(&app, "127.0.0.1", FIREFOX).with("x-forwarded-for", "8.8.4.4").view("/pricing", None, T0).await;
    Rollups::new(app.db.store.clone(), Arc::new(clock.clone())).run().await.expect("rollup");
    let anonymous = app.browse("/staff/analytics").await;
    assert_eq!(anonymous.status, 303);
    let support = analyst(&app, Role::Support).await;
    assert_eq!(get_as(&app, &support, "/staff/analytics").await.status, 403, "least privilege: support staff see no analytics");
    assert_eq!(get_as(&app, &support, "/api/v1/analytics/report").await.error_code(), "forbidden");
    let analyst = analyst(&app, Role::Analyst).await;
    let da = get_as(&app, &analyst, "/staff/analytics?lang=da").await;
    assert_eq!(da.status, 200);
    let html = da.text();
    for needle in [
        "Statistik",
        "Besøgende",
        "<svg",
        "<polyline",
        "/pricing",
        "Firefox",
        "AS15169 Google LLC",
        "fra RouteViews og DB-IP (CC BY 4.0)",
        "type=\"date\"",
    ] {
        assert!(html.contains(needle), "the Danish dashboard shows {needle}");
    }
    assert!(!html.contains("8.8.4.4") && !html.contains("8.8.4.0"), "no address on the dashboard");
    let en = get_as(&app, &analyst, "/staff/analytics?lang=en&browser=Firefox").await;
    assert!(
        en.text().contains("Analytics") && en.text().contains("Visitors") && en.text().contains("Filters"),
        "English, with the filter shown"
    );
    let bad = get_as(&app, &analyst, "/api/v1/analytics/report?from=2026-13-45").await;
    assert_eq!((bad.status.as_u16(), bad.error_code().as_str()), (400, "date_invalid"));
    let backwards = get_as(&app, &analyst, "/api/v1/analytics/report?from=2026-11-10&to=2026-11-01").await;
    assert_eq!(backwards.error_code(), "range_invalid");
    let unknown = get_as(&app, &analyst, "/api/v1/analytics/report?colour=red").await;
    assert_eq!(unknown.error_code(), "query_invalid");
}

#[tokio::test]
async fn the_tracker_is_small_first_party_and_on_every_page_with_a_noscript_pixel() {
    let db = sqlite().await;
    let clock = ManualClock::at(T0);
    let app = manual_app(db, &clock);
    let script = app.get("/t.js").await;
    assert_eq!(script.status, 200);
    assert!(script.header("content-type").is_some_and(|t| t.starts_with("text/javascript")));
    let mut gzip = std::process::Command::new("gzip")
        .arg("-9c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip");
    use std::io::Write;
    gzip.stdin.take().expect("stdin").write_all(&script.body).expect("write");
    let compressed = gzip.wait_with_output().expect("gzip output").stdout.len();
    assert!(compressed < 1536, "the tracker is {compressed} bytes gzipped");
    let text = script.text();
    for needle in ["sendBeacon", "keepalive", "pushState", "popstate"] {
        assert!(text.contains(needle), "the tracker uses {needle}");
    }
    for path in ["/", "/privacy", "/cookies", "/login", "/signup"] {
        let html = app.browse(path).await.text();
        assert!(html.contains(r#"<script src="/t.js" data-site="passme" defer></script>"#), "{path} carries the tracker");
        assert!(html.contains("<noscript><img src=\"/api/v1/events/pixel.gif?site=passme\""), "{path} has the pixel");
    }
    // The pixel records the page it is shown on (from Referer) and answers with an image.
    let mut request = Request::get("/api/v1/events/pixel.gif?site=passme")
        .header("referer", page("/no-js"))
        .header("user-agent", FIREFOX)
        .body(Body::empty())
        .expect("request");
    request.extensions_mut().insert(axum::extract::ConnectInfo("127.0.0.1:1".parse::<std::net::SocketAddr>().expect("addr")));
    let pixel = app.send(request).await;
    assert_eq!((pixel.status.as_u16(), pixel.header("content-type")), (200, Some("image/gif")));
    assert!(stored(&app.db.store).await.iter().any(|r| r.path == "/no-js"));
}

#[tokio::test]
async fn under_overload_the_endpoint_answers_503_with_retry_after_instead_of_queueing() {
    let db = sqlite().await;
    let clock = ManualClock::at(T0);
    // Room for 3 waiting page views: a batch of 5 cannot be queued.
    let app = TestApp::builder(db).clock(Arc::new(clock.clone())).event_queue(3).build();
    let client = Client::new(&app, "192.0.2.60", FIREFOX);
    let batch = Value::Array(vec![json!({ "site": "passme", "url": page("/"), "ts": T0 }); 5]);
    let refused = client.send(batch).await;
    assert_eq!((refused.status.as_u16(), refused.error_code().as_str()), (503, "overloaded"));
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(stored(&app.db.store).await.is_empty());
    // What fits is taken, and the reservation of the refused batch was given back.
    for _ in 0..3 {
        client.view("/", None, T0).await;
    }
    assert_eq!(stored(&app.db.store).await.len(), 3);
}

#[tokio::test]
async fn an_analysts_token_reads_the_report_and_other_tokens_cannot() {
    let db = sqlite().await;
    let app = TestApp::new(db);
    let tokens = passme_core::identity::api_tokens::ApiTokens::new(app.db.store.clone(), app.state.clock.clone());
    let (account, _) = staff(&app, Role::Analyst).await;
    use passme_core::identity::api_tokens::{SCOPE_ANALYTICS_READ, SCOPE_ME_READ};
    use secrecy::ExposeSecret;
    let reader = tokens.create(&account, "dashboards", &[SCOPE_ANALYTICS_READ]).await.expect("token");
    let me_only = tokens.create(&account, "profile", &[SCOPE_ME_READ]).await.expect("token");
    let with_bearer = |token: String| {
        Request::get("/api/v1/analytics/report").header("authorization", format!("Bearer {token}")).body(Body::empty()).expect("request")
    };
    let ok = app.send(with_bearer(reader.expose_secret().to_string())).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["counted_from"], "rollups");
    let refused = app.send(with_bearer(me_only.expose_secret().to_string())).await;
    assert_eq!((refused.status.as_u16(), refused.error_code().as_str()), (403, "insufficient_scope"));
    let none = app.get("/api/v1/analytics/report").await;
    assert_eq!(none.status, 401);
}

#[tokio::test]
async fn the_real_tracker_follows_single_page_navigation_batches_and_its_beacons_are_accepted() {
    // The script served at /t.js, run by Node against a minimal browser (history, location,
    // sendBeacon); its beacons then go to the real endpoint.
    let db = sqlite().await;
    let clock = ManualClock::at(T0);
    let app = manual_app(db, &clock);
    let script = app.get("/t.js").await.body;
    let harness = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js/tracker_harness.js");
    let mut node = std::process::Command::new("node")
        .arg(&harness)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node runs (scripts/test needs it anyway, for npm)");
    use std::io::Write;
    node.stdin.take().expect("stdin").write_all(&script).expect("the script");
    let output = node.wait_with_output().expect("node output");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let beacons: Value = serde_json::from_slice(&output.stdout).expect("beacons as JSON");
    let beacons = beacons.as_array().expect("a list");
    assert_eq!(beacons.len(), 3, "hidden page, a full batch of ten, page hide: {beacons:?}");
    assert!(beacons.iter().all(|b| b["url"] == "http://passme.test/api/v1/events" && b["type"] == "text/plain"), "no preflight needed");
    let first: Vec<(&str, &str)> = beacons[0]["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| (e["url"].as_str().expect("url"), e["referrer"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        first,
        [
            ("http://passme.test/start", "https://www.google.com/search?q=passme"),
            ("http://passme.test/spa/one", "http://passme.test/start"),
            ("http://passme.test/spa/two", "http://passme.test/spa/one"),
            ("http://passme.test/spa/one", "http://passme.test/spa/two"),
        ],
        "pushState and popstate are views, a fragment change is not, and each view's referrer is the previous page"
    );
    assert_eq!(beacons[1]["events"].as_array().map(Vec::len), Some(10));
    assert_eq!(beacons[2]["events"].as_array().map(Vec::len), Some(2));
    let client = Client::new(&app, "127.0.0.1", FIREFOX);
    for beacon in beacons {
        let mut events = beacon["events"].clone();
        // The harness's clock is the real one; the app's is fixed at T0.
        for e in events.as_array_mut().expect("events") {
            e["ts"] = json!(T0);
        }
        let response = client.send(events.clone()).await;
        assert_eq!(response.status, 202, "{}", response.text());
    }
    let paths: BTreeSet<String> = stored(&app.db.store).await.into_iter().map(|r| r.path).collect();
    for expected in ["/start", "/spa/one", "/spa/two", "/burst/0", "/burst/11"] {
        assert!(paths.contains(expected), "{expected} stored: {paths:?}");
    }
}

#[tokio::test]
async fn client_versions_go_after_30_days_and_every_report_stays_the_same() {
    proves!("retention.tracking.client_version");
    use passme_analytics::report::{Query, report};
    for db in each_engine().await {
        let clock = ManualClock::at(T0);
        let app = manual_app(db, &clock);
        let store = app.db.store.clone();
        Client::new(&app, "127.0.0.1", FIREFOX).with("x-forwarded-for", "192.0.2.9").view("/", None, T0).await;
        Client::new(&app, "127.0.0.1", FIREFOX).with("x-forwarded-for", "192.0.2.9").view("/pricing", None, T0 + MIN).await;
        Client::new(&app, "127.0.0.1", CHROME).with("x-forwarded-for", "192.0.2.10").view("/", None, T0 + 2 * MIN).await;
        Rollups::new(store.clone(), Arc::new(clock.clone())).run().await.expect("rollup");
        let day = T0 / DAY_MS;
        let overview = Query { site: "passme".into(), from_day: day, to_day: day, filters: Vec::new() };
        let firefox = Query { filters: vec![(passme_store::Dimension::Browser, "Firefox".into())], ..overview.clone() };
        let before = (report(&store, &overview, 10).await.expect("report"), report(&store, &firefox, 10).await.expect("report"));
        assert_eq!(before.1.totals.pageviews, 2);

        let housekeeping = || Housekeeping::new(store.clone(), Arc::new(clock.clone()), passme_policy::builtin()).expect("rules");
        clock.advance(29 * DAY_MS);
        housekeeping().run().await.expect("run");
        assert!(stored(&store).await.iter().all(|r| !r.browser_version.is_empty()), "kept for 30 days");
        clock.advance(2 * DAY_MS);
        housekeeping().run().await.expect("run");
        let rows = stored(&store).await;
        assert_eq!(rows.len(), 3);
        assert!(rows.iter().all(|r| r.browser_version.is_empty() && r.os_version.is_empty()), "the versions are gone");
        let families: BTreeSet<(String, String)> = rows.iter().map(|r| (r.browser.clone(), r.os.clone())).collect();
        assert_eq!(
            families,
            BTreeSet::from([("Chrome".into(), "Windows".into()), ("Firefox".into(), "Linux".into())]),
            "the families stay"
        );
        let after = (report(&store, &overview, 10).await.expect("report"), report(&store, &firefox, 10).await.expect("report"));
        assert_eq!(after, before, "the aggregates, filtered or not, are unchanged");
    }
}

#[tokio::test]
async fn after_30_days_page_views_lose_their_visitor_and_exact_time_and_every_report_stays_the_same() {
    proves!("retention.tracking.view_visitor", "retention.tracking.view_time");
    const HOUR: i64 = 60 * MIN;
    use passme_analytics::report::{Query, report};
    for db in each_engine().await {
        let clock = ManualClock::at(T0);
        let app = manual_app(db, &clock);
        let store = app.db.store.clone();
        let ola = Client::new(&app, "127.0.0.1", FIREFOX).with("x-forwarded-for", "192.0.2.9");
        ola.view("/", None, T0 - 50 * MIN).await;
        ola.view("/pricing", None, T0 - 48 * MIN).await;
        Client::new(&app, "127.0.0.1", CHROME).with("x-forwarded-for", "192.0.2.10").view("/", None, T0 - 46 * MIN).await;
        Rollups::new(store.clone(), Arc::new(clock.clone())).run().await.expect("rollup");
        let before_rows = stored(&store).await;
        assert!(before_rows.iter().all(|r| r.visitor >= 0), "real ids are never negative");
        let day = (T0 - HOUR) / DAY_MS;
        let overview = Query { site: "passme".into(), from_day: day, to_day: day, filters: Vec::new() };
        let by_page = Query { filters: vec![(passme_store::Dimension::Page, "/".into())], ..overview.clone() };
        let firefox = Query { filters: vec![(passme_store::Dimension::Browser, "Firefox".into())], ..overview.clone() };
        let reports = || async {
            let mut all = Vec::new();
            for q in [&overview, &by_page, &firefox] {
                all.push(report(&store, q, 10).await.expect("report"));
            }
            all
        };
        let before = reports().await;

        let housekeeping = || Housekeeping::new(store.clone(), Arc::new(clock.clone()), passme_policy::builtin()).expect("rules");
        clock.advance(29 * DAY_MS);
        housekeeping().run().await.expect("run");
        let identity = |rows: &[EventRow]| rows.iter().map(|r| (r.path.clone(), r.visitor, r.ts, r.received_at)).collect::<Vec<_>>();
        assert_eq!(identity(&stored(&store).await), identity(&before_rows), "visitor and times untouched for 30 days");
        clock.advance(2 * DAY_MS);
        housekeeping().run().await.expect("run");
        let rows = stored(&store).await;
        assert_eq!(rows.len(), 3);
        assert!(rows.iter().all(|r| r.visitor < 0), "every visitor id replaced");
        let ids: BTreeSet<i64> = rows.iter().map(|r| r.visitor).collect();
        assert_eq!(ids.len(), 3, "random per view: Ola's two views are no longer linked");
        assert!(rows.iter().all(|r| r.ts % 3_600_000 == 0 && r.received_at % 3_600_000 == 0), "times rounded to the hour");
        assert!(rows.iter().all(|r| r.ts == T0 - 3_600_000), "the hour before T0: {rows:?}");
        assert_eq!(reports().await, before, "visits and rollups, filtered or not, are unchanged");
        let again = housekeeping().run_with(&passme_core::housekeeping::RunOptions::default(), &|_, _, _| {}).await.expect("run");
        let due = |rule: &str| again.rules.iter().find(|r| r.rule == rule).map(|r| r.examined);
        assert_eq!((due("retention.tracking.view_visitor"), due("retention.tracking.view_time")), (Some(0), Some(0)), "done once");
    }
}
