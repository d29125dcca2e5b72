//! Fraud scanning through the real router, on both engines: signals from sign-up, sign-in,
//! checkout and linking; rules as versioned data; decisions with their reasons, the review queue
//! and its labels; allow and deny lists; the person's view and appeal; retention.

use passme_core::identity::staff::Role;
use passme_policy::proves;
use passme_testkit::browser::{Browser, PASSWORD, link_token, signed_in};
use passme_testkit::people::{account_of, count, staff_member};
use passme_testkit::{SmtpSink, TestApp, each_engine};

const DAY: i64 = 86_400_000;

async fn sign_in_from(app: &TestApp, ip: &str, email: &str, password: &str) -> passme_testkit::TestResponse {
    let mut browser = Browser::from(app, ip);
    let csrf = browser.token("/login").await;
    browser.post("/login", &[("csrf", &csrf), ("email", email), ("password", password)]).await
}

#[tokio::test]
async fn a_credential_stuffing_hit_is_blocked_explained_to_the_person_appealed_and_labelled_by_an_analyst() {
    for db in each_engine().await {
        let engine = db.engine_name();
        let sink = SmtpSink::start();
        let app = TestApp::builder(db.clone()).smtp(sink.url()).build();
        // A second instance on the same database: what one counts, the other decides on.
        let other = TestApp::builder(db).smtp(sink.url()).build();
        let store = app.state.store.clone();
        let mut ola = signed_in(&app, &sink, "ola@example.com", 0).await;
        let ola_id = account_of(&store, "ola@example.com").await;
        let mut analyst = staff_member(&app, &sink, "ana@passme.test", 1, Role::Analyst).await;
        let mut agent = staff_member(&app, &sink, "agent@passme.test", 2, Role::Support).await;

        // Ten wrong passwords for ten addresses from one network, on the first instance...
        for i in 0..10 {
            let failed = sign_in_from(&app, "198.51.100.7", &format!("user{i}@example.com"), "wrong password 1").await;
            assert_eq!(failed.status.as_u16(), 401, "{engine}");
        }
        assert_eq!(count(&store, "SELECT COUNT(*) FROM fraud_events WHERE success = 0").await, 10);
        // ...then the right one for Ola from the same /24, on the second: blocked, with a reference.
        let hit = sign_in_from(&other, "198.51.100.99", "ola@example.com", PASSWORD).await;
        assert_eq!(hit.status.as_u16(), 403, "{engine}: {}", hit.text());
        assert!(hit.header("set-cookie").is_none_or(|c| !c.contains("__Host-session")), "no session for a blocked sign-in");
        let decision_id = hit.text().split("frd_").nth(1).map(|s| format!("frd_{}", &s[..20])).expect("the page names the decision");
        assert!(hit.text().contains("Dette login blev stoppet"), "in Danish by default: {}", hit.text());
        let decision = store.fraud_decision(&decision_id).await.expect("read").expect("stored");
        assert_eq!((decision.outcome.as_str(), decision.kind.as_str()), ("block", "signin"));
        assert_eq!(decision.account_id.as_ref(), Some(&ola_id));
        assert!(decision.fired.contains("\"credential_stuffing\"") && decision.fired.contains("\"version\":1"), "{}", decision.fired);
        let inputs: serde_json::Value = serde_json::from_str(&decision.inputs).expect("json");
        assert_eq!(inputs["network.failures_10m"], 10, "the value the rule read: {inputs}");
        assert_eq!(inputs["account.known_network"], false);
        // The same person from another network is not affected.
        assert_eq!(sign_in_from(&app, "203.0.113.5", "ola@example.com", PASSWORD).await.status.as_u16(), 303);

        // The person sees the decision and why on their privacy page, and appeals it.
        let privacy = ola.get("/account/privacy?lang=en").await.text();
        assert!(privacy.contains("Automated decisions about you") && privacy.contains(&decision_id), "{privacy}");
        assert!(privacy.contains("credential_stuffing (v1)") && privacy.contains("network.failures_10m"), "{privacy}");
        let danish = ola.get("/account/privacy").await.text();
        assert!(danish.contains("Et login fra et netværk med mange mislykkede logins"), "the reason in the person's language: {danish}");
        let short = ola.submit("/account/privacy", "/account/privacy/appeal", &[("decision", &decision_id), ("text", "no")]).await;
        assert_eq!((short.status.as_u16(), short.error_code()), (400, "appeal_length".to_string()));
        let text = "It was me <script>alert(1)</script> on the hotel wifi";
        let appealed = ola.submit("/account/privacy", "/account/privacy/appeal", &[("decision", &decision_id), ("text", text)]).await;
        assert_eq!(appealed.status.as_u16(), 303, "{}", appealed.text());
        let again = ola.submit("/account/privacy", "/account/privacy/appeal", &[("decision", &decision_id), ("text", text)]).await;
        assert_eq!(again.status.as_u16(), 409, "one appeal per decision");
        // Nobody appeals a decision about someone else.
        let foreign = agent.submit("/account", "/account/privacy/appeal", &[("decision", &decision_id), ("text", text)]).await;
        assert_eq!(foreign.status.as_u16(), 409);

        // The analyst sees it in the queue with the appeal (escaped), and labels it.
        assert_eq!(agent.get("/staff/fraud").await.status.as_u16(), 403, "support reads no fraud data");
        assert_eq!(ola.get("/staff/fraud").await.status.as_u16(), 403);
        let queue = analyst.get("/staff/fraud?lang=en").await;
        assert_eq!(queue.status.as_u16(), 200);
        let queue = queue.text();
        assert!(queue.contains(&decision_id) && queue.contains("It was me &#60;script&#62;"), "{queue}");
        assert!(!queue.contains("<script>alert(1)"), "escaped");
        assert_eq!(
            count(&store, "SELECT COUNT(*) FROM audit_log WHERE action = 'staff.fraud_queue_read'").await,
            1,
            "reading the queue is audited"
        );
        let bad = analyst.submit("/staff/fraud", "/staff/fraud/review", &[("decision", &decision_id), ("label", "maybe")]).await;
        assert_eq!(bad.status.as_u16(), 400);
        let labelled =
            analyst.submit("/staff/fraud", "/staff/fraud/review", &[("decision", &decision_id), ("label", "false_positive")]).await;
        assert_eq!(labelled.status.as_u16(), 303, "{}", labelled.text());
        let twice = analyst.submit("/staff/fraud", "/staff/fraud/review", &[("decision", &decision_id), ("label", "confirmed")]).await;
        assert_eq!(twice.status.as_u16(), 409, "decided once");
        let page = analyst.get("/staff/fraud?lang=en").await.text();
        assert!(page.contains("0% precise (0 confirmed, 1 false positives)"), "the label feeds the rule's precision: {page}");
        assert!(!page.contains(&format!("id=\"d-{decision_id}\"")), "no longer in the queue");
        let reviews = format!("SELECT COUNT(*) FROM audit_log WHERE action = 'staff.fraud_review' AND subject = 'account:{ola_id}'");
        assert_eq!(count(&store, &reviews).await, 1);
        assert!(ola.get("/account/privacy?lang=en").await.text().contains("False positive"), "the person sees the verdict");
    }
}

#[tokio::test]
async fn rules_are_versioned_data_and_loops_division_by_zero_and_unknown_signals_are_refused_when_saved() {
    for db in each_engine().await {
        let sink = SmtpSink::start();
        let app = TestApp::builder(db).smtp(sink.url()).build();
        let store = app.state.store.clone();
        let mut analyst = staff_member(&app, &sink, "ana@passme.test", 0, Role::Analyst).await;

        // The rules a new installation starts with all compile and run.
        let rules = store.fraud_rules().await.expect("rules");
        assert!(rules.len() >= 10 && rules.iter().all(|r| r.version == 1 && r.enabled));
        for rule in &rules {
            passme_fraud::Expr::compile(&rule.expression, &passme_fraud::signals::catalogue()).expect(&rule.id);
        }

        let save = |id: &'static str, expression: &'static str, version: &'static str| {
            vec![
                ("id", id),
                ("name", "Sign-ups from one network"),
                ("expression", expression),
                ("outcome", "block"),
                ("enabled", "on"),
                ("expected_version", version),
            ]
        };
        for (expression, code) in [
            ("[1, 2].all(x, x > 0)", "rule_syntax"),
            ("while(true)", "rule_syntax"),
            ("network.signups_1h / 0 > 1", "rule_divides_by_zero"),
            ("10 / network.signups_1h > 1", "rule_divides_by_zero"),
            ("account.favourite_colour == \"red\"", "rule_unknown_signal"),
            ("network.signups_1h", "rule_type_error"),
        ] {
            let refused = analyst.submit("/staff/fraud", "/staff/fraud/rules", &save("burst", expression, "0")).await;
            assert_eq!(refused.status.as_u16(), 400, "{expression}");
            let message = passme_messages::Texts(passme_messages::Lang::Da).error(code).expect("a catalogue text");
            assert!(refused.text().contains(message), "{code}: {}", refused.text());
            assert!(refused.text().contains("role=\"alert\""), "the page says why: {expression}");
            assert!(store.fraud_rule_versions("burst").await.expect("versions").is_empty(), "nothing stored for {expression}");
        }
        let unknown =
            analyst.submit("/staff/fraud?lang=en", "/staff/fraud/rules", &save("burst", "account.favourite_colour == \"red\"", "0")).await;
        assert!(unknown.text().contains("no signal is called account.favourite_colour"), "and where: {}", unknown.text());

        // A new rule, then a second version; an edit from a stale page is refused.
        let made = analyst
            .submit("/staff/fraud", "/staff/fraud/rules", &save("burst", "event.kind == \"signup\" && network.signups_1h >= 1", "0"))
            .await;
        assert_eq!(made.status.as_u16(), 303, "{}", made.text());
        let stale = analyst.submit("/staff/fraud", "/staff/fraud/rules", &save("burst", "network.signups_1h >= 5", "0")).await;
        assert_eq!(stale.status.as_u16(), 409);
        let v2 = analyst
            .submit("/staff/fraud", "/staff/fraud/rules", &save("burst", "event.kind == \"signup\" && network.signups_1h >= 2", "1"))
            .await;
        assert_eq!(v2.status.as_u16(), 303);
        let versions = store.fraud_rule_versions("burst").await.expect("versions");
        assert_eq!(versions.iter().map(|r| r.version).collect::<Vec<_>>(), [2, 1], "every version is kept");

        // Version 2 runs: the third sign-up from a network within the hour is blocked, naming v2.
        for (i, expected) in [(0, 200), (1, 200), (2, 403)] {
            let mut visitor = Browser::from(&app, "192.0.2.10");
            let response = visitor.submit("/signup", "/signup", &[("email", &format!("new{i}@example.com")), ("password", PASSWORD)]).await;
            assert_eq!(response.status.as_u16(), expected, "sign-up {i}: {}", response.text());
        }
        let decision =
            count(&store, "SELECT COUNT(*) FROM fraud_decisions WHERE outcome = 'block' AND fired LIKE '%\"burst\",\"version\":2%'").await;
        assert_eq!(decision, 1);
        assert!(
            store.account_by_email_key(&passme_core::identity::email::key("new2@example.com")).await.expect("read").is_none(),
            "no account made"
        );
        let audited =
            count(&store, "SELECT COUNT(*) FROM audit_log WHERE action = 'fraud.rule_saved' AND subject = 'fraud_rule:burst'").await;
        assert_eq!(audited, 2);
    }
}

#[tokio::test]
async fn a_denied_person_cannot_come_back_with_an_address_variant_and_the_list_key_goes_after_its_declared_period() {
    proves!("retention.fraud.deny_list", "retention.fraud.signals", "retention.fraud.decisions");
    for db in each_engine().await {
        let sink = SmtpSink::start();
        let app = TestApp::builder(db).smtp(sink.url()).build();
        let store = app.state.store.clone();
        let mut analyst = staff_member(&app, &sink, "ana@passme.test", 0, Role::Analyst).await;

        // Bad entries are refused with their own code.
        for (form, code) in [
            (vec![("list", "grey"), ("kind", "email"), ("value", "a@b.dk"), ("reason", "Chargebacks")], "list_invalid"),
            (vec![("list", "deny"), ("kind", "email"), ("value", "not an address"), ("reason", "Chargebacks")], "list_value_invalid"),
            (vec![("list", "deny"), ("kind", "network"), ("value", "999.1.1.1"), ("reason", "Chargebacks")], "list_value_invalid"),
            (vec![("list", "deny"), ("kind", "email"), ("value", "a@b.dk"), ("reason", "x")], "list_reason_length"),
            (
                vec![("list", "deny"), ("kind", "email"), ("value", "a@b.dk"), ("reason", "Chargebacks"), ("days", "9999")],
                "list_expiry_invalid",
            ),
        ] {
            let refused = analyst.submit("/staff/fraud", "/staff/fraud/lists", &form).await;
            assert_eq!(refused.status.as_u16(), 400, "{code}");
            assert!(refused.text().contains("role=\"alert\""));
        }
        let denied = [("list", "deny"), ("kind", "email"), ("value", "Mallory+1@gmail.com"), ("reason", "Three chargebacks in May")];
        assert_eq!(analyst.submit("/staff/fraud", "/staff/fraud/lists", &denied).await.status.as_u16(), 303);
        assert_eq!(
            count(&store, "SELECT COUNT(*) FROM fraud_lists WHERE value_hash LIKE '%mallory%' OR reason LIKE '%mallory%'").await,
            0,
            "only a keyed hash"
        );

        // Variants of the mailbox are one address to the list; the form and the API refuse them.
        for variant in ["m.allory@googlemail.com", "MALLORY+again@gmail.com"] {
            let mut visitor = Browser::from(&app, "192.0.2.20");
            let refused = visitor.submit("/signup", "/signup", &[("email", variant), ("password", PASSWORD)]).await;
            assert_eq!(refused.status.as_u16(), 403, "{variant}");
        }
        let mut api = Browser::from(&app, "192.0.2.21");
        let refused = api.json("POST", "/api/v1/signup", &serde_json::json!({ "email": "mallory@gmail.com", "password": PASSWORD })).await;
        assert_eq!((refused.status.as_u16(), refused.error_code()), (403, "signup_refused".to_string()));
        assert_eq!(count(&store, "SELECT COUNT(*) FROM accounts WHERE email LIKE '%allory%'").await, 0);

        // A denied network: sign-ups from its /24 stop, checkout and linking too.
        let mut ola = signed_in(&app, &sink, "ola@example.com", 1).await;
        let network = [("list", "deny"), ("kind", "network"), ("value", "127.0.0.1"), ("reason", "Card testing from this network")];
        assert_eq!(analyst.submit("/staff/fraud", "/staff/fraud/lists", &network).await.status.as_u16(), 303);
        let link = ola.submit("/account", "/account/links/example/start", &[]).await;
        assert_eq!((link.status.as_u16(), link.error_code()), (403, "link_refused".to_string()), "{}", link.text());
        let allowed = [("list", "allow"), ("kind", "email"), ("value", "ola@example.com"), ("reason", "Known customer, verified by phone")];
        assert_eq!(analyst.submit("/staff/fraud", "/staff/fraud/lists", &allowed).await.status.as_u16(), 303);
        let link = ola.submit("/account", "/account/links/example/start", &[]).await;
        assert_ne!(link.status.as_u16(), 403, "the allow list wins over the deny list: {}", link.text());

        // After the declared 12 months the key is destroyed with the entries made under it.
        let now = passme_core::clock::system().now_ms();
        let run_at = |ms: i64| {
            let clock = std::sync::Arc::new(passme_core::clock::ManualClock::at(ms));
            passme_core::housekeeping::Housekeeping::new(store.clone(), clock, &app.state.policy).expect("rules")
        };
        let events = count(&store, "SELECT COUNT(*) FROM fraud_events").await;
        assert!(events > 0 && count(&store, "SELECT COUNT(*) FROM fraud_decisions").await > 0);
        run_at(now + 89 * DAY).run().await.expect("retention");
        assert_eq!(count(&store, "SELECT COUNT(*) FROM fraud_events").await, events);
        run_at(now + 91 * DAY).run().await.expect("retention");
        assert_eq!(count(&store, "SELECT COUNT(*) FROM fraud_events").await, 0, "signals go after 90 days");
        assert!(count(&store, "SELECT COUNT(*) FROM fraud_decisions").await > 0);
        run_at(now + 364 * DAY).run().await.expect("retention");
        assert_eq!(count(&store, "SELECT COUNT(*) FROM fraud_list_keys").await, 1);
        run_at(now + 367 * DAY).run().await.expect("retention");
        assert_eq!(count(&store, "SELECT COUNT(*) FROM fraud_decisions").await, 0, "decisions go after a year");
        assert_eq!(count(&store, "SELECT COUNT(*) FROM fraud_list_keys").await, 0, "the key is destroyed after 12 months");
        assert_eq!(count(&store, "SELECT COUNT(*) FROM fraud_lists").await, 0, "and every entry made under it");
        let mut visitor = Browser::from(&app, "192.0.2.22");
        let welcome = visitor.submit("/signup", "/signup", &[("email", "mallory@gmail.com"), ("password", PASSWORD)]).await;
        assert_eq!(welcome.status.as_u16(), 200, "an old hash recognises nobody");
    }
}

#[tokio::test]
async fn datacenter_sign_ups_with_disposable_addresses_go_to_review_and_a_sign_in_across_three_providers_is_confirmed_by_mail() {
    assert!(
        passme_testkit::asn::disposable_domains().len() > 10_000,
        "the disposable-mail list is missing: run scripts/test, which installs npm disposable-email-domains"
    );
    for db in each_engine().await {
        let sink = SmtpSink::start();
        let app = TestApp::builder(db).smtp(sink.url()).with_isps().build();
        let store = app.state.store.clone();

        // An Amazon address and a mailinator address: allowed, and queued for an analyst.
        let mut visitor = Browser::from(&app, "3.5.140.2");
        let made = visitor.submit("/signup", "/signup", &[("email", "trial@mailinator.com"), ("password", PASSWORD)]).await;
        assert_eq!(made.status.as_u16(), 200, "{}", made.text());
        let queued = store.fraud_review_queue(10).await.expect("queue");
        assert_eq!(queued.len(), 1);
        assert!(queued[0].fired.contains("hosting_network") && queued[0].fired.contains("disposable_address"), "{}", queued[0].fired);
        assert_eq!(queued[0].outcome, "review");
        assert!(queued[0].fired.contains("scripted_signup"), "no page was loaded from that address: {}", queued[0].fired);

        // Fraud scanning reads the full address tracking keeps: a datacenter visitor who loaded a
        // page before signing up is not taken for a script.
        let mut pixel = axum::http::Request::get("/api/v1/events/pixel.gif?site=passme")
            .header("host", "passme.test")
            .header("referer", "http://passme.test/pricing")
            .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
            .body(axum::body::Body::empty())
            .expect("request");
        pixel.extensions_mut().insert(axum::extract::ConnectInfo("3.5.140.3:5000".parse::<std::net::SocketAddr>().expect("addr")));
        assert_eq!(app.send(pixel).await.status.as_u16(), 200);
        let mut reader = Browser::from(&app, "3.5.140.3");
        reader.user_agent = Some("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0".into());
        let made = reader.submit("/signup", "/signup", &[("email", "reader@example.com"), ("password", PASSWORD)]).await;
        assert_eq!(made.status.as_u16(), 200);
        let decision = store.fraud_review_queue(10).await.expect("queue").pop().expect("the datacenter sign-up");
        assert!(decision.fired.contains("hosting_network") && !decision.fired.contains("scripted_signup"), "{}", decision.fired);

        // Ola signs in from Amazon, then Google, then Cloudflare within the hour: the third is
        // challenged, and the mailed link finishes it once.
        let _ola = signed_in(&app, &sink, "ola@example.com", 1).await;
        for ip in ["3.5.140.2", "8.8.8.8"] {
            assert_eq!(sign_in_from(&app, ip, "ola@example.com", PASSWORD).await.status.as_u16(), 303, "{ip}");
        }
        let challenged = sign_in_from(&app, "1.1.1.1", "ola@example.com", PASSWORD).await;
        assert_eq!(challenged.status.as_u16(), 200);
        assert!(challenged.text().contains("Bekræft, at det er dig"), "{}", challenged.text());
        assert!(challenged.header("set-cookie").is_none_or(|c| !c.contains("__Host-session")), "not signed in yet");
        let mail = app.deliver(&sink, 3).await.into_iter().find(|m| m.body.contains("/login/confirm")).expect("the challenge mail");
        assert!(mail.subject.contains("Bekræft dit login"), "{}", mail.subject);
        let token = link_token(&mail.body);
        let mut browser = Browser::from(&app, "1.1.1.1");
        let csrf = browser.token(&format!("/login/confirm?token={token}")).await;
        let done = browser.post("/login/confirm", &[("csrf", &csrf), ("token", &token)]).await;
        assert_eq!((done.status.as_u16(), done.header("location")), (303, Some("/account")));
        let csrf = browser.token(&format!("/login/confirm?token={token}")).await;
        let replay = browser.post("/login/confirm", &[("csrf", &csrf), ("token", &token)]).await;
        assert_eq!(replay.status.as_u16(), 400, "the link works once");
    }
}
