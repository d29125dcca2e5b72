//! Terms enforcement and the register of authority requests, through the real router on both
//! engines: an admin suspends an account under a clause with a reason, the person is told by
//! mail and appeals without signing in, the appeal is decided; authority requests are registered
//! with their legal basis and what was disclosed; everything is audited and goes after 5 years.

use std::sync::Arc;

use passme_core::identity::staff::Role;
use passme_policy::proves;

use passme_testkit::browser::{Browser, PASSWORD, link_token, signed_in};
use passme_testkit::people::{account_of, count, staff_member};
use passme_testkit::{SmtpSink, TestApp, each_engine};

const DAY: i64 = 86_400_000;

async fn sign_in(app: &TestApp, email: &str) -> u16 {
    let mut browser = Browser::new(app);
    browser.submit("/login", "/login", &[("email", email), ("password", PASSWORD)]).await.status.as_u16()
}

#[tokio::test]
async fn an_admin_suspends_an_account_with_a_reason_the_person_appeals_by_mail_and_the_appeal_reopens_it() {
    for db in each_engine().await {
        let sink = SmtpSink::start();
        let app = TestApp::builder(db).smtp(sink.url()).build();
        let store = app.state.store.clone();
        let mut ola = signed_in(&app, &sink, "ola@example.com", 0).await;
        let ola_id = account_of(&store, "ola@example.com").await;
        let mut boss = staff_member(&app, &sink, "boss@passme.test", 1, Role::Admin).await;
        let mut officer = staff_member(&app, &sink, "po@passme.test", 2, Role::PrivacyOfficer).await;
        let mut agent = staff_member(&app, &sink, "agent@passme.test", 3, Role::Support).await;

        let reason = "Resold access to <b>40</b> people against section 4 of the terms";
        let enforce = |clause: &'static str, reason: &'static str, email: &'static str| {
            vec![("email", email), ("action", "suspend"), ("clause", clause), ("reason", reason)]
        };
        // Who may act, and bad input: each refused with its own code.
        assert_eq!(agent.get("/staff/compliance").await.status.as_u16(), 403);
        assert_eq!(officer.get("/staff/compliance").await.status.as_u16(), 200);
        let csrf = officer.token("/staff/compliance").await;
        let refused = officer
            .post(
                "/staff/compliance/enforce",
                &[("csrf", &csrf), ("email", "ola@example.com"), ("action", "suspend"), ("clause", "abuse"), ("reason", reason)],
            )
            .await;
        assert_eq!(refused.status.as_u16(), 403, "the privacy officer keeps the register but does not act on accounts");
        for (form, status) in [
            (enforce("whim", reason, "ola@example.com"), 400),
            (enforce("abuse", "rude", "ola@example.com"), 400),
            (enforce("abuse", reason, "nobody@example.com"), 404),
            (enforce("abuse", reason, "boss@passme.test"), 400),
        ] {
            assert_eq!(boss.submit("/staff/compliance", "/staff/compliance/enforce", &form).await.status.as_u16(), status, "{form:?}");
        }
        assert_eq!(count(&store, "SELECT COUNT(*) FROM terms_actions").await, 0);

        // Suspended: every session ends, signing in fails, and the person is told why by mail.
        let done = boss.submit("/staff/compliance", "/staff/compliance/enforce", &enforce("abuse", reason, "ola@example.com")).await;
        assert_eq!(done.status.as_u16(), 303, "{}", done.text());
        assert_ne!(ola.get("/account").await.status.as_u16(), 200, "signed out everywhere");
        assert_eq!(sign_in(&app, "ola@example.com").await, 401);
        let audited = format!("SELECT COUNT(*) FROM audit_log WHERE action = 'compliance.terms_action' AND subject = 'account:{ola_id}'");
        assert_eq!(count(&store, &audited).await, 1);
        let mail =
            app.deliver(&sink, 5).await.into_iter().find(|m| m.to == "ola@example.com" && m.body.contains("/appeal")).expect("the notice");
        assert!(
            mail.subject.contains("suspenderet") && mail.body.contains(reason) && mail.body.contains("Misbrug af tjenesten"),
            "{}",
            mail.body
        );
        let token = link_token(&mail.body);

        // The appeal page shows the decision without signing in; a short appeal is refused.
        let mut anonymous = Browser::from(&app, "192.0.2.60");
        let page = anonymous.get(&format!("/appeal?token={token}")).await;
        assert_eq!(page.status.as_u16(), 200);
        assert!(page.text().contains("Resold access to &#60;b&#62;40&#60;/b&#62;"), "{}", page.text());
        assert_eq!(anonymous.get("/appeal?token=forged").await.status.as_u16(), 400);
        let short = anonymous.submit(&format!("/appeal?token={token}"), "/appeal", &[("token", &token), ("text", "no")]).await;
        assert_eq!((short.status.as_u16(), short.error_code()), (400, "appeal_length".to_string()));
        let sent = anonymous
            .submit(
                &format!("/appeal?token={token}"),
                "/appeal",
                &[("token", &token), ("text", "They are my family members, one household.")],
            )
            .await;
        assert_eq!(sent.status.as_u16(), 200, "{}", sent.text());
        let again =
            anonymous.submit("/contact", "/appeal", &[("token", &token), ("text", "They are my family members, one household.")]).await;
        assert_eq!(again.status.as_u16(), 400, "the link works once");

        // The admin decides: reversed, and Ola can sign in again.
        let page = boss.get("/staff/compliance").await.text();
        assert!(page.contains("They are my family members"), "{page}");
        let action = store.terms_actions(10).await.expect("actions")[0].id.clone();
        let bad = boss
            .submit(
                "/staff/compliance",
                "/staff/compliance/appeals",
                &[("action", &action), ("outcome", "maybe"), ("note", "Checked the household")],
            )
            .await;
        assert_eq!(bad.status.as_u16(), 400);
        let decided = boss
            .submit(
                "/staff/compliance",
                "/staff/compliance/appeals",
                &[("action", &action), ("outcome", "reversed"), ("note", "One household, as the person said")],
            )
            .await;
        assert_eq!(decided.status.as_u16(), 303);
        let twice = boss
            .submit(
                "/staff/compliance",
                "/staff/compliance/appeals",
                &[("action", &action), ("outcome", "upheld"), ("note", "Changed my mind again")],
            )
            .await;
        assert_eq!(twice.status.as_u16(), 409);
        assert_eq!(sign_in(&app, "ola@example.com").await, 303);
        let row = store.terms_action(&action).await.expect("read").expect("action");
        assert_eq!((row.outcome.as_deref(), row.completed_at.is_some()), (Some("reversed"), true));
        // The person's export holds the action and the appeal.
        let export = passme_core::rights::access::Export::of(&store, &ola_id, 0).await.expect("export");
        assert_eq!(export.tables["terms_actions"].len(), 1);
    }
}

#[tokio::test]
async fn authority_requests_are_registered_with_their_legal_basis_and_disclosure_and_go_five_years_after_completion() {
    proves!("retention.compliance.legal_requests");
    for db in each_engine().await {
        let sink = SmtpSink::start();
        let app = TestApp::builder(db).smtp(sink.url()).build();
        let store = app.state.store.clone();
        let _ola = signed_in(&app, &sink, "ola@example.com", 0).await;
        let ola_id = account_of(&store, "ola@example.com").await;
        let mut officer = staff_member(&app, &sink, "po@passme.test", 1, Role::PrivacyOfficer).await;

        let register = |basis: &'static str| {
            vec![
                ("authority", "Københavns Politi"),
                ("reference", "KBH-2026-1234"),
                ("legal_basis", basis),
                ("asked", "Sign-in times for one account, May 2026"),
                ("email", "ola@example.com"),
            ]
        };
        let missing = officer.submit("/staff/compliance", "/staff/compliance/authority", &register("")).await;
        assert_eq!(missing.status.as_u16(), 400);
        let made =
            officer.submit("/staff/compliance", "/staff/compliance/authority", &register("Retsplejeloven § 804 (edition order)")).await;
        assert_eq!(made.status.as_u16(), 303, "{}", made.text());
        let request = store.authority_requests(10).await.expect("requests").remove(0);
        assert_eq!((request.status.as_str(), request.account_id.as_ref()), ("open", Some(&ola_id)));
        let audited =
            format!("SELECT COUNT(*) FROM audit_log WHERE action = 'compliance.authority_request' AND subject = 'account:{ola_id}'");
        assert_eq!(count(&store, &audited).await, 1);

        let complete = |status: &'static str| {
            vec![("id", request.id.as_str()), ("status", status), ("disclosed", "Sign-in times 2026-05-01 to 05-31, nothing else")]
        };
        assert_eq!(
            officer.submit("/staff/compliance", "/staff/compliance/authority/complete", &complete("maybe")).await.status.as_u16(),
            400
        );
        assert_eq!(
            officer.submit("/staff/compliance", "/staff/compliance/authority/complete", &complete("answered")).await.status.as_u16(),
            303
        );
        assert_eq!(
            officer.submit("/staff/compliance", "/staff/compliance/authority/complete", &complete("answered")).await.status.as_u16(),
            409
        );
        // An open one stays however old it is.
        officer.submit("/staff/compliance", "/staff/compliance/authority", &register("Skatteforvaltningsloven § 57")).await;
        // Not in the person's export: the law may forbid telling them.
        let export = passme_core::rights::access::Export::of(&store, &ola_id, 0).await.expect("export");
        assert!(!export.tables.contains_key("authority_requests"));

        let now = passme_core::clock::system().now_ms();
        let run_at = |ms: i64| {
            let clock = Arc::new(passme_core::clock::ManualClock::at(ms));
            passme_core::housekeeping::Housekeeping::new(store.clone(), clock, &app.state.policy).expect("rules")
        };
        run_at(now + 5 * 365 * DAY - DAY).run().await.expect("retention");
        assert_eq!(count(&store, "SELECT COUNT(*) FROM authority_requests").await, 2);
        run_at(now + 5 * 366 * DAY).run().await.expect("retention");
        assert_eq!(count(&store, "SELECT COUNT(*) FROM authority_requests").await, 1, "the completed one goes after 5 years");
        assert_eq!(count(&store, "SELECT COUNT(*) FROM authority_requests WHERE status = 'open'").await, 1);
    }
}
