//! Linked accounts through the real router against a real OpenID Provider (npm `oidc-provider`
//! on loopback): linking, signing in, unlinking with revocation, the refresh of tokens, the
//! partner profile kept under consent, and every attack on the flow the issue lists.

use passme_linking::vault::Vault;
use passme_policy::proves;
use passme_store::{AccountId, Store};
use passme_testkit::app::BASE_URL;
use passme_testkit::browser::{Browser, signed_in};
use passme_testkit::oidc::OidcPeer;
use passme_testkit::people::{account_of, count};
use passme_testkit::{SmtpSink, TestApp, TestDb, TestResponse, each_engine};
use secrecy::ExposeSecret;
use serde_json::json;

fn callback_uri() -> String {
    format!("{BASE_URL}/link/example/callback")
}

fn app(db: TestDb, sink: &SmtpSink, peer: &OidcPeer) -> TestApp {
    TestApp::builder(db).smtp(sink.url()).providers(vec![peer.provider_config("example")]).build()
}

/// Follows the provider's redirect back into the router.
async fn come_back(browser: &mut Browser<'_>, back: &str) -> TestResponse {
    let path = back.strip_prefix(BASE_URL).unwrap_or_else(|| panic!("the provider sends the browser back to PassMe, not {back}"));
    browser.get(path).await
}

/// Presses "Link Example ID" on the account page; returns the provider's authorization URL.
async fn start_link(browser: &mut Browser<'_>) -> String {
    let csrf = browser.token("/account").await;
    let started = browser.post("/account/links/example/start", &[("csrf", &csrf)]).await;
    assert_eq!(started.status.as_u16(), 303, "{}", started.text());
    started.header("location").expect("to the provider").to_string()
}

async fn link(browser: &mut Browser<'_>, peer: &OidcPeer, login: &str) -> TestResponse {
    let url = start_link(browser).await;
    let back = peer.authorize(&url, login).await;
    come_back(browser, &back).await
}

/// Presses "Sign in with Example ID" on the sign-in page; returns the provider's URL.
async fn start_sign_in(browser: &mut Browser<'_>) -> String {
    let csrf = browser.token("/login").await;
    let started = browser.post("/login/example", &[("csrf", &csrf)]).await;
    assert_eq!(started.status.as_u16(), 303, "{}", started.text());
    started.header("location").expect("to the provider").to_string()
}

async fn sign_in_with(browser: &mut Browser<'_>, peer: &OidcPeer, login: &str) -> TestResponse {
    let url = start_sign_in(browser).await;
    let back = peer.authorize(&url, login).await;
    come_back(browser, &back).await
}

#[tokio::test]
async fn a_user_links_a_provider_signs_in_with_it_and_unlinking_revokes_the_tokens() {
    proves!("processor.identity_providers", "security.tokens_encrypted");
    for db in each_engine().await {
        let sink = SmtpSink::start();
        let peer = OidcPeer::start(&callback_uri()).await;
        let app = app(db, &sink, &peer);
        let mut ola = signed_in(&app, &sink, "ola@example.com", 0).await;
        let page = ola.get("/account").await.text();
        assert!(page.contains("Tilknyt Example ID"), "the account page offers the provider: {page}");

        let linked = link(&mut ola, &peer, "ola-at-example").await;
        assert_eq!((linked.status.as_u16(), linked.header("location")), (303, Some("/account?done=linked")), "{}", linked.text());
        let page = ola.get("/account").await.text();
        assert!(page.contains("Example ID") && page.contains("ola-at-example@example.test"), "{page}");
        assert!(!page.contains("Tilknyt Example ID"), "a linked provider is not offered again");

        // Sealed at rest: blobs in the v1 format under the vault's key, and what they hold works
        // at the provider.
        let store = &app.state.store;
        let account = account_of(store, "ola@example.com").await;
        let link = store.links_of(&account).await.expect("links").remove(0);
        assert_eq!(link.issuer, peer.issuer());
        assert_eq!(link.subject, "ola-at-example");
        let row = store.tokens(&link.id).await.expect("tokens").expect("stored");
        for blob in [&row.id_token, &row.access_token, &row.refresh_token] {
            let blob = blob.as_deref().expect("every token is kept");
            assert!(blob.starts_with(&format!("v1:{}:", row.key_id)), "{blob}");
            assert_eq!(blob.split(':').count(), 4);
        }
        let vault = app.state.linking.vault();
        let refresh = vault
            .open(Vault::token_place(&link.id, &account, "example", "refresh_token"), row.refresh_token.as_deref().expect("refresh"))
            .await
            .expect("opens");
        assert!(!row.refresh_token.as_deref().unwrap_or_default().contains(refresh.expose_secret()), "never stored in the clear");

        // Signing in with the provider, in a new browser.
        let mut elsewhere = Browser::new(&app);
        let signed = sign_in_with(&mut elsewhere, &peer, "ola-at-example").await;
        assert_eq!((signed.status.as_u16(), signed.header("location")), (303, Some("/account")), "{}", signed.text());
        assert!(elsewhere.get("/account").await.text().contains("ola@example.com"), "signed in as the linked account");
        assert_eq!(peer.try_refresh(refresh.expose_secret()).await, 400, "the grant a sign-in replaced is revoked at the provider");
        let row = store.tokens(&link.id).await.expect("tokens").expect("stored");
        let refresh = vault
            .open(Vault::token_place(&link.id, &account, "example", "refresh_token"), row.refresh_token.as_deref().expect("refresh"))
            .await
            .expect("opens");
        let trail = app.state.audit.entries_for(&format!("account:{account}")).await.expect("audit");
        assert!(trail.iter().any(|e| e.action == "link.created"), "linking is audited");

        // Unlinking revokes at the provider: the refresh token no longer works there.
        let csrf = ola.token("/account").await;
        let unlinked = ola.post("/account/links/unlink", &[("csrf", &csrf), ("link", &link.id)]).await;
        assert_eq!(unlinked.header("location"), Some("/account?done=unlinked"), "{}", unlinked.text());
        assert_eq!(peer.try_refresh(refresh.expose_secret()).await, 400, "the provider revoked the refresh token");
        assert!(store.tokens(&link.id).await.expect("tokens").is_none(), "tokens deleted");
        assert!(store.links_of(&account).await.expect("links").is_empty());
        // An unlinked account signs nobody in.
        let mut again = Browser::new(&app);
        let refused = sign_in_with(&mut again, &peer, "ola-at-example").await;
        assert_eq!(refused.status.as_u16(), 400);
        assert!(refused.text().contains("Ingen PassMe-konto er tilknyttet"), "{}", refused.text());
        assert!(again.cookie("__Host-session").is_none());
    }
}

#[tokio::test]
async fn the_state_is_single_use_bound_to_the_browser_and_a_code_works_once() {
    for db in each_engine().await {
        let sink = SmtpSink::start();
        let peer = OidcPeer::start(&callback_uri()).await;
        let app = app(db, &sink, &peer);
        let mut ola = signed_in(&app, &sink, "ola@example.com", 0).await;

        let missing = ola.get("/link/example/callback?code=abc").await;
        assert_eq!(missing.status.as_u16(), 400);
        assert!(missing.text().contains("ufuldstændigt"), "{}", missing.text());
        let forged = ola.get("/link/example/callback?code=abc&state=made-up").await;
        assert_eq!(forged.status.as_u16(), 400);
        assert!(forged.text().contains("ukendt eller allerede brugt"));

        // A callback that arrives in another browser (an attacker's link) is refused, and the
        // flow is spent.
        let url = start_link(&mut ola).await;
        let back = peer.authorize(&url, "ola-at-example").await;
        let mut attacker = Browser::new(&app);
        let stolen = come_back(&mut attacker, &back).await;
        assert_eq!(stolen.status.as_u16(), 400);
        assert!(stolen.text().contains("startet i en anden browser"), "{}", stolen.text());
        let replayed = come_back(&mut ola, &back).await;
        assert_eq!(replayed.status.as_u16(), 400, "the state was used up by the refused attempt");

        // A code comes back once: replaying the successful callback is refused, and the old
        // code under a fresh state is refused by the provider.
        let url = start_link(&mut ola).await;
        let back = peer.authorize(&url, "ola-at-example").await;
        assert_eq!(come_back(&mut ola, &back).await.header("location"), Some("/account?done=linked"));
        assert_eq!(come_back(&mut ola, &back).await.status.as_u16(), 400);
        let code = back.split("code=").nth(1).and_then(|s| s.split('&').next()).expect("code");
        let fresh = start_link(&mut ola).await;
        let state = fresh.split("state=").nth(1).and_then(|s| s.split('&').next()).expect("state");
        let reused = ola.get(&format!("/link/example/callback?code={code}&state={state}")).await;
        assert_eq!(reused.status.as_u16(), 400);
        assert!(reused.text().contains("godtog ikke"), "{}", reused.text());

        // An answer naming another issuer (RFC 9207 mix-up) is refused before the code is used.
        let url = start_link(&mut ola).await;
        let back = peer.authorize(&url, "ola-at-example").await;
        assert!(back.contains("iss="), "the provider names itself: {back}");
        let mixed = back.replace("iss=http%3A%2F%2F127.0.0.1", "iss=https%3A%2F%2Fevil.example");
        let refused = come_back(&mut ola, &mixed).await;
        assert_eq!(refused.status.as_u16(), 400);
        assert!(refused.text().contains("kom fra en anden udbyder"), "{}", refused.text());

        // A provider that answers with an error links nothing.
        let denied_state = start_link(&mut ola).await;
        let state = denied_state.split("state=").nth(1).and_then(|s| s.split('&').next()).expect("state");
        let denied = ola.get(&format!("/link/example/callback?error=access_denied&state={state}")).await;
        assert_eq!(denied.status.as_u16(), 400);
        assert_eq!(count(&app.state.store, "SELECT COUNT(*) FROM linked_accounts").await, 1);
    }
}

#[tokio::test]
async fn forged_id_tokens_are_refused_and_link_nothing() {
    let sink = SmtpSink::start();
    let peer = OidcPeer::start(&callback_uri()).await;
    for db in each_engine().await {
        let app = app(db, &sink, &peer);
        let email = format!("ola-{}@example.com", app.db.engine_name());
        let seen = sink.messages().len();
        let mut ola = signed_in(&app, &sink, &email, seen).await;
        for mode in [
            "alg_none",
            "hs256_public_key",
            "unknown_key",
            "bad_signature",
            "wrong_aud",
            "two_aud_no_azp",
            "wrong_iss",
            "wrong_nonce",
            "expired",
        ] {
            let url = start_link(&mut ola).await;
            peer.tamper_next_id_token(mode).await;
            let back = peer.authorize(&url, "ola-at-example").await;
            let refused = come_back(&mut ola, &back).await;
            assert_eq!(refused.status.as_u16(), 400, "{mode}: {}", refused.text());
            assert!(refused.text().contains("kunne ikke bekræftes"), "{mode}: {}", refused.text());
            assert_eq!(count(&app.state.store, "SELECT COUNT(*) FROM linked_accounts").await, 0, "{mode} linked nothing");
            assert_eq!(count(&app.state.store, "SELECT COUNT(*) FROM linked_tokens").await, 0, "{mode} stored nothing");
        }
        // The same flow without forgery links.
        assert_eq!(link(&mut ola, &peer, "ola-at-example").await.header("location"), Some("/account?done=linked"));
    }
}

#[tokio::test]
async fn accounts_are_matched_on_issuer_and_subject_never_on_e_mail() {
    for db in each_engine().await {
        let sink = SmtpSink::start();
        let peer = OidcPeer::start(&callback_uri()).await;
        let app = app(db, &sink, &peer);
        let mut ola = signed_in(&app, &sink, "ola@example.com", 0).await;
        let store = &app.state.store;

        // Someone whose provider account claims Ola's address, unverified, or verified: neither
        // signs in as Ola nor links to her.
        for verified in [false, true] {
            peer.set_account("mallory", json!({ "email": "ola@example.com", "email_verified": verified }));
            let mut mallory = Browser::new(&app);
            let refused = sign_in_with(&mut mallory, &peer, "mallory").await;
            assert_eq!(refused.status.as_u16(), 400, "{}", refused.text());
            assert!(mallory.cookie("__Host-session").is_none());
            assert_eq!(count(store, "SELECT COUNT(*) FROM linked_accounts").await, 0);
        }

        // One subject, two users: the second link is refused, also after the first unlinks
        // (during the declared grace period).
        assert_eq!(link(&mut ola, &peer, "shared").await.header("location"), Some("/account?done=linked"));
        let mut kari = signed_in(&app, &sink, "kari@example.com", 1).await;
        let taken = link(&mut kari, &peer, "shared").await;
        assert_eq!(taken.status.as_u16(), 409, "{}", taken.text());
        let ola_id = account_of(store, "ola@example.com").await;
        let link_id = store.links_of(&ola_id).await.expect("links")[0].id.clone();
        app.state.linking.unlink(&ola_id, &link_id).await.expect("unlink");
        assert_eq!(link(&mut kari, &peer, "shared").await.status.as_u16(), 409, "still Ola's during the grace period");
        // Ola may link it again.
        assert_eq!(link(&mut ola, &peer, "shared").await.header("location"), Some("/account?done=linked"));
        let kari_id = account_of(store, "kari@example.com").await;
        assert!(store.links_of(&kari_id).await.expect("links").is_empty());
    }
}

#[tokio::test]
async fn a_key_rotation_at_the_provider_is_followed() {
    let sink = SmtpSink::start();
    let peer = OidcPeer::start(&callback_uri()).await;
    let app = app(passme_testkit::sqlite().await, &sink, &peer);
    let mut ola = signed_in(&app, &sink, "ola@example.com", 0).await;
    assert_eq!(link(&mut ola, &peer, "ola-at-example").await.header("location"), Some("/account?done=linked"));
    let new_kid = peer.rotate_key().await;
    // Keys are fetched again at most once a second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let mut elsewhere = Browser::new(&app);
    let signed = sign_in_with(&mut elsewhere, &peer, "ola-at-example").await;
    assert_eq!(signed.header("location"), Some("/account"), "a token signed with the new key {new_kid} is accepted: {}", signed.text());
}

/// An app whose clock the test moves, linked to `login` at the provider; returns the link id.
async fn linked_app(
    db: TestDb,
    sink: &SmtpSink,
    peer: &OidcPeer,
    clock: &passme_core::clock::ManualClock,
    login: &str,
) -> (TestApp, String) {
    let app = TestApp::builder(db)
        .smtp(sink.url())
        .providers(vec![peer.provider_config("example")])
        .clock(std::sync::Arc::new(clock.clone()))
        .build();
    let seen = sink.messages().len();
    let email = format!("{login}-{}@example.com", app.db.engine_name());
    let mut browser = signed_in(&app, sink, &email, seen).await;
    assert_eq!(link(&mut browser, peer, login).await.header("location"), Some("/account?done=linked"));
    let account = account_of(&app.state.store, &email).await;
    let link_id = app.state.store.links_of(&account).await.expect("links")[0].id.clone();
    (app, link_id)
}

async fn stored_refresh_token(app: &TestApp, link_id: &str) -> String {
    let row = app.state.store.tokens(link_id).await.expect("tokens").expect("stored");
    let place = Vault::token_place(&row.link_id, &row.account_id, &row.provider, "refresh_token");
    app.state.linking.vault().open(place, row.refresh_token.as_deref().expect("refresh")).await.expect("opens").expose_secret().to_string()
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_once_even_when_asked_for_twice_at_once() {
    let sink = SmtpSink::start();
    let peer = OidcPeer::start(&callback_uri()).await;
    for db in each_engine().await {
        let clock = passme_core::clock::ManualClock::at(passme_core::clock::system().now_ms());
        let (app, link_id) = linked_app(db, &sink, &peer, &clock, "ola-refresh").await;
        let linking = &app.state.linking;
        let first = linking.access_token(&link_id).await.expect("a fresh token");
        assert_eq!(linking.access_token(&link_id).await.expect("still fresh").expose_secret(), first.expose_secret(), "no refresh needed");
        let old_refresh = stored_refresh_token(&app, &link_id).await;

        // Two hours on, two instances of the service on one database ask at once: one refresh at
        // the provider, both get its token. Five rounds, so the interleavings vary.
        let other_instance = passme_linking::Linking::new(
            &passme_core::config::LinkingConfig { providers: vec![peer.provider_config("example")] },
            &app.state.policy,
            app.state.store.clone(),
            std::sync::Arc::new(clock.clone()),
            &[7; 32],
            BASE_URL,
        )
        .expect("a second instance");
        let mut previous = (first.expose_secret().to_string(), old_refresh);
        for round in 0..5 {
            let (_, refreshes_before) = peer.token_requests().await;
            clock.advance(2 * 3600 * 1000);
            let (a, b) = tokio::join!(linking.access_token(&link_id), other_instance.access_token(&link_id));
            let (a, b) = (a.expect("refreshed"), b.expect("refreshed"));
            assert_eq!(a.expose_secret(), b.expose_secret(), "round {round}");
            assert_ne!(a.expose_secret(), previous.0, "a new access token");
            let (_, refreshes_after) = peer.token_requests().await;
            assert_eq!(refreshes_after - refreshes_before, 1, "round {round}: one refresh for two instances asking at once");
            // The provider rotates refresh tokens: the stored one is the new one.
            let new_refresh = stored_refresh_token(&app, &link_id).await;
            assert_ne!(new_refresh, previous.1, "the rotated refresh token replaced the old");
            previous = (a.expose_secret().to_string(), new_refresh);
        }
        linking.refresh_profile(&link_id).await.expect("the refreshed token reads the profile");
        let link = app.state.store.link(&link_id).await.expect("link").expect("exists");
        assert!(link.needs_consent_at.is_none());
    }
}

#[tokio::test]
async fn a_refused_refresh_marks_the_link_for_consent_again_and_tells_the_user() {
    let sink = SmtpSink::start();
    let peer = OidcPeer::start(&callback_uri()).await;
    for db in each_engine().await {
        let clock = passme_core::clock::ManualClock::at(passme_core::clock::system().now_ms());
        let (app, link_id) = linked_app(db, &sink, &peer, &clock, "ola-revoked").await;
        // The person revokes PassMe's access at the provider.
        let refresh = stored_refresh_token(&app, &link_id).await;
        let revoked = reqwest::Client::new()
            .post(format!("{}/token/revocation", peer.issuer()))
            .basic_auth(passme_testkit::oidc::CLIENT_ID, Some(passme_testkit::oidc::CLIENT_SECRET))
            .form(&[("token", refresh.as_str()), ("token_type_hint", "refresh_token")])
            .send()
            .await
            .expect("revocation");
        assert!(revoked.status().is_success());
        clock.advance(2 * 3600 * 1000);
        let refused = app.state.linking.access_token(&link_id).await.expect_err("the provider refuses");
        assert_eq!(refused.code(), "link_needs_consent");
        let link = app.state.store.link(&link_id).await.expect("link").expect("kept");
        assert!(link.needs_consent_at.is_some());
        assert!(app.state.store.tokens(&link_id).await.expect("tokens").is_none(), "dead tokens are deleted");
        let mut browser = Browser::new(&app);
        browser.cookies = vec![];
        let account = link.account_id.clone();
        let (session, _) = app.state.identity.sessions.issue(&account, "test", "127.0.0.1".parse().expect("ip")).await.expect("session");
        browser.cookies.push(("__Host-session".into(), session.expose_secret().to_string()));
        let page = browser.get("/account").await.text();
        assert!(page.contains("Udbyderen godtager ikke længere vores adgang"), "{page}");
        assert!(page.contains("Forbind Example ID igen"));
    }
}

async fn press(browser: &mut Browser<'_>, path: &str, form: &[(&str, &str)]) -> TestResponse {
    let csrf = browser.token("/account").await;
    let mut fields = vec![("csrf", csrf.as_str())];
    fields.extend_from_slice(form);
    browser.post(path, &fields).await
}

#[tokio::test]
async fn partner_profile_fields_are_kept_only_with_consent_and_only_those_declared() {
    proves!("consent.personalise");
    let sink = SmtpSink::start();
    let peer = OidcPeer::start(&callback_uri()).await;
    for db in each_engine().await {
        let app = app(db, &sink, &peer);
        let email = format!("ola-{}@example.com", app.db.engine_name());
        let mut ola = signed_in(&app, &sink, &email, sink.messages().len()).await;
        let store = &app.state.store;
        peer.set_account(
            "ola-profile",
            json!({ "name": "Ola Nordmann", "industry": "Software", "interests": ["ai", "privacy"], "birthdate": "1990-01-01", "locale": "da", "company": { "nested": "object" } }),
        );
        assert_eq!(link(&mut ola, &peer, "ola-profile").await.header("location"), Some("/account?done=linked"));
        assert_eq!(count(store, "SELECT COUNT(*) FROM partner_profiles").await, 0, "nothing kept without consent");
        let page = ola.get("/account").await.text();
        assert!(page.contains("Vi gemmer intet fra udbyderens profil uden dit samtykke"), "{page}");
        assert!(!page.contains("Forslag til dig"), "no suggestions without consent");

        // Consent: the profile is read again (with the stored access token) and the declared
        // fields this provider is configured for are kept; birthdate, locale, e-mail are not.
        let on = press(&mut ola, "/account/personalisation", &[("personalisation", "on")]).await;
        assert_eq!(on.header("location"), Some("/account?done=personalisation_on"), "{}", on.text());
        let account = account_of(store, &email).await;
        let profiles = store.partner_profiles_of(&account).await.expect("profiles");
        assert_eq!(profiles.len(), 1);
        let kept: serde_json::Value = serde_json::from_str(&profiles[0].claims).expect("json");
        assert_eq!(kept, json!({ "name": "Ola Nordmann", "industry": "Software", "interests": ["ai", "privacy"] }));
        let page = ola.get("/account").await.text();
        assert!(page.contains("Modtaget fra Example ID den") && page.contains("Software") && page.contains("ai, privacy"), "{page}");
        assert!(!page.contains("1990-01-01"));

        // Withdrawn: deleted at once, with what was inferred.
        let off = press(&mut ola, "/account/personalisation", &[("personalisation", "off")]).await;
        assert_eq!(off.header("location"), Some("/account?done=personalisation_off"));
        assert_eq!(count(store, "SELECT COUNT(*) FROM partner_profiles").await, 0);
        assert_eq!(count(store, "SELECT COUNT(*) FROM suggestions").await, 0);
        assert_eq!(count(store, "SELECT COUNT(*) FROM account_consents").await, 0);
        let trail = app.state.audit.entries_for(&format!("account:{account}")).await.expect("audit");
        assert!(trail.iter().any(|e| e.action == "consent.personalise.given"));
        assert!(trail.iter().any(|e| e.action == "consent.personalise.withdrawn"));
        // Signing in again with the provider keeps nothing either.
        let mut elsewhere = Browser::new(&app);
        assert_eq!(sign_in_with(&mut elsewhere, &peer, "ola-profile").await.header("location"), Some("/account"));
        assert_eq!(count(store, "SELECT COUNT(*) FROM partner_profiles").await, 0);
        let bad = press(&mut ola, "/account/personalisation", &[("personalisation", "maybe")]).await;
        assert_eq!(bad.status.as_u16(), 400);
    }
}

/// `n` consenting people at the provider "example" with `industry`, each using `item` (through
/// their interface settings or an API token).
async fn population(store: &Store, n: usize, industry: &str, dark_theme: bool, tag: &str) {
    for i in 0..n {
        let id = AccountId::new(format!("acc_{tag}_{i:03}"));
        store
            .insert_account(
                &passme_store::AccountRow {
                    id: id.clone(),
                    email: format!("{tag}{i}@example.org"),
                    email_key: format!("{tag}{i}@example.org"),
                    email_verified_at: Some(1),
                    password_hash: String::new(),
                    status: passme_store::AccountStatus::Active,
                    created_at: 1,
                },
                None,
            )
            .await
            .expect("account");
        if dark_theme {
            store.set_account_prefs(&id, "dark", "en", "normal", 1).await.expect("prefs");
        } else {
            store.set_account_prefs(&id, "light", "en", "large", 1).await.expect("prefs");
        }
        store.give_account_consent(&id, "personalise", 1).await.expect("consent");
        let claims = json!({ "industry": industry }).to_string();
        store.put_partner_profile(&format!("lnk_{tag}_{i}"), &id, "example", &claims, 1).await.expect("profile");
    }
}

#[tokio::test]
async fn suggestions_say_why_can_be_dismissed_and_deleted_and_are_off_without_consent() {
    proves!("retention.partner.suggestions", "retention.partner.public_profile");
    let sink = SmtpSink::start();
    let peer = OidcPeer::start(&callback_uri()).await;
    for db in each_engine().await {
        let app = app(db, &sink, &peer);
        let store = &app.state.store;
        population(store, 15, "Software", true, "sw").await;
        population(store, 15, "Retail", false, "rt").await;
        let email = format!("kari-{}@example.com", app.db.engine_name());
        let mut kari = signed_in(&app, &sink, &email, sink.messages().len()).await;
        peer.set_account("kari-sw", json!({ "industry": "software" }));
        assert_eq!(link(&mut kari, &peer, "kari-sw").await.header("location"), Some("/account?done=linked"));
        let account = account_of(store, &email).await;
        assert_eq!(app.state.personalisation.recompute(&account).await.expect("recompute"), 0, "nothing without consent");
        assert_eq!(count(store, &format!("SELECT COUNT(*) FROM suggestions WHERE account_id = '{account}'")).await, 0);

        press(&mut kari, "/account/personalisation", &[("personalisation", "on")]).await;
        let page = kari.get("/account").await.text();
        assert!(page.contains("Forslag til dig"), "{page}");
        assert!(page.contains("Det mørke tema"), "people in software use the dark theme: {page}");
        assert!(page.contains("Fordi du har tilknyttet Example ID, som oplyser branche: software"), "the reason is shown: {page}");

        let dismissed = press(&mut kari, "/account/suggestions", &[("action", "dismiss"), ("item", "theme_dark")]).await;
        assert_eq!(dismissed.header("location"), Some("/account?done=suggestion_dismissed"));
        press(&mut kari, "/account/suggestions", &[("action", "refresh")]).await;
        assert!(!kari.get("/account").await.text().contains("Det mørke tema"), "a dismissed suggestion does not come back");
        let unknown = press(&mut kari, "/account/suggestions", &[("action", "dismiss"), ("item", "nothing")]).await;
        assert_eq!(unknown.status.as_u16(), 404);

        let forgot = press(&mut kari, "/account/suggestions", &[("action", "forget")]).await;
        assert_eq!(forgot.header("location"), Some("/account?done=suggestions_deleted"));
        assert_eq!(count(store, &format!("SELECT COUNT(*) FROM suggestions WHERE account_id = '{account}'")).await, 0);

        // The declared 12 months: profiles and suggestions older than that go with retention.
        press(&mut kari, "/account/suggestions", &[("action", "refresh")]).await;
        assert!(count(store, &format!("SELECT COUNT(*) FROM suggestions WHERE account_id = '{account}'")).await > 0);
        let later = passme_core::clock::ManualClock::at(passme_core::clock::system().now_ms() + 366 * 86_400_000);
        let housekeeping =
            passme_core::housekeeping::Housekeeping::new(store.clone(), std::sync::Arc::new(later), &app.state.policy).expect("rules");
        housekeeping.run().await.expect("retention");
        assert_eq!(count(store, "SELECT COUNT(*) FROM suggestions").await, 0);
        assert_eq!(count(store, "SELECT COUNT(*) FROM partner_profiles").await, 0);
    }
}

#[tokio::test]
async fn unlinked_identities_tokens_flows_and_consents_go_after_their_declared_periods() {
    proves!("retention.linked.identity", "retention.linked.tokens", "retention.linked.flows", "retention.partner.consent");
    let sink = SmtpSink::start();
    let peer = OidcPeer::start(&callback_uri()).await;
    for db in each_engine().await {
        let app = app(db, &sink, &peer);
        let store = &app.state.store;
        let email = format!("ola-{}@example.com", app.db.engine_name());
        let mut ola = signed_in(&app, &sink, &email, sink.messages().len()).await;
        assert_eq!(link(&mut ola, &peer, "ola-retained").await.header("location"), Some("/account?done=linked"));
        press(&mut ola, "/account/personalisation", &[("personalisation", "on")]).await;
        let account = account_of(store, &email).await;
        let link_id = store.links_of(&account).await.expect("links")[0].id.clone();
        // A flow started and abandoned.
        start_link(&mut ola).await;
        assert_eq!(count(store, "SELECT COUNT(*) FROM link_flows").await, 1);
        // Tokens a crash left behind an unlink (the unlink deletes them at once otherwise).
        let tokens = store.tokens(&link_id).await.expect("tokens").expect("kept");
        app.state.linking.unlink(&account, &link_id).await.expect("unlink");
        store.put_tokens(&tokens).await.expect("left behind");

        let now = passme_core::clock::system().now_ms();
        let run_at = |ms: i64| {
            let clock = std::sync::Arc::new(passme_core::clock::ManualClock::at(ms));
            passme_core::housekeeping::Housekeeping::new(store.clone(), clock, &app.state.policy).expect("rules")
        };
        run_at(now + 30 * 60 * 1000).run().await.expect("retention");
        assert_eq!(count(store, "SELECT COUNT(*) FROM link_flows").await, 1, "a flow is kept for the hour");
        assert_eq!(count(store, "SELECT COUNT(*) FROM linked_tokens").await, 1, "within the hour");
        run_at(now + 2 * 3600 * 1000).run().await.expect("retention");
        assert_eq!(count(store, "SELECT COUNT(*) FROM link_flows").await, 0, "flows go after an hour");
        assert_eq!(count(store, "SELECT COUNT(*) FROM linked_tokens").await, 0, "tokens of an unlinked account go within the hour");
        assert_eq!(count(store, "SELECT COUNT(*) FROM linked_accounts").await, 1, "the identity stays for the grace period");
        run_at(now + 31 * 86_400_000).run().await.expect("retention");
        assert_eq!(count(store, "SELECT COUNT(*) FROM linked_accounts").await, 0, "and goes after 30 days");

        // The consent record follows a closed account after 30 days.
        assert_eq!(count(store, "SELECT COUNT(*) FROM account_consents").await, 1);
        store.close_account(&account, now).await.expect("close");
        run_at(now + 29 * 86_400_000).run().await.expect("retention");
        assert_eq!(count(store, "SELECT COUNT(*) FROM account_consents").await, 1);
        run_at(now + 31 * 86_400_000).run().await.expect("retention");
        assert_eq!(count(store, "SELECT COUNT(*) FROM account_consents").await, 0);
    }
}

#[tokio::test]
async fn closing_the_account_revokes_its_links_at_the_provider() {
    let sink = SmtpSink::start();
    let peer = OidcPeer::start(&callback_uri()).await;
    let app = app(passme_testkit::sqlite().await, &sink, &peer);
    let mut ola = signed_in(&app, &sink, "ola@example.com", 0).await;
    assert_eq!(link(&mut ola, &peer, "ola-closing").await.header("location"), Some("/account?done=linked"));
    let account = account_of(&app.state.store, "ola@example.com").await;
    let link_id = app.state.store.links_of(&account).await.expect("links")[0].id.clone();
    let refresh = stored_refresh_token(&app, &link_id).await;
    let csrf = ola.token("/account").await;
    let closed = ola.post("/account/close", &[("csrf", &csrf), ("current", passme_testkit::PASSWORD)]).await;
    assert_eq!(closed.status.as_u16(), 200, "{}", closed.text());
    assert_eq!(peer.try_refresh(&refresh).await, 400, "revoked at the provider");
    assert_eq!(count(&app.state.store, "SELECT COUNT(*) FROM linked_tokens").await, 0);
    let mut again = Browser::new(&app);
    assert_eq!(sign_in_with(&mut again, &peer, "ola-closing").await.status.as_u16(), 400, "a closed account signs in with nothing");
}

#[tokio::test]
async fn a_plain_oauth_provider_by_explicit_endpoints_links_and_signs_in() {
    let sink = SmtpSink::start();
    let plain_callback = format!("{BASE_URL}/link/plain/callback");
    let peer = passme_testkit::oidc::OidcPeer::start_with(passme_testkit::oidc::PeerOptions {
        redirect_uris: vec![callback_uri(), plain_callback],
        access_ttl_secs: 3600,
    })
    .await;
    let app = TestApp::builder(passme_testkit::sqlite().await).smtp(sink.url()).providers(vec![peer.oauth_config("plain")]).build();
    let mut ola = signed_in(&app, &sink, "ola@example.com", 0).await;
    let csrf = ola.token("/account").await;
    let started = ola.post("/account/links/plain/start", &[("csrf", &csrf)]).await;
    let url = started.header("location").expect("to the provider").to_string();
    assert!(url.contains("code_challenge_method=S256") && !url.contains("nonce="), "PKCE, and no nonce outside OpenID Connect: {url}");
    let back = peer.authorize(&url, "ola-plain").await;
    assert_eq!(come_back(&mut ola, &back).await.header("location"), Some("/account?done=linked"));
    let account = account_of(&app.state.store, "ola@example.com").await;
    let link = app.state.store.links_of(&account).await.expect("links").remove(0);
    assert_eq!((link.subject.as_str(), link.provider.as_str()), ("ola-plain", "plain"));

    let mut elsewhere = Browser::new(&app);
    let csrf = elsewhere.token("/login").await;
    let url = elsewhere.post("/login/plain", &[("csrf", &csrf)]).await.header("location").expect("to the provider").to_string();
    let back = peer.authorize(&url, "ola-plain").await;
    assert_eq!(come_back(&mut elsewhere, &back).await.header("location"), Some("/account"));
}

#[tokio::test]
async fn unknown_providers_and_links_are_clear_errors() {
    let sink = SmtpSink::start();
    let peer = OidcPeer::start(&callback_uri()).await;
    let app = app(passme_testkit::sqlite().await, &sink, &peer);
    let mut ola = signed_in(&app, &sink, "ola@example.com", 0).await;
    let csrf = ola.token("/account").await;
    let unknown = ola.post("/account/links/nobody/start", &[("csrf", &csrf)]).await;
    assert_eq!(unknown.status.as_u16(), 404);
    assert!(unknown.text().contains("Der findes ingen sådan udbyder"), "{}", unknown.text());
    assert_eq!(ola.get("/link/nobody/callback?state=x&code=y").await.status.as_u16(), 404);
    let no_link = ola.post("/account/links/unlink", &[("csrf", &csrf), ("link", "lnk_nothing")]).await;
    assert_eq!(no_link.status.as_u16(), 404);
    // Without the CSRF token, or with a wrong one, nothing starts.
    assert_eq!(ola.post("/account/links/example/start", &[]).await.status.as_u16(), 400);
    assert_eq!(ola.post("/account/links/example/start", &[("csrf", "forged")]).await.status.as_u16(), 403);
    assert_eq!(count(&app.state.store, "SELECT COUNT(*) FROM link_flows").await, 0);
    // The JSON answer carries the stable code.
    let json = app
        .send(
            axum::http::Request::get("/link/example/callback?code=abc")
                .header("accept", "application/json")
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!((json.status.as_u16(), json.error_code().as_str()), (400, "link_state_missing"));
}

#[tokio::test]
async fn a_link_whose_tokens_are_gone_asks_to_connect_again() {
    let sink = SmtpSink::start();
    let peer = OidcPeer::start(&callback_uri()).await;
    let clock = passme_core::clock::ManualClock::at(passme_core::clock::system().now_ms());
    let (app, link_id) = linked_app(passme_testkit::sqlite().await, &sink, &peer, &clock, "ola-crash").await;
    // As a crash between storing the link and its tokens would leave it.
    app.state.store.delete_tokens(&link_id).await.expect("delete");
    assert_eq!(app.state.linking.access_token(&link_id).await.expect_err("no tokens").code(), "link_needs_consent");
    assert!(app.state.store.link(&link_id).await.expect("link").expect("kept").needs_consent_at.is_some());
}

#[tokio::test]
async fn a_flow_started_on_one_instance_finishes_on_another() {
    let sink = SmtpSink::start();
    let peer = OidcPeer::start(&callback_uri()).await;
    for db in each_engine().await {
        let first = app(db.clone(), &sink, &peer);
        let second = app(db, &sink, &peer);
        let email = format!("ola-{}@example.com", first.db.engine_name());
        let mut on_first = signed_in(&first, &sink, &email, sink.messages().len()).await;
        let url = start_link(&mut on_first).await;
        let back = peer.authorize(&url, "ola-fleet").await;
        // The load balancer sends the callback to the other instance: same browser, same cookies.
        let mut on_second = Browser::new(&second);
        on_second.cookies = on_first.cookies.clone();
        assert_eq!(come_back(&mut on_second, &back).await.header("location"), Some("/account?done=linked"));
        // And the replay, to the first instance, finds the state spent.
        assert_eq!(come_back(&mut on_first, &back).await.status.as_u16(), 400);
    }
}
