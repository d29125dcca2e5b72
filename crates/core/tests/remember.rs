//! "Remember me" on both engines: rotation at every use, the two-tab grace window, theft
//! detection on replay, malformed cookies, and revocation on credential changes.

use std::sync::Arc;

use passme_core::clock::{ManualClock, SharedClock};
use passme_core::identity::accounts::{Accounts, SignUp};
use passme_core::identity::remember::{GRACE_MS, LIFETIME_MS, Remember, Resume};
use passme_testkit::for_each_engine;
use secrecy::{ExposeSecret, SecretString};

use passme_testkit::PASSWORD;

fn s(v: &str) -> SecretString {
    SecretString::from(v.to_string())
}

async fn setup(store: &passme_store::Store) -> (ManualClock, Accounts, Remember, passme_store::AccountId) {
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

#[tokio::test]
async fn inside_the_grace_window_the_old_cookie_works_once_only() {
    for_each_engine(|store| async move {
        let (clock, _, remember, account) = setup(&store).await;
        let shared = remember.start(&account).await.expect("start");
        rotated(remember.resume(&shared).await.expect("resume"));
        clock.advance(GRACE_MS / 2);
        assert!(matches!(remember.resume(&shared).await.expect("resume"), Resume::Resumed { new_cookie: None, .. }), "once");
        for _ in 0..3 {
            assert_eq!(remember.resume(&shared).await.expect("resume"), Resume::Refused, "spent: no further session");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uses_racing_for_one_rotation_sign_in_twice_at_most() {
    for_each_engine(|store| async move {
        let (_, _, remember, account) = setup(&store).await;
        let cookie = remember.start(&account).await.expect("start");
        let mut racing = tokio::task::JoinSet::new();
        for _ in 0..6 {
            let (remember, cookie) = (remember.clone(), cookie.clone());
            racing.spawn(async move { remember.resume(&cookie).await.expect("resume") });
        }
        let outcomes: Vec<Resume> = racing.join_all().await;
        let signed_in = outcomes.iter().filter(|o| matches!(o, Resume::Resumed { .. })).count();
        let rotations = outcomes.iter().filter(|o| matches!(o, Resume::Resumed { new_cookie: Some(_), .. })).count();
        assert_eq!(rotations, 1, "{outcomes:?}");
        assert!(signed_in <= 2, "the rotation plus at most one grace use: {outcomes:?}");
    })
    .await;
}

#[tokio::test]
async fn theft_ends_every_session_of_the_account_including_the_thiefs() {
    for_each_engine(|store| async move {
        let (clock, _, remember, account) = setup(&store).await;
        let shared: SharedClock = Arc::new(clock.clone());
        let sessions = passme_core::identity::sessions::Sessions::new(store.clone(), shared);
        let ip: std::net::IpAddr = "203.0.113.9".parse().expect("ip");
        let stolen = remember.start(&account).await.expect("start");
        // The thief resumes first and holds a session minted from the stolen cookie.
        let thiefs = rotated(remember.resume(&stolen).await.expect("resume"));
        let (thief_session, _) = sessions.issue_with(&account, "thief", ip, true).await.expect("session");
        let (owner_session, _) = sessions.issue(&account, "owner", ip).await.expect("session");
        clock.advance(GRACE_MS + 1);
        // The owner's browser still holds the cookie the thief rotated away.
        assert_eq!(remember.resume(&stolen).await.expect("resume"), Resume::Stolen { account_id: account.clone() });
        assert!(sessions.resolve(&thief_session).await.expect("resolve").is_none(), "the thief's session ended");
        assert!(sessions.resolve(&owner_session).await.expect("resolve").is_none(), "every session ended: the mail says so");
        assert_eq!(remember.resume(&s(&thiefs)).await.expect("resume"), Resume::Invalid, "the series is gone");
    })
    .await;
}
