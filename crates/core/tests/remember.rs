//! "Remember me" on both engines: rotation at every use, the two-tab grace window, theft
//! detection on replay, malformed cookies, and revocation on credential changes.

use std::sync::Arc;

use passme_core::clock::{ManualClock, SharedClock};
use passme_core::identity::accounts::{Accounts, SignUp};
use passme_core::identity::remember::{GRACE_MS, LIFETIME_MS, Remember, Resume};
use passme_testkit::for_each_engine;
use secrecy::{ExposeSecret, SecretString};

const PASSWORD: &str = "korrekt hest batteri hæfteklamme";

fn s(v: &str) -> SecretString {
    SecretString::from(v.to_string())
}

async fn setup(store: &passme_store::Store) -> (ManualClock, Accounts, Remember, String) {
    let clock = ManualClock::at(1_790_000_000_000);
    let shared: SharedClock = Arc::new(clock.clone());
    let accounts = Accounts::new(store.clone(), shared.clone());
    let SignUp::Created { account_id } = accounts.sign_up("ola@example.com", s(PASSWORD)).await.expect("sign up") else { panic!("new") };
    (clock, accounts, Remember::new(store.clone(), shared), account_id)
}

fn rotated(resume: Resume) -> String {
    match resume {
        Resume::Resumed { new_cookie: Some(c), .. } => c,
        other => panic!("expected a rotation, got {other:?}"),
    }
}

#[tokio::test]
async fn every_use_rotates_and_a_replayed_old_cookie_revokes_the_series() {
    for_each_engine(|store| async move {
        let (clock, _, remember, account) = setup(&store).await;
        let first = remember.start(&account).await.expect("start");
        let second = rotated(remember.resume(&first).await.expect("resume"));
        assert_ne!(second.as_str(), first.expose_secret());
        assert_eq!(&second[..22], &first.expose_secret()[..22], "the selector stays, the validator rotates");
        let third = rotated(remember.resume(&s(&second)).await.expect("resume"));
        clock.advance(GRACE_MS + 1);
        assert_eq!(
            remember.resume(&first).await.expect("resume"),
            Resume::Stolen { account_id: account.clone() },
            "a replay after rotation is theft"
        );
        assert_eq!(
            remember.resume(&s(&third)).await.expect("resume"),
            Resume::Invalid,
            "the whole series is gone, the thief's and the owner's"
        );
    })
    .await;
}

#[tokio::test]
async fn two_tabs_rotating_within_the_grace_window_both_get_in() {
    for_each_engine(|store| async move {
        let (clock, _, remember, account) = setup(&store).await;
        let shared = remember.start(&account).await.expect("start");
        let tab_one = rotated(remember.resume(&shared).await.expect("resume"));
        clock.advance(GRACE_MS / 2);
        assert_eq!(
            remember.resume(&shared).await.expect("resume"),
            Resume::Resumed { account_id: account.clone(), new_cookie: None },
            "the second tab, a moment later"
        );
        assert!(matches!(remember.resume(&s(&tab_one)).await.expect("resume"), Resume::Resumed { .. }), "the series is intact");
    })
    .await;
}

#[tokio::test]
async fn malformed_and_expired_cookies_are_ignored_without_harm() {
    for_each_engine(|store| async move {
        let (clock, _, remember, account) = setup(&store).await;
        let good = remember.start(&account).await.expect("start");
        let g = good.expose_secret().to_string();
        for bad in [
            String::new(),
            g.replace('.', ""),
            format!("{g}.x"),
            format!("{}.{}", &g[..22], "A".repeat(43)).replace('A', "\0"),
            "x".repeat(8192),
            format!("{}=.{}", &g[..21], &g[23..]),
        ] {
            assert_eq!(remember.resume(&s(&bad)).await.expect("resume"), Resume::Invalid, "{bad:.40?}");
        }
        assert!(
            matches!(remember.resume(&good).await.expect("resume"), Resume::Resumed { .. }),
            "malformed attempts did not revoke the series"
        );
        let later = remember.start(&account).await.expect("start");
        clock.advance(LIFETIME_MS);
        assert_eq!(remember.resume(&later).await.expect("resume"), Resume::Invalid, "at most 30 days");
    })
    .await;
}

#[tokio::test]
async fn a_password_change_ends_every_series() {
    for_each_engine(|store| async move {
        let (_, accounts, remember, account) = setup(&store).await;
        let laptop = remember.start(&account).await.expect("start");
        let phone = remember.start(&account).await.expect("start");
        accounts.change_password(&account, s(PASSWORD), s("et nyt og langt kodeord her"), None).await.expect("change");
        assert_eq!(remember.resume(&laptop).await.expect("resume"), Resume::Invalid);
        assert_eq!(remember.resume(&phone).await.expect("resume"), Resume::Invalid);
    })
    .await;
}
