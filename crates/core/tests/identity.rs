//! Accounts and sessions on both engines, with the attack cases that belong to them.

use passme_policy::proves;
use std::net::IpAddr;
use std::sync::Arc;

use passme_core::clock::{ManualClock, SharedClock};
use passme_core::identity::accounts::{Accounts, SignUp};
use passme_core::identity::sessions::{ABSOLUTE_LIFETIME_MS, IDLE_TIMEOUT_MS, Sessions, session_id};
use passme_store::Store;
use passme_testkit::for_each_engine;
use secrecy::{ExposeSecret, SecretString};

const T0: i64 = 1_790_000_000_000;
const GOOD: &str = "korrekt hest batteri hæfteklamme";

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_string())
}

fn ip() -> IpAddr {
    "203.0.113.77".parse().expect("ip")
}

fn services(store: &Store) -> (ManualClock, Accounts, Sessions) {
    let clock = ManualClock::at(T0);
    let shared: SharedClock = Arc::new(clock.clone());
    (clock, Accounts::new(store.clone(), shared.clone()), Sessions::new(store.clone(), shared))
}

async fn account(accounts: &Accounts, email: &str) -> passme_store::AccountId {
    match accounts.sign_up(email, secret(GOOD)).await.expect("sign up") {
        SignUp::Created { account_id } => account_id,
        SignUp::AlreadyRegistered => panic!("{email} already registered"),
    }
}

#[tokio::test]
async fn sign_up_refuses_weak_passwords_and_one_address_in_two_spellings() {
    proves!("security.passwords");
    for_each_engine(|store| async move {
        let (_, accounts, _) = services(&store);
        account(&accounts, "Ola.Nordmann@Example.com").await;
        let again = accounts.sign_up("ola.nordmann@example.COM", secret(GOOD)).await.expect("answer");
        assert_eq!(again, SignUp::AlreadyRegistered, "case variants are one address");
        let full_width = accounts.sign_up("ｏｌａ.nordmann@example.com", secret(GOOD)).await.expect("answer");
        assert_eq!(full_width, SignUp::AlreadyRegistered, "Unicode compatibility variants are one address");
        for (password, code) in [("password1", "password_weak"), ("kort", "password_too_short")] {
            let err = accounts.sign_up("new@example.com", secret(password)).await.expect_err("refused");
            assert_eq!(err.code(), code);
        }
        let huge = "x".repeat(1024 * 1024);
        assert_eq!(accounts.sign_up("new@example.com", secret(&huge)).await.expect_err("refused").code(), "password_too_long");
        assert_eq!(accounts.sign_up("not an address", secret(GOOD)).await.expect_err("refused").code(), "email_invalid");
        let stored = store.account_by_email_key("ola.nordmann@example.com").await.expect("read").expect("row");
        assert!(stored.password_hash.starts_with("$argon2id$") && !stored.password_hash.contains(GOOD));
    })
    .await;
}

#[tokio::test]
async fn authentication_gives_one_answer_for_every_failure() {
    for_each_engine(|store| async move {
        let (_, accounts, _) = services(&store);
        let id = account(&accounts, "ola@example.com").await;
        assert_eq!(accounts.authenticate("OLA@example.com", secret(GOOD)).await.expect("auth").map(|a| a.id), Some(id.clone()));
        assert!(accounts.authenticate("ola@example.com", secret("wrong password here")).await.expect("auth").is_none());
        assert!(accounts.authenticate("nobody@example.com", secret(GOOD)).await.expect("auth").is_none());
        assert!(accounts.authenticate("ola@example.com", secret(&"x".repeat(1024 * 1024))).await.expect("auth").is_none());
        assert!(accounts.authenticate("ola@example.com", secret("korrekt hest\0batteri")).await.expect("auth").is_none());
        accounts.disable(&id, "staff:1").await.expect("disable");
        assert!(accounts.authenticate("ola@example.com", secret(GOOD)).await.expect("auth").is_none(), "disabled accounts cannot sign in");
    })
    .await;
}

#[tokio::test]
async fn sessions_are_new_at_every_sign_in_and_stored_only_as_hashes() {
    proves!("cookie.__Host-session");
    for_each_engine(|store| async move {
        let (_, accounts, sessions) = services(&store);
        let id = account(&accounts, "ola@example.com").await;
        let (first, _) = sessions.issue(&id, "Firefox", ip()).await.expect("issue");
        let (second, _) = sessions.issue(&id, "Firefox", ip()).await.expect("issue");
        assert_ne!(first.expose_secret(), second.expose_secret(), "a planted or earlier token is never reused");
        assert_eq!(first.expose_secret().len(), 43, "256 random bits, base64url");
        let row = store.session(&session_id(first.expose_secret())).await.expect("read").expect("row");
        assert_eq!(row.ip_prefix, "203.0.113.0/24", "only the truncated address is stored");
        assert!(store.session(first.expose_secret()).await.expect("read").is_none(), "the token itself is not a key");
        assert_eq!(sessions.list(&id).await.expect("list").len(), 2);
    })
    .await;
}

#[tokio::test]
async fn malformed_tokens_resolve_to_nothing() {
    for_each_engine(|store| async move {
        let (_, accounts, sessions) = services(&store);
        let id = account(&accounts, "ola@example.com").await;
        let (token, _) = sessions.issue(&id, "ua", ip()).await.expect("issue");
        let t = token.expose_secret().to_string();
        let stored_id = session_id(&t);
        for bad in [
            String::new(),
            format!("{t}x"),
            t[..42].to_string(),
            format!("{}\0", &t[..42]),
            "a".repeat(8192),
            t.replace('-', "+").replace('_', "/") + "=",
            stored_id,
        ] {
            assert!(sessions.resolve(&secret(&bad)).await.expect("resolve").is_none(), "{bad:?}");
        }
        assert!(sessions.resolve(&token).await.expect("resolve").is_some());
    })
    .await;
}

#[tokio::test]
async fn sessions_expire_when_idle_and_at_their_absolute_lifetime() {
    for_each_engine(|store| async move {
        let (clock, accounts, sessions) = services(&store);
        let id = account(&accounts, "ola@example.com").await;
        let (idle, _) = sessions.issue(&id, "ua", ip()).await.expect("issue");
        clock.advance(IDLE_TIMEOUT_MS + 1);
        assert!(sessions.resolve(&idle).await.expect("resolve").is_none(), "idle too long");

        let (busy, _) = sessions.issue(&id, "ua", ip()).await.expect("issue");
        let step = IDLE_TIMEOUT_MS / 2;
        let mut elapsed = 0;
        while elapsed + step < ABSOLUTE_LIFETIME_MS {
            clock.advance(step);
            elapsed += step;
            assert!(sessions.resolve(&busy).await.expect("resolve").is_some(), "activity keeps it alive at {elapsed} ms");
        }
        clock.advance(ABSOLUTE_LIFETIME_MS - elapsed);
        assert!(sessions.resolve(&busy).await.expect("resolve").is_none(), "never past the absolute lifetime");
    })
    .await;
}

#[tokio::test]
async fn tokens_are_dead_after_sign_out_password_change_and_disabling() {
    for_each_engine(|store| async move {
        let (_, accounts, sessions) = services(&store);
        let id = account(&accounts, "ola@example.com").await;
        let (out, _) = sessions.issue(&id, "ua", ip()).await.expect("issue");
        assert!(sessions.end(&out).await.expect("end"));
        assert!(sessions.resolve(&out).await.expect("resolve").is_none(), "replayed after sign-out");

        let (here, current) = sessions.issue(&id, "laptop", ip()).await.expect("issue");
        let (elsewhere, _) = sessions.issue(&id, "phone", ip()).await.expect("issue");
        let wrong = accounts.change_password(&id, secret("not my password"), secret("en helt ny og lang sætning"), Some(&current.id)).await;
        assert_eq!(wrong.expect_err("refused").code(), "password_incorrect");
        let ended =
            accounts.change_password(&id, secret(GOOD), secret("en helt ny og lang sætning"), Some(&current.id)).await.expect("change");
        assert_eq!(ended, 1);
        assert!(sessions.resolve(&elsewhere).await.expect("resolve").is_none(), "other sessions end at a password change");
        assert!(sessions.resolve(&here).await.expect("resolve").is_some(), "the session that changed it continues");
        assert!(accounts.authenticate("ola@example.com", secret(GOOD)).await.expect("auth").is_none(), "the old password is gone");

        accounts.disable(&id, "staff:1").await.expect("disable");
        assert!(sessions.resolve(&here).await.expect("resolve").is_none(), "disabling ends every session");
    })
    .await;
}

#[tokio::test]
async fn one_account_cannot_revoke_another_accounts_session() {
    for_each_engine(|store| async move {
        let (_, accounts, sessions) = services(&store);
        let ola = account(&accounts, "ola@example.com").await;
        let kari = account(&accounts, "kari@example.com").await;
        let (kari_token, kari_session) = sessions.issue(&kari, "ua", ip()).await.expect("issue");
        assert!(!sessions.revoke(&ola, &kari_session.id).await.expect("revoke"), "another account's session id is refused");
        assert!(sessions.resolve(&kari_token).await.expect("resolve").is_some());
        assert!(sessions.revoke(&kari, &kari_session.id).await.expect("revoke"));
        assert!(sessions.resolve(&kari_token).await.expect("resolve").is_none());
    })
    .await;
}

#[tokio::test]
async fn a_reset_link_works_once_within_an_hour_and_ends_every_session() {
    use passme_core::identity::accounts::RESET_TTL_MS;
    for_each_engine(|store| async move {
        let (clock, accounts, sessions) = services(&store);
        let id = account(&accounts, "ola@example.com").await;
        let (signed_in, _) = sessions.issue(&id, "ua", ip()).await.expect("issue");
        assert!(accounts.request_reset("nobody@example.com").await.expect("request").is_none());
        let (address, token) = accounts.request_reset("OLA@example.com").await.expect("request").expect("known address");
        assert_eq!(address, "ola@example.com");
        let weak = accounts.reset_password(&token, secret("password")).await.expect_err("weak");
        assert_eq!(weak.code(), "password_weak");
        assert!(
            accounts.reset_password(&token, secret("et nyt og langt kodeord her")).await.expect("reset"),
            "a weak attempt did not use up the link"
        );
        assert!(!accounts.reset_password(&token, secret("endnu et nyt langt kodeord")).await.expect("reset"), "single use");
        assert!(sessions.resolve(&signed_in).await.expect("resolve").is_none(), "every session ends");
        assert!(accounts.authenticate("ola@example.com", secret("et nyt og langt kodeord her")).await.expect("auth").is_some());
        let (_, late) = accounts.request_reset("ola@example.com").await.expect("request").expect("known");
        clock.advance(RESET_TTL_MS + 1);
        assert!(!accounts.reset_password(&late, secret("et tredje langt kodeord")).await.expect("reset"), "expired after an hour");
        let stored = store.account(&id).await.expect("read").expect("row");
        assert!(!stored.password_hash.contains(late.expose_secret()));
    })
    .await;
}

#[tokio::test]
async fn ended_sessions_idle_series_used_links_and_old_counters_go_after_their_declared_periods() {
    proves!("retention.account.sessions", "retention.account.remember_me", "retention.account.tokens", "retention.fraud.signals");
    for_each_engine(|store| async move {
        let (clock, accounts, sessions) = services(&store);
        let shared: SharedClock = Arc::new(clock.clone());
        let id = account(&accounts, "ola@example.com").await;
        let (ended, _) = sessions.issue(&id, "ua", ip()).await.expect("issue");
        sessions.issue(&id, "ua", ip()).await.expect("a session that will simply expire");
        sessions.end(&ended).await.expect("end");
        passme_core::identity::remember::Remember::new(store.clone(), shared.clone()).start(&id).await.expect("a series that will go idle");
        accounts.request_reset("ola@example.com").await.expect("reset").expect("token");
        let throttle = passme_core::identity::throttle::LoginThrottle::new(store.clone(), shared.clone(), &[1; 32]);
        throttle.failed("ola@example.com", ip()).await.expect("count");
        let housekeeping =
            passme_core::housekeeping::Housekeeping::new(store.clone(), shared.clone(), passme_policy::builtin()).expect("rules");

        let run = |label: &'static str| {
            let housekeeping = housekeeping.clone();
            async move { housekeeping.run().await.unwrap_or_else(|e| panic!("{label}: {e}")) }
        };
        let removed = |outcomes: &[passme_core::housekeeping::RuleOutcome], rule: &str| {
            outcomes.iter().find(|o| o.rule == rule).map(|o| o.removed).unwrap_or_else(|| panic!("{rule} did not run"))
        };
        let first = run("first").await;
        for rule in ["retention.account.sessions", "retention.account.remember_me", "retention.account.tokens", "retention.fraud.signals"] {
            assert_eq!(removed(&first, rule), 0, "{rule}: nothing is past its period yet");
        }
        clock.advance(31 * 86_400_000);
        let later = run("later").await;
        assert_eq!(removed(&later, "retention.account.sessions"), 2, "the ended session and the live one, which expired after 12 hours");
        assert_eq!(removed(&later, "retention.account.remember_me"), 1);
        assert_eq!(removed(&later, "retention.account.tokens"), 1);
        assert_eq!(removed(&later, "retention.fraud.signals"), 0, "counters are kept 90 days");
        clock.advance(60 * 86_400_000);
        assert_eq!(removed(&run("much later").await, "retention.fraud.signals"), 3);
    })
    .await;
}

#[tokio::test]
async fn a_closed_account_is_erased_on_the_declared_schedule() {
    proves!(
        "retention.account.email",
        "retention.account.password_hash",
        "retention.account.profile",
        "retention.account.staff_roles",
        "retention.account.api_tokens"
    );
    for_each_engine(|store| async move {
        let (clock, accounts, sessions) = services(&store);
        let shared: SharedClock = Arc::new(clock.clone());
        let id = account(&accounts, "ola@example.com").await;
        let (signed_in, _) = sessions.issue(&id, "ua", ip()).await.expect("issue");
        store.set_account_prefs(&id, "dark", "en", "large", 0).await.expect("prefs");
        passme_core::identity::staff::Staff::new(store.clone(), shared.clone())
            .grant(&id, passme_core::identity::staff::Role::Support, "test")
            .await
            .expect("grant");
        let token = passme_core::identity::api_tokens::ApiTokens::new(store.clone(), shared.clone())
            .create(&id, "app", &["me:read"])
            .await
            .expect("token");

        assert_eq!(accounts.close(&id, secret("wrong password here")).await.expect_err("re-authentication").code(), "password_incorrect");
        accounts.close(&id, secret(GOOD)).await.expect("close");
        assert!(sessions.resolve(&signed_in).await.expect("resolve").is_none(), "sessions end at once");
        assert!(accounts.authenticate("ola@example.com", secret(GOOD)).await.expect("auth").is_none(), "no sign-in to a closed account");
        let tokens = passme_core::identity::api_tokens::ApiTokens::new(store.clone(), shared.clone());
        assert!(tokens.authenticate(&token).await.expect("auth").is_none(), "access tokens end at once");

        let housekeeping =
            passme_core::housekeeping::Housekeeping::new(store.clone(), shared.clone(), passme_policy::builtin()).expect("rules");
        housekeeping.run().await.expect("run");
        assert!(store.account(&id).await.expect("read").is_some_and(|a| !a.password_hash.is_empty()), "nothing erased on day 0");
        clock.advance(86_400_000 + 1);
        housekeeping.run().await.expect("run");
        let after_a_day = store.account(&id).await.expect("read").expect("still there in the grace period");
        assert!(after_a_day.password_hash.is_empty(), "the password hash goes after a day");
        assert_eq!(after_a_day.email, "ola@example.com", "the address stays for the 30-day grace period");
        clock.advance(30 * 86_400_000);
        housekeeping.run().await.expect("run");
        assert!(store.account(&id).await.expect("read").is_none(), "the account is gone after 30 days");
        assert!(store.roles_of(&id).await.expect("roles").is_empty());
        assert!(store.api_tokens_of(&id).await.expect("tokens").is_empty());
        assert_eq!(store.account_prefs(&id).await.expect("prefs"), (None, None, None));
        assert!(
            matches!(accounts.sign_up("ola@example.com", secret(GOOD)).await.expect("sign up"), SignUp::Created { .. }),
            "the address is free again"
        );
    })
    .await;
}
