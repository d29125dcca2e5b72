//! Findings of the black-box probe (issue 11), each reproduced through the real router: encoded
//! card numbers, timestamps mistaken for cards, mail floods, caching of signed-in answers,
//! metrics labels, tokens that outlived a password change and the reset request's timing.

use axum::body::Body;
use axum::http::Request;
use passme_testkit::browser::{Browser, PASSWORD, signed_in};
use passme_testkit::{SmtpSink, TestApp, TestResponse, each_engine, sqlite};
use serde_json::json;

const CARD: &str = "4242424242424242";
const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

async fn post_json(app: &TestApp, path: &str, body: &str, extra: &[(&str, &str)]) -> TestResponse {
    let mut request =
        Request::post(path).header("content-type", "application/json").header("host", "passme.test").header("origin", "http://passme.test");
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    app.send(request.body(Body::from(body.to_string())).expect("request")).await
}

/// Every value of every table, as text.
async fn everything_stored(app: &TestApp) -> String {
    let store = &app.state.store;
    store.move_inbox(usize::MAX).await.expect("move inbox");
    let mut all = String::new();
    for table in store.schema().await.expect("schema") {
        for column in &table.columns {
            all.extend(store.column_text(&table.name, column).await.expect("column").into_iter().map(|v| v + "\n"));
        }
    }
    all
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

#[tokio::test]
async fn encoded_card_numbers_are_refused_and_nothing_of_them_is_stored() {
    let app = TestApp::new(sqlite().await);
    let escaped = CARD.replacen('4', "\\u0034", 1);
    let refused = post_json(
        &app,
        "/api/v1/signup",
        &format!(r#"{{"email":"{escaped}@example.com","password":"{}"}}"#, passme_testkit::PASSWORD),
        &[],
    )
    .await;
    assert_eq!((refused.status.as_u16(), refused.error_code()), (400, "card_data_refused".into()), "a JSON escape: {}", refused.text());

    // `%34` is "4", `%2534` is "%34".
    let single = format!("%34{}", &CARD[1..]);
    let double = format!("%2534{}", &CARD[1..]);
    let triple = format!("%252534{}", &CARD[1..]);
    for campaign in [&single, &double, &triple] {
        let event = json!({ "site": "passme", "url": format!("http://passme.test/?utm_campaign={campaign}&utm_source={campaign}"), "ts": now_ms() });
        let request = Request::post("/api/v1/events").header("content-type", "text/plain").header("user-agent", FIREFOX);
        let response = app.send(request.body(Body::from(event.to_string())).expect("request")).await;
        assert_eq!(response.error_code(), "card_data_refused", "{campaign}: {}", response.text());
    }
    // The pixel, with the page in its query (double-encoded) and in its Referer header.
    let pixel = app
        .get(&format!(
            "/api/v1/events/pixel.gif?site=passme&url=http%3A%2F%2Fpassme.test%2F%3Futm_campaign%3D{}",
            double.replace('%', "%25")
        ))
        .await;
    assert_eq!(pixel.error_code(), "card_data_refused", "{}", pixel.text());
    let referer = Request::get("/api/v1/events/pixel.gif?site=passme")
        .header("user-agent", FIREFOX)
        .header("referer", format!("http://passme.test/?utm_source={double}"))
        .body(Body::empty())
        .expect("request");
    assert_eq!(app.send(referer).await.error_code(), "card_data_refused");
    let path_referer = Request::get("/api/v1/events/pixel.gif?site=passme")
        .header("user-agent", FIREFOX)
        .header("referer", format!("http://passme.test/{single}"))
        .body(Body::empty())
        .expect("r");
    assert_eq!(app.send(path_referer).await.error_code(), "card_data_refused");

    // The sign-up form, with the address double-encoded.
    let form = format!("csrf=x&email={double}%2540example.com&password=x");
    let response = app.post("/signup", "application/x-www-form-urlencoded", form).await;
    assert_eq!(response.status.as_u16(), 400, "{}", response.text());

    let stored = everything_stored(&app).await;
    assert!(!stored.contains(CARD) && !stored.contains(&CARD[1..]), "nothing of the card is stored:\n{stored}");
}

#[tokio::test]
async fn timestamps_and_order_numbers_are_not_cards() {
    let app = TestApp::new(sqlite().await);
    // Luhn-valid millisecond timestamps, as a cache-buster and as a JSON value of either type.
    let luhn_ms =
        (0..10).map(|d| now_ms() / 10 * 10 + d).find(|t| passme_core::cards::luhn_valid(t.to_string().as_bytes())).expect("one of ten");
    assert_eq!(app.browse(&format!("/privacy?_={luhn_ms}")).await.status.as_u16(), 200, "a cache-buster");
    assert_eq!(app.browse("/privacy?order=2026112900009").await.status.as_u16(), 200, "an order number");
    let event = json!({ "site": "passme", "url": format!("http://passme.test/?_={luhn_ms}&utm_campaign={luhn_ms}"), "ts": luhn_ms });
    let request = Request::post("/api/v1/events").header("content-type", "text/plain").header("user-agent", FIREFOX);
    let response = app.send(request.body(Body::from(event.to_string())).expect("request")).await;
    assert_eq!(response.json()["stored"], 1, "{}", response.text());
    let as_string = event.to_string().replace(&format!(r#""ts":{luhn_ms}"#), &format!(r#""ts":"{luhn_ms}""#));
    let response = app.post("/api/v1/events", "application/json", as_string).await;
    assert_eq!(response.error_code(), "body_invalid_json", "a string ts is wrong for its type, not for being a card: {}", response.text());
}

#[tokio::test]
async fn the_card_refusal_speaks_the_requests_language_and_format() {
    let app = TestApp::new(sqlite().await);
    let body = format!(r#"{{"note":"{CARD}"}}"#);
    // JSON sent to a page's address is answered in JSON, not with a page.
    let english = post_json(&app, "/signup", &body, &[("accept", "text/html"), ("accept-language", "en-GB,en;q=0.9")]).await;
    assert_eq!(english.header("content-type"), Some("application/json"), "{}", english.text());
    assert_eq!(english.error_code(), "card_data_refused");
    assert!(english.json()["error"]["message"].as_str().unwrap_or_default().starts_with("This looks like card data"), "{}", english.text());
    let asked = post_json(&app, "/api/v1/signup?lang=en", &body, &[("accept-language", "da")]).await;
    assert!(asked.text().contains("This looks like card data"), "?lang= wins: {}", asked.text());
    let danish = post_json(&app, "/api/v1/signup", &body, &[]).await;
    assert!(danish.text().contains("Det ligner et kortnummer"), "{}", danish.text());
    // A browser's form post gets a page.
    let page = app
        .send(
            Request::post("/signup?lang=en")
                .header("content-type", "application/x-www-form-urlencoded")
                .header("accept", "text/html")
                .body(Body::from(format!("note={CARD}")))
                .expect("request"),
        )
        .await;
    assert!(page.header("content-type").is_some_and(|t| t.starts_with("text/html")), "{:?}", page.headers);
    assert!(page.text().contains("This looks like card data"));
}

/// Makes a personal access token on the account page; returns it.
async fn new_token(browser: &mut Browser<'_>, name: &str) -> String {
    let csrf = browser.token("/account").await;
    let page = browser.post("/account/tokens", &[("csrf", &csrf), ("name", name)]).await.text();
    page.split("pm_")
        .nth(1)
        .map(|rest| format!("pm_{}", rest.split(['<', '"', ' ']).next().unwrap_or_default()))
        .expect("a token on the page")
}

async fn me_with(app: &TestApp, token: &str) -> u16 {
    let request = Request::get("/api/v1/me").header("authorization", format!("Bearer {token}")).body(Body::empty()).expect("request");
    app.send(request).await.status.as_u16()
}

#[tokio::test]
async fn personal_access_tokens_end_with_a_password_change_and_a_reset() {
    let sink = SmtpSink::start();
    let app = TestApp::builder(sqlite().await).smtp(sink.url()).build();
    let mut browser = signed_in(&app, &sink, "ola@example.com", 0).await;
    let first = new_token(&mut browser, "product").await;
    assert_eq!(me_with(&app, &first).await, 200);
    let csrf = browser.token("/account").await;
    let changed =
        browser.post("/account/password", &[("csrf", &csrf), ("current", PASSWORD), ("password", "et helt nyt og langt kodeord")]).await;
    assert_eq!(changed.status.as_u16(), 303, "{}", changed.text());
    assert_eq!(me_with(&app, &first).await, 401, "a token made under the old password ends with it");

    let page = browser.get("/account").await.text();
    assert!(page.contains("Når du skifter eller nulstiller din adgangskode, tilbagekaldes de alle."), "the account page says so");
    let second = new_token(&mut browser, "product again").await;
    assert_eq!(me_with(&app, &second).await, 200);
    let accounts = passme_core::identity::accounts::Accounts::new(app.state.store.clone(), app.state.clock.clone());
    let (_, link) = accounts.request_reset("ola@example.com").await.expect("request").expect("an account");
    assert!(accounts.reset_password(&link, secrecy::SecretString::from("og endnu et nyt langt kodeord")).await.expect("reset"));
    assert_eq!(me_with(&app, &second).await, 401, "a reset ends every token");
}

#[tokio::test]
async fn signed_in_pages_and_api_answers_are_never_cached() {
    let sink = SmtpSink::start();
    let app = TestApp::builder(sqlite().await).smtp(sink.url()).build();
    let mut browser = signed_in(&app, &sink, "ola@example.com", 0).await;
    for path in [
        "/account",
        "/staff/audit",
        "/staff/analytics",
        "/billing",
        "/preferences",
        "/api/v1/me",
        "/api/v1/sessions",
        "/api/v1/preferences",
        "/",
    ] {
        let response = browser.get(path).await;
        assert_eq!(response.header("cache-control"), Some("no-store"), "{path}: {}", response.status);
    }
    assert_eq!(app.get("/t.js").await.header("cache-control"), Some("public, max-age=3600"), "assets say so themselves");
}

#[tokio::test]
async fn metrics_labels_are_bounded_whatever_the_requests() {
    let app = TestApp::new(sqlite().await);
    for i in 0..300 {
        let method = format!("X{}{i}", "Y".repeat(200));
        let request = Request::builder().method(method.as_str()).uri(format!("/no/such/{i}")).body(Body::empty()).expect("request");
        app.send(request).await;
        let report = json!({ "csp-report": { "violated-directive": format!("made-up-{}", "a".repeat(i % 40)), "blocked-uri": "https://x.example/" } });
        app.post("/api/v1/csp-reports", "application/csp-report", report.to_string()).await;
    }
    let metrics = app.get("/metrics").await.text();
    assert!(metrics.len() < 20_000, "{} bytes after 300 hostile requests", metrics.len());
    assert!(
        metrics.contains(r#"method="other",route="unmatched",status="405""#)
            || metrics.contains(r#"method="other",route="unmatched",status="404""#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"directive="other""#) && !metrics.contains("made-up"), "{metrics}");
    assert!(!metrics.contains("YYYY"));
}

#[tokio::test]
async fn metrics_need_the_token_when_one_is_set_and_are_closed_in_production_without() {
    use passme_web::metrics::MetricsAccess;
    let token = "m3tr1cs-t0ken-for-the-scraper";
    let app = TestApp::builder(sqlite().await).metrics_access(MetricsAccess::Token(secrecy::SecretString::from(token))).build();
    let ask = |auth: Option<String>| {
        let mut request = Request::get("/metrics");
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        app.send(request.body(Body::empty()).expect("request"))
    };
    let none = ask(None).await;
    assert_eq!((none.status.as_u16(), none.error_code()), (401, "metrics_token_required".into()));
    assert_eq!(ask(Some("Bearer wrong".into())).await.status.as_u16(), 401);
    assert_eq!(ask(Some(format!("Basic {token}"))).await.status.as_u16(), 401);
    let granted = ask(Some(format!("Bearer {token}"))).await;
    assert_eq!(granted.status.as_u16(), 200);
    assert!(granted.text().contains("passme_http_requests_total"));
    let closed = TestApp::builder(sqlite().await).metrics_access(MetricsAccess::Closed).build();
    assert_eq!(closed.get("/metrics").await.status.as_u16(), 404);
}

async fn account_mail_jobs(app: &TestApp) -> i64 {
    app.state.store.scalar_i64("SELECT COUNT(*) AS n FROM jobs WHERE kind = 'account.mail'").await.expect("count")
}

#[tokio::test]
async fn mail_floods_are_limited_per_address_and_network_across_instances_without_telling() {
    for db in each_engine().await {
        let sink = SmtpSink::start();
        // Two instances of the service on one database, taking turns.
        let apps = [TestApp::builder(db.clone()).smtp(sink.url()).build(), TestApp::builder(db).smtp(sink.url()).build()];
        signed_in(&apps[0], &sink, "ola@example.com", 0).await;
        let mut browsers = [Browser::from(&apps[0], "198.51.100.7"), Browser::from(&apps[1], "198.51.100.7")];
        let mut answers = std::collections::BTreeSet::new();
        for i in 0..25 {
            let browser = &mut browsers[i % 2];
            let csrf = browser.token("/reset-request").await;
            let response = browser.post("/reset-request", &[("csrf", &csrf), ("email", "ola@example.com")]).await;
            answers.insert((response.status.as_u16(), response.text().replace(&csrf, "")));
        }
        assert_eq!(answers.len(), 1, "every answer is the same, limited or not");
        apps[0].run_jobs().await;
        let resets = sink.wait_for(1).iter().filter(|m| m.subject == "Vælg en ny adgangskode hos PassMe AI").count();
        assert_eq!(resets, 3, "25 requests for one address from one network: 3 mails ({})", apps[0].db.engine_name());

        // Sign-ups with a taken address: the owner hears about it three times, not ten.
        for i in 0..10 {
            let browser = &mut browsers[i % 2];
            let csrf = browser.token("/signup").await;
            let response = browser.post("/signup", &[("csrf", &csrf), ("email", "ola@example.com"), ("password", PASSWORD)]).await;
            assert_eq!(response.status.as_u16(), 200);
        }
        // (Mails for one address from this network were used up above.)
        apps[1].run_jobs().await;
        let already = sink.messages().iter().filter(|m| m.subject == "Du har allerede en konto hos PassMe AI").count();
        assert_eq!(already, 0, "the pair's budget is spent");
        let mut other = Browser::from(&apps[1], "203.0.113.50");
        for _ in 0..10 {
            let csrf = other.token("/signup").await;
            other.post("/signup", &[("csrf", &csrf), ("email", "ola@example.com"), ("password", PASSWORD)]).await;
        }
        let already = apps[1].deliver(&sink, 7).await.iter().filter(|m| m.subject == "Du har allerede en konto hos PassMe AI").count();
        assert_eq!(already, 3, "ten sign-ups with a taken address from another network: 3 mails");

        // One network asking for many addresses: 30 an hour, then nothing, for any address.
        let jobs_before = account_mail_jobs(&apps[0]).await;
        let mut sender = Browser::from(&apps[0], "192.0.2.99");
        for i in 0..40 {
            let csrf = sender.token("/reset-request").await;
            sender.post("/reset-request", &[("csrf", &csrf), ("email", &format!("person{i}@example.com"))]).await;
        }
        assert_eq!(account_mail_jobs(&apps[0]).await - jobs_before, 30, "one network: 30 an hour");

        // One address from many networks: 10 an hour.
        let jobs_before = account_mail_jobs(&apps[0]).await;
        for i in 0..15 {
            let mut browser = Browser::from(&apps[i % 2], &format!("203.0.113.{}", 100 + i));
            let csrf = browser.token("/reset-request").await;
            browser.post("/reset-request", &[("csrf", &csrf), ("email", "target@example.com")]).await;
        }
        assert_eq!(account_mail_jobs(&apps[0]).await - jobs_before, 10, "one address: 10 an hour");
    }
}

#[tokio::test]
async fn a_reset_request_does_the_same_work_for_known_and_unknown_addresses() {
    for db in each_engine().await {
        let sink = SmtpSink::start();
        let app = TestApp::builder(db).smtp(sink.url()).build();
        signed_in(&app, &sink, "ola@example.com", 0).await;
        let tokens_before = app.state.store.scalar_i64("SELECT COUNT(*) AS n FROM account_tokens").await.expect("n");
        let jobs_before = account_mail_jobs(&app).await;
        let mut known = Browser::from(&app, "198.51.100.1");
        let mut unknown = Browser::from(&app, "198.51.100.2");
        let csrf = known.token("/reset-request").await;
        let a = known.post("/reset-request", &[("csrf", &csrf), ("email", "ola@example.com")]).await;
        let csrf2 = unknown.token("/reset-request").await;
        let b = unknown.post("/reset-request", &[("csrf", &csrf2), ("email", "nobody@example.com")]).await;
        assert_eq!((a.status, a.text().replace(&csrf, "")), (b.status, b.text().replace(&csrf2, "")));
        // The answer came before any lookup's consequence: one queued job each, no link minted.
        assert_eq!(account_mail_jobs(&app).await - jobs_before, 2);
        let tokens_now = app.state.store.scalar_i64("SELECT COUNT(*) AS n FROM account_tokens").await.expect("n");
        assert_eq!(tokens_now, tokens_before, "no reset link exists before the worker runs");
        let payloads = app.state.store.column_text("jobs", "payload").await.expect("payloads");
        assert!(payloads.iter().all(|p| !p.contains("token")), "a job holds no secret: {payloads:?}");
        assert_eq!(app.run_jobs().await.succeeded, 2);
        let resets = sink.wait_for(2).iter().filter(|m| m.subject == "Vælg en ny adgangskode hos PassMe AI").count();
        assert_eq!(resets, 1, "the worker mails the known address only");
    }
}

/// The fleet's backlog per job kind, as of each scrape: a kind whose queue emptied shows nothing,
/// not the depth it had at the last scrape.
#[tokio::test]
async fn metrics_show_the_job_backlog_as_it_is_now() {
    let app = TestApp::new(sqlite().await);
    for _ in 0..2 {
        app.state.jobs.enqueue("report.build", &json!({}), passme_core::jobs::EnqueueOptions::default()).await.expect("enqueue");
    }
    let metrics = app.get("/metrics").await.text();
    assert!(metrics.contains(r#"passme_job_depth{kind="report.build",state="queued"} 2"#), "{metrics}");
    assert!(metrics.contains("passme_fleet_instances"), "{metrics}");
    app.state.store.execute_script("DELETE FROM jobs").await.expect("empty the queue");
    let metrics = app.get("/metrics").await.text();
    assert!(!metrics.contains(r#"kind="report.build""#), "an emptied queue leaves no series: {metrics}");
}
