//! Account mail through relay outages and worker crashes, nobody stranded unverified, and refused
//! sign-ups that leave nothing behind: through the real router, with a real SMTP relay (aiosmtpd)
//! that is hung with SIGSTOP, on both engines.

use std::time::{Duration, Instant};

use passme_core::jobs::Worker;
use passme_testkit::browser::{Browser, PASSWORD, link_token};
use passme_testkit::people::count;
use passme_testkit::{SmtpSink, TestApp, each_engine};

async fn sign_up(browser: &mut Browser<'_>, email: &str) -> (u16, Duration) {
    let started = Instant::now();
    let response = browser.submit("/signup", "/signup", &[("email", email), ("password", PASSWORD)]).await;
    (response.status.as_u16(), started.elapsed())
}

/// The message queue's worker as `passme serve` runs it, with a short lease.
fn sender(app: &TestApp, lease_ms: i64) -> Worker {
    Worker { lease_ms, ..Worker::messages(app.state.store.clone(), app.state.clock.clone(), app.state.job_handlers().expect("handlers")) }
}

/// Waits until the relay has `n` messages (it may be slow to write them), then a moment more to
/// catch a duplicate.
async fn received(sink: &SmtpSink, n: usize) -> Vec<passme_testkit::smtp::ReceivedMail> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while sink.messages().len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    sink.messages()
}

#[tokio::test]
async fn a_hung_relay_neither_delays_sign_up_nor_loses_the_verification_mail() {
    for db in each_engine().await {
        let sink = SmtpSink::start();
        let app = TestApp::builder(db).smtp(sink.url()).build();
        sink.pause();
        let mut browser = Browser::new(&app);
        let (status, took) = sign_up(&mut browser, "hung@example.com").await;
        println!("{:?}: sign-up answered {status} in {took:?} with the relay hung", app.db.store.engine());
        assert_eq!(status, 200);
        assert!(took < Duration::from_secs(1), "sign-up waited {took:?} for a hung relay");
        // The worker tries while the relay hangs; the relay comes back.
        let worker = sender(&app, 2_000);
        let sending = tokio::spawn(async move { worker.run_once().await });
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        sink.resume();
        let pass = sending.await.expect("task").expect("pass");
        assert_eq!(pass.succeeded, 1, "sent once the relay answered, on {:?}", app.db.store.engine());
        let mails = received(&sink, 1).await;
        assert_eq!(mails.len(), 1, "exactly one verification mail");
        assert_eq!(mails[0].to, "hung@example.com");
        assert!(mails[0].body.contains("/verify?token="));
    }
}

/// `kill -9` of the instance holding the send: its worker dies mid-send (its connection to the
/// relay with it); another takes the job over once the lease runs out and the mail arrives once.
#[tokio::test]
async fn a_worker_dying_mid_send_leaves_the_mail_to_another_and_it_arrives_once() {
    for db in each_engine().await {
        let sink = SmtpSink::start();
        let app = TestApp::builder(db).smtp(sink.url()).build();
        let mut browser = Browser::new(&app);
        sink.pause();
        assert_eq!(browser.submit("/reset-request", "/reset-request", &[("email", "nobody@example.com")]).await.status.as_u16(), 200);
        assert_eq!(sign_up(&mut browser, "crash@example.com").await.0, 200);
        let doomed = sender(&app, 600);
        let dying = tokio::spawn(async move { doomed.run_once().await });
        tokio::time::sleep(Duration::from_millis(400)).await;
        dying.abort();
        let _ = dying.await;
        sink.resume();
        let rescuer = sender(&app, 600);
        assert_eq!(rescuer.run_once().await.expect("pass").claimed(), 0, "the dead worker's lease still holds");
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(rescuer.run_once().await.expect("pass").succeeded, 1, "taken over after the lease, on {:?}", app.db.store.engine());
        let mails = received(&sink, 1).await;
        assert_eq!(
            mails.len(),
            1,
            "exactly one mail (none for the unknown address): {:?}",
            mails.iter().map(|m| &m.subject).collect::<Vec<_>>()
        );
        assert_eq!(mails[0].to, "crash@example.com");
    }
}

/// An account whose verification mail was lost can always get a new link: signing up again
/// sends one (not "you already have an account"), a refused sign-in sends one and says so, and
/// a password reset through a mailed link proves the mailbox.
#[tokio::test]
async fn nobody_is_stranded_unverified() {
    for db in each_engine().await {
        let sink = SmtpSink::start();
        let app = TestApp::builder(db).smtp(sink.url()).build();
        let mut browser = Browser::new(&app);
        assert_eq!(sign_up(&mut browser, "lost@example.com").await.0, 200);
        // The first mail is lost (it went nowhere): the person signs up again.
        app.state.store.execute_script("DELETE FROM jobs").await.expect("lose the mail");
        assert_eq!(sign_up(&mut browser, "lost@example.com").await.0, 200);
        let mails = app.deliver(&sink, 1).await;
        assert_eq!(mails[0].subject, "Bekræft din e-mailadresse hos PassMe AI", "a new link, not only a sign-in link");
        let refused = browser.submit("/login", "/login", &[("email", "lost@example.com"), ("password", PASSWORD)]).await;
        assert_eq!(refused.status.as_u16(), 403);
        assert!(refused.text().contains("Vi har sendt dig et nyt link"), "{}", refused.text());
        let mails = app.deliver(&sink, 2).await;
        assert_eq!(mails[1].subject, "Bekræft din e-mailadresse hos PassMe AI");
        // Another whose mail was lost: a reset through the mailed link marks the address
        // verified, and signing in works.
        assert_eq!(sign_up(&mut browser, "reset@example.com").await.0, 200);
        app.state.store.execute_script("DELETE FROM jobs WHERE status = 'queued'").await.expect("lose the mail");
        assert_eq!(browser.submit("/reset-request", "/reset-request", &[("email", "reset@example.com")]).await.status.as_u16(), 200);
        let mails = app.deliver(&sink, 3).await;
        let token = link_token(&mails[2].body);
        let new_password = "et nyt og langt kodeord her";
        let page = format!("/reset?token={token}");
        let done = browser.submit(&page, "/reset", &[("token", &token), ("password", new_password)]).await;
        assert_eq!(done.status.as_u16(), 200, "{}", done.text());
        let login = browser.submit("/login", "/login", &[("email", "reset@example.com"), ("password", new_password)]).await;
        assert_eq!(login.status.as_u16(), 303, "{}", login.text());
    }
}

/// Addresses the mail library cannot send to are refused by its own rules before anything is
/// stored, in the request's language, with a stable code: by the form and by the API.
#[tokio::test]
async fn a_refused_sign_up_stores_nothing() {
    for db in each_engine().await {
        let app = TestApp::new(db);
        let shapes = [
            format!("{}@example.com", "e".repeat(65)),
            format!("frank@{}.example.com", "d".repeat(64)),
            "eve(note)@example.com".to_string(),
            "frank@[127.0.0.1]".to_string(),
            "fr..ank@example.com".to_string(),
        ];
        for address in &shapes {
            for (lang, expected) in
                [("da", "Det er ikke en e-mailadresse, vi kan skrive til"), ("en", "This is not an e-mail address we can write to")]
            {
                let mut browser = Browser::new(&app);
                let page = format!("/signup?lang={lang}");
                let response = browser.submit(&page, &format!("/signup?lang={lang}"), &[("email", address), ("password", PASSWORD)]).await;
                assert_eq!(response.status.as_u16(), 400, "{address}");
                assert!(response.text().contains(expected), "{address} ({lang}): {}", response.text());
                assert!(!response.text().contains("cannot address mail"));
            }
            let api = app
                .post(
                    "/api/v1/signup",
                    "application/json",
                    serde_json::json!({ "email": address, "password": PASSWORD, "language": "en" }).to_string(),
                )
                .await;
            assert_eq!((api.status.as_u16(), api.error_code()), (400, "email_invalid".to_string()), "{address}");
        }
        assert_eq!(count(&app.state.store, "SELECT COUNT(*) FROM accounts").await, 0, "no account row for any refused address");
        assert_eq!(count(&app.state.store, "SELECT COUNT(*) FROM jobs").await, 0, "and no mail queued");
    }
}
