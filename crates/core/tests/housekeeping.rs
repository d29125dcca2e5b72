//! The retention registry: every declared rule of an implemented capability has an executor that
//! implements its trigger and action, and a rule without one stops housekeeping instead of
//! silently keeping the data.

use std::sync::Arc;

use passme_core::clock::{ManualClock, SharedClock};
use passme_core::housekeeping::{EXECUTORS, Housekeeping, unexecutable};
use passme_core::is_implemented;
use passme_policy::{Policy, Trigger};
use passme_testkit::sqlite;

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
