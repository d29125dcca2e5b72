//! Archives isolated per person, on both engines: records are encrypted with each person's key
//! and labelled without their id; erasure destroys the key; only a legal-hold export and the
//! clean-up open an archive, and every other attempt is refused and audited.

use std::sync::Arc;

use passme_core::clock::{ManualClock, SharedClock};
use passme_core::identity::accounts::{Accounts, SignUp};
use passme_core::jobs::{Handlers, JobQueue, Worker};
use passme_core::rights::archive::Archives;
use passme_core::rights::erasure::Erasures;
use passme_core::rights::holds::{HoldScope, LegalHolds};
use passme_policy::proves;
use passme_store::{AccountId, Store};
use passme_testkit::for_each_engine;
use secrecy::SecretString;

const T0: i64 = 1_790_000_000_000;
const DAY: i64 = 86_400_000;
const MASTER: [u8; 32] = [7; 32];

async fn person(store: &Store, clock: &SharedClock, email: &str) -> AccountId {
    let accounts = Accounts::new(store.clone(), clock.clone());
    let SignUp::Created { account_id } =
        accounts.sign_up(email, SecretString::from("correct horse battery staple")).await.expect("sign up")
    else {
        panic!("new")
    };
    account_id
}

/// A manual clock at T0 and archives in a fresh folder (kept alive with the world).
struct World {
    manual: ManualClock,
    clock: SharedClock,
    policy: &'static passme_policy::Policy,
    dir: tempfile::TempDir,
    archives: Archives,
}

impl World {
    fn new(store: &Store) -> World {
        let manual = ManualClock::at(T0);
        let clock: SharedClock = Arc::new(manual.clone());
        let policy = passme_policy::builtin();
        let dir = tempfile::tempdir().expect("dir");
        let archives = Archives::new(store.clone(), clock.clone(), policy, &MASTER, dir.path().to_path_buf()).expect("archives");
        World { manual, clock, policy, dir, archives }
    }
}

async fn audited(store: &Store, action: &str) -> usize {
    store.column_text("audit_log", "action").await.expect("audit").iter().filter(|a| *a == action).count()
}

#[tokio::test]
async fn archives_isolate_each_person_and_open_only_for_a_hold_or_the_clean_up() {
    proves!("retention.rights.backups");
    for_each_engine(|store| async move {
        let World { manual, clock, policy, dir: _dir, archives } = World::new(&store);
        let ola = person(&store, &clock, "ola@example.com").await;
        let kari = person(&store, &clock, "kari@example.com").await;

        let created = archives.create("operator").await.expect("create");
        assert_eq!(created.persons, 2);
        assert_eq!(created.expires_at, T0 + 35 * DAY, "the declared clean-up period");
        let bytes = std::fs::read(&created.path).expect("file");
        let text = String::from_utf8_lossy(&bytes);
        for secret in ["ola@example.com", "kari@example.com", ola.as_str(), kari.as_str()] {
            assert!(!text.contains(secret), "{secret} in the archive's clear text");
        }

        // Without a hold on the person, opening is refused and audited.
        let refused = archives.open_for_hold(&created.id, "hold_forged", "account:snoop").await.expect_err("refused");
        assert_eq!(refused.code(), "forbidden");
        let holds = LegalHolds::new(store.clone(), clock.clone());
        let category =
            holds.place(policy, HoldScope::Category("payment".into()), "Tax audit", T0 + 90 * DAY, "officer").await.expect("hold");
        assert!(archives.open_for_hold(&created.id, &category, "officer").await.is_err(), "a category hold opens nobody's record");
        assert_eq!(audited(&store, "archive.open_refused").await, 2);

        let hold = holds.place(policy, HoldScope::Person(kari.clone()), "Court order B-12", T0 + 90 * DAY, "officer").await.expect("hold");
        let record = archives.open_for_hold(&created.id, &hold, "officer").await.expect("open").expect("kari's record");
        assert!(record.contains("kari@example.com") && !record.contains("ola@example.com"), "{record}");
        assert_eq!(audited(&store, "archive.opened").await, 1);
        assert_eq!(archives.open_for_hold("arc_nope", &hold, "officer").await.expect_err("unknown").code(), "archive_unknown");

        // Erasing Ola destroys his key: his archived record is isolated.
        let queue = JobQueue::new(store.clone(), clock.clone(), 3);
        let erasures = Erasures::new(store.clone(), clock.clone(), Arc::new(policy.clone()));
        erasures.request(&ola, &queue).await.expect("erase");
        let mut handlers = Handlers::default();
        erasures.clone().register(&mut handlers);
        let worker = Worker::new(store.clone(), clock.clone(), handlers);
        while worker.run_once().await.expect("pass").claimed() > 0 {}
        assert!(store.person_key(&ola).await.expect("read").is_none(), "the key is destroyed");

        // Not expired: the clean-up leaves it. Expired: it counts and removes it, once.
        assert!(archives.clean("cleanup").await.expect("clean").is_empty());
        assert!(created.path.exists());
        manual.advance(35 * DAY);
        let cleaned = archives.clean("cleanup").await.expect("clean");
        assert_eq!(cleaned.len(), 1);
        assert_eq!((cleaned[0].isolated, cleaned[0].readable), (1, 1));
        assert!(!created.path.exists());
        assert!(archives.clean("cleanup").await.expect("again").is_empty(), "cleaned once");
        assert_eq!(archives.open_for_hold(&created.id, &hold, "officer").await.expect_err("gone").code(), "archive_unknown");
        assert_eq!(audited(&store, "archive.cleaned").await, 1);
    })
    .await;
}

#[tokio::test]
async fn a_wrong_master_key_opens_nothing_and_a_closed_accounts_key_goes_with_retention() {
    proves!("retention.rights.backups");
    for_each_engine(|store| async move {
        let World { manual, clock, policy, dir, archives } = World::new(&store);
        let kari = person(&store, &clock, "kari@example.com").await;
        let created = archives.create("operator").await.expect("create");
        let hold = LegalHolds::new(store.clone(), clock.clone())
            .place(policy, HoldScope::Person(kari.clone()), "Court order", T0 + 90 * DAY, "officer")
            .await
            .expect("hold");
        let thief = Archives::new(store.clone(), clock.clone(), policy, &[8; 32], dir.path().to_path_buf()).expect("archives");
        let opened = thief.open_for_hold(&created.id, &hold, "thief").await;
        assert!(!matches!(opened, Ok(Some(_))), "another master key finds and opens nothing: {opened:?}");

        // Closing the account: an hour later the retention engine destroys the key.
        store.close_account(&kari, T0).await.expect("close");
        LegalHolds::new(store.clone(), clock.clone()).lift(&hold, "officer").await.expect("lift");
        manual.advance(2 * 3_600_000);
        let housekeeping = passme_core::housekeeping::Housekeeping::new(store.clone(), clock.clone(), policy).expect("housekeeping");
        let outcomes = housekeeping.run().await.expect("run");
        assert!(outcomes.iter().any(|o| o.rule == "retention.rights.backups" && o.removed == 1), "{outcomes:?}");
        assert!(store.person_key(&kari).await.expect("read").is_none());
    })
    .await;
}
