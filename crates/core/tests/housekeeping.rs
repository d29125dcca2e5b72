//! The retention registry: every declared rule of an implemented capability has an executor that
//! implements its trigger and action, and a rule without one stops housekeeping instead of
//! silently keeping the data.

use std::sync::Arc;

use passme_core::clock::{ManualClock, SharedClock};
use passme_core::housekeeping::{BATCH, EXECUTORS, Housekeeping, RuleReport, RunOptions, RunReport, unexecutable};
use passme_core::identity::accounts::{Accounts, SignUp};
use passme_core::is_implemented;
use passme_core::rights::holds::{HoldScope, LegalHolds};
use passme_policy::{Policy, Trigger};
use passme_store::AccountId;
use passme_testkit::{for_each_engine, sqlite};
use secrecy::SecretString;

fn builtin() -> Policy {
    passme_policy::builtin().clone()
}

#[test]
fn every_rule_of_an_implemented_capability_has_an_executor_that_does_what_it_declares() {
    let policy = builtin();
    assert_eq!(unexecutable(&policy, &is_implemented), vec![], "rules that would keep data silently");
    for executor in EXECUTORS {
        let rule = policy.retention.iter().find(|r| r.field == executor.field);
        assert!(rule.is_some(), "an executor for {}, which no rule declares", executor.field);
    }
}

#[tokio::test]
async fn a_declared_field_without_an_executor_stops_housekeeping() {
    let db = sqlite().await;
    let clock: SharedClock = Arc::new(ManualClock::at(1_790_000_000_000));
    let mut policy = builtin();
    let mut orphan = policy.retention.iter().find(|r| r.field == "account.email").expect("a rule").clone();
    orphan.id = "account.nickname.retention".into();
    orphan.field = "account.nickname".into();
    policy.retention.push(orphan);
    let problems = unexecutable(&policy, &is_implemented);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].problem.contains("no executor for account.nickname"), "{problems:?}");
    let refused = Housekeeping::new(db.store.clone(), clock.clone(), &policy).expect_err("refused");
    assert!(refused.to_string().contains("account.nickname"), "{refused}");

    // An executor that implements another trigger than the one declared is refused too.
    let mut policy = builtin();
    let sessions = policy.retention.iter_mut().find(|r| r.field == "account.sessions").expect("a rule");
    sessions.trigger = Trigger::Collected;
    let problems = unexecutable(&policy, &is_implemented);
    assert!(problems.len() == 1 && problems[0].problem.contains("SessionEnded"), "{problems:?}");
    assert!(Housekeeping::new(db.store.clone(), clock, &policy).is_err());
}

const T0: i64 = 1_790_000_000_000;
const DAY: i64 = 86_400_000;

struct Sweep {
    clock: ManualClock,
    store: passme_store::Store,
    housekeeping: Housekeeping,
    holds: LegalHolds,
}

impl Sweep {
    fn new(store: passme_store::Store) -> Sweep {
        let clock = ManualClock::at(T0);
        let shared: SharedClock = Arc::new(clock.clone());
        let housekeeping = Housekeeping::new(store.clone(), shared.clone(), passme_policy::builtin()).expect("housekeeping");
        let holds = LegalHolds::new(store.clone(), shared);
        Sweep { clock, store, housekeeping, holds }
    }

    async fn run(&self, dry_run: bool, category: Option<&str>) -> RunReport {
        let options = RunOptions { dry_run, category: category.map(str::to_string), source: "test".into() };
        self.housekeeping.run_with(&options, &|_, _, _| {}).await.expect("run")
    }

    async fn throttle_count(&self) -> i64 {
        self.store.column_text("throttle", "key").await.expect("count").len() as i64
    }

    /// `n` fraud signals from long ago and one from now.
    async fn throttle_rows(&self, n: i64) {
        self.store
            .execute_script(&format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n}) \
                 INSERT INTO throttle (key, failures, window_start, blocked_until) SELECT 'old' || i, 1, 0, 0 FROM n"
            ))
            .await
            .expect("old rows");
        self.store
            .execute_script(&format!("INSERT INTO throttle (key, failures, window_start, blocked_until) VALUES ('fresh', 1, {T0}, 0)"))
            .await
            .expect("fresh row");
    }

    /// An account closed long ago.
    async fn closed_account(&self, email: &str) -> AccountId {
        let accounts = Accounts::new(self.store.clone(), Arc::new(self.clock.clone()));
        let SignUp::Created { account_id } =
            accounts.sign_up(email, SecretString::from("correct horse battery staple")).await.expect("sign up")
        else {
            panic!("new")
        };
        self.store.close_account(&account_id, T0 - 400 * DAY).await.expect("close");
        account_id
    }
}

fn line<'a>(report: &'a RunReport, rule: &str) -> &'a RuleReport {
    report.rules.iter().find(|r| r.rule == rule).unwrap_or_else(|| panic!("{rule} in {:?}", report.rules))
}

#[tokio::test]
async fn a_dry_run_counts_and_a_run_removes_in_batches_and_both_are_reported() {
    for_each_engine(|store| async move {
        let s = Sweep::new(store);
        let old = 2 * BATCH + 1;
        s.throttle_rows(old).await;

        let dry = s.run(true, None).await;
        let signals = line(&dry, "retention.fraud.signals");
        assert_eq!((signals.examined, signals.changed), (old, 0), "{signals:?}");
        assert_eq!(s.throttle_count().await, old + 1, "a dry run changes nothing");

        let mut seen = Vec::new();
        let progress = std::sync::Mutex::new(&mut seen);
        let options = RunOptions { source: "test".into(), ..RunOptions::default() };
        let real = s
            .housekeeping
            .run_with(&options, &|rule, changed, due| {
                if rule == "retention.fraud.signals" {
                    progress.lock().expect("lock").push((changed, due));
                }
            })
            .await
            .expect("run");
        let signals = line(&real, "retention.fraud.signals");
        assert_eq!((signals.examined, signals.changed), (old, old as u64));
        assert_eq!(s.throttle_count().await, 1, "the fresh row stays");
        // Three batches (5000, 5000, 1), each reported as it commits.
        let changed: Vec<u64> = seen.iter().map(|(c, _)| *c).collect();
        assert_eq!(changed, [0, BATCH as u64, 2 * BATCH as u64, old as u64]);

        let reports = s.housekeeping.reports(10).await.expect("reports");
        assert_eq!(reports.len(), 2);
        assert!(reports.iter().all(|r| r.finished_at.is_some()));
        assert_eq!(reports.iter().filter(|r| r.dry_run).count(), 1);
        assert!(reports.iter().any(|r| r == &real), "the report as returned is the one kept");

        // Idempotent: the next run finds nothing due.
        let again = s.run(false, None).await;
        assert_eq!(line(&again, "retention.fraud.signals").examined, 0);
    })
    .await;
}

#[tokio::test]
async fn a_run_killed_between_batches_is_finished_by_the_next_with_the_same_result() {
    for_each_engine(|store| async move {
        let s = Sweep::new(store.clone());
        s.throttle_rows(BATCH + 10).await;
        let step = passme_core::housekeeping::executor_of("fraud.signals").expect("executor");
        let passme_core::housekeeping::Work::Steps { steps, .. } = step.work else { panic!("steps") };
        // The first batch committed, then the process died.
        let cutoff = T0 - 90 * DAY;
        assert_eq!(store.retention_apply(&steps[0], cutoff, T0, BATCH).await.expect("batch"), BATCH as u64);
        let finished = s.run(false, None).await;
        assert_eq!(line(&finished, "retention.fraud.signals").changed, 10);
        assert_eq!(s.throttle_count().await, 1);
    })
    .await;
}

#[tokio::test]
async fn a_person_under_a_legal_hold_is_kept_past_retention_and_a_held_category_is_skipped() {
    for_each_engine(|store| async move {
        let s = Sweep::new(store.clone());
        let policy = passme_policy::builtin();
        let held = s.closed_account("held@example.com").await;
        let gone = s.closed_account("gone@example.com").await;
        s.throttle_rows(3).await;
        s.holds
            .place(policy, HoldScope::Person(held.clone()), "Court order B-12/2026", T0 + 30 * DAY, "account:officer")
            .await
            .expect("hold");
        s.holds
            .place(policy, HoldScope::Category("fraud".into()), "Police inquiry 2026-4", T0 + 30 * DAY, "account:officer")
            .await
            .expect("hold");

        let report = s.run(false, None).await;
        assert!(store.account(&held).await.expect("read").is_some(), "held past its 30 days");
        assert!(store.account(&gone).await.expect("read").is_none());
        assert_eq!(line(&report, "retention.account.email").changed, 1);
        let signals = line(&report, "retention.fraud.signals");
        assert!(signals.skipped.as_deref().is_some_and(|s| s.starts_with("legal hold on fraud")), "{signals:?}");
        assert_eq!(s.throttle_count().await, 4, "the held category is untouched");

        // Holds end by themselves: a month later both go.
        s.clock.advance(31 * DAY);
        let report = s.run(false, None).await;
        assert!(store.account(&held).await.expect("read").is_none());
        assert_eq!(line(&report, "retention.fraud.signals").changed, 3);
    })
    .await;
}

#[tokio::test]
async fn a_category_filter_runs_only_that_category() {
    for_each_engine(|store| async move {
        let s = Sweep::new(store.clone());
        let closed = s.closed_account("closed@example.com").await;
        s.throttle_rows(2).await;
        let report = s.run(false, Some("fraud")).await;
        assert!(!report.rules.is_empty() && report.rules.iter().all(|r| r.category == "fraud"), "{:?}", report.rules);
        assert_eq!(s.throttle_count().await, 1);
        assert!(store.account(&closed).await.expect("read").is_some(), "the account category was not asked for");
    })
    .await;
}

#[tokio::test]
async fn a_rule_whose_table_is_missing_is_skipped_and_reported_while_the_rest_run() {
    for_each_engine(|store| async move {
        let s = Sweep::new(store.clone());
        let closed = s.closed_account("closed@example.com").await;
        store.execute_script("DROP TABLE throttle").await.expect("drop");
        let report = s.run(false, None).await;
        let signals = line(&report, "retention.fraud.signals");
        assert_eq!(signals.skipped.as_deref(), Some("table throttle is not in the database"));
        assert!(store.account(&closed).await.expect("read").is_none(), "the other rules ran");
    })
    .await;
}

#[tokio::test]
async fn a_clock_moved_backwards_removes_nothing_that_is_not_due() {
    for_each_engine(|store| async move {
        let s = Sweep::new(store.clone());
        s.throttle_rows(2).await;
        store
            .execute_script(&format!(
                "INSERT INTO throttle (key, failures, window_start, blocked_until) VALUES ('recent', 1, {}, 0)",
                T0 - 30 * DAY
            ))
            .await
            .expect("row");
        s.clock.advance(-365 * DAY);
        let report = s.run(false, None).await;
        // A year back, even the rows from long ago (1970) are due; the recent one is not.
        assert_eq!(line(&report, "retention.fraud.signals").changed, 2);
        assert_eq!(s.throttle_count().await, 2, "the recent and the fresh rows stay");
        s.clock.advance(365 * DAY);
        let report = s.run(false, None).await;
        assert_eq!(line(&report, "retention.fraud.signals").changed, 0, "30 days old is not yet 90");
    })
    .await;
}
