//! Cookie consent through the real router: the server never sets a cookie of a category the
//! visitor has not consented to, on any route, in any consent state; the no-JavaScript form flow
//! records proof in the ledger; forged, cross-site and cookie-less submissions are refused.

use axum::body::Body;
use axum::http::Request;
use passme_core::consent::{Choices, ConsentCookie};
use passme_policy::proves;
use passme_testkit::{TestApp, TestResponse, each_engine, sqlite};

const GET_ROUTES: &[&str] = &[
    "/",
    "/privacy",
    "/privacy?lang=en",
    "/cookies",
    "/cookies?lang=en",
    "/signup",
    "/login",
    "/verify?token=x",
    "/reset-request",
    "/reset?token=x",
    "/email-confirm?token=x",
    "/account",
    "/preferences",
    "/billing",
    "/api/v1/entitlements",
    "/staff/audit",
    "/privacy.json",
    "/healthz",
    "/readyz",
    "/metrics",
    "/api/openapi.json",
    "/api/v1/me",
    "/api/v1/sessions",
    "/api/v1/preferences",
    "/api/v1/consent",
    "/static/style.css",
    "/no-such-page",
];
const ID: &str = "AbCdEfGhIjKlMnOpQrStUv";

fn version() -> String {
    passme_policy::builtin().meta.version.clone()
}

fn consent_cookie(choices: Choices, version: &str) -> String {
    format!("__Host-consent={}", ConsentCookie { id: ID.into(), policy_version: version.into(), choices }.encode())
}

fn get_with_cookie(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut request = Request::get(path).header("accept", "text/html");
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    request.body(Body::empty()).expect("request")
}

fn set_cookies(response: &TestResponse) -> Vec<String> {
    response.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect()
}

/// Every Set-Cookie is a declared `__Host-` cookie with safe attributes, of a category allowed now.
fn assert_allowed(path: &str, state: &str, response: &TestResponse, allowed: Choices) {
    let policy = passme_policy::builtin();
    for set in set_cookies(response) {
        let name = set.split('=').next().unwrap_or_default();
        let declared = policy.cookie(name).unwrap_or_else(|| panic!("{path} [{state}] set undeclared cookie {name}"));
        assert!(allowed.allows(declared.category), "{path} [{state}] set {name} ({:?}) without consent", declared.category);
        assert!(name.starts_with("__Host-"), "{set}");
        for attribute in ["; Path=/", "; Secure", "; HttpOnly", "; SameSite=Lax"] {
            assert!(set.contains(attribute), "{path} [{state}]: {set} lacks {attribute}");
        }
        assert!(!set.to_ascii_lowercase().contains("domain="), "{set}");
    }
}

#[tokio::test]
async fn no_route_sets_a_cookie_its_category_lacks_consent_for_in_any_state() {
    proves!("security.cookies");
    proves!("cookie.__Host-consent", "consent.advertising");
    let app = TestApp::new(sqlite().await);
    let v = version();
    let states: Vec<(&str, Option<String>, Choices)> = vec![
        ("none", None, Choices::NONE),
        ("necessary only", Some(consent_cookie(Choices::NONE, &v)), Choices::NONE),
        (
            "preferences",
            Some(consent_cookie(Choices { preferences: true, ..Choices::NONE }, &v)),
            Choices { preferences: true, ..Choices::NONE },
        ),
        (
            "statistics",
            Some(consent_cookie(Choices { statistics: true, ..Choices::NONE }, &v)),
            Choices { statistics: true, ..Choices::NONE },
        ),
        ("marketing", Some(consent_cookie(Choices { marketing: true, ..Choices::NONE }, &v)), Choices { marketing: true, ..Choices::NONE }),
        ("all", Some(consent_cookie(Choices::ALL, &v)), Choices::ALL),
        ("outdated all", Some(consent_cookie(Choices::ALL, "2020-01-01")), Choices::NONE),
    ];
    for (state, cookie, allowed) in &states {
        for path in GET_ROUTES {
            let response = app.send(get_with_cookie(path, cookie.as_deref())).await;
            assert!(response.status.as_u16() < 500, "{path} [{state}]: {}", response.status);
            assert_allowed(path, state, &response, *allowed);
        }
    }
}

#[tokio::test]
async fn with_cookies_refused_every_page_renders() {
    let app = TestApp::new(sqlite().await);
    for path in GET_ROUTES.iter().filter(|p| !p.contains("no-such")) {
        let response = app.send(get_with_cookie(path, None)).await;
        let expected = match *path {
            "/account" | "/staff/audit" | "/billing" => 303,
            "/api/v1/me" | "/api/v1/sessions" | "/api/v1/preferences" | "/api/v1/entitlements" => 401,
            _ => 200,
        };
        assert_eq!(response.status.as_u16(), expected, "{path}");
    }
    let landing = app.browse("/").await.text();
    assert!(landing.contains("Afvis alle") && landing.contains("Accepter alle"), "the banner offers both, equally");
    for category in ["preferences", "statistics", "marketing"] {
        assert!(landing.contains(&format!("name=\"{category}\" value=\"on\">")), "{category} must not be pre-ticked");
    }
}

/// The consent form's CSRF cookie and token, as a browser receives them from the settings page
/// (which always shows the form, unlike the banner).
async fn form_credentials(app: &TestApp, cookie: Option<&str>) -> (String, String) {
    let response = app.send(get_with_cookie("/cookies", cookie)).await;
    let csrf_cookie = set_cookies(&response).into_iter().find(|c| c.starts_with("__Host-csrf=")).expect("a csrf cookie with the form");
    let cookie_pair = csrf_cookie.split(';').next().expect("pair").to_string();
    let html = response.text();
    let token = html.split("name=\"csrf\" value=\"").nth(1).and_then(|s| s.split('"').next()).expect("token in the form").to_string();
    (cookie_pair, token)
}

fn post_consent(body: &str, cookie: Option<&str>, origin: Option<&str>) -> Request<Body> {
    let mut request = Request::post("/consent").header("content-type", "application/x-www-form-urlencoded").header("host", "passme.test");
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    request.body(Body::from(body.to_string())).expect("request")
}

#[tokio::test]
async fn the_banner_form_records_a_choice_with_proof_and_no_javascript() {
    proves!("cookie.__Host-consent");
    for db in each_engine().await {
        records_a_choice(TestApp::new(db)).await;
    }
}

async fn records_a_choice(app: TestApp) {
    let (csrf_cookie, token) = form_credentials(&app, None).await;
    let response = app
        .send(post_consent(
            &format!("csrf={token}&next=%2Fprivacy&choice=custom&preferences=on"),
            Some(&csrf_cookie),
            Some("https://passme.test"),
        ))
        .await;
    assert_eq!(response.status.as_u16(), 303, "{}", response.text());
    assert_eq!(response.header("location"), Some("/privacy?done=consent_saved"), "back where the visitor was, with a confirmation");
    let set = set_cookies(&response).into_iter().find(|c| c.starts_with("__Host-consent=")).expect("consent cookie");
    assert!(set.contains("; Max-Age=32140800"), "the declared 12 months: {set}");
    let value = set.split(';').next().and_then(|p| p.strip_prefix("__Host-consent=")).expect("value");
    let cookie = ConsentCookie::parse(value).expect("well-formed");
    assert_eq!(cookie.choices, Choices { preferences: true, statistics: false, marketing: false });
    assert_eq!(cookie.policy_version, version());

    let after = app.send(get_with_cookie("/", Some(&format!("__Host-consent={value}")))).await;
    assert!(!after.text().contains("class=\"consent\""), "no banner once answered");
    let settings = app.send(get_with_cookie("/cookies?lang=en", Some(&format!("__Host-consent={value}")))).await.text();
    assert!(
        settings.contains(&cookie.id) && settings.contains(": Given – Preferences"),
        "the visitor sees their recorded choice: {settings}"
    );

    let ledger = passme_core::consent::ConsentLedger::new(app.state.store.clone(), app.state.clock.clone());
    let history = ledger.history(&cookie.id).await.expect("history");
    assert_eq!(history.len(), 1);
    let record = &history[0];
    assert_eq!(record.action, passme_core::consent::ConsentAction::Given);
    assert_eq!(record.policy_version, version());
    assert_eq!(record.banner_version, "1");
    assert_eq!(record.network, "127.0.0.0/24", "only the truncated address");
    assert!(record.choices.preferences);
    assert!(ledger.log().verify(None).await.expect("verify").is_intact());
}

#[tokio::test]
async fn withdrawing_keeps_the_subject_records_it_and_removes_the_cookies_now() {
    let app = TestApp::new(sqlite().await);
    let previous = consent_cookie(Choices::ALL, &version());
    let (csrf_cookie, token) = form_credentials(&app, Some(&previous)).await;
    let cookies = format!("{previous}; {csrf_cookie}; __Host-prefs=theme-dark");
    let response = app.send(post_consent(&format!("csrf={token}&choice=none"), Some(&cookies), Some("https://passme.test"))).await;
    assert_eq!(response.status.as_u16(), 303);
    let sets = set_cookies(&response);
    assert!(sets.iter().any(|c| c.starts_with("__Host-prefs=;") && c.contains("Max-Age=0")), "{sets:?}");
    assert!(sets.iter().any(|c| c.starts_with(&format!("__Host-consent=v1.{ID}."))), "the same consent id: {sets:?}");
    let history =
        passme_core::consent::ConsentLedger::new(app.state.store.clone(), app.state.clock.clone()).history(ID).await.expect("history");
    assert_eq!(history.iter().map(|h| h.action.name()).collect::<Vec<_>>(), vec!["consent.withdrawn"]);
}

#[tokio::test]
async fn forged_cross_site_and_cookieless_submissions_are_refused() {
    let app = TestApp::new(sqlite().await);
    let (csrf_cookie, token) = form_credentials(&app, None).await;
    let (other_cookie, other_token) = form_credentials(&app, None).await;
    // (form body, Cookie header, Origin header, expected status, expected error code)
    type Case<'a> = (String, Option<String>, Option<&'a str>, u16, &'a str);
    let cases: [Case; 6] = [
        ("choice=all&csrf=".into(), Some(csrf_cookie.clone()), Some("https://passme.test"), 403, "csrf_failed"),
        (format!("choice=all&csrf={other_token}"), Some(csrf_cookie.clone()), Some("https://passme.test"), 403, "csrf_failed"),
        (format!("choice=all&csrf={token}"), Some(csrf_cookie.clone()), Some("https://evil.example"), 403, "csrf_failed"),
        (
            format!("choice=all&csrf={token}"),
            Some(format!("{csrf_cookie}; {other_cookie}")),
            Some("https://passme.test"),
            403,
            "csrf_failed",
        ),
        (format!("choice=all&csrf={token}"), None, Some("https://passme.test"), 400, "cookies_refused"),
        (format!("choice=maybe&csrf={token}"), Some(csrf_cookie.clone()), Some("https://passme.test"), 400, "consent_choice_invalid"),
    ];
    for (body, cookie, origin, status, code) in cases {
        let response = app.send(post_consent(&body, cookie.as_deref(), origin)).await;
        assert_eq!(response.status.as_u16(), status, "{body} {cookie:?} {origin:?}: {}", response.text());
        assert!(response.text().contains(code), "{code}: {}", response.text());
        assert!(set_cookies(&response).iter().all(|c| !c.starts_with("__Host-consent")), "nothing recorded");
    }
    let ledger = passme_core::consent::ConsentLedger::new(app.state.store.clone(), app.state.clock.clone());
    assert_eq!(ledger.log().verify(None).await.expect("verify").entries, 0, "no refused submission reached the ledger");
}

#[tokio::test]
async fn the_redirect_after_choosing_stays_on_this_site() {
    let app = TestApp::new(sqlite().await);
    let (csrf_cookie, token) = form_credentials(&app, None).await;
    for next in ["%2F%2Fevil.example", "https%3A%2F%2Fevil.example", "%2F%5Cevil.example"] {
        let response =
            app.send(post_consent(&format!("csrf={token}&choice=none&next={next}"), Some(&csrf_cookie), Some("https://passme.test"))).await;
        assert_eq!(response.header("location"), Some("/?done=consent_saved"), "{next}");
    }
}

#[tokio::test]
async fn a_new_policy_version_asks_again_and_malformed_consent_cookies_count_as_no_answer() {
    let app = TestApp::new(sqlite().await);
    let outdated = app.send(get_with_cookie("/?lang=en", Some(&consent_cookie(Choices::ALL, "2020-01-01")))).await.text();
    assert!(outdated.contains("Our privacy policy has changed, so we ask again"), "{outdated}");
    let good = consent_cookie(Choices::ALL, &version());
    let malformed = [
        "__Host-consent=v1AbCdEf".to_string(),
        "__Host-consent=v1.!!!!!!!!!!!!!!!!!!!!!!.2026-11-29.111".to_string(),
        format!("__Host-consent={}", "x".repeat(8192)),
        "__Host-consent=v1.AbCdEfGhIjKlMnOpQrSt\0v.2026-11-29.111".replace('\0', "%00"),
        format!("{good}; {good}"),
    ];
    for cookie in malformed {
        let response = app.send(get_with_cookie("/", Some(&cookie))).await;
        assert_eq!(response.status.as_u16(), 200, "{cookie:.60}");
        assert!(response.text().contains("class=\"consent\""), "treated as unanswered: {cookie:.60}");
        assert_allowed("/", "malformed", &response, Choices::NONE);
    }
}

#[tokio::test]
async fn consent_records_are_deleted_after_the_declared_period_and_the_chain_still_verifies() {
    proves!("retention.consent.ledger");
    for db in each_engine().await {
        prunes_old_consent_records(db).await;
    }
}

async fn prunes_old_consent_records(db: passme_testkit::TestDb) {
    use std::sync::Arc;
    let clock = passme_core::clock::ManualClock::at(1_790_000_000_000);
    let shared: passme_core::clock::SharedClock = Arc::new(clock.clone());
    let ledger = passme_core::consent::ConsentLedger::new(db.store.clone(), shared.clone());
    let ip = "198.51.100.7".parse().expect("ip");
    let first = ledger.record(None, Choices::ALL, None, "v1", "1", ip).await.expect("record");
    let period = passme_policy::builtin().retention_rule("retention.consent.ledger").expect("rule").period;
    clock.advance(period.max_millis() - 1000);
    ledger.record(Some(&first), Choices::NONE, None, "v1", "1", ip).await.expect("record");
    clock.advance(2000);
    passme_core::housekeeping::Housekeeping::new(db.store.clone(), shared, passme_policy::builtin())
        .expect("rules")
        .run()
        .await
        .expect("run");
    let report = ledger.log().verify(None).await.expect("verify");
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!((report.entries, report.first_seq), (1, Some(2)), "only the record older than the period is gone");
}

#[tokio::test]
async fn a_signed_in_persons_choice_is_recorded_against_their_account() {
    let db = sqlite().await;
    let clock: passme_core::clock::SharedClock = passme_core::clock::system();
    let accounts = passme_core::identity::accounts::Accounts::new(db.store.clone(), clock.clone());
    let passme_core::identity::accounts::SignUp::Created { account_id } =
        accounts.sign_up("ola@example.com", secrecy::SecretString::from(passme_testkit::PASSWORD)).await.expect("sign up")
    else {
        panic!("new account")
    };
    let (session, _) = passme_core::identity::sessions::Sessions::new(db.store.clone(), clock)
        .issue(&account_id, "ua", "127.0.0.1".parse().expect("ip"))
        .await
        .expect("session");
    let app = TestApp::new(db);
    let session_cookie = format!("__Host-session={}", secrecy::ExposeSecret::expose_secret(&session));
    let (csrf_cookie, token) = form_credentials(&app, Some(&session_cookie)).await;
    let response = app
        .send(post_consent(
            &format!("csrf={token}&choice=all"),
            Some(&format!("{session_cookie}; {csrf_cookie}")),
            Some("https://passme.test"),
        ))
        .await;
    assert_eq!(response.status.as_u16(), 303);
    let value = set_cookies(&response)
        .into_iter()
        .find_map(|c| c.strip_prefix("__Host-consent=").map(|v| v.split(';').next().unwrap_or_default().to_string()))
        .expect("consent cookie");
    let id = ConsentCookie::parse(&value).expect("cookie").id;
    let history =
        passme_core::consent::ConsentLedger::new(app.state.store.clone(), app.state.clock.clone()).history(&id).await.expect("history");
    assert_eq!(history[0].actor, format!("account:{account_id}"));
}
