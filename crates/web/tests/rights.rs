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

    let export = ola.get("/account/privacy/export").await;
    assert_eq!(export.header("content-type"), Some("application/x-tar"));
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
    assert!(officer.get("/account").await.text().contains("href=\"/staff/privacy?lang=da\""), "the officer's staff home");

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
