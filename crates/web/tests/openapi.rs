//! Every operation in `/api/openapi.json` answers with its documented shape: each case below is a
//! real request through the router, and its answer's status, content type and body are checked
//! against the document. An operation without a successful case fails the test, so a new route
//! cannot go undocumented-by-test.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::Request;
use passme_core::identity::accounts::{Accounts, SignUp};
use passme_core::identity::sessions::Sessions;
use passme_core::identity::staff::{Role, Staff};
use passme_testkit::openapi::check_response;
use passme_testkit::{PASSWORD, TestApp, TestResponse, sqlite};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

const ORIGIN: &str = "http://passme.test";
const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

struct Caller<'a> {
    app: &'a TestApp,
    doc: Value,
    /// (method, template) of every answer checked, and of the successful ones.
    seen: BTreeSet<(String, String)>,
    succeeded: BTreeSet<(String, String)>,
}

impl Caller<'_> {
    /// Sends `request` and checks the answer against the operation `method template`.
    async fn check(&mut self, template: &str, request: Request<Body>) -> TestResponse {
        let method = request.method().as_str().to_string();
        let response = self.app.send(request).await;
        if let Err(problem) = check_response(&self.doc, &method, template, &response) {
            panic!("{problem}");
        }
        if response.status.is_success() {
            self.succeeded.insert((method.clone(), template.to_string()));
        }
        self.seen.insert((method, template.to_string()));
        response
    }
}

fn request(method: &str, path: &str, cookie: Option<&str>) -> axum::http::request::Builder {
    let mut builder =
        Request::builder().method(method).uri(path).header("host", "passme.test").header("origin", ORIGIN).header("user-agent", FIREFOX);
    if let Some(cookie) = cookie {
        builder = builder.header("cookie", cookie);
    }
    builder
}

fn json_body(method: &str, path: &str, cookie: Option<&str>, body: &Value) -> Request<Body> {
    request(method, path, cookie).header("content-type", "application/json").body(Body::from(body.to_string())).expect("request")
}

fn raw(method: &str, path: &str, cookie: Option<&str>, content_type: &str, body: &str) -> Request<Body> {
    request(method, path, cookie).header("content-type", content_type).body(Body::from(body.to_string())).expect("request")
}

fn empty(method: &str, path: &str, cookie: Option<&str>) -> Request<Body> {
    request(method, path, cookie).body(Body::empty()).expect("request")
}

/// A verified account with a session; returns (account id, cookie header).
async fn member(app: &TestApp, email: &str) -> (passme_store::AccountId, String) {
    let accounts = Accounts::new(app.state.store.clone(), app.state.clock.clone());
    let SignUp::Created { account_id } = accounts.sign_up(email, SecretString::from(PASSWORD)).await.expect("sign up") else {
        panic!("new")
    };
    app.state.store.set_email_verified(&account_id, app.state.clock.now_ms()).await.expect("verify");
    let (token, _) = Sessions::new(app.state.store.clone(), app.state.clock.clone())
        .issue(&account_id, FIREFOX, "192.0.2.1".parse().expect("ip"))
        .await
        .expect("session");
    (account_id, format!("__Host-session={}", token.expose_secret()))
}

#[tokio::test]
async fn every_documented_operation_answers_with_its_documented_shape() {
    let relay_token = tempfile::NamedTempFile::new().expect("token file");
    std::fs::write(relay_token.path(), "relay-token-0123456789").expect("token");
    let messaging = passme_core::config::MessagingConfig { dsn_token_file: Some(relay_token.path().to_path_buf()), ..Default::default() };
    let app = TestApp::builder(sqlite().await).messaging(messaging).build();
    let doc: Value = app.get("/api/openapi.json").await.json();
    let mut c = Caller { app: &app, doc: doc.clone(), seen: BTreeSet::new(), succeeded: BTreeSet::new() };
    let (ola, ola_cookie) = member(&app, "ola@example.com").await;
    let (analyst, analyst_cookie) = member(&app, "ana@example.com").await;
    Staff::new(app.state.store.clone(), app.state.clock.clone()).grant(&analyst, Role::Analyst, "test").await.expect("grant");
    let ola_cookie = Some(ola_cookie.as_str());

    // Operations.
    c.check("/healthz", empty("GET", "/healthz", None)).await;
    c.check("/readyz", empty("GET", "/readyz", None)).await;
    c.check("/metrics", empty("GET", "/metrics", None)).await;
    c.check("/privacy.json", empty("GET", "/privacy.json", None)).await;
    c.check("/api/openapi.json", empty("GET", "/api/openapi.json", None)).await;
    let report = json!({ "csp-report": { "violated-directive": "script-src 'self'", "blocked-uri": "https://evil.example/x.js" } });
    c.check("/api/v1/csp-reports", raw("POST", "/api/v1/csp-reports", None, "application/csp-report", &report.to_string())).await;
    c.check("/api/v1/csp-reports", raw("POST", "/api/v1/csp-reports", None, "application/csp-report", "{")).await;
    c.check("/api/v1/csp-reports", raw("POST", "/api/v1/csp-reports", None, "text/plain", "x")).await;

    // The signed-in user.
    c.check("/api/v1/me", empty("GET", "/api/v1/me", ola_cookie)).await;
    c.check("/api/v1/me", empty("GET", "/api/v1/me", None)).await;
    c.check("/api/v1/entitlements", empty("GET", "/api/v1/entitlements", ola_cookie)).await;
    c.check("/api/v1/entitlements", empty("GET", "/api/v1/entitlements", None)).await;
    let sessions = c.check("/api/v1/sessions", empty("GET", "/api/v1/sessions", ola_cookie)).await.json();
    c.check("/api/v1/sessions", empty("GET", "/api/v1/sessions", None)).await;
    c.check("/api/v1/preferences", empty("GET", "/api/v1/preferences", ola_cookie)).await;
    c.check("/api/v1/preferences", empty("GET", "/api/v1/preferences", None)).await;
    let prefs = json!({ "theme": "dark", "language": "en", "text_size": "large" });
    c.check("/api/v1/preferences", json_body("PUT", "/api/v1/preferences", ola_cookie, &prefs)).await;
    c.check(
        "/api/v1/preferences",
        json_body("PUT", "/api/v1/preferences", ola_cookie, &json!({ "theme": "pink", "language": null, "text_size": "normal" })),
    )
    .await;
    c.check("/api/v1/preferences", raw("PUT", "/api/v1/preferences", ola_cookie, "application/json", "{")).await;
    c.check("/api/v1/preferences", raw("PUT", "/api/v1/preferences", ola_cookie, "text/plain", "x")).await;
    c.check("/api/v1/preferences", json_body("PUT", "/api/v1/preferences", None, &prefs)).await;
    c.check("/api/v1/consent", empty("GET", "/api/v1/consent", None)).await;
    let choices = json!({ "preferences": true, "statistics": false, "marketing": false });
    c.check("/api/v1/consent", json_body("PUT", "/api/v1/consent", None, &choices)).await;
    c.check("/api/v1/consent", raw("PUT", "/api/v1/consent", None, "application/json", "[1]")).await;
    c.check("/api/v1/consent", raw("PUT", "/api/v1/consent", None, "text/plain", "x")).await;
    let cross = Request::put("/api/v1/consent")
        .header("host", "passme.test")
        .header("origin", "https://evil.example")
        .header("content-type", "application/json");
    c.check("/api/v1/consent", cross.body(Body::from(choices.to_string())).expect("request")).await;

    // Support cases.
    let case = json!({ "subject": "The invoice is wrong", "message": "It shows last month's plan." });
    let made = c.check("/api/v1/support/cases", json_body("POST", "/api/v1/support/cases", ola_cookie, &case)).await;
    assert_eq!(made.status.as_u16(), 201, "{}", made.text());
    let case_id = made.json()["id"].as_str().expect("id").to_string();
    c.check(
        "/api/v1/support/cases",
        json_body("POST", "/api/v1/support/cases", ola_cookie, &json!({ "subject": "x", "message": "short" })),
    )
    .await;
    c.check("/api/v1/support/cases", json_body("POST", "/api/v1/support/cases", None, &case)).await;
    c.check("/api/v1/support/cases", empty("GET", "/api/v1/support/cases", ola_cookie)).await;
    c.check("/api/v1/support/cases", empty("GET", "/api/v1/support/cases", None)).await;
    let reply = json!({ "message": "Here is the invoice number: 42." });
    let template = "/api/v1/support/cases/{id}/messages";
    let replied = c.check(template, json_body("POST", &format!("/api/v1/support/cases/{case_id}/messages"), ola_cookie, &reply)).await;
    assert_eq!(replied.json()["messages"].as_array().map(Vec::len), Some(2));
    c.check(template, json_body("POST", "/api/v1/support/cases/tkt_0000000000000000/messages", ola_cookie, &reply)).await;
    let (_, kim_cookie) = member(&app, "kira@example.com").await;
    let foreign =
        c.check(template, json_body("POST", &format!("/api/v1/support/cases/{case_id}/messages"), Some(kim_cookie.as_str()), &reply)).await;
    assert_eq!(foreign.status.as_u16(), 404, "not Kim's case");

    // Messages: choices, push subscriptions, the relay's delivery reports.
    c.check("/api/v1/messaging/preferences", empty("GET", "/api/v1/messaging/preferences", ola_cookie)).await;
    c.check("/api/v1/messaging/preferences", empty("GET", "/api/v1/messaging/preferences", None)).await;
    let partner_on = json!({ "topic": "partner", "channel": "audience", "state": "on" });
    c.check("/api/v1/messaging/preferences", json_body("PUT", "/api/v1/messaging/preferences", ola_cookie, &partner_on)).await;
    let news = json!({ "topic": "marketing", "channel": "email", "state": "on" });
    assert_eq!(
        c.check("/api/v1/messaging/preferences", json_body("PUT", "/api/v1/messaging/preferences", ola_cookie, &news)).await.json()["state"],
        "pending"
    );
    let bad = json!({ "topic": "spam", "channel": "email", "state": "on" });
    c.check("/api/v1/messaging/preferences", json_body("PUT", "/api/v1/messaging/preferences", ola_cookie, &bad)).await;
    let push_on = json!({ "topic": "service", "channel": "push", "state": "on" });
    c.check("/api/v1/messaging/preferences", json_body("PUT", "/api/v1/messaging/preferences", ola_cookie, &push_on)).await;
    c.check("/api/v1/push/key", empty("GET", "/api/v1/push/key", None)).await;
    // A browser's subscription at a public push service (the keys are the web-push-native docs').
    let subscription = json!({ "subscription": {
        "endpoint": "https://fcm.googleapis.com/fcm/send/passme-openapi-test",
        "keys": { "p256dh": "BLn9b-VR0ca83knDNZ32dCHGyjJp-1riX9ZTN40MqV8K_LpQmLqxC_DoHvqvFXO_nGdAB4W9dogZb_sM-uV4JbY", "auth": "_ordMnz7uTCmrpBTeUV4Bw" }
    }, "device": "Firefox on Linux" });
    let device =
        c.check("/api/v1/push/subscriptions", json_body("POST", "/api/v1/push/subscriptions", ola_cookie, &subscription)).await.json();
    let private = json!({ "subscription": { "endpoint": "https://10.0.0.1/push", "keys": subscription["subscription"]["keys"] } });
    c.check("/api/v1/push/subscriptions", json_body("POST", "/api/v1/push/subscriptions", ola_cookie, &private)).await;
    c.check("/api/v1/push/subscriptions", json_body("POST", "/api/v1/push/subscriptions", None, &subscription)).await;
    let device = device["id"].as_str().expect("device id").to_string();
    c.check("/api/v1/push/subscriptions/{id}", empty("DELETE", "/api/v1/push/subscriptions/push_nope", ola_cookie)).await;
    c.check("/api/v1/push/subscriptions/{id}", empty("DELETE", &format!("/api/v1/push/subscriptions/{device}"), ola_cookie)).await;
    let bounce = "Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822; gone@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n--b--\r\n";
    let relay = |auth: &str, body: &str| {
        Request::post("/api/v1/messaging/reports")
            .header("authorization", format!("Bearer {auth}"))
            .header("content-type", "message/rfc822")
            .body(Body::from(body.to_string()))
            .expect("request")
    };
    c.check("/api/v1/messaging/reports", relay("relay-token-0123456789", bounce)).await;
    c.check("/api/v1/messaging/reports", relay("wrong", bounce)).await;
    c.check("/api/v1/messaging/reports", relay("relay-token-0123456789", "Subject: hello\r\n\r\nhi")).await;

    // Signing up, in and out.
    c.check("/api/v1/signup", json_body("POST", "/api/v1/signup", None, &json!({ "email": "new@example.com", "password": PASSWORD })))
        .await;
    c.check("/api/v1/signup", json_body("POST", "/api/v1/signup", None, &json!({ "email": "not an address", "password": PASSWORD }))).await;
    c.check("/api/v1/signup", raw("POST", "/api/v1/signup", None, "application/json", "{\"email\":")).await;
    c.check("/api/v1/signup", raw("POST", "/api/v1/signup", None, "application/x-www-form-urlencoded", "email=x")).await;
    c.check("/api/v1/login", json_body("POST", "/api/v1/login", None, &json!({ "email": "ola@example.com", "password": PASSWORD }))).await;
    c.check(
        "/api/v1/login",
        json_body("POST", "/api/v1/login", None, &json!({ "email": "ola@example.com", "password": "wrong one entirely" })),
    )
    .await;
    c.check("/api/v1/login", json_body("POST", "/api/v1/login", None, &json!({ "email": "new@example.com", "password": PASSWORD }))).await;
    c.check("/api/v1/login", raw("POST", "/api/v1/login", None, "application/json", "nope")).await;
    c.check("/api/v1/login", raw("POST", "/api/v1/login", None, "text/plain", "x")).await;

    // Tracking and analytics.
    let event = json!({ "site": "passme", "url": "http://passme.test/pricing", "ts": app.state.clock.now_ms() });
    c.check("/api/v1/events", raw("POST", "/api/v1/events", None, "text/plain", &event.to_string())).await;
    c.check("/api/v1/events", json_body("POST", "/api/v1/events", None, &json!([event, event]))).await;
    c.check("/api/v1/events", json_body("POST", "/api/v1/events", None, &json!({ "site": "nowhere", "url": "http://x.test/", "ts": 1 })))
        .await;
    c.check("/api/v1/events", json_body("POST", "/api/v1/events", None, &Value::Array(vec![event.clone(); 51]))).await;
    c.check("/api/v1/events", raw("POST", "/api/v1/events", None, "application/x-www-form-urlencoded", "a=b")).await;
    let analyst_cookie = Some(analyst_cookie.as_str());
    c.check("/api/v1/analytics/report", empty("GET", "/api/v1/analytics/report", analyst_cookie)).await;
    c.check("/api/v1/analytics/report", empty("GET", "/api/v1/analytics/report?from=yesterday", analyst_cookie)).await;
    c.check("/api/v1/analytics/report", empty("GET", "/api/v1/analytics/report?site=nowhere", analyst_cookie)).await;
    c.check("/api/v1/analytics/report", empty("GET", "/api/v1/analytics/report", ola_cookie)).await;
    c.check("/api/v1/analytics/report", empty("GET", "/api/v1/analytics/report", None)).await;

    // Ending sessions, last: another account's id, a stranger, then one's own, then signing out.
    let own = sessions[0]["id"].as_str().expect("a session id").to_string();
    c.check("/api/v1/sessions/{id}", empty("DELETE", "/api/v1/sessions/not-mine", ola_cookie)).await;
    c.check("/api/v1/sessions/{id}", empty("DELETE", &format!("/api/v1/sessions/{own}"), None)).await;
    let (_, other_cookie) = member(&app, "kim@example.com").await;
    let other_sessions = app.send(empty("GET", "/api/v1/sessions", Some(&other_cookie))).await.json();
    let other = other_sessions[0]["id"].as_str().expect("id").to_string();
    c.check("/api/v1/sessions/{id}", empty("DELETE", &format!("/api/v1/sessions/{other}"), ola_cookie)).await;
    c.check("/api/v1/sessions/{id}", empty("DELETE", &format!("/api/v1/sessions/{own}"), ola_cookie)).await;
    c.check("/api/v1/logout", empty("POST", "/api/v1/logout", Some(&other_cookie))).await;
    let cross = Request::post("/api/v1/logout").header("host", "passme.test").header("origin", "https://evil.example");
    c.check("/api/v1/logout", cross.body(Body::empty()).expect("request")).await;
    assert!(!ola.as_str().is_empty());

    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, ops)| ops.as_object().into_iter().flatten().map(move |(method, _)| (method.to_ascii_uppercase(), path.clone())))
        .collect();
    let untested: Vec<_> = documented.difference(&c.succeeded).collect();
    assert!(untested.is_empty(), "documented operations without a successful case here: {untested:?}");
}

#[test]
fn every_request_and_response_body_in_the_document_has_a_schema() {
    let doc: Value = serde_json::from_str(&passme_web::routes::openapi::document_json()).expect("JSON");
    let mut missing = Vec::new();
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for (method, op) in ops.as_object().expect("operations") {
            let bodies = op
                .pointer("/requestBody/content")
                .into_iter()
                .chain(op["responses"].as_object().into_iter().flat_map(|r| r.values().filter_map(|r| r.get("content"))));
            for content in bodies {
                for (media, entry) in content.as_object().expect("content") {
                    if entry.get("schema").is_none_or(|s| s.as_object().is_some_and(serde_json::Map::is_empty)) {
                        missing.push(format!("{method} {path} {media}"));
                    }
                }
            }
        }
    }
    assert!(missing.is_empty(), "bodies without a schema: {missing:?}");
    let event = &doc["components"]["schemas"]["EventIn"]["properties"]["ts"];
    assert!(event["description"].as_str().is_some_and(|d| d.contains("milliseconds")), "ts says its unit: {event}");
}
