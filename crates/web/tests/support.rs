//! Customer support through the real router, on both engines: the contact form (signed in or not,
//! privacy requests routed to their register, floods refused, HTML kept as text), cases with
//! states, assignment, canned replies and targets, the person's view, staff reads audited, and
//! cases opened from signals at most once per person per day, also with two instances.

use std::sync::Arc;

use passme_core::clock::{Clock, ManualClock};
use passme_core::identity::staff::Role;
use passme_core::jobs::EnqueueOptions;
use passme_policy::proves;

use passme_testkit::browser::{Browser, signed_in};
use passme_testkit::people::{account_of, count, staff_member};
use passme_testkit::{SmtpSink, TestApp, each_engine};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

async fn contact(browser: &mut Browser<'_>, form: &[(&str, &str)]) -> passme_testkit::TestResponse {
    browser.submit("/contact", "/contact", form).await
}

fn ticket_in(text: &str) -> String {
    text.split("tkt_").nth(1).map(|s| format!("tkt_{}", &s[..16])).expect("a case number")
}

#[tokio::test]
async fn the_contact_form_opens_a_case_keeps_html_as_text_routes_privacy_requests_and_refuses_a_flood() {
    for db in each_engine().await {
        let engine = db.engine_name();
        let sink = SmtpSink::start();
        let app = TestApp::builder(db).smtp(sink.url()).build();
        let store = app.state.store.clone();
        let mut agent = staff_member(&app, &sink, "agent@passme.test", 0, Role::Support).await;

        // Bad input: each refused with the form again and its own message, nothing stored.
        let mut visitor = Browser::from(&app, "192.0.2.30");
        for (form, status, text) in [
            (vec![("email", "not an address"), ("subject", "Help"), ("message", "Nothing works for me")], 400, "e-mail"),
            (vec![("email", "kim@example.com"), ("subject", "Help"), ("message", "short")], 400, "mindst 10 tegn"),
            (vec![("email", "kim@example.com"), ("subject", "H"), ("message", "Nothing works for me")], 400, "emne på 3 til 200"),
        ] {
            let refused = contact(&mut visitor, &form).await;
            assert_eq!(refused.status.as_u16(), status, "{engine}: {form:?}");
            assert!(refused.text().contains("role=\"alert\"") && refused.text().to_lowercase().contains(text), "{}", refused.text());
        }
        assert_eq!(count(&store, "SELECT COUNT(*) FROM support_tickets").await, 0);

        // A case from someone without an account; HTML is kept as they wrote it and shown as text.
        let script = "Hej <script>alert(1)</script> <b>bold</b> – my invoice is wrong";
        let made = contact(&mut visitor, &[("email", "kim@example.com"), ("subject", "Invoice <img src=x>"), ("message", script)]).await;
        assert_eq!(made.status.as_u16(), 200, "{}", made.text());
        let mail = app.deliver(&sink, 2).await.into_iter().find(|m| m.to == "kim@example.com").expect("the receipt");
        let ticket = ticket_in(&mail.body);
        assert!(mail.body.contains("8 timer"), "{}", mail.body);
        let stored = store.ticket(&ticket).await.expect("read").expect("stored");
        assert_eq!((stored.state.as_str(), stored.source.as_str(), stored.account_id.is_none()), ("new", "form", true));
        assert_eq!(stored.first_response_due - stored.created_at, 8 * HOUR);
        let queue = agent.get("/staff/support").await.text();
        assert!(queue.contains(&ticket) && queue.contains("Invoice &#60;img src=x&#62;"), "{queue}");
        let case = agent.get(&format!("/staff/support/{ticket}")).await.text();
        assert!(case.contains("&#60;script&#62;alert(1)&#60;/script&#62;") && !case.contains("<script>alert"), "{case}");

        // A privacy request from the form goes to the privacy-request register, not the queue.
        let _ola = signed_in(&app, &sink, "ola@example.com", 2).await;
        let privacy =
            contact(&mut visitor, &[("email", "ola@example.com"), ("topic", "privacy"), ("message", "Which data do you have on me?")])
                .await;
        assert_eq!(privacy.status.as_u16(), 200);
        let ola_id = account_of(&store, "ola@example.com").await;
        let registered = format!("SELECT COUNT(*) FROM privacy_requests WHERE account_id = '{ola_id}' AND status = 'unverified'");
        assert_eq!(count(&store, &registered).await, 1, "registered, waiting for the mailed confirmation");
        assert_eq!(count(&store, "SELECT COUNT(*) FROM support_tickets").await, 1, "no case for a privacy request");

        // A flood from one network: refused once over the shared limit, with Retry-After.
        let mut flood = Browser::from(&app, "198.51.100.40");
        let mut refused = None;
        for i in 0..40 {
            let response = contact(
                &mut flood,
                &[("email", &format!("spam{i}@example.com")), ("subject", "Buy now"), ("message", "Cheap pills for everyone")],
            )
            .await;
            if response.status.as_u16() == 429 {
                refused = Some((i, response));
                break;
            }
        }
        let (after, response) = refused.expect("the flood is refused");
        assert_eq!(after, 30, "30 an hour from one network");
        assert!(response.header("retry-after").is_some());
        assert_eq!(count(&store, "SELECT COUNT(*) FROM support_tickets WHERE subject = 'Buy now'").await, 30);
    }
}

#[tokio::test]
async fn an_agent_answers_with_a_canned_reply_the_person_follows_their_case_and_staff_reads_are_audited() {
    proves!("security.staff_access_audited");
    for db in each_engine().await {
        let sink = SmtpSink::start();
        let app = TestApp::builder(db).smtp(sink.url()).build();
        let store = app.state.store.clone();
        let mut ola = signed_in(&app, &sink, "ola@example.com", 0).await;
        let ola_id = account_of(&store, "ola@example.com").await;
        let mut agent = staff_member(&app, &sink, "agent@passme.test", 1, Role::Support).await;
        let mut other_agent = staff_member(&app, &sink, "agent2@passme.test", 2, Role::Support).await;
        let mut analyst = staff_member(&app, &sink, "ana@passme.test", 3, Role::Analyst).await;
        let mut kim = signed_in(&app, &sink, "kim@example.com", 4).await;

        // Signed in, the address is the account's: a field in the form cannot change it.
        let made = contact(
            &mut ola,
            &[("email", "someone@else.com"), ("subject", "Cannot sign in on my phone"), ("message", "The app says my password is wrong")],
        )
        .await;
        assert_eq!(made.status.as_u16(), 200, "{}", made.text());
        let cases = ola.get("/account/support").await.text();
        let ticket = ticket_in(&cases);
        let row = store.ticket(&ticket).await.expect("read").expect("case");
        assert_eq!((row.email.as_str(), row.account_id.as_ref()), ("ola@example.com", Some(&ola_id)));
        assert_eq!(kim.get(&format!("/account/support/{ticket}")).await.status.as_u16(), 404, "not Kim's case");
        assert_eq!(analyst.get("/staff/support").await.status.as_u16(), 403, "analysts do not read cases");
        assert_eq!(ola.get("/staff/support").await.status.as_u16(), 403);

        // Opening the case is a staff read the person sees on their privacy page.
        let reads = format!("SELECT COUNT(*) FROM audit_log WHERE action = 'staff.person_read' AND subject = 'account:{ola_id}'");
        assert_eq!(agent.get(&format!("/staff/support/{ticket}")).await.status.as_u16(), 200);
        assert_eq!(count(&store, &reads).await, 1);
        assert!(ola.get("/account/privacy?lang=en").await.text().contains(&format!("Case {ticket}")));

        // Opening the person's data: without a reason only from a case assigned to the agent.
        let refused = agent.submit("/staff/people", "/staff/people", &[("email", "ola@example.com"), ("ticket", &ticket)]).await;
        assert_eq!(refused.status.as_u16(), 400, "not assigned yet");
        assert_eq!(
            agent.submit(&format!("/staff/support/{ticket}"), &format!("/staff/support/{ticket}/assign"), &[]).await.status.as_u16(),
            303
        );
        let others = other_agent.submit("/staff/people", "/staff/people", &[("email", "ola@example.com"), ("ticket", &ticket)]).await;
        assert_eq!(others.status.as_u16(), 400, "someone else's case is no reason");
        let kims = agent.submit("/staff/people", "/staff/people", &[("email", "kim@example.com"), ("ticket", &ticket)]).await;
        assert_eq!(kims.status.as_u16(), 400, "the case is not about Kim");
        let opened = agent.submit("/staff/people", "/staff/people", &[("email", "ola@example.com"), ("ticket", &ticket)]).await;
        assert_eq!(opened.status.as_u16(), 200);
        assert!(opened.text().contains("id=\"part-account\""));
        assert_eq!(count(&store, &reads).await, 3, "two case views (one to take it) and one opening");

        // A canned reply, in the case's language, mailed to the person; the case waits for them.
        let answer = agent
            .submit(
                &format!("/staff/support/{ticket}"),
                &format!("/staff/support/{ticket}/reply"),
                &[("canned", "signin"), ("message", "")],
            )
            .await;
        assert_eq!(answer.status.as_u16(), 303, "{}", answer.text());
        let unknown = agent
            .submit(&format!("/staff/support/{ticket}"), &format!("/staff/support/{ticket}/reply"), &[("canned", "nope"), ("message", "")])
            .await;
        assert_eq!(unknown.status.as_u16(), 400);
        let row = store.ticket(&ticket).await.expect("read").expect("case");
        assert_eq!(row.state, "pending");
        assert!(row.first_response_at.is_some());
        let mail = app
            .deliver(&sink, 7)
            .await
            .into_iter()
            .find(|m| m.to == "ola@example.com" && m.body.contains(&ticket) && m.body.contains("Glemt adgangskode"))
            .expect("the answer, in Danish");
        assert!(mail.subject.contains("har svaret"), "{}", mail.subject);

        // The person reads it and replies: the case is open again.
        let page = ola.get(&format!("/account/support/{ticket}")).await.text();
        assert!(page.contains("Glemt adgangskode") && page.contains("venter på dig"), "{page}");
        let reply = ola
            .submit(
                &format!("/account/support/{ticket}"),
                &format!("/account/support/{ticket}/reply"),
                &[("message", "It works now, thank you!")],
            )
            .await;
        assert_eq!(reply.status.as_u16(), 303);
        assert_eq!(store.ticket(&ticket).await.expect("read").expect("case").state, "open");
        let foreign = kim.submit("/account", &format!("/account/support/{ticket}/reply"), &[("message", "I am not Ola but hello")]).await;
        assert_eq!(foreign.status.as_u16(), 404);
        assert_eq!(
            agent.submit(&format!("/staff/support/{ticket}"), &format!("/staff/support/{ticket}/close"), &[]).await.status.as_u16(),
            303
        );
        assert_eq!(
            agent.submit(&format!("/staff/support/{ticket}"), &format!("/staff/support/{ticket}/close"), &[]).await.status.as_u16(),
            409
        );
        // Signed in, the account is who writes: ten cases an hour, then refused.
        for i in 1..10 {
            let made = contact(&mut ola, &[("subject", &format!("Question {i}")), ("message", "Another question about my plan")]).await;
            assert_eq!(made.status.as_u16(), 200, "case {i}");
        }
        let flood = contact(&mut ola, &[("subject", "Question 11"), ("message", "Another question about my plan")]).await;
        assert_eq!(flood.status.as_u16(), 429);
        // The person's export holds the case and its messages.
        let export = passme_core::rights::access::Export::of(&store, &ola_id, 0).await.expect("export");
        assert_eq!(export.tables["support_tickets"].len(), 10);
        assert_eq!(export.tables["support_messages"].len(), 12);
    }
}

#[tokio::test]
async fn signals_open_one_case_a_day_with_the_signal_shown_also_with_two_instances_and_go_after_their_periods() {
    proves!("retention.support.tickets", "retention.support.signals");
    for db in each_engine().await {
        let sink = SmtpSink::start();
        let clock = Arc::new(ManualClock::at(passme_core::clock::system().now_ms()));
        let app = TestApp::builder(db.clone()).smtp(sink.url()).clock(clock.clone()).build();
        let other = TestApp::builder(db).smtp(sink.url()).clock(clock.clone()).build();
        let store = app.state.store.clone();
        let _ola = signed_in(&app, &sink, "ola@example.com", 0).await;
        let ola_id = account_of(&store, "ola@example.com").await;
        let mut agent = staff_member(&app, &sink, "agent@passme.test", 1, Role::Support).await;
        let cases = |signal: &str| format!("SELECT COUNT(*) FROM support_tickets WHERE signal = '{signal}'");

        // One reset is nothing; the second within the hour opens a case.
        let mut visitor = Browser::from(&app, "192.0.2.50");
        visitor.submit("/reset-request", "/reset-request", &[("email", "ola@example.com")]).await;
        assert_eq!(count(&store, &cases("password_reset")).await, 0);
        visitor.submit("/reset-request", "/reset-request", &[("email", "ola@example.com")]).await;
        assert_eq!(count(&store, &cases("password_reset")).await, 1);
        // Nobody learns anything about an unknown address: the same answer, no case.
        let unknown = visitor.submit("/reset-request", "/reset-request", &[("email", "nobody@example.com")]).await;
        assert_eq!(unknown.status.as_u16(), 200);

        // The agent sees the signal; a first failed payment the same day opens no second case...
        let queue = agent.get("/staff/support?lang=en").await.text();
        assert!(queue.contains("Two password resets within an hour") && queue.contains("opened by us"), "{queue}");
        let failed = passme_billing::PaymentFailed { account: ola_id.clone(), invoice: "in_test_1".into() };
        app.state.jobs.push(&failed, EnqueueOptions::default()).await.expect("queued");
        app.run_jobs().await;
        assert_eq!(count(&store, &cases("payment_failed")).await, 0, "one case per person per day");
        // ...but the next day it does, and only for the first failure.
        clock.advance(DAY);
        app.state.jobs.push(&failed, EnqueueOptions::default()).await.expect("queued");
        app.run_jobs().await;
        assert_eq!(count(&store, &cases("payment_failed")).await, 1);
        clock.advance(DAY);
        let again = passme_billing::PaymentFailed { account: ola_id.clone(), invoice: "in_test_2".into() };
        app.state.jobs.push(&again, EnqueueOptions::default()).await.expect("queued");
        app.run_jobs().await;
        assert_eq!(count(&store, &cases("payment_failed")).await, 1, "only the first failure");

        // Two instances seeing server errors at once: three signals, and one case between them.
        clock.advance(DAY);
        let signal = passme_support::Signal::ServerError;
        let detail = serde_json::json!({ "path": "/account" });
        let (a, b, c) = tokio::join!(
            app.state.support.signal(&ola_id, signal, detail.clone()),
            other.state.support.signal(&ola_id, signal, detail.clone()),
            app.state.support.signal(&ola_id, signal, detail.clone()),
        );
        let d = other.state.support.signal(&ola_id, signal, detail.clone()).await.expect("signal");
        let opened = [a.expect("a"), b.expect("b"), c.expect("c"), d].into_iter().flatten().count();
        assert_eq!(opened, 1);
        assert_eq!(count(&store, &cases("server_error")).await, 1);

        // A confirmed account not back a day after signing up gets a case from the hourly scan.
        let _kim = signed_in(&app, &sink, "kim@example.com", 2).await;
        clock.advance(30 * HOUR);
        passme_support::Support::schedule_scan(&app.state.jobs, clock.now_ms()).await.expect("scheduled");
        app.run_jobs().await;
        let kim_id = account_of(&store, "kim@example.com").await;
        assert_eq!(
            count(&store, &format!("SELECT COUNT(*) FROM support_tickets WHERE signal = 'quiet' AND account_id = '{kim_id}'")).await,
            1
        );

        // Retention: signals after 90 days; a case 3 years after it closed, with its messages.
        let signals = count(&store, "SELECT COUNT(*) FROM support_signals").await;
        assert!(signals >= 7);
        let now = clock.now_ms();
        let run_at = |ms: i64| {
            let clock = Arc::new(ManualClock::at(ms));
            passme_core::housekeeping::Housekeeping::new(store.clone(), clock, &app.state.policy).expect("rules")
        };
        run_at(now + 91 * DAY).run().await.expect("retention");
        assert_eq!(count(&store, "SELECT COUNT(*) FROM support_signals").await, 0);
        let all = count(&store, "SELECT COUNT(*) FROM support_tickets").await;
        let closing = store.open_tickets(10).await.expect("open")[0].id.clone();
        assert!(store.close_ticket(&closing, now).await.expect("closed"));
        run_at(now + 3 * 365 * DAY - DAY).run().await.expect("retention");
        assert_eq!(count(&store, "SELECT COUNT(*) FROM support_tickets").await, all);
        run_at(now + 3 * 366 * DAY).run().await.expect("retention");
        assert_eq!(count(&store, "SELECT COUNT(*) FROM support_tickets").await, all - 1, "the closed case goes after 3 years");
        assert_eq!(count(&store, &format!("SELECT COUNT(*) FROM support_messages WHERE ticket_id = '{closing}'")).await, 0);
    }
}
