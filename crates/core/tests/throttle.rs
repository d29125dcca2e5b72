//! Sign-in throttling on both engines: guessing, credential stuffing (many users from one IP), one
//! user from many IPs, and the real user never locked out from where they usually sign in.

use std::net::IpAddr;
use std::sync::Arc;

use passme_core::clock::{ManualClock, SharedClock};
use passme_core::identity::accounts::{Accounts, SignUp};
use passme_core::identity::email;
use passme_core::identity::sessions::Sessions;
use passme_core::identity::throttle::{LoginThrottle, Verdict};
use passme_policy::proves;
use passme_testkit::for_each_engine;
use secrecy::SecretString;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn setup(store: &passme_store::Store) -> (ManualClock, SharedClock, LoginThrottle) {
    let clock = ManualClock::at(1_790_000_000_000);
    let shared: SharedClock = Arc::new(clock.clone());
    (clock.clone(), shared.clone(), LoginThrottle::new(store.clone(), shared, &[9; 32]))
}

#[tokio::test]
async fn guessing_one_address_gets_growing_delays_and_variants_share_the_counter() {
    proves!("security.rate_limits");
    for_each_engine(|store| async move {
        let (clock, _, throttle) = setup(&store);
        let attacker = ip("203.0.113.9");
        let variants = ["Ola@Example.com", "ola@example.com", "ＯＬＡ@example.com", " ola@EXAMPLE.com ", "ola@example.com"];
        for v in variants {
            assert_eq!(throttle.check(&email::key(v), attacker).await.expect("check"), Verdict::Allowed);
            throttle.failed(&email::key(v), attacker).await.expect("fail");
        }
        let key = email::key("ola@example.com");
        assert_eq!(throttle.check(&key, attacker).await.expect("check"), Verdict::Allowed, "five failures are free");
        throttle.failed(&key, attacker).await.expect("fail");
        assert_eq!(throttle.check(&key, attacker).await.expect("check"), Verdict::Throttled { retry_after_secs: 2 });
        clock.advance(2_000);
        assert_eq!(throttle.check(&key, attacker).await.expect("check"), Verdict::Allowed);
        throttle.failed(&key, attacker).await.expect("fail");
        assert_eq!(throttle.check(&key, attacker).await.expect("check"), Verdict::Throttled { retry_after_secs: 4 }, "the delay doubles");
        assert_eq!(
            throttle.check(&key, ip("198.51.100.1")).await.expect("check"),
            Verdict::Allowed,
            "the real user elsewhere is unaffected"
        );
    })
    .await;
}

#[tokio::test]
async fn many_users_from_one_address_throttle_that_address() {
    proves!("security.rate_limits");
    for_each_engine(|store| async move {
        let (_, _, throttle) = setup(&store);
        let stuffer = ip("203.0.113.66");
        for i in 0..21 {
            throttle.failed(&email::key(&format!("user{i}@example.com")), stuffer).await.expect("fail");
        }
        assert!(
            matches!(throttle.check(&email::key("fresh@example.com"), stuffer).await.expect("check"), Verdict::Throttled { .. }),
            "a new address from the same IP"
        );
        assert_eq!(
            throttle.check(&email::key("fresh@example.com"), ip("203.0.113.67")).await.expect("check"),
            Verdict::Allowed,
            "other IPs unaffected"
        );
    })
    .await;
}

#[tokio::test]
async fn one_user_from_many_addresses_cannot_lock_the_user_out_of_their_own_network() {
    proves!("security.rate_limits");
    for_each_engine(|store| async move {
        let (_, shared, throttle) = setup(&store);
        let accounts = Accounts::new(store.clone(), shared.clone());
        let SignUp::Created { account_id } =
            accounts.sign_up("ola@example.com", SecretString::from(passme_testkit::PASSWORD)).await.expect("sign up")
        else {
            panic!("new account");
        };
        let home = ip("192.0.2.44");
        Sessions::new(store.clone(), shared).issue(&account_id, "Firefox", home).await.expect("an earlier sign-in from home");
        let key = email::key("ola@example.com");
        for i in 0..51u8 {
            throttle.failed(&key, ip(&format!("198.51.{i}.7"))).await.expect("fail");
        }
        assert!(
            matches!(throttle.check(&key, ip("100.64.0.1")).await.expect("check"), Verdict::Throttled { .. }),
            "a new network is slowed"
        );
        assert_eq!(throttle.check(&key, home).await.expect("check"), Verdict::Allowed, "the victim's own network still gets in");
        let unknown = email::key("nobody@example.com");
        for i in 0..51u8 {
            throttle.failed(&unknown, ip(&format!("198.51.{i}.8"))).await.expect("fail");
        }
        assert!(
            matches!(throttle.check(&unknown, ip("100.64.0.2")).await.expect("check"), Verdict::Throttled { .. }),
            "unknown addresses are throttled alike"
        );
    })
    .await;
}

#[tokio::test]
async fn the_table_holds_no_address() {
    for_each_engine(|store| async move {
        let (_, _, throttle) = setup(&store);
        throttle.failed(&email::key("ola@example.com"), ip("203.0.113.9")).await.expect("fail");
        let readable = store
            .execute_script("DELETE FROM throttle WHERE key LIKE '%ola%' OR key LIKE '%example%' OR key LIKE '%203.0.113%'")
            .await
            .expect("query");
        assert_eq!(readable, 0, "no key holds the address or the IP");
        let hashed = store.execute_script("DELETE FROM throttle WHERE length(key) = 64").await.expect("query");
        assert_eq!(hashed, 3, "one HMAC-SHA256 key per layer");
    })
    .await;
}
