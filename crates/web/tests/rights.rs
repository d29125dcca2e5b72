//! The privacy centre through the real router: what we hold and why, the data archive, erasure
//! with its receipt, and a legal hold that stops it.

use std::io::Write;
use std::process::{Command, Stdio};

use passme_core::rights::holds::HoldScope;
use passme_testkit::browser::{PASSWORD, signed_in};
use passme_testkit::{SmtpSink, TestApp, each_engine, sqlite};

/// A file of a tar archive, read with the system's tar.
fn untar(archive: &[u8], name: &str) -> String {
    let mut child = Command::new("tar").args(["-xOf", "-", name]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("tar");
    child.stdin.take().expect("stdin").write_all(archive).expect("write");
    let out = child.wait_with_output().expect("tar");
    assert!(out.status.success(), "{name} is in the archive");
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Rows per table.
async fn row_counts(store: &passme_store::Store) -> std::collections::BTreeMap<String, i64> {
    let mut counts = std::collections::BTreeMap::new();
    for table in store.schema().await.expect("schema") {
        let n = store.scalar_i64(&format!("SELECT COUNT(*) AS n FROM {}", table.name)).await.expect("count");
        counts.insert(table.name, n);
    }
    counts
}

#[tokio::test]
async fn the_privacy_centre_says_what_is_held_and_why_and_hands_it_over() {
    let sink = SmtpSink::start();
    let app = TestApp::builder(sqlite().await).smtp(sink.url()).build();
    let mut ola = signed_in(&app, &sink, "ola@example.com", 0).await;
    let page = ola.get("/account/privacy").await;
    assert_eq!(page.status.as_u16(), 200);
    let html = page.text();
    for needle in
        ["Dit privatliv og dine data", "E-mailadresse", "Retsgrundlag", "Stripe Payments Europe", "Bogføringsloven", "Hent mine data"]
    {
        assert!(html.contains(needle), "{needle}");
    }
    assert!(ola.get("/account").await.text().contains("href=\"/account/privacy?lang=da\""), "linked from the account page");

    let before = row_counts(&app.state.store).await;
    let export = ola.get("/account/privacy/export").await;
    assert_eq!(export.header("content-type"), Some("application/x-tar"));
    let mut after = row_counts(&app.state.store).await;
    *after.get_mut("audit_log").expect("audit_log") -= 1;
    assert_eq!(before, after, "the export is streamed, not stored: only its audit entry is written");
    assert!(export.header("content-disposition").is_some_and(|d| d.starts_with("attachment; filename=\"passme-export-")));
    let json: serde_json::Value = serde_json::from_str(&untar(&export.body, "passme-export/data.json")).expect("json");
    assert_eq!(json["tables"]["accounts"][0]["email"], "ola@example.com");
    assert!(json["tables"]["accounts"][0].get("password_hash").is_none(), "no credentials in the export");
    let sessions = json["tables"]["sessions"].as_array().expect("sessions");
    assert!(!sessions.is_empty() && sessions.iter().all(|s| s.get("id").is_none()), "sessions, without their token hashes");
    assert!(json["tables"]["audit_log"].as_array().is_some_and(|a| !a.is_empty()), "what the log says about the person");
    let csv = untar(&export.body, "passme-export/accounts.csv");
    assert!(csv.starts_with("closed_at,created_at,email,") && csv.contains(",ola@example.com,"), "{csv}");
    let actions = app.state.store.column_text("audit_log", "action").await.expect("actions");
    assert!(actions.iter().any(|a| a == "rights.exported"), "the export is audited");

    let mut stranger = passme_testkit::browser::Browser::new(&app);
    assert_eq!(stranger.get("/account/privacy/export").await.header("location"), Some("/login?next=/account/privacy/export"));
}

#[tokio::test]
async fn erasing_the_account_ends_the_session_removes_the_data_and_gives_a_verified_receipt() {
    for db in each_engine().await {
        let sink = SmtpSink::start();
        let app = TestApp::builder(db).smtp(sink.url()).build();
        let mut ola = signed_in(&app, &sink, "ola@example.com", 0).await;
        let account = app.state.store.account_by_email_key("ola@example.com").await.expect("read").expect("row");
        let session = ola.cookie("__Host-session").expect("session");

        let csrf = ola.token("/account/privacy").await;
        let wrong = ola.post("/account/privacy/erase", &[("csrf", &csrf), ("current", "not my password at all")]).await;
        assert_eq!(wrong.status.as_u16(), 400);
        assert!(wrong.text().contains("Den nuværende adgangskode er forkert."), "said in the form");
        assert!(app.state.store.account(&account.id).await.expect("read").is_some());

        let erased = ola.post("/account/privacy/erase", &[("csrf", &csrf), ("current", PASSWORD)]).await;
        assert_eq!(erased.status.as_u16(), 303);
        let location = erased.header("location").expect("location").to_string();
        assert!(location.starts_with("/erasure/era_"), "{location}");
        assert!(ola.cookie("__Host-session").is_none(), "the cookie is deleted");
        ola.cookies.push(("__Host-session".into(), session));
        assert_eq!(ola.get("/account").await.header("location"), Some("/login?next=/account"), "the session ended at once");
        assert!(ola.get(&location).await.text().contains("Sletningen er i gang."), "before the worker runs");

        app.run_jobs().await;
        let receipt = ola.get(&location).await;
        assert_eq!(receipt.status.as_u16(), 200);
        let html = receipt.text();
        assert!(html.contains("Kontrolleret"), "verified: {html}");
        assert!(html.contains("Gemt, fordi loven kræver det") && html.contains("Revisionslog"), "what the law keeps, and why");
        assert!(!html.contains("ola@example.com") && !html.contains(account.id.as_str()), "the receipt names no one");
        assert!(app.state.store.account(&account.id).await.expect("read").is_none());
        assert_eq!(ola.get("/erasure/era_00000000000000000000000000000000").await.status.as_u16(), 404);
    }
}

#[tokio::test]
async fn a_legal_hold_on_the_person_stops_the_erasure_and_says_so() {
    let sink = SmtpSink::start();
    let app = TestApp::builder(sqlite().await).smtp(sink.url()).build();
    let mut ola = signed_in(&app, &sink, "ola@example.com", 0).await;
    let account = app.state.store.account_by_email_key("ola@example.com").await.expect("read").expect("row");
    let until = app.state.clock.now_ms() + 30 * 86_400_000;
    app.state
        .holds
        .place(&app.state.policy, HoldScope::Person(account.id.clone()), "Court order 17/2026", until, "account:officer")
        .await
        .expect("hold");
    let csrf = ola.token("/account/privacy").await;
    let refused = ola.post("/account/privacy/erase", &[("csrf", &csrf), ("current", PASSWORD)]).await;
    assert_eq!(refused.status.as_u16(), 409);
    assert!(refused.text().contains("retligt forbud mod sletning"), "{}", refused.text());
    assert_eq!(ola.get("/account").await.status.as_u16(), 200, "still signed in, nothing erased");
}

#[tokio::test]
async fn the_privacy_officer_places_and_lifts_holds_and_reads_the_retention_reports() {
    use passme_core::identity::staff::{Role, Staff};
    let sink = SmtpSink::start();
    let app = TestApp::builder(sqlite().await).smtp(sink.url()).build();
    let mut officer = signed_in(&app, &sink, "officer@example.com", 0).await;
    let mut ola = signed_in(&app, &sink, "ola@example.com", 1).await;
    let staff = Staff::new(app.state.store.clone(), app.state.clock.clone());
    let officer_id = app.state.store.account_by_email_key("officer@example.com").await.expect("read").expect("row").id;
    let ola_id = app.state.store.account_by_email_key("ola@example.com").await.expect("read").expect("row").id;

    // Least privilege: an admin, an analyst or support may not place holds.
    for role in [Role::Admin, Role::Analyst, Role::Support] {
        staff.grant(&ola_id, role, "test").await.expect("grant");
    }
    assert_eq!(ola.get("/staff/privacy").await.status.as_u16(), 403);
    staff.grant(&officer_id, Role::PrivacyOfficer, "test").await.expect("grant");
    assert!(officer.get("/account").await.text().contains("href=\"/staff?lang=da\""), "the header leads staff to the console");
    let console = officer.get("/staff").await.text();
    assert!(console.contains("href=\"/staff/privacy?lang=da\"") && console.contains("href=\"/staff/compliance?lang=da\""), "{console}");
    assert!(!console.contains("/staff/fraud") && !console.contains("/staff/support"), "only the officer's parts: {console}");
    assert_eq!(ola.get("/staff").await.status.as_u16(), 200, "admin, analyst and support: their parts");
    assert!(ola.get("/staff").await.text().contains("/staff/fraud"));

    app.state
        .store
        .execute_script("INSERT INTO throttle (key, failures, window_start, blocked_until) VALUES ('old', 1, 0, 0)")
        .await
        .expect("row");
    passme_core::housekeeping::Housekeeping::schedule(&app.state.jobs, app.state.clock.now_ms()).await.expect("schedule");
    app.run_jobs().await;
    let page = officer.get("/staff/privacy?lang=en").await;
    assert_eq!(page.status.as_u16(), 200);
    let html = page.text();
    assert!(html.contains("No hold is in force.") && html.contains("retention.fraud.signals"), "{html}");

    let csrf = officer.token("/staff/privacy").await;
    let refusals = [
        (vec![("email", "ola@example.com"), ("reason", "Court order"), ("until", "2001-01-01")], "hold_until_past"),
        (vec![("email", "nobody@example.com"), ("reason", "Court order"), ("until", "2099-01-01")], "hold_person_unknown"),
        (vec![("reason", "Court order"), ("until", "2099-01-01")], "hold_scope_missing"),
        (vec![("category", "astrology"), ("reason", "Court order"), ("until", "2099-01-01")], "hold_category_unknown"),
        (vec![("email", "ola@example.com"), ("reason", "  "), ("until", "2099-01-01")], "hold_reason_missing"),
        (vec![("email", "ola@example.com"), ("reason", "Court order"), ("until", "soon")], "date_invalid"),
    ];
    for (fields, code) in refusals {
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend(fields);
        let refused = officer.post("/staff/privacy/holds", &form).await;
        assert_eq!((refused.status.as_u16(), refused.error_code()), (400, code.to_string()));
    }
    let forged =
        officer.post("/staff/privacy/holds", &[("csrf", "forged"), ("category", "fraud"), ("reason", "x"), ("until", "2099-01-01")]).await;
    assert_eq!(forged.status.as_u16(), 403);

    let placed = officer
        .post(
            "/staff/privacy/holds",
            &[("csrf", &csrf), ("email", "Ola@Example.com"), ("reason", "Court order B-12"), ("until", "2099-01-01")],
        )
        .await;
    assert_eq!(placed.header("location"), Some("/staff/privacy?done=hold_placed"));
    let held = app.state.holds.on_person(&ola_id).await.expect("holds");
    assert_eq!(held.len(), 1);
    let html = officer.get("/staff/privacy?lang=en").await.text();
    assert!(html.contains(&format!("Person {}", ola_id.as_str())) && html.contains("Court order B-12"), "{html}");

    let lifted = officer.post("/staff/privacy/holds/lift", &[("csrf", &csrf), ("id", &held[0].id)]).await;
    assert_eq!(lifted.header("location"), Some("/staff/privacy?done=hold_lifted"));
    assert!(app.state.holds.on_person(&ola_id).await.expect("holds").is_empty());
    let again = officer.post("/staff/privacy/holds/lift", &[("csrf", &csrf), ("id", &held[0].id)]).await;
    assert_eq!((again.status.as_u16(), again.error_code()), (404, "hold_unknown".to_string()));

    let actions = app.state.store.column_text("audit_log", "action").await.expect("audit");
    for action in ["hold.placed", "hold.lifted", "hold.listed"] {
        assert!(actions.iter().any(|a| a == action), "{action} in {actions:?}");
    }
}

#[tokio::test]
async fn a_request_by_form_is_confirmed_by_mail_and_handled_by_the_privacy_officer() {
    use passme_core::identity::staff::{Role, Staff};
    use passme_testkit::browser::{Browser, link_token};
    let sink = SmtpSink::start();
    let app = TestApp::builder(sqlite().await).smtp(sink.url()).build();
    let mut officer = signed_in(&app, &sink, "officer@example.com", 0).await;
    let mut ola = signed_in(&app, &sink, "ola@example.com", 1).await;
    let officer_id = app.state.store.account_by_email_key("officer@example.com").await.expect("read").expect("row").id;
    Staff::new(app.state.store.clone(), app.state.clock.clone()).grant(&officer_id, Role::PrivacyOfficer, "test").await.expect("grant");

    // Someone who will not sign in writes in Ola's name; so does someone for an unknown address.
    let mut visitor = Browser::new(&app);
    let csrf = visitor.token("/privacy-request?lang=en").await;
    let answers = [
        visitor
            .post("/privacy-request", &[("csrf", &csrf), ("email", "nobody@example.com"), ("kind", "erase"), ("message", "Delete")])
            .await,
        visitor
            .post(
                "/privacy-request",
                &[("csrf", &csrf), ("email", "ola@example.com"), ("kind", "access"), ("message", "What do you hold?")],
            )
            .await,
    ];
    assert_eq!(answers[0].status, answers[1].status);
    assert_eq!(answers[0].text(), answers[1].text(), "the answer does not tell who has an account");
    let bad = visitor.post("/privacy-request", &[("csrf", &csrf), ("email", "ola@example.com"), ("kind", "astrology")]).await;
    assert_eq!((bad.status.as_u16(), bad.error_code()), (400, "request_kind_unknown".to_string()));
    let bad = visitor.post("/privacy-request", &[("csrf", &csrf), ("email", "not an address"), ("kind", "access")]).await;
    assert_eq!(bad.status.as_u16(), 400);

    let mails = app.deliver(&sink, 3).await;
    let mail =
        mails.iter().find(|m| m.to == "ola@example.com" && m.body.contains("/privacy-request/confirm")).expect("the confirmation mail");
    assert!(mails.iter().all(|m| m.to != "nobody@example.com"));
    let token = link_token(&mail.body);
    // A forged link verifies nothing; a GET (a link scanner) verifies nothing either.
    let page = visitor.get(&format!("/privacy-request/confirm?token={token}")).await;
    assert_eq!(page.status.as_u16(), 200);
    assert!(app.state.requests.queue().await.expect("queue").is_empty());
    let csrf = visitor.token("/privacy-request?lang=en").await;
    let forged = visitor.post("/privacy-request/confirm", &[("csrf", &csrf), ("token", &"A".repeat(43))]).await;
    assert_eq!((forged.status.as_u16(), forged.error_code()), (400, "request_link_invalid".to_string()));
    let confirmed = visitor.post("/privacy-request/confirm", &[("csrf", &csrf), ("token", &token)]).await;
    assert_eq!(confirmed.status.as_u16(), 200);
    assert!(confirmed.text().contains("req_"), "{}", confirmed.text());
    let again = visitor.post("/privacy-request/confirm", &[("csrf", &csrf), ("token", &token)]).await;
    assert_eq!(again.status.as_u16(), 400, "a link works once");

    // Ola also objects from the privacy centre, and sees both requests there.
    let csrf = ola.token("/account/privacy").await;
    let sent = ola.post("/account/privacy/request", &[("csrf", &csrf), ("kind", "object"), ("message", "No statistics about me")]).await;
    assert_eq!(sent.header("location"), Some("/account/privacy?done=request_sent"));
    let centre = ola.get("/account/privacy?lang=en&done=request_sent").await.text();
    assert!(centre.contains("Your request is registered.") && centre.matches("Being handled; we answer by").count() == 2, "{centre}");

    // The officer's queue: extend one, close the other; Ola may not.
    assert_eq!(ola.get("/staff/privacy").await.status.as_u16(), 403);
    let queue = app.state.requests.queue().await.expect("queue");
    assert_eq!(queue.len(), 2);
    let html = officer.get("/staff/privacy?lang=en").await.text();
    assert!(html.contains("What do you hold?") && html.contains("No statistics about me"), "the queue shows the requests");
    let csrf = officer.token("/staff/privacy").await;
    let refused = ola.post("/staff/privacy/requests/close", &[("csrf", &csrf), ("id", &queue[0].id), ("text", "x")]).await;
    assert_eq!(refused.status.as_u16(), 403);
    let extended =
        officer.post("/staff/privacy/requests/extend", &[("csrf", &csrf), ("id", &queue[0].id), ("text", "Archives to search")]).await;
    assert_eq!(extended.header("location"), Some("/staff/privacy?done=request_extended"));
    let twice = officer.post("/staff/privacy/requests/extend", &[("csrf", &csrf), ("id", &queue[0].id), ("text", "Again")]).await;
    assert_eq!((twice.status.as_u16(), twice.error_code()), (409, "request_not_extendable".to_string()));
    let closed =
        officer.post("/staff/privacy/requests/close", &[("csrf", &csrf), ("id", &queue[1].id), ("text", "Statistics switched off")]).await;
    assert_eq!(closed.header("location"), Some("/staff/privacy?done=request_closed"));
    let empty = officer.post("/staff/privacy/requests/close", &[("csrf", &csrf), ("id", &queue[0].id), ("text", " ")]).await;
    assert_eq!((empty.status.as_u16(), empty.error_code()), (400, "request_outcome_missing".to_string()));
    let centre = ola.get("/account/privacy?lang=en").await.text();
    assert!(centre.contains("Statistics switched off"), "the person sees the outcome");
}

#[tokio::test]
async fn an_objection_to_the_statistics_stops_them_at_once_and_others_go_to_the_officer() {
    use axum::body::Body;
    use axum::http::Request;
    let sink = SmtpSink::start();
    let app = TestApp::builder(sqlite().await).smtp(sink.url()).build();
    let mut ola = signed_in(&app, &sink, "ola@example.com", 0).await;
    let view = |cookie: String| {
        let app = &app;
        async move {
            let request = Request::post("/api/v1/events")
                .header("content-type", "application/json")
                .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
                .header("cookie", cookie)
                .body(Body::from(format!(r#"{{"site":"passme","url":"http://passme.test/pricing","ts":{}}}"#, app.state.clock.now_ms())))
                .expect("request");
            let response = app.send(request).await;
            assert_eq!(response.status.as_u16(), 202, "{}", response.text());
            response.json()["stored"].as_u64().expect("stored")
        }
    };
    assert_eq!(view(ola.cookie_header()).await, 1);

    let html = ola.get("/account/privacy?lang=en").await.text();
    assert!(html.contains("Object to a processing") && html.contains("value=\"develop\""), "the statistics' purpose is listed");
    let csrf = ola.token("/account/privacy").await;
    let stopped = ola.post("/account/privacy/object", &[("csrf", &csrf), ("purpose", "develop")]).await;
    assert_eq!(stopped.header("location"), Some("/account/privacy?done=objection_stopped"));
    assert_eq!(view(ola.cookie_header()).await, 0, "not recorded while signed in");
    assert_eq!(view(String::new()).await, 1, "somebody else, or the same browser signed out, is counted as before");
    assert!(ola.get("/account/privacy?lang=en").await.text().contains("you object"));

    let review = ola.post("/account/privacy/object", &[("csrf", &csrf), ("purpose", "secure")]).await;
    assert_eq!(review.header("location"), Some("/account/privacy?done=objection_review"));
    let queue = app.state.requests.queue().await.expect("queue");
    assert!(queue.len() == 1 && queue[0].kind == "object" && queue[0].message == "purpose: secure", "{queue:?}");
    let unknown = ola.post("/account/privacy/object", &[("csrf", &csrf), ("purpose", "astrology")]).await;
    assert_eq!((unknown.status.as_u16(), unknown.error_code()), (400, "objection_purpose_unknown".to_string()));
    // Consent-based purposes are withdrawn in the cookie settings, not objected to here.
    let consent = ola.post("/account/privacy/object", &[("csrf", &csrf), ("purpose", "advertising")]).await;
    assert_eq!(consent.status.as_u16(), 400);

    let withdrawn = ola.post("/account/privacy/object", &[("csrf", &csrf), ("purpose", "develop"), ("withdraw", "1")]).await;
    assert_eq!(withdrawn.header("location"), Some("/account/privacy?done=objection_withdrawn"));
    assert_eq!(view(ola.cookie_header()).await, 1);
    let actions = app.state.store.column_text("audit_log", "action").await.expect("audit");
    assert!(actions.iter().any(|a| a == "objection.made") && actions.iter().any(|a| a == "objection.withdrawn"));
}
