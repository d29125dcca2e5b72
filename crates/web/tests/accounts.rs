//! Sign-up, address verification, log-in, log-out and sessions through the real router, with mail
//! delivered to a real SMTP server, on both engines.

use axum::body::Body;
use axum::http::Request;
use passme_policy::proves;
use passme_testkit::browser::{Browser, PASSWORD, link_token, signed_in};
use passme_testkit::{SmtpSink, TestApp, TestResponse, each_engine, sqlite};

#[tokio::test]
async fn sign_up_verify_sign_out_on_both_engines() {
    proves!("cookie.__Host-session", "security.cookies");
    for db in each_engine().await {
        let sink = SmtpSink::start();
        let app = TestApp::builder(db).smtp(sink.url()).build();
        let mut browser = signed_in(&app, &sink, "ola@example.com", 0).await;
        let mail = &sink.messages()[0];
        assert_eq!(mail.subject, "Bekræft din e-mailadresse hos PassMe AI");
        let session = browser.cookie("__Host-session").expect("a session cookie");
        let account = browser.get("/account").await;
        assert_eq!(account.status.as_u16(), 200);
        assert!(account.text().contains("ola@example.com") && account.text().contains("denne enhed"));

        let token = browser.token("/account").await;
        let out = browser.post("/logout", &[("csrf", &token)]).await;
        assert_eq!(out.header("location"), Some("/"));
        assert!(browser.cookie("__Host-session").is_none(), "the cookie is deleted");
        browser.cookies.push(("__Host-session".into(), session));
        let replayed = browser.get("/account").await;
        assert_eq!(replayed.header("location"), Some("/login?next=/account"), "a replayed session cookie after sign-out is worthless");
    }
}

#[tokio::test]
async fn sign_up_answers_alike_whether_or_not_the_address_is_taken() {
    let sink = SmtpSink::start();
    let app = TestApp::builder(sqlite().await).smtp(sink.url()).build();
    signed_in(&app, &sink, "ola@example.com", 0).await;
    let mut stranger = Browser::new(&app);
    let token = stranger.token("/signup").await;
    let taken =
        stranger.post("/signup", &[("csrf", &token), ("email", "OLA@example.com"), ("password", "en anden lang sætning her")]).await;
    let free =
        stranger.post("/signup", &[("csrf", &token), ("email", "kari@example.com"), ("password", "en anden lang sætning her")]).await;
    assert_eq!(taken.status, free.status);
    assert_eq!(taken.text(), free.text(), "identical pages");
    let mails = app.deliver(&sink, 3).await;
    let told = mails.iter().filter(|m| m.to == "ola@example.com" && m.subject == "Du har allerede en konto hos PassMe AI").count();
    assert_eq!(told, 1, "the owner is told, at the address on file: {mails:?}");
}

#[tokio::test]
async fn log_in_fails_alike_for_unknown_addresses_and_wrong_passwords() {
    let sink = SmtpSink::start();
    let app = TestApp::builder(sqlite().await).smtp(sink.url()).build();
    signed_in(&app, &sink, "ola@example.com", 0).await;
    let mut browser = Browser::new(&app);
    let token = browser.token("/login").await;
    let wrong = browser.post("/login", &[("csrf", &token), ("email", "ola@example.com"), ("password", "not the password at all")]).await;
    let unknown =
        browser.post("/login", &[("csrf", &token), ("email", "nobody@example.com"), ("password", "not the password at all")]).await;
    assert_eq!(wrong.status.as_u16(), 401);
    assert_eq!(wrong.status, unknown.status);
    let strip = |t: String| t.replace("ola@example.com", "X").replace("nobody@example.com", "X");
    assert_eq!(strip(wrong.text()), strip(unknown.text()), "the same answer");
    let huge = browser.post("/login", &[("csrf", &token), ("email", "ola@example.com"), ("password", &"x".repeat(200_000))]).await;
    assert_eq!(huge.status.as_u16(), 401, "an oversized password is just wrong");
}

#[tokio::test]
async fn a_planted_session_id_is_replaced_at_log_in_and_next_stays_local() {
    let sink = SmtpSink::start();
    let app = TestApp::builder(sqlite().await).smtp(sink.url()).build();
    signed_in(&app, &sink, "ola@example.com", 0).await;
    let mut victim = Browser::new(&app);
    let planted = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_string();
    victim.cookies.push(("__Host-session".into(), planted.clone()));
    let token = victim.token("/login?next=//evil.example").await;
    let html = victim.get("/login?next=//evil.example").await.text();
    assert!(html.contains("name=\"next\" value=\"/\""), "the form carries only a local next");
    let response =
        victim.post("/login", &[("csrf", &token), ("email", "ola@example.com"), ("password", PASSWORD), ("next", "//evil.example")]).await;
    assert_eq!(response.header("location"), Some("/account"), "a foreign next falls back to the account");
    let issued = victim.cookie("__Host-session").expect("a session");
    assert_ne!(issued, planted, "the planted id is never adopted");
    assert_eq!(issued.len(), 43);
}

#[tokio::test]
async fn forms_refuse_forged_requests_and_explain_refused_cookies() {
    proves!("security.csrf", "cookie.__Host-csrf");
    let app = TestApp::new(sqlite().await);
    let mut browser = Browser::new(&app);
    let _ = browser.token("/login").await;
    let no_token = browser.post("/login", &[("csrf", ""), ("email", "a@example.com"), ("password", PASSWORD)]).await;
    assert_eq!(no_token.status.as_u16(), 403);
    let mut other = Browser::new(&app);
    let other_token = other.token("/login").await;
    let foreign = browser.post("/login", &[("csrf", &other_token), ("email", "a@example.com"), ("password", PASSWORD)]).await;
    assert_eq!(foreign.status.as_u16(), 403, "another visitor's token");
    let mut cookieless = Browser::new(&app);
    let token = cookieless.token("/login").await;
    cookieless.cookies.clear();
    let refused = cookieless.post("/login", &[("csrf", &token), ("email", "a@example.com"), ("password", PASSWORD)]).await;
    assert_eq!(refused.status.as_u16(), 400);
    assert!(refused.text().contains("cookies_required") && refused.text().contains("__Host-session"), "explains instead of looping");
}

#[tokio::test]
async fn sessions_can_be_listed_and_ended_but_only_ones_own() {
    let sink = SmtpSink::start();
    let app = TestApp::builder(sqlite().await).smtp(sink.url()).build();
    let mut ola = signed_in(&app, &sink, "ola@example.com", 0).await;
    let mut kari = signed_in(&app, &sink, "kari@example.com", 1).await;
    let kari_session = passme_core::identity::sessions::session_id(&kari.cookie("__Host-session").expect("session"));
    let token = ola.token("/account").await;
    let attack = ola.post("/account/sessions/revoke", &[("csrf", &token), ("session", &kari_session)]).await;
    assert_eq!(attack.status.as_u16(), 404, "another account's session id is refused");
    assert_eq!(kari.get("/account").await.status.as_u16(), 200, "Kari is still signed in");
    let kari_token = kari.token("/account").await;
    let ended = kari.post("/account/sessions/revoke-others", &[("csrf", &kari_token)]).await;
    assert_eq!(ended.header("location"), Some("/account?done=sessions_ended"));
    let confirmed = kari.get("/account?done=sessions_ended").await.text();
    assert!(confirmed.contains("Du er logget ud alle andre steder."), "the page confirms what happened");
}

#[tokio::test]
async fn a_verification_link_works_once() {
    let sink = SmtpSink::start();
    let app = TestApp::builder(sqlite().await).smtp(sink.url()).build();
    let mut browser = Browser::new(&app);
    let token = browser.token("/signup").await;
    browser.post("/signup", &[("csrf", &token), ("email", "ola@example.com"), ("password", PASSWORD)]).await;
    let verify_token = link_token(&app.deliver(&sink, 1).await[0].body);
    let csrf = browser.token("/verify").await;
    assert_eq!(browser.post("/verify", &[("csrf", &csrf), ("token", &verify_token)]).await.status.as_u16(), 303);
    // Signing in rotated the CSRF cookie; a fresh form brings the matching token.
    let csrf = browser.token("/verify").await;
    let again = browser.post("/verify", &[("csrf", &csrf), ("token", &verify_token)]).await;
    assert_eq!(again.status.as_u16(), 400);
    assert!(again.text().contains("token_invalid"));
}

#[tokio::test]
async fn a_mailed_reset_link_sets_a_new_password_and_ends_old_sessions() {
    let sink = SmtpSink::start();
    let app = TestApp::builder(sqlite().await).smtp(sink.url()).build();
    let mut old_device = signed_in(&app, &sink, "ola@example.com", 0).await;
    let mut browser = Browser::new(&app);
    let token = browser.token("/reset-request").await;
    let unknown = browser.post("/reset-request", &[("csrf", &token), ("email", "nobody@example.com")]).await;
    let known = browser.post("/reset-request", &[("csrf", &token), ("email", "ola@example.com")]).await;
    assert_eq!((unknown.status, unknown.text()), (known.status, known.text()), "the same answer for unknown addresses");
    // The mail goes out from the job queue, not from the request.
    assert_eq!(app.run_jobs().await.succeeded, 2, "one job each");
    let mails = app.deliver(&sink, 2).await;
    let reset_mail = mails.iter().find(|m| m.subject == "Vælg en ny adgangskode hos PassMe AI").expect("reset mail");
    assert_eq!(mails.len(), 2, "nothing is sent to an unknown address");
    let reset_token = link_token(&reset_mail.body);
    let csrf = browser.token(&format!("/reset?token={reset_token}")).await;
    let done = browser.post("/reset", &[("csrf", &csrf), ("token", &reset_token), ("password", "et nyt og langt kodeord her")]).await;
    assert_eq!(done.status.as_u16(), 200, "{}", done.text());
    assert_eq!(
        old_device.get("/account").await.header("location"),
        Some("/login?next=/account"),
        "sessions from before the reset are dead"
    );
    let csrf = browser.token("/login").await;
    let login = browser.post("/login", &[("csrf", &csrf), ("email", "ola@example.com"), ("password", "et nyt og langt kodeord her")]).await;
    assert_eq!(login.status.as_u16(), 303);
    let csrf = browser.token("/reset").await;
    let reused = browser.post("/reset", &[("csrf", &csrf), ("token", &reset_token), ("password", "endnu et nyt langt kodeord")]).await;
    assert!(reused.text().contains("token_invalid"), "the link works once");
}

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_ends_other_sessions() {
    let sink = SmtpSink::start();
    let app = TestApp::builder(sqlite().await).smtp(sink.url()).build();
    let mut laptop = signed_in(&app, &sink, "ola@example.com", 0).await;
    let mut phone = Browser::new(&app);
    let csrf = phone.token("/login").await;
    assert_eq!(phone.post("/login", &[("csrf", &csrf), ("email", "ola@example.com"), ("password", PASSWORD)]).await.status.as_u16(), 303);
    let csrf = laptop.token("/account").await;
    let wrong = laptop
        .post("/account/password", &[("csrf", &csrf), ("current", "guess guess guess"), ("password", "et nyt og langt kodeord her")])
        .await;
    assert_eq!(wrong.status.as_u16(), 400);
    assert_eq!(phone.get("/account").await.status.as_u16(), 200, "nothing changed on a wrong current password");
    let changed =
        laptop.post("/account/password", &[("csrf", &csrf), ("current", PASSWORD), ("password", "et nyt og langt kodeord her")]).await;
    assert_eq!(changed.header("location"), Some("/account?done=password_changed"));
    assert!(laptop.get("/account?done=password_changed").await.text().contains("Adgangskoden er skiftet."));
    assert_eq!(
        phone.get("/account").await.header("location"),
        Some("/login?next=/account"),
        "a cookie replayed after a password change is refused"
    );
    assert_eq!(laptop.get("/account").await.status.as_u16(), 200, "the session that changed it continues");
}

async fn fail_login(browser: &mut Browser<'_>, email: &str) -> TestResponse {
    let csrf = browser.token("/login").await;
    browser.post("/login", &[("csrf", &csrf), ("email", email), ("password", "wrong wrong wrong wrong")]).await
}

#[tokio::test]
async fn an_attack_on_an_account_slows_the_attacker_not_the_owner() {
    proves!("security.rate_limits");
    let sink = SmtpSink::start();
    let app = TestApp::builder(sqlite().await).smtp(sink.url()).build();
    signed_in(&app, &sink, "ola@example.com", 0).await;
    let mut attacker = Browser::from(&app, "203.0.113.9");
    for _ in 0..6 {
        assert_eq!(fail_login(&mut attacker, "OLA@example.com").await.status.as_u16(), 401);
    }
    let throttled = fail_login(&mut attacker, "ola@example.com").await;
    assert_eq!(throttled.status.as_u16(), 429);
    assert!(throttled.text().contains("For mange forsøg. Vent lidt, og prøv igen."), "said beside the form, in Danish");
    assert!(throttled.header("retry-after").is_some_and(|v| v.parse::<u64>().is_ok_and(|s| s >= 1)));
    let mut owner = Browser::from(&app, "198.51.100.20");
    let csrf = owner.token("/login").await;
    let login = owner.post("/login", &[("csrf", &csrf), ("email", "ola@example.com"), ("password", PASSWORD)]).await;
    assert_eq!(login.status.as_u16(), 303, "the owner still signs in during the attack");
}

#[tokio::test]
async fn a_forged_forwarded_for_from_an_untrusted_peer_changes_nothing() {
    let app = TestApp::new(sqlite().await);
    let mut attacker = Browser::from(&app, "203.0.113.9");
    for i in 0..6 {
        attacker.forwarded_for = Some(format!("192.0.2.{i}"));
        fail_login(&mut attacker, "ola@example.com").await;
    }
    attacker.forwarded_for = Some("192.0.2.200".into());
    assert_eq!(
        fail_login(&mut attacker, "ola@example.com").await.status.as_u16(),
        429,
        "rotating X-Forwarded-For does not reset the counter"
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_is_counted_apart() {
    let app = TestApp::builder(sqlite().await).trusted_proxy("10.0.0.1".parse().expect("ip")).build();
    let mut first = Browser::from(&app, "10.0.0.1");
    first.forwarded_for = Some("203.0.113.9".into());
    for _ in 0..6 {
        fail_login(&mut first, "ola@example.com").await;
    }
    assert_eq!(fail_login(&mut first, "ola@example.com").await.status.as_u16(), 429);
    let mut second = Browser::from(&app, "10.0.0.1");
    second.forwarded_for = Some("198.51.100.20, 10.0.0.1".into());
    assert_eq!(
        fail_login(&mut second, "ola@example.com").await.status.as_u16(),
        401,
        "another client behind the same proxy is not throttled"
    );
}

fn with_preferences(browser: &mut Browser<'_>) {
    let version = passme_policy::builtin().meta.version.clone();
    let choices = passme_core::consent::Choices { preferences: true, ..passme_core::consent::Choices::NONE };
    let cookie = passme_core::consent::ConsentCookie { id: "AbCdEfGhIjKlMnOpQrStUv".into(), policy_version: version, choices };
    browser.cookies.push(("__Host-consent".into(), cookie.encode()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remember_me_resumes_rotates_and_catches_a_replayed_cookie() {
    proves!("cookie.__Host-remember");
    let sink = SmtpSink::start();
    let app = TestApp::builder(sqlite().await).smtp(sink.url()).build();
    signed_in(&app, &sink, "ola@example.com", 0).await;
    let mut browser = Browser::new(&app);
    with_preferences(&mut browser);
    let form = browser.get("/login").await.text();
    assert!(form.contains("name=\"remember\""), "offered with preference consent");
    let csrf = browser.token("/login").await;
    let login = browser.post("/login", &[("csrf", &csrf), ("email", "ola@example.com"), ("password", PASSWORD), ("remember", "on")]).await;
    let set: Vec<String> = login.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect();
    assert!(set.iter().any(|c| c.starts_with("__Host-remember=") && c.contains("Max-Age=2592000") && c.contains("HttpOnly")), "{set:?}");
    let first = browser.cookie("__Host-remember").expect("remember cookie");

    browser.cookies.retain(|(n, _)| n != "__Host-session");
    let resumed = browser.get("/account").await;
    assert_eq!(resumed.status.as_u16(), 200, "signed in again from the remember cookie");
    let session = browser.cookie("__Host-session").expect("a new session");
    let row = app.state.store.session(&passme_core::identity::sessions::session_id(&session)).await.expect("read").expect("row");
    assert!(row.remembered, "the session is marked as remembered");
    let second = browser.cookie("__Host-remember").expect("rotated");
    assert_ne!(first, second, "rotated at use");

    // A thief replays the first cookie after the grace window.
    app.state.store.execute_script("UPDATE remember_series SET prev_valid_until = 0").await.expect("end the grace window");
    let mut thief = Browser::new(&app);
    thief.cookies.push(("__Host-remember".into(), first));
    let stolen = thief.get("/account").await;
    assert_eq!(stolen.header("location"), Some("/login?next=/account"));
    assert!(thief.cookie("__Host-remember").is_none(), "the replayed cookie is cleared");
    browser.cookies.retain(|(n, _)| n != "__Host-session");
    assert_eq!(browser.get("/account").await.header("location"), Some("/login?next=/account"), "the whole series is revoked");
    let mails = app.deliver(&sink, 2).await;
    assert!(mails.iter().any(|m| m.subject == "Vi har logget dig ud overalt"), "the owner is told");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thief_who_resumed_first_loses_the_session_when_the_theft_is_found() {
    let sink = SmtpSink::start();
    let app = TestApp::builder(sqlite().await).smtp(sink.url()).build();
    signed_in(&app, &sink, "ola@example.com", 0).await;
    let mut owner = Browser::new(&app);
    with_preferences(&mut owner);
    let csrf = owner.token("/login").await;
    owner.post("/login", &[("csrf", &csrf), ("email", "ola@example.com"), ("password", PASSWORD), ("remember", "on")]).await;
    let copied = owner.cookie("__Host-remember").expect("remember cookie");

    // The copy is used first: the thief gets a session (and the rotated cookie).
    let mut thief = Browser::new(&app);
    thief.cookies.push(("__Host-remember".into(), copied.clone()));
    assert_eq!(thief.get("/account").await.status.as_u16(), 200, "the copy works before the owner comes back");
    assert!(thief.cookie("__Host-session").is_some());

    // Inside the grace window the same copy mints one more session, never more.
    let mut second = Browser::new(&app);
    second.cookies.push(("__Host-remember".into(), copied.clone()));
    assert_eq!(second.get("/account").await.status.as_u16(), 200, "the one grace use (a second tab)");
    for _ in 0..3 {
        let mut again = Browser::new(&app);
        again.cookies.push(("__Host-remember".into(), copied.clone()));
        assert_eq!(again.get("/account").await.header("location"), Some("/login?next=/account"), "spent");
        assert_eq!(again.cookie("__Host-remember").as_deref(), Some(copied.as_str()), "a refused grace use leaves the cookie alone");
    }

    // After the grace window the owner's browser presents the old cookie: theft.
    app.state.store.execute_script("UPDATE remember_series SET prev_valid_until = 0").await.expect("end the grace window");
    owner.cookies.retain(|(n, _)| n != "__Host-session");
    assert_eq!(owner.get("/account").await.header("location"), Some("/login?next=/account"));
    assert_eq!(thief.get("/account").await.header("location"), Some("/login?next=/account"), "the thief's session ended too");
    assert_eq!(second.get("/account").await.header("location"), Some("/login?next=/account"));
    let mails = app.deliver(&sink, 2).await;
    let warning = mails.iter().find(|m| m.subject == "Vi har logget dig ud overalt").expect("the owner is told");
    assert!(warning.body.contains("logget dig ud på alle enheder"), "{}", warning.body);
}

#[tokio::test]
async fn without_preference_consent_the_box_does_nothing() {
    let sink = SmtpSink::start();
    let app = TestApp::builder(sqlite().await).smtp(sink.url()).build();
    signed_in(&app, &sink, "ola@example.com", 0).await;
    let mut browser = Browser::new(&app);
    let form = browser.get("/login").await.text();
    assert!(!form.contains("name=\"remember\"") && form.contains("præference-cookies"), "explains instead of offering");
    let csrf = browser.token("/login").await;
    let login = browser.post("/login", &[("csrf", &csrf), ("email", "ola@example.com"), ("password", PASSWORD), ("remember", "on")]).await;
    assert_eq!(login.status.as_u16(), 303);
    assert!(browser.cookie("__Host-remember").is_none(), "no preference cookie without consent");
    assert!(browser.cookie("__Host-session").is_some());
}

#[tokio::test]
async fn preferences_follow_the_account_and_the_consented_cookie_only() {
    proves!("cookie.__Host-prefs");
    let sink = SmtpSink::start();
    let app = TestApp::builder(sqlite().await).smtp(sink.url()).build();
    let mut member = signed_in(&app, &sink, "ola@example.com", 0).await;
    let csrf = member.token("/preferences").await;
    let saved = member.post("/preferences", &[("csrf", &csrf), ("theme", "dark"), ("lang", "en"), ("text", "large")]).await;
    assert_eq!(saved.header("location"), Some("/preferences?done=prefs_saved&lang=en"));
    assert!(member.get("/preferences?done=prefs_saved&lang=en").await.text().contains("Your choices are saved."));
    assert!(member.cookie("__Host-prefs").is_none(), "signed in: kept on the account, no cookie");
    let page = member.get("/").await.text();
    assert!(page.contains(r#"<html lang="en" data-theme="dark" class="text-large">"#), "{}", &page[..200]);

    let mut visitor = Browser::new(&app);
    let csrf = visitor.token("/preferences").await;
    let refused = visitor.post("/preferences", &[("csrf", &csrf), ("theme", "dark"), ("lang", "en"), ("text", "large")]).await;
    assert_eq!(refused.status.as_u16(), 409, "no preference cookie without consent");
    assert!(visitor.cookie("__Host-prefs").is_none());
    visitor.cookies.push(("__Host-prefs".into(), "dark.en.large".into()));
    assert!(visitor.get("/").await.text().contains(r#"data-theme="light""#), "a prefs cookie without consent is ignored");

    let mut consenting = Browser::new(&app);
    with_preferences(&mut consenting);
    let csrf = consenting.token("/preferences").await;
    consenting.post("/preferences", &[("csrf", &csrf), ("theme", "dark"), ("lang", "auto"), ("text", "normal")]).await;
    assert_eq!(consenting.cookie("__Host-prefs").as_deref(), Some("dark.auto.normal"));
    assert!(consenting.get("/").await.text().contains(r#"data-theme="dark""#));
    let csrf = consenting.token("/preferences").await;
    let hostile =
        consenting.post("/preferences", &[("csrf", &csrf), ("theme", "neon\"><script>"), ("lang", "en"), ("text", "normal")]).await;
    assert_eq!(hostile.status.as_u16(), 400);
    consenting.cookies.retain(|(n, _)| n != "__Host-prefs");
    consenting.cookies.push(("__Host-prefs".into(), "dark.en.large.admin".into()));
    assert!(consenting.get("/").await.text().contains(r#"data-theme="light""#), "off-list values fall back to defaults");
}

async fn api_me(app: &TestApp, auth: Option<&str>, cookie: Option<&str>) -> TestResponse {
    let mut request = Request::get("/api/v1/me");
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    app.send(request.body(Body::empty()).expect("request")).await
}

#[tokio::test]
async fn the_product_reads_me_with_a_personal_token_that_can_be_revoked() {
    proves!("security.staff_least_privilege");
    let sink = SmtpSink::start();
    let app = TestApp::builder(sqlite().await).smtp(sink.url()).build();
    let mut ola = signed_in(&app, &sink, "ola@example.com", 0).await;
    let anonymous = api_me(&app, None, None).await;
    assert_eq!((anonymous.status.as_u16(), anonymous.error_code().as_str()), (401, "unauthenticated"));
    assert_eq!(anonymous.header("www-authenticate"), Some("Bearer"));
    let by_session = api_me(&app, None, Some(&ola.cookie_header())).await.json();
    assert_eq!((by_session["email"].as_str(), by_session["email_verified"].as_bool()), (Some("ola@example.com"), Some(true)));

    let csrf = ola.token("/account").await;
    let created = ola.post("/account/tokens", &[("csrf", &csrf), ("name", "My AI app")]).await;
    assert_eq!(created.header("cache-control"), Some("no-store"));
    let token = created.text().split("<code class=\"secret\">").nth(1).and_then(|s| s.split('<').next()).expect("shown once").to_string();
    assert!(token.starts_with("pm_") && token.len() == 46);
    let me = api_me(&app, Some(&format!("Bearer {token}")), None).await;
    assert_eq!(me.status.as_u16(), 200);
    assert_eq!(me.json()["roles"], serde_json::json!([]));
    assert!(!ola.get("/account").await.text().contains(&token), "the account page never shows the token again");

    for forged in
        ["Bearer pm_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "Bearer nope", "Basic b2xhOnB3", &format!("Bearer {}", &token[3..])]
    {
        assert_eq!(api_me(&app, Some(forged), None).await.status.as_u16(), 401, "{forged}");
    }
    let token_id = passme_core::identity::token_hash(&token[3..]);
    let csrf = ola.token("/account").await;
    assert_eq!(
        ola.post("/account/tokens/revoke", &[("csrf", &csrf), ("token", &token_id)]).await.header("location"),
        Some("/account?done=token_revoked")
    );
    assert_eq!(api_me(&app, Some(&format!("Bearer {token}")), None).await.status.as_u16(), 401, "revoked");

    // Staff pages need a staff role; holding one grants exactly its pages.
    let refused = ola.get("/staff/audit").await;
    assert_eq!(refused.status.as_u16(), 403);
    assert!(refused.text().contains("forbidden"));
    let account = app.state.store.account_by_email_key("ola@example.com").await.expect("read").expect("row");
    let staff = passme_core::identity::staff::Staff::new(app.state.store.clone(), app.state.clock.clone());
    staff.grant(&account.id, passme_core::identity::staff::Role::Analyst, "test").await.expect("grant");
    assert_eq!(ola.get("/staff/audit").await.status.as_u16(), 403, "analysts do not see the audit log");
    staff.grant(&account.id, passme_core::identity::staff::Role::PrivacyOfficer, "test").await.expect("grant");
    let allowed = ola.get("/staff/audit").await;
    assert_eq!(allowed.status.as_u16(), 200);
    assert!(
        allowed.text().contains("The audit log&#39;s chain is intact") || allowed.text().contains("kæde er intakt"),
        "{}",
        allowed.text()
    );
    assert_eq!(
        api_me(&app, None, Some(&ola.cookie_header())).await.json()["roles"],
        serde_json::json!(["analyst", "privacy_officer"]),
        "several roles at once"
    );
}

fn json_request(method: &str, path: &str, body: &str, cookie: &str, origin: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .header("host", "passme.test")
        .header("origin", origin)
        .header("cookie", cookie)
        .body(Body::from(body.to_string()))
        .expect("request")
}

#[tokio::test]
async fn the_json_api_mirrors_the_pages_and_refuses_cross_origin_changes() {
    let sink = SmtpSink::start();
    let app = TestApp::builder(sqlite().await).smtp(sink.url()).build();
    let ola = signed_in(&app, &sink, "ola@example.com", 0).await;
    let kari = signed_in(&app, &sink, "kari@example.com", 1).await;
    let jar = ola.cookie_header();
    let same = "http://passme.test";

    assert_eq!(app.get("/api/v1/sessions").await.status.as_u16(), 401);
    let sessions = app.send(json_request("GET", "/api/v1/sessions", "", &jar, same)).await.json();
    assert_eq!(sessions.as_array().map(Vec::len), Some(1));
    assert_eq!(sessions[0]["current"], true);

    let prefs = r#"{"theme":"dark","language":"en","text_size":"large"}"#;
    let cross = app.send(json_request("PUT", "/api/v1/preferences", prefs, &jar, "https://evil.example")).await;
    assert_eq!((cross.status.as_u16(), cross.error_code().as_str()), (403, "cross_origin_refused"));
    let saved = app.send(json_request("PUT", "/api/v1/preferences", prefs, &jar, same)).await;
    assert_eq!(saved.status.as_u16(), 200, "{}", saved.text());
    assert_eq!(app.send(json_request("GET", "/api/v1/preferences", "", &jar, same)).await.json()["theme"], "dark");
    for (body, code) in [
        (r#"{"theme":"neon","language":null,"text_size":"normal"}"#, "preferences_invalid"),
        (r#"{"theme":"dark","language":null,"text_size":"normal","admin":true}"#, "body_invalid_json"),
        ("{", "body_invalid_json"),
    ] {
        let response = app.send(json_request("PUT", "/api/v1/preferences", body, &jar, same)).await;
        assert_eq!((response.status.as_u16(), response.error_code()), (400, code.to_string()), "{body}");
    }

    let kari_session = passme_core::identity::sessions::session_id(&kari.cookie("__Host-session").expect("session"));
    let foreign = app.send(json_request("DELETE", &format!("/api/v1/sessions/{kari_session}"), "", &jar, same)).await;
    assert_eq!(foreign.status.as_u16(), 404, "another account's session is not yours to end");
    let own = sessions[0]["id"].as_str().expect("id").to_string();
    assert_eq!(app.send(json_request("DELETE", &format!("/api/v1/sessions/{own}"), "", &jar, same)).await.status.as_u16(), 204);
    assert_eq!(app.send(json_request("GET", "/api/v1/sessions", "", &jar, same)).await.status.as_u16(), 401, "that session has ended");

    let consent =
        app.send(json_request("PUT", "/api/v1/consent", r#"{"preferences":true,"statistics":false,"marketing":false}"#, "", same)).await;
    assert_eq!(consent.status.as_u16(), 200);
    assert_eq!(consent.json()["state"], "current");
    assert!(consent.header("set-cookie").is_some_and(|c| c.starts_with("__Host-consent=v1.")));
    let cross_consent = app
        .send(json_request(
            "PUT",
            "/api/v1/consent",
            r#"{"preferences":true,"statistics":true,"marketing":true}"#,
            "",
            "https://evil.example",
        ))
        .await;
    assert_eq!(cross_consent.status.as_u16(), 403);
    assert_eq!(app.get("/api/v1/consent").await.json()["state"], "unanswered");
}

// Multi-threaded like production: the notice to the old address goes out on a spawned task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_email_needs_the_password_and_a_link_sent_to_the_new_address() {
    let sink = SmtpSink::start();
    let app = TestApp::builder(sqlite().await).smtp(sink.url()).build();
    let mut ola = signed_in(&app, &sink, "ola@example.com", 0).await;
    let csrf = ola.token("/account").await;
    let wrong = ola.post("/account/email", &[("csrf", &csrf), ("email", "ola.nordmann@example.com"), ("current", "not my password")]).await;
    assert_eq!(wrong.status.as_u16(), 400, "re-authentication is required");
    let asked = ola.post("/account/email", &[("csrf", &csrf), ("email", "ola.nordmann@example.com"), ("current", PASSWORD)]).await;
    assert_eq!(asked.status.as_u16(), 200, "{}", asked.text());
    assert!(ola.get("/account").await.text().contains("ola@example.com"), "nothing changes before the link is used");
    let mails = app.deliver(&sink, 2).await;
    let confirm = mails.iter().find(|m| m.to == "ola.nordmann@example.com").expect("mail to the new address");
    let token = link_token(&confirm.body);
    let csrf = ola.token(&format!("/email-confirm?token={token}")).await;
    let done = ola.post("/email-confirm", &[("csrf", &csrf), ("token", &token)]).await;
    assert_eq!(done.status.as_u16(), 200, "{}", done.text());
    assert!(ola.get("/account").await.text().contains("ola.nordmann@example.com"));
    let notices = app.deliver(&sink, 3).await;
    assert!(
        notices.iter().any(|m| m.to == "ola@example.com" && m.subject == "Din e-mailadresse hos PassMe AI er ændret"),
        "the old address is told"
    );
    let again = ola.post("/email-confirm", &[("csrf", &csrf), ("token", &token)]).await;
    assert!(again.text().contains("token_invalid"), "the link works once");
}

#[tokio::test]
async fn closing_the_account_needs_the_password_and_signs_out_everywhere() {
    let sink = SmtpSink::start();
    let app = TestApp::builder(sqlite().await).smtp(sink.url()).build();
    let mut ola = signed_in(&app, &sink, "ola@example.com", 0).await;
    let csrf = ola.token("/account").await;
    assert_eq!(ola.post("/account/close", &[("csrf", &csrf), ("current", "not my password")]).await.status.as_u16(), 400);
    let closed = ola.post("/account/close", &[("csrf", &csrf), ("current", PASSWORD)]).await;
    assert_eq!(closed.status.as_u16(), 200, "{}", closed.text());
    assert!(ola.cookie("__Host-session").is_none(), "the session cookie is deleted");
    let mut again = Browser::new(&app);
    let csrf = again.token("/login").await;
    assert_eq!(again.post("/login", &[("csrf", &csrf), ("email", "ola@example.com"), ("password", PASSWORD)]).await.status.as_u16(), 401);
}

#[tokio::test]
async fn sign_up_log_in_and_log_out_work_as_json_too() {
    let sink = SmtpSink::start();
    let app = TestApp::builder(sqlite().await).smtp(sink.url()).build();
    let same = "http://passme.test";
    let body = format!(r#"{{"email":"ola@example.com","password":"{PASSWORD}","language":"en"}}"#);
    let created = app.send(json_request("POST", "/api/v1/signup", &body, "", same)).await;
    assert_eq!((created.status.as_u16(), created.json()["status"].as_str()), (202, Some("check_email")));
    let taken = app.send(json_request("POST", "/api/v1/signup", &body, "", same)).await;
    assert_eq!((taken.status, taken.text()), (created.status, created.text()), "the same answer for a taken address");
    let weak = app.send(json_request("POST", "/api/v1/signup", r#"{"email":"kari@example.com","password":"password1"}"#, "", same)).await;
    assert_eq!((weak.status.as_u16(), weak.error_code().as_str()), (400, "password_weak"));
    let cross = app.send(json_request("POST", "/api/v1/signup", &body, "", "https://evil.example")).await;
    assert_eq!(cross.status.as_u16(), 403);

    let login_body = format!(r#"{{"email":"ola@example.com","password":"{PASSWORD}"}}"#);
    let unverified = app.send(json_request("POST", "/api/v1/login", &login_body, "", same)).await;
    assert_eq!((unverified.status.as_u16(), unverified.error_code().as_str()), (403, "email_unverified"));
    let mail = app
        .deliver(&sink, 2)
        .await
        .into_iter()
        .find(|m| m.subject == "Confirm your e-mail address at PassMe AI")
        .expect("English verification mail");
    let mut browser = Browser::new(&app);
    let token = link_token(&mail.body);
    let csrf = browser.token(&format!("/verify?token={token}")).await;
    browser.post("/verify", &[("csrf", &csrf), ("token", &token)]).await;

    let wrong =
        app.send(json_request("POST", "/api/v1/login", r#"{"email":"ola@example.com","password":"wrong wrong wrong"}"#, "", same)).await;
    assert_eq!((wrong.status.as_u16(), wrong.error_code().as_str()), (401, "invalid_credentials"));
    let ok = app.send(json_request("POST", "/api/v1/login", &login_body, "", same)).await;
    assert_eq!(ok.status.as_u16(), 200, "{}", ok.text());
    let session = ok
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("__Host-session="))
        .expect("session cookie");
    let pair = session.split(';').next().expect("pair").to_string();
    assert_eq!(app.send(json_request("GET", "/api/v1/me", "", &pair, same)).await.json()["email"], "ola@example.com");
    let out = app.send(json_request("POST", "/api/v1/logout", "", &pair, same)).await;
    assert_eq!(out.status.as_u16(), 204);
    assert_eq!(app.send(json_request("GET", "/api/v1/me", "", &pair, same)).await.status.as_u16(), 401, "the session ended");
    let account_page = browser.get("/account").await.text();
    assert!(account_page.contains("Tilknyttede konti"), "the linked-accounts placeholder is on the account page");
}
