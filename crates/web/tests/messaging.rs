//! Messaging through the real router against real peers: aiosmtpd for e-mail (it refuses
//! `bounce…` recipients with 550), npm `web-push-testing` for Web Push (it checks VAPID and
//! decrypts), and a loopback receiver for a marketing partner. Every messaging promise, and the
//! attacks the issue lists.

use passme_core::config::{MessagingConfig, PartnerConfig};
use passme_core::identity::staff::{Role, Staff};
use passme_messaging::outbox::{Notice, message_id};
use passme_messaging::{Channel, address_hash};
use passme_policy::proves;

use passme_testkit::browser::{Browser, signed_in};
use passme_testkit::people::{account_of, count};
use passme_testkit::push::PushPeer;
use passme_testkit::receiver::Receiver;
use passme_testkit::{SmtpSink, TestApp, TestDb, each_engine};
use serde_json::json;

async fn make_admin(app: &TestApp, email: &str) {
    let id = account_of(&app.state.store, email).await;
    Staff::new(app.state.store.clone(), app.state.clock.clone()).grant(&id, Role::Admin, "test").await.expect("grant");
}

/// Presses one of the choice buttons on the messages page.
async fn choose(browser: &mut Browser<'_>, topic: &str, channel: &str, choice: &str) -> passme_testkit::TestResponse {
    let csrf = browser.token("/account/messages").await;
    browser.post("/account/messages", &[("csrf", &csrf), ("topic", topic), ("channel", channel), ("choice", choice)]).await
}

/// Staff send an announcement from the staff page.
async fn announce(staff: &mut Browser<'_>, fields: &[(&str, &str)]) -> passme_testkit::TestResponse {
    let csrf = staff.token("/staff/messages").await;
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(fields);
    staff.post("/staff/messages/announce", &form).await
}

const MAINTENANCE: &[(&str, &str)] = &[
    ("kind", "maintenance"),
    ("email", "on"),
    ("subject_da", "Planlagt vedligeholdelse"),
    ("body_da", "Tjenesten er nede natten til søndag."),
    ("subject_en", "Planned maintenance"),
    ("body_en", "The service is down on Saturday night."),
];

/// A link in a mail body that starts with `prefix`.
fn link_in(body: &str, prefix: &str) -> String {
    let start = body.find(prefix).unwrap_or_else(|| panic!("a link starting {prefix} in {body}"));
    body[start..].split_whitespace().next().expect("link").to_string()
}

fn path_of(url: &str) -> String {
    url.strip_prefix(passme_testkit::app::BASE_URL).unwrap_or(url).to_string()
}

#[tokio::test]
async fn a_maintenance_notice_reaches_each_person_in_their_language_and_respects_their_choice() {
    proves!("processor.mail_relay", "retention.messaging.email_log", "retention.messaging.outbox");
    for db in each_engine().await {
        let sink = SmtpSink::start();
        let app = TestApp::builder(db).smtp(sink.url()).build();
        let mut boss = signed_in(&app, &sink, "boss@example.com", 0).await;
        make_admin(&app, "boss@example.com").await;
        let mut kari = signed_in(&app, &sink, "kari@example.com", 1).await;
        let mut ola = signed_in(&app, &sink, "ola@example.com", 2).await;
        let csrf = ola.token("/preferences").await;
        ola.post("/preferences", &[("csrf", &csrf), ("theme", "light"), ("lang", "en"), ("text", "normal")]).await;
        // Kari does not want service e-mail.
        let off = choose(&mut kari, "service", "email", "off").await;
        assert_eq!(off.header("location"), Some("/account/messages?done=messages_off"), "{}", off.text());
        let sent = announce(&mut boss, MAINTENANCE).await;
        assert_eq!(sent.header("location"), Some("/staff/messages?done=announced"), "{}", sent.text());
        app.run_jobs().await;
        let mails: Vec<_> = sink.messages().into_iter().skip(3).collect();
        let to = |who: &str| mails.iter().find(|m| m.to == who).cloned();
        assert!(to("kari@example.com").is_none(), "Kari turned service e-mail off");
        let ola_mail = to("ola@example.com").expect("Ola's notice");
        assert_eq!(ola_mail.subject, "Planned maintenance");
        assert!(
            ola_mail.body.contains("down on Saturday night") && ola_mail.body.contains("/account/messages?lang=en"),
            "{}",
            ola_mail.body
        );
        let boss_mail = to("boss@example.com").expect("the admin is a user too");
        assert_eq!(boss_mail.subject, "Planlagt vedligeholdelse");
        let unsubscribe = boss_mail.header("List-Unsubscribe").expect("one-click unsubscribe on bulk mail");
        assert_eq!(boss_mail.header("List-Unsubscribe-Post"), Some("List-Unsubscribe=One-Click"));
        assert!(unsubscribe.starts_with("<http://passme.test/unsubscribe/"), "{unsubscribe}");
        // The message id is the idempotency key's: a receiver can tell a retry from a new message.
        let boss_id = account_of(&app.state.store, "boss@example.com").await;
        let store = &app.state.store;
        let campaign: String = store.recent_campaigns(1).await.expect("campaigns")[0].id.clone();
        let id = message_id(&format!("campaign:{campaign}:{boss_id}:email"));
        assert_eq!(boss_mail.header("Message-ID"), Some(format!("<{id}@passme>").as_str()));

        // The progress view counts what happened, and the log holds no body.
        let page = boss.get("/staff/messages").await.text();
        assert!(
            page.contains("Planlagt vedligeholdelse") && page.contains("sendt: 2") && page.contains("ikke sendt: slået fra: 1"),
            "{page}"
        );
        assert_eq!(count(store, "SELECT COUNT(*) FROM message_log WHERE detail LIKE '%Saturday%' OR template LIKE '%Saturday%'").await, 0);
        // Running the fan-out again queues nothing twice.
        let fan_out = passme_messaging::campaigns::FanOut { campaign_id: campaign.clone(), after: None };
        app.state.messaging.campaigns.fan_out(&fan_out).await.expect("again");
        app.run_jobs().await;
        assert_eq!(sink.messages().len(), 5, "no duplicate");

        // The log goes after 90 days; the announcement's text 30 days after it was sent out.
        let now = passme_core::clock::system().now_ms();
        let run_at = |ms: i64| {
            let clock = std::sync::Arc::new(passme_core::clock::ManualClock::at(ms));
            passme_core::housekeeping::Housekeeping::new(store.clone(), clock, &app.state.policy).expect("rules")
        };
        run_at(now + 29 * 86_400_000).run().await.expect("retention");
        assert_eq!(count(store, "SELECT COUNT(*) FROM campaigns").await, 1);
        run_at(now + 31 * 86_400_000).run().await.expect("retention");
        assert_eq!(count(store, "SELECT COUNT(*) FROM campaigns").await, 0, "the text goes 30 days after the fan-out");
        // Three notices, and the three sign-up confirmations: account mail is logged too.
        assert_eq!(count(store, "SELECT COUNT(*) FROM message_log").await, 6);
        assert_eq!(count(store, "SELECT COUNT(*) FROM message_log WHERE template = 'verify_address' AND status = 'sent'").await, 3);
        run_at(now + 91 * 86_400_000).run().await.expect("retention");
        assert_eq!(count(store, "SELECT COUNT(*) FROM message_log").await, 0, "the log goes after 90 days");
    }
}

#[tokio::test]
async fn a_segment_by_language_and_activity_reaches_only_its_people_and_bad_announcements_are_refused() {
    let sink = SmtpSink::start();
    let app = TestApp::builder(passme_testkit::sqlite().await).smtp(sink.url()).build();
    let mut boss = signed_in(&app, &sink, "boss@example.com", 0).await;
    make_admin(&app, "boss@example.com").await;
    let mut ola = signed_in(&app, &sink, "ola@example.com", 1).await;
    let csrf = ola.token("/preferences").await;
    ola.post("/preferences", &[("csrf", &csrf), ("theme", "light"), ("lang", "en"), ("text", "normal")]).await;
    let mut fields = MAINTENANCE.to_vec();
    fields.push(("lang", "en"));
    fields.push(("active_days", "7"));
    announce(&mut boss, &fields).await;
    app.run_jobs().await;
    let mails: Vec<_> = sink.messages().into_iter().skip(2).collect();
    assert_eq!(mails.iter().map(|m| m.to.as_str()).collect::<Vec<_>>(), ["ola@example.com"], "English speakers only");

    for (field, value, code) in [
        ("subject_en", "", "announcement_incomplete"),
        ("kind", "spam", "announcement_kind_invalid"),
        ("lang", "fr", "segment_invalid"),
        ("active_days", "-3", "segment_invalid"),
    ] {
        let mut fields: Vec<(&str, &str)> = MAINTENANCE.iter().filter(|(k, _)| *k != field).copied().collect();
        fields.push((field, value));
        let refused = announce(&mut boss, &fields).await;
        assert_eq!((refused.status.as_u16(), refused.error_code()), (400, code.to_string()), "{field}={value}");
    }
    // Staff without the role get nothing, and a person nothing at all.
    let csrf = ola.token("/account").await;
    let forbidden = ola.post("/staff/messages/announce", &[("csrf", &csrf), ("kind", "service")]).await;
    assert_eq!(forbidden.status.as_u16(), 403);
}

#[tokio::test]
async fn news_by_email_needs_a_confirmed_opt_in_and_one_click_unsubscribe_works_without_signing_in() {
    proves!("consent.marketing_direct", "retention.messaging.marketing_consent", "retention.messaging.suppression");
    for db in each_engine().await {
        let sink = SmtpSink::start();
        let app = TestApp::builder(db).smtp(sink.url()).build();
        let store = app.state.store.clone();
        let mut boss = signed_in(&app, &sink, "boss@example.com", 0).await;
        make_admin(&app, "boss@example.com").await;
        let mut ola = signed_in(&app, &sink, "ola@example.com", 1).await;
        let ola_id = account_of(&store, "ola@example.com").await;

        // Asking sends a confirmation; until it is opened, nothing is on.
        let asked = choose(&mut ola, "marketing", "email", "on").await;
        assert_eq!(asked.header("location"), Some("/account/messages?done=messages_confirm_sent"));
        app.run_jobs().await;
        let confirmation = sink.wait_for(3).into_iter().last().expect("confirmation");
        assert_eq!(confirmation.subject, "Bekræft, at du vil have nyheder og tilbud fra PassMe AI");
        let link = link_in(&confirmation.body, "http://passme.test/messages/confirm?token=");
        let page = ola.get("/account/messages").await.text();
        assert!(page.contains("Venter på, at du bekræfter"), "pending until confirmed");
        let marketing = [
            ("kind", "marketing"),
            ("email", "on"),
            ("subject_da", "Nyt: stemmestyring"),
            ("body_da", "Prøv det nu."),
            ("subject_en", "New: voice control"),
            ("body_en", "Try it now."),
        ];
        announce(&mut boss, &marketing).await;
        app.run_jobs().await;
        assert_eq!(sink.messages().len(), 3, "no news before the confirmation");

        // A link scanner's GET confirms nothing; the button does, from any browser.
        let mut elsewhere = Browser::new(&app);
        let shown = elsewhere.get(&path_of(&link)).await;
        assert_eq!(shown.status.as_u16(), 200);
        assert!(
            !app.state.messaging.prefs.choice(&ola_id, passme_messaging::Topic::Marketing, Channel::Email).await.expect("choice").on,
            "not before the button"
        );
        let token = link.split("token=").nth(1).and_then(|t| t.split('&').next()).expect("token");
        let confirmed = elsewhere.post("/messages/confirm", &[("token", token)]).await;
        assert_eq!(confirmed.status.as_u16(), 200, "{}", confirmed.text());
        assert_eq!(elsewhere.post("/messages/confirm", &[("token", "x.y")]).await.error_code(), "confirm_link_invalid");

        announce(&mut boss, &marketing).await;
        app.run_jobs().await;
        let news = sink.wait_for(4).into_iter().last().expect("the news");
        assert_eq!((news.to.as_str(), news.subject.as_str()), ("ola@example.com", "Nyt: stemmestyring"));
        assert!(news.body.contains("Afmeld med ét klik"), "{}", news.body);
        let header = news.header("List-Unsubscribe").expect("List-Unsubscribe");
        assert_eq!(news.header("List-Unsubscribe-Post"), Some("List-Unsubscribe=One-Click"));
        let unsubscribe = path_of(header.trim_matches(['<', '>']));

        // Forged: another person's id under this signature, or a changed token.
        let unsub_token = unsubscribe.trim_start_matches("/unsubscribe/").to_string();
        let (payload, mac) = unsub_token.split_once('.').expect("token");
        let forged_payload = base64_swap(payload, ola_id.as_ref(), account_of(&store, "boss@example.com").await.as_ref());
        for forged in
            [format!("/unsubscribe/{forged_payload}.{mac}"), format!("/unsubscribe/{payload}.AAAA"), "/unsubscribe/nonsense".to_string()]
        {
            let refused = app.post(&forged, "application/x-www-form-urlencoded", "List-Unsubscribe=One-Click").await;
            assert_eq!((refused.status.as_u16(), refused.error_code()), (400, "unsubscribe_link_invalid".to_string()), "{forged}");
        }
        // The GET only asks.
        assert_eq!(app.browse(&unsubscribe).await.status.as_u16(), 200);
        assert!(app.state.messaging.prefs.choice(&ola_id, passme_messaging::Topic::Marketing, Channel::Email).await.expect("choice").on);
        // RFC 8058: the mail client's POST, with no cookie at all.
        let done = app.post(&unsubscribe, "application/x-www-form-urlencoded", "List-Unsubscribe=One-Click").await;
        assert_eq!(done.status.as_u16(), 200, "{}", done.text());
        assert!(done.text().contains("Du er afmeldt"));
        let again = app.post(&unsubscribe, "application/x-www-form-urlencoded", "List-Unsubscribe=One-Click").await;
        assert!(again.text().contains("allerede afmeldt"), "a replay changes nothing");
        assert_eq!(store.suppression(&address_hash("ola@example.com")).await.expect("store").as_deref(), Some("unsubscribed"));
        let ledger =
            count(&store, &format!("SELECT COUNT(*) FROM consent_ledger WHERE subject = 'account:{ola_id}' AND action LIKE 'messaging.%'"))
                .await;
        assert_eq!(ledger, 3, "requested, confirmed and the objection are in the consent ledger");
        let export = passme_core::rights::access::Export::of(&store, &ola_id, passme_core::clock::system().now_ms()).await.expect("export");
        let trail = export.tables.get("consent_ledger").map_or(0, |rows| {
            rows.iter().filter(|r| r.get("action").and_then(|a| a.as_deref()).is_some_and(|a| a.starts_with("messaging."))).count()
        });
        assert_eq!(trail, 3, "the person's own export holds that trail");

        announce(&mut boss, &marketing).await;
        app.run_jobs().await;
        assert_eq!(sink.messages().len(), 4, "nothing after the unsubscribe");

        // Signing up again takes a new confirmation; the old unsubscribe link cannot end it.
        choose(&mut ola, "marketing", "email", "on").await;
        app.run_jobs().await;
        let second = sink.wait_for(5).into_iter().last().expect("second confirmation");
        let token = link_in(&second.body, "http://passme.test/messages/confirm?token=");
        let token = token.split("token=").nth(1).and_then(|t| t.split('&').next()).expect("token");
        assert_eq!(Browser::new(&app).post("/messages/confirm", &[("token", token)]).await.status.as_u16(), 200);
        assert_eq!(
            store.suppression(&address_hash("ola@example.com")).await.expect("store"),
            None,
            "a confirmed sign-up lifts the unsubscribe"
        );
        let stale = app.post(&unsubscribe, "application/x-www-form-urlencoded", "List-Unsubscribe=One-Click").await;
        assert!(stale.text().contains("allerede afmeldt"));
        assert!(
            app.state.messaging.prefs.choice(&ola_id, passme_messaging::Topic::Marketing, Channel::Email).await.expect("choice").on,
            "the new sign-up stands"
        );
        assert_eq!(
            store.suppression(&address_hash("ola@example.com")).await.expect("store").as_deref(),
            Some("unsubscribed"),
            "but the address is suppressed again: the old link is still an objection to news"
        );

        // A choice turned off is kept as proof for three years, then goes; the suppression five.
        choose(&mut ola, "marketing", "email", "off").await;
        let now = passme_core::clock::system().now_ms();
        let run_at = |ms: i64| {
            let clock = std::sync::Arc::new(passme_core::clock::ManualClock::at(ms));
            passme_core::housekeeping::Housekeeping::new(store.clone(), clock, &app.state.policy).expect("rules")
        };
        run_at(now + 2 * 365 * 86_400_000).run().await.expect("retention");
        assert_eq!(count(&store, "SELECT COUNT(*) FROM message_prefs WHERE topic = 'marketing'").await, 1);
        run_at(now + 3 * 366 * 86_400_000).run().await.expect("retention");
        assert_eq!(count(&store, "SELECT COUNT(*) FROM message_prefs WHERE topic = 'marketing'").await, 0);
        assert_eq!(count(&store, "SELECT COUNT(*) FROM suppressions").await, 1);
        run_at(now + 5 * 366 * 86_400_000).run().await.expect("retention");
        assert_eq!(count(&store, "SELECT COUNT(*) FROM suppressions").await, 0);
    }
}

/// Replaces `from` with `to` inside a base64url JSON payload (a forged token).
fn base64_swap(payload: &str, from: &str, to: &str) -> String {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let json = String::from_utf8(engine.decode(payload).expect("payload")).expect("utf-8");
    engine.encode(json.replace(from, to))
}

#[tokio::test]
async fn marketing_to_a_person_without_consent_is_refused_and_counted() {
    let sink = SmtpSink::start();
    let app = TestApp::builder(passme_testkit::sqlite().await).smtp(sink.url()).build();
    let mut boss = signed_in(&app, &sink, "boss@example.com", 0).await;
    make_admin(&app, "boss@example.com").await;
    signed_in(&app, &sink, "ola@example.com", 1).await;
    let ola = account_of(&app.state.store, "ola@example.com").await;
    let marketing = [
        ("kind", "marketing"),
        ("email", "on"),
        ("subject_da", "Tilbud"),
        ("body_da", "Køb nu."),
        ("subject_en", "Offer"),
        ("body_en", "Buy now."),
    ];
    announce(&mut boss, &marketing).await;
    app.run_jobs().await;
    assert_eq!(sink.messages().len(), 2, "the announcement reaches nobody: nobody consented");
    // Queued straight at the outbox, past the fan-out's filter, the gate still refuses it.
    let campaign = app.state.store.recent_campaigns(1).await.expect("campaigns")[0].id.clone();
    app.state.messaging.outbox.notify("direct", &ola, Notice::Campaign { campaign_id: campaign }, &[Channel::Email]).await.expect("queued");
    app.run_jobs().await;
    assert_eq!(sink.messages().len(), 2, "refused at sending");
    assert_eq!(app.state.messaging.outbox.refused_without_consent().await.expect("count"), 1);
    assert!(boss.get("/staff/messages").await.text().contains("samtykke manglede: 1"));
}

#[tokio::test]
async fn header_injection_through_a_subject_stays_inside_the_subject() {
    let sink = SmtpSink::start();
    let app = TestApp::builder(passme_testkit::sqlite().await).smtp(sink.url()).build();
    let mut boss = signed_in(&app, &sink, "boss@example.com", 0).await;
    make_admin(&app, "boss@example.com").await;
    let injected = "Vedligeholdelse\r\nBcc: victim@example.com\r\nX-Evil: 1";
    let fields = [
        ("kind", "service"),
        ("email", "on"),
        ("subject_da", injected),
        ("body_da", "Tekst"),
        ("subject_en", "Maintenance\nBcc: victim@example.com"),
        ("body_en", "Text"),
    ];
    announce(&mut boss, &fields).await;
    app.run_jobs().await;
    let mails = sink.messages();
    assert_eq!(mails.len(), 2, "only the one recipient");
    let mail = &mails[1];
    assert!(mail.header("Bcc").is_none() && mail.header("X-Evil").is_none(), "{:?}", mail.headers);
    assert!(mail.subject.starts_with("Vedligeholdelse") && mail.subject.contains("Bcc: victim@example.com"), "{}", mail.subject);
    assert!(!mail.subject.contains('\n') && !mail.subject.contains('\r'));
}

fn with_reports(db: TestDb, sink: &SmtpSink, token_file: &std::path::Path) -> TestApp {
    let messaging = MessagingConfig { dsn_token_file: Some(token_file.to_path_buf()), ..Default::default() };
    TestApp::builder(db).smtp(sink.url()).messaging(messaging).build()
}

#[tokio::test]
async fn bounces_and_complaints_suppress_the_address_and_a_form_cannot_sign_it_up_again() {
    for db in each_engine().await {
        let sink = SmtpSink::start();
        let token = tempfile::NamedTempFile::new().expect("token file");
        std::fs::write(token.path(), "relay-token-0123456789").expect("token");
        let app = with_reports(db, &sink, token.path());
        let store = app.state.store.clone();
        let mut boss = signed_in(&app, &sink, "boss@example.com", 0).await;
        make_admin(&app, "boss@example.com").await;
        let mut ola = signed_in(&app, &sink, "ola@example.com", 1).await;
        // An account whose mailbox the relay refuses for good.
        signed_in(&app, &sink, "kari@example.com", 2).await;
        let kari = account_of(&store, "kari@example.com").await;
        let now = passme_core::clock::system().now_ms();
        store.set_account_email(&kari, "bounce-kari@example.com", "bounce-kari@example.com", now).await.expect("move");

        // A delivery report from the relay: Ola's mailbox is gone.
        let dsn = "Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; relay.example\r\n\r\nFinal-Recipient: rfc822; ola@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n--b--\r\n";
        let report = |auth: &'static str, body: &'static str| {
            let request = axum::http::Request::post("/api/v1/messaging/reports")
                .header("authorization", auth)
                .header("content-type", "message/rfc822")
                .body(axum::body::Body::from(body))
                .expect("request");
            app.send(request)
        };
        assert_eq!(report("Bearer wrong", dsn).await.status.as_u16(), 401);
        assert_eq!(report("Bearer relay-token-0123456789", "Subject: hi\r\n\r\nhello").await.status.as_u16(), 422);
        let accepted = report("Bearer relay-token-0123456789", dsn).await;
        assert_eq!((accepted.status.as_u16(), accepted.json()["suppressed"].as_u64()), (202, Some(1)), "{}", accepted.text());

        announce(&mut boss, MAINTENANCE).await;
        app.run_jobs().await;
        let mails: Vec<_> = sink.messages().into_iter().skip(3).collect();
        assert_eq!(
            mails.iter().map(|m| m.to.as_str()).collect::<Vec<_>>(),
            ["boss@example.com"],
            "Ola suppressed; Kari bounced at the relay"
        );
        assert_eq!(
            store.suppression(&address_hash("bounce-kari@example.com")).await.expect("store").as_deref(),
            Some("bounced"),
            "an SMTP 550 suppresses"
        );
        let statuses = store.campaign_statuses(&store.recent_campaigns(1).await.expect("c")[0].id).await.expect("statuses");
        assert_eq!(statuses, [("bounced".to_string(), 1), ("sent".to_string(), 1), ("suppressed".to_string(), 1)]);

        // The bounced address cannot be signed up for news by a form.
        let refused = choose(&mut ola, "marketing", "email", "on").await;
        assert_eq!((refused.status.as_u16(), refused.error_code()), (409, "address_suppressed".to_string()));
        assert!(ola.get("/account/messages").await.text().contains("E-mail til din adresse kom retur"));
        // An unsubscribe does not lift a bounce.
        store.suppress(&address_hash("ola@example.com"), "unsubscribed", now).await.expect("store");
        assert_eq!(store.suppression(&address_hash("ola@example.com")).await.expect("store").as_deref(), Some("bounced"));

        // A spam report (RFC 5965) stops everything to the boss's address, until the boss signs
        // up for news from the account and confirms it from the mailbox.
        let arf = "Content-Type: multipart/report; report-type=feedback-report; boundary=x\r\n\r\n--x\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nOriginal-Rcpt-To: <boss@example.com>\r\n--x--\r\n";
        assert_eq!(report("Bearer relay-token-0123456789", arf).await.status.as_u16(), 202);
        let before = sink.messages().len();
        announce(&mut boss, MAINTENANCE).await;
        app.run_jobs().await;
        assert_eq!(sink.messages().len(), before, "nothing to a complaining address");
        assert!(boss.get("/account/messages").await.text().contains("meldt som uønsket"));
        choose(&mut boss, "marketing", "email", "on").await;
        app.run_jobs().await;
        let confirmation = sink.wait_for(before + 1).into_iter().last().expect("the confirmation is the person's own request");
        let link = link_in(&confirmation.body, "http://passme.test/messages/confirm?token=");
        let token = link.split("token=").nth(1).and_then(|t| t.split('&').next()).expect("token");
        assert_eq!(Browser::new(&app).post("/messages/confirm", &[("token", token)]).await.status.as_u16(), 200);
        assert_eq!(
            store.suppression(&address_hash("boss@example.com")).await.expect("store"),
            None,
            "the confirmed sign-up lifts the report"
        );
    }
}

fn with_push(db: TestDb, sink: &SmtpSink, peer: &PushPeer, extra: &[String]) -> TestApp {
    let mut allowed = vec![peer.allowed()];
    allowed.extend_from_slice(extra);
    let messaging = MessagingConfig { allowed_private_endpoints: allowed, ..Default::default() };
    TestApp::builder(db).smtp(sink.url()).messaging(messaging).build()
}

async fn register(browser: &mut Browser<'_>, subscription: &serde_json::Value) -> passme_testkit::TestResponse {
    browser.json("POST", "/api/v1/push/subscriptions", &json!({ "subscription": subscription, "device": "Firefox on Linux" })).await
}

#[tokio::test]
async fn push_notifications_reach_a_subscribed_browser_encrypted_and_a_dropped_subscription_is_deleted() {
    proves!("processor.push_services", "consent.messages", "retention.messaging.push_subscriptions");
    for db in each_engine().await {
        let sink = SmtpSink::start();
        let peer = PushPeer::start().await;
        let app = with_push(db, &sink, &peer, &[]);
        let store = app.state.store.clone();
        let mut boss = signed_in(&app, &sink, "boss@example.com", 0).await;
        make_admin(&app, "boss@example.com").await;
        let mut ola = signed_in(&app, &sink, "ola@example.com", 1).await;
        let ola_id = account_of(&store, "ola@example.com").await;

        let key = app.get("/api/v1/push/key").await.json()["key"].as_str().expect("key").to_string();
        let browser = peer.subscribe(&key).await;
        // Push needs a device before it can be turned on.
        let early =
            ola.json("PUT", "/api/v1/messaging/preferences", &json!({ "topic": "service", "channel": "push", "state": "on" })).await;
        assert_eq!((early.status.as_u16(), early.error_code()), (409, "push_no_device".to_string()));
        let registered = register(&mut ola, &browser.json).await;
        assert_eq!(registered.status.as_u16(), 201, "{}", registered.text());
        assert_eq!(
            register(&mut ola, &browser.json).await.json()["id"],
            registered.json()["id"],
            "the same browser again is the same device"
        );
        let stored = store.push_subscriptions_of(&ola_id).await.expect("subs");
        assert!(
            !stored[0].sealed_keys.contains(browser.json["keys"]["auth"].as_str().expect("auth")),
            "the browser's keys are sealed at rest"
        );

        // Registered but not switched on: the announcement goes by e-mail only.
        let both = [MAINTENANCE, &[("push", "on")]].concat();
        announce(&mut boss, &both).await;
        app.run_jobs().await;
        assert!(peer.messages(&browser.client_hash).await.is_empty(), "push needs the person's yes");
        let on = ola.json("PUT", "/api/v1/messaging/preferences", &json!({ "topic": "service", "channel": "push", "state": "on" })).await;
        assert_eq!(on.json()["state"], "on", "{}", on.text());
        announce(&mut boss, &both).await;
        app.run_jobs().await;
        let received = peer.messages(&browser.client_hash).await;
        assert_eq!(received.len(), 1, "{received:?}");
        let message: serde_json::Value = serde_json::from_str(&received[0]).expect("JSON payload");
        assert_eq!(
            (message["title"].as_str(), message["body"].as_str()),
            (Some("Planlagt vedligeholdelse"), Some("Tjenesten er nede natten til søndag."))
        );
        let page = ola.get("/account/messages").await.text();
        assert!(page.contains("Firefox on Linux") && page.contains("Slået til"), "the device list: {page}");

        // The browser drops the subscription: the push service answers 410 and the row goes.
        peer.expire(&browser.client_hash).await;
        announce(&mut boss, &both).await;
        app.run_jobs().await;
        assert!(store.push_subscriptions_of(&ola_id).await.expect("subs").is_empty(), "410 deletes the subscription");
        let dropped = count(&store, "SELECT COUNT(*) FROM message_log WHERE channel = 'push' AND status = 'dropped'").await;
        assert_eq!(dropped, 1);

        // Removing a device from the page stops push to it at once; a closed account's go.
        let again = peer.subscribe(&key).await;
        register(&mut ola, &again.json).await;
        let device = store.push_subscriptions_of(&ola_id).await.expect("subs")[0].id.clone();
        let csrf = ola.token("/account/messages").await;
        let removed = ola.post("/account/messages/devices/remove", &[("csrf", &csrf), ("device", &device)]).await;
        assert_eq!(removed.header("location"), Some("/account/messages?done=device_removed"));
        assert!(store.push_subscriptions_of(&ola_id).await.expect("subs").is_empty());
        let third = peer.subscribe(&key).await;
        register(&mut ola, &third.json).await;
        store.close_account(&ola_id, passme_core::clock::system().now_ms()).await.expect("closed");
        let later = std::sync::Arc::new(passme_core::clock::ManualClock::at(passme_core::clock::system().now_ms() + 2 * 3_600_000));
        passme_core::housekeeping::Housekeeping::new(store.clone(), later, &app.state.policy)
            .expect("rules")
            .run()
            .await
            .expect("retention");
        assert_eq!(
            count(&store, "SELECT COUNT(*) FROM push_subscriptions").await,
            0,
            "a closed account's subscriptions go within the hour"
        );
    }
}

#[tokio::test]
async fn push_endpoints_that_are_private_plain_http_malformed_or_someone_elses_are_refused() {
    let sink = SmtpSink::start();
    let peer = PushPeer::start().await;
    let app = with_push(passme_testkit::sqlite().await, &sink, &peer, &[]);
    let mut ola = signed_in(&app, &sink, "ola@example.com", 0).await;
    let mut kari = signed_in(&app, &sink, "kari@example.com", 1).await;
    let key = app.get("/api/v1/push/key").await.json()["key"].as_str().expect("key").to_string();
    let good = peer.subscribe(&key).await.json;
    let keys = good["keys"].clone();
    for (endpoint, code) in [
        ("https://127.0.0.1/push", "endpoint_not_public"),
        (&format!("http://127.0.0.1:{}/notify/x", peer.port + 1) as &str, "endpoint_not_https"),
        ("https://10.0.0.8/push", "endpoint_not_public"),
        ("https://169.254.169.254/latest/meta-data/", "endpoint_not_public"),
        ("https://[::1]/push", "endpoint_not_public"),
        ("http://push.example.com/x", "endpoint_not_https"),
        ("javascript:alert(1)", "endpoint_not_https"),
    ] {
        let refused = register(&mut ola, &json!({ "endpoint": endpoint, "keys": keys })).await;
        assert_eq!((refused.status.as_u16(), refused.error_code()), (400, code.to_string()), "{endpoint}");
    }
    for bad_keys in [
        json!({ "p256dh": "AAAA", "auth": keys["auth"] }),
        json!({ "p256dh": keys["p256dh"], "auth": "short" }),
        json!({ "p256dh": "!!", "auth": "??" }),
    ] {
        let refused = register(&mut ola, &json!({ "endpoint": good["endpoint"], "keys": bad_keys })).await;
        assert_eq!(refused.error_code(), "push_keys_invalid", "{bad_keys}");
    }
    assert_eq!(register(&mut ola, &json!({ "nonsense": true })).await.error_code(), "push_subscription_invalid");
    // A 10 MB body is refused before it is read.
    let huge = "x".repeat(10 * 1024 * 1024);
    let too_big = ola.json("POST", "/api/v1/push/subscriptions", &json!({ "subscription": good, "device": huge })).await;
    assert_eq!(too_big.status.as_u16(), 413);
    // Another person's endpoint is not moved to an attacker.
    assert_eq!(register(&mut kari, &good).await.status.as_u16(), 201);
    let hijack = register(&mut ola, &good).await;
    assert_eq!((hijack.status.as_u16(), hijack.error_code()), (409, "push_endpoint_taken".to_string()));
    // Cross-site requests are refused (the JSON API checks the origin).
    let request = axum::http::Request::post("/api/v1/push/subscriptions")
        .header("content-type", "application/json")
        .header("origin", "https://evil.example")
        .header("cookie", ola.cookie_header())
        .body(axum::body::Body::from(json!({ "subscription": good }).to_string()))
        .expect("request");
    assert_eq!(app.send(request).await.status.as_u16(), 403);
}

#[tokio::test]
async fn a_push_service_that_redirects_or_refuses_is_not_followed_and_an_oversized_message_is_not_sent() {
    let sink = SmtpSink::start();
    let peer = PushPeer::start().await;
    let receiver = Receiver::start().await;
    let app = with_push(passme_testkit::sqlite().await, &sink, &peer, &[receiver.allowed()]);
    let store = app.state.store.clone();
    let mut ola = signed_in(&app, &sink, "ola@example.com", 0).await;
    let ola_id = account_of(&store, "ola@example.com").await;
    let key = app.get("/api/v1/push/key").await.json()["key"].as_str().expect("key").to_string();
    let mut sub = peer.subscribe(&key).await.json;
    // A "push service" that answers with a redirect to the cloud's metadata service.
    sub["endpoint"] = json!(format!("http://{}/audiences", receiver.addr));
    assert_eq!(register(&mut ola, &sub).await.status.as_u16(), 201);
    ola.json("PUT", "/api/v1/messaging/preferences", &json!({ "topic": "service", "channel": "push", "state": "on" })).await;
    receiver.answer(axum::http::StatusCode::TEMPORARY_REDIRECT);
    app.state.messaging.payment_failed(&ola_id, "in_redirect").await.expect("queued");
    app.run_jobs().await;
    assert_eq!(receiver.received().len(), 1, "one request, and the redirect was not followed");
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM message_log WHERE channel = 'push' AND status = 'failed' AND detail = 'push_307'").await,
        1
    );
    // 413 from the push service: logged as too large, not retried.
    receiver.answer(axum::http::StatusCode::PAYLOAD_TOO_LARGE);
    app.state.messaging.payment_failed(&ola_id, "in_413").await.expect("queued");
    app.run_jobs().await;
    assert_eq!(count(&store, "SELECT COUNT(*) FROM message_log WHERE detail = 'push_payload_too_large'").await, 1);
    // 429 and 5xx: retried later, not dropped.
    receiver.answer(axum::http::StatusCode::SERVICE_UNAVAILABLE);
    app.state.messaging.payment_failed(&ola_id, "in_503").await.expect("queued");
    let pass = app.run_jobs().await;
    assert_eq!(pass.retried, 1, "{pass:?}");
    assert_eq!(count(&store, "SELECT COUNT(*) FROM message_log WHERE channel = 'push' AND status = 'queued'").await, 1);
    // 429 with Retry-After: the next attempt waits at least that long.
    receiver.answer_later(axum::http::StatusCode::TOO_MANY_REQUESTS, 3600);
    app.state.messaging.payment_failed(&ola_id, "in_429").await.expect("queued");
    let before = passme_core::clock::system().now_ms();
    app.run_jobs().await;
    let waits = count(
        &store,
        &format!("SELECT COUNT(*) FROM jobs WHERE queue = 'messages' AND status = 'queued' AND run_at >= {}", before + 3_600_000),
    )
    .await;
    assert_eq!(waits, 1, "the push service's Retry-After is honoured");
    // A push message over 3993 bytes is refused before anything is sent.
    let sub_row = store.push_subscriptions_of(&ola_id).await.expect("subs").remove(0);
    let before = receiver.received().len();
    let big = vec![b'x'; 4000];
    let refused = app.state.messaging.push.send(&sub_row, &big, None).await;
    assert_eq!(refused.map_err(|e| e.code()), Err("push_payload_too_large"));
    assert_eq!(receiver.received().len(), before);
    // And an announcement too long for push is refused when written.
    let mut boss = signed_in(&app, &sink, "boss@example.com", 1).await;
    make_admin(&app, "boss@example.com").await;
    let long = "ord ".repeat(1200);
    let fields =
        [("kind", "service"), ("push", "on"), ("subject_da", "a"), ("body_da", long.as_str()), ("subject_en", "a"), ("body_en", "b")];
    assert_eq!(announce(&mut boss, &fields).await.error_code(), "push_payload_too_large");
}

fn with_partner(db: TestDb, sink: &SmtpSink, receiver: &Receiver, secret_file: &std::path::Path) -> TestApp {
    let messaging = MessagingConfig {
        allowed_private_endpoints: vec![receiver.allowed()],
        partners: vec![PartnerConfig {
            id: "adnet".into(),
            name: "AdNet".into(),
            endpoint: receiver.url(),
            secret_file: secret_file.to_path_buf(),
        }],
        ..Default::default()
    };
    TestApp::builder(db).smtp(sink.url()).messaging(messaging).build()
}

const PARTNER_SECRET: &str = "partner-signing-key-0123456789abcdef";

#[tokio::test]
async fn a_partner_receives_only_consenting_people_hashed_signed_and_recorded_and_a_withdrawal_reaches_it() {
    proves!("consent.partner_marketing", "processor.marketing_partners", "retention.messaging.partner_audience");
    for db in each_engine().await {
        let sink = SmtpSink::start();
        let receiver = Receiver::start().await;
        let secret = tempfile::NamedTempFile::new().expect("secret");
        std::fs::write(secret.path(), PARTNER_SECRET).expect("secret");
        let app = with_partner(db, &sink, &receiver, secret.path());
        let store = app.state.store.clone();
        let mut boss = signed_in(&app, &sink, "boss@example.com", 0).await;
        make_admin(&app, "boss@example.com").await;
        let mut ola = signed_in(&app, &sink, "Ola@Example.com", 1).await;
        signed_in(&app, &sink, "kari@example.com", 2).await;
        let mut per = signed_in(&app, &sink, "per@example.com", 3).await;
        assert_eq!(choose(&mut ola, "partner", "audience", "on").await.header("location"), Some("/account/messages?done=messages_on"));
        choose(&mut per, "partner", "audience", "on").await;
        // Per withdraws before the export.
        choose(&mut per, "partner", "audience", "off").await;

        let csrf = boss.token("/staff/messages").await;
        let exported = boss.post("/staff/messages/partners/export", &[("csrf", &csrf), ("partner", "adnet")]).await;
        assert_eq!(exported.header("location"), Some("/staff/messages?done=exported"), "{}", exported.text());
        app.run_jobs().await;
        let deliveries = receiver.received();
        assert_eq!(deliveries.len(), 1);
        let delivery = &deliveries[0];
        let body = delivery.json();
        assert_eq!(body["type"], "audience");
        assert_eq!(body["members"], json!([address_hash("ola@example.com")]), "Ola only, hashed from the normalised address");
        let text = String::from_utf8_lossy(&delivery.body).to_string();
        assert!(!text.contains("example.com"), "no address in the clear: {text}");
        let signature = delivery.header("PassMe-Signature").expect("signed");
        let t: i64 = signature.split(',').next().and_then(|p| p.strip_prefix("t=")).and_then(|t| t.parse().ok()).expect("t");
        assert_eq!(signature, passme_messaging::partners::signature(PARTNER_SECRET.as_bytes(), t, &delivery.body));
        assert_eq!(delivery.header("Idempotency-Key"), body["export_id"].as_str());
        // Recorded: who, when, how many.
        let page = boss.get("/staff/messages").await.text();
        assert!(page.contains("1 personer") && page.contains("leveret"), "{page}");
        let audit = count(&store, "SELECT COUNT(*) FROM audit_log WHERE action = 'messaging.partner_export'").await;
        assert_eq!(audit, 1);

        // Ola withdraws: the partner is asked to delete the hash, and the next export leaves Ola out.
        choose(&mut ola, "partner", "audience", "off").await;
        app.run_jobs().await;
        let deletion = receiver.received().last().expect("deletion").json();
        assert_eq!((deletion["type"].as_str(), deletion["members"].clone()), (Some("deletion"), json!([address_hash("ola@example.com")])));
        let export = app.state.messaging.partners.export("staff:test", "adnet").await.expect("export");
        app.run_jobs().await;
        assert_eq!(export.people, 0);
        assert_eq!(receiver.received().last().expect("second").json()["members"], json!([]));

        // A withdrawal between recording and delivering removes the person from the delivery.
        choose(&mut ola, "partner", "audience", "on").await;
        let pending = app.state.messaging.partners.export("staff:test", "adnet").await.expect("export");
        assert_eq!(pending.people, 1);
        choose(&mut ola, "partner", "audience", "off").await;
        app.run_jobs().await;
        let delivered: Vec<_> = receiver.received().into_iter().filter(|r| r.json()["export_id"] == json!(pending.id)).collect();
        assert_eq!(delivered[0].json()["members"], json!([]), "the person who withdrew is not in it");

        // Audiences and their records go after 30 days.
        let later = std::sync::Arc::new(passme_core::clock::ManualClock::at(passme_core::clock::system().now_ms() + 31 * 86_400_000));
        passme_core::housekeeping::Housekeeping::new(store.clone(), later, &app.state.policy)
            .expect("rules")
            .run()
            .await
            .expect("retention");
        assert_eq!(count(&store, "SELECT COUNT(*) FROM partner_exports").await, 0);
    }
}

#[tokio::test]
async fn a_failed_payment_sends_the_person_a_notice_once() {
    let sink = SmtpSink::start();
    let app = TestApp::builder(passme_testkit::sqlite().await).smtp(sink.url()).build();
    signed_in(&app, &sink, "ola@example.com", 0).await;
    let ola = account_of(&app.state.store, "ola@example.com").await;
    // As billing queues it when the provider reports the failure (twice: a repeated event).
    for _ in 0..2 {
        let job = passme_billing::PaymentFailed { account: ola.clone(), invoice: "in_1".into() };
        let options = passme_core::jobs::EnqueueOptions { id: Some("payment-failed:in_1".into()), ..Default::default() };
        app.state.jobs.push(&job, options).await.expect("queued");
    }
    app.state.messaging.payment_failed(&ola, "in_1").await.expect("the same notice again");
    app.run_jobs().await;
    let mails = sink.messages();
    assert_eq!(mails.len(), 2, "one notice");
    assert_eq!(mails[1].subject, "Din betaling til PassMe AI gik ikke igennem");
    assert!(mails[1].body.contains("http://passme.test/billing"), "{}", mails[1].body);
}

#[tokio::test]
async fn two_instances_sending_one_announcement_send_each_message_once() {
    for db in each_engine().await {
        let sink = SmtpSink::start();
        let app = TestApp::builder(db).smtp(sink.url()).build();
        let store = app.state.store.clone();
        let now = passme_core::clock::system().now_ms();
        // 1,200 people: three fan-out batches.
        let values: Vec<String> = (0..1200)
            .map(|i| format!("('acc_t{i:05}', 'p{i}@example.com', 'p{i}@example.com', {now}, 'x', 'active', {now}, {now})"))
            .collect();
        store
            .execute_script(&format!(
                "INSERT INTO accounts (id, email, email_key, email_verified_at, password_hash, status, created_at, updated_at) VALUES {}",
                values.join(", ")
            ))
            .await
            .expect("people");
        let notice = passme_messaging::campaigns::NewCampaign {
            kind: passme_messaging::campaigns::Kind::Maintenance,
            segment: Default::default(),
            channels: vec![Channel::Email],
            subject_da: "Vedligeholdelse".into(),
            subject_en: "Maintenance".into(),
            body_da: "Nede i nat.".into(),
            body_en: "Down tonight.".into(),
        };
        let id = app.state.messaging.campaigns.create("staff:test", notice).await.expect("announced");
        // Two workers as two instances would run them: each claims its own batches.
        let handlers = app.state.job_handlers().expect("handlers");
        let worker = |name: &str| passme_core::jobs::Worker {
            id: name.to_string(),
            ..passme_core::jobs::Worker::messages(store.clone(), app.state.clock.clone(), handlers.clone())
        };
        let run = |w: passme_core::jobs::Worker| async move {
            let mut done = 0;
            loop {
                let pass = w.run_once().await.expect("pass");
                done += pass.succeeded;
                if pass.claimed() == 0 {
                    // Idle: finished when the other instance has nothing left either.
                    let left = w
                        .store
                        .scalar_i64("SELECT COUNT(*) FROM jobs WHERE queue = 'messages' AND status IN ('queued', 'running')")
                        .await
                        .expect("left");
                    if left == 0 {
                        return done;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
        };
        let (a, b) = tokio::join!(run(worker("instance-a")), run(worker("instance-b")));
        assert!(a > 0 && b > 0, "both instances worked: {a} and {b}");
        app.run_jobs().await;
        let mails = sink.wait_for(1200);
        let ids: std::collections::HashSet<_> = mails.iter().filter_map(|m| m.header("Message-ID").map(str::to_string)).collect();
        assert_eq!((mails.len(), ids.len()), (1200, 1200), "every person once");
        let progress = app.state.messaging.campaigns.progress(&id).await.expect("progress").expect("campaign");
        assert_eq!((progress.campaign.queued, progress.count("sent")), (1200, 1200));
        assert!(progress.campaign.finished_at.is_some());
    }
}
