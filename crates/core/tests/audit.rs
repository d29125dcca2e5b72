//! The hash-chained audit log on both engines: verification passes on an intact chain and names
//! every altered, removed or reordered entry; retention pruning keeps the rest verifiable.

use std::sync::Arc;

use passme_core::CoreError;
use passme_core::audit::{AuditEvent, AuditLog};
use passme_core::clock::{ManualClock, SharedClock};
use passme_core::housekeeping::Housekeeping;
use passme_policy::proves;
use passme_store::Store;
use passme_testkit::for_each_engine;
use serde_json::json;

const T0: i64 = 1_790_000_000_000;

async fn log_with_entries(store: &Store, n: usize) -> (ManualClock, AuditLog) {
    let clock = ManualClock::at(T0);
    let shared: SharedClock = Arc::new(clock.clone());
    let log = AuditLog::new(store.clone(), shared);
    for i in 0..n {
        log.record(AuditEvent {
            actor: "staff:7",
            action: "user.viewed",
            subject: &format!("user:{i}"),
            details: json!({ "fields": ["email"] }),
        })
        .await
        .expect("record");
        clock.advance(1_000);
    }
    (clock, log)
}

#[tokio::test]
async fn an_intact_chain_verifies() {
    proves!("security.audit_log");
    for_each_engine(|store| async move {
        let (_, log) = log_with_entries(&store, 5).await;
        let report = log.verify(None).await.expect("verify");
        assert!(report.is_intact(), "{:?}", report.problems);
        assert_eq!((report.entries, report.head.as_ref().map(|h| h.0)), (5, Some(5)));
    })
    .await;
}

#[tokio::test]
async fn an_altered_entry_is_detected() {
    proves!("security.audit_log");
    for_each_engine(|store| async move {
        let (_, log) = log_with_entries(&store, 5).await;
        store.execute_script("UPDATE audit_log SET subject = 'user:someone-else' WHERE seq = 3").await.expect("tamper");
        let report = log.verify(None).await.expect("verify");
        assert_eq!(report.problems, vec!["entry 3 was altered (its hash does not match its content)".to_string()], "{:?}", store.engine());
    })
    .await;
}

#[tokio::test]
async fn an_altered_entry_with_a_recomputed_hash_breaks_the_next_link() {
    for_each_engine(|store| async move {
        let (_, log) = log_with_entries(&store, 5).await;
        store.execute_script("UPDATE audit_log SET hash = 'f00d' WHERE seq = 2").await.expect("tamper");
        let problems = log.verify(None).await.expect("verify").problems;
        assert!(problems.iter().any(|p| p.contains("entry 2 was altered")), "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("entry 3 does not follow")), "{problems:?}");
    })
    .await;
}

#[tokio::test]
async fn removed_entries_are_detected_in_the_middle_at_the_start_and_at_the_end() {
    proves!("security.audit_log");
    for_each_engine(|store| async move {
        let (_, log) = log_with_entries(&store, 6).await;
        let head = log.verify(None).await.expect("verify").head.expect("head");
        store.execute_script("DELETE FROM audit_log WHERE seq = 3").await.expect("tamper");
        let problems = log.verify(None).await.expect("verify").problems;
        assert!(problems.iter().any(|p| p == "entries 3..3 are missing"), "{problems:?}");

        store.execute_script("DELETE FROM audit_log WHERE seq = 1").await.expect("tamper");
        let problems = log.verify(None).await.expect("verify").problems;
        assert!(problems.iter().any(|p| p == "entries 1..1 are missing"), "{problems:?}");

        store.execute_script("DELETE FROM audit_log WHERE seq = 6").await.expect("tamper");
        let problems = log.verify(Some((head.0, &head.1))).await.expect("verify").problems;
        assert!(problems.iter().any(|p| p.contains("removed from the end")), "{problems:?}");
    })
    .await;
}

#[tokio::test]
async fn concurrent_appends_keep_one_unbroken_chain() {
    for_each_engine(|store| async move {
        let clock: SharedClock = Arc::new(ManualClock::at(T0));
        let mut tasks = Vec::new();
        for w in 0..4 {
            let log = AuditLog::new(store.clone(), clock.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0..15 {
                    log.record(AuditEvent { actor: "system", action: "test.append", subject: &format!("w{w}:{i}"), details: json!({}) })
                        .await
                        .expect("record");
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        let report = AuditLog::new(store.clone(), clock).verify(None).await.expect("verify");
        assert!(report.is_intact(), "{:?}", report.problems);
        assert_eq!(report.entries, 60);
    })
    .await;
}

#[tokio::test]
async fn details_that_look_like_secrets_are_refused() {
    for_each_engine(|store| async move {
        let (_, log) = log_with_entries(&store, 0).await;
        for details in [
            json!({ "password": "x" }),
            json!({ "nested": { "access_token": "x" } }),
            json!({ "card_number": "4242" }),
            json!({ "list": [{ "api-key": 1 }] }),
        ] {
            let err =
                log.record(AuditEvent { actor: "system", action: "x", subject: "y", details: details.clone() }).await.expect_err("refused");
            assert!(matches!(err, CoreError::Internal(passme_core::error::Internal::SecretInAuditDetails(_))), "{details}");
        }
        let err = log
            .record(AuditEvent { actor: "system", action: "x", subject: "y", details: json!("not an object") })
            .await
            .expect_err("refused");
        assert!(
            matches!(err, CoreError::Internal(passme_core::error::Internal::Broken { what: "audit details", .. })),
            "a caller's bug, not the visitor's input: {err:?}"
        );
        // Whole words only: a count of rotated keys or a word containing "key" is not a secret.
        log.record(AuditEvent { actor: "system", action: "x", subject: "y", details: json!({ "monkey": 1, "keys_rotated": 2 }) })
            .await
            .expect("not a secret");
    })
    .await;
}

#[tokio::test]
async fn entries_older_than_the_declared_period_are_pruned_and_the_rest_still_verifies() {
    proves!("retention.compliance.audit_log");
    for_each_engine(|store| async move {
        let (clock, log) = log_with_entries(&store, 3).await;
        let period = passme_policy::builtin().retention_rule("retention.compliance.audit_log").expect("declared").period;
        clock.advance(period.max_millis() - 10_000);
        log.record(AuditEvent { actor: "system", action: "later", subject: "x", details: json!({}) }).await.expect("record");
        clock.advance(20_000);
        let shared: SharedClock = Arc::new(clock.clone());
        let outcomes = Housekeeping::new(store.clone(), shared, passme_policy::builtin()).expect("rules").run().await.expect("run");
        let audit_outcome = outcomes.iter().find(|o| o.rule == "retention.compliance.audit_log").expect("rule ran");
        assert_eq!(audit_outcome.removed, 3, "only the three old entries are past the period");
        let report = log.verify(None).await.expect("verify");
        assert!(report.is_intact(), "{:?}", report.problems);
        assert_eq!(report.first_seq, Some(4), "the chain continues from the anchor");
        assert_eq!(report.entries, 2, "the later entry and the housekeeping run's own record");
        store.execute_script("DELETE FROM audit_log WHERE seq = 4").await.expect("tamper");
        assert!(!log.verify(None).await.expect("verify").is_intact(), "removing the first entry after the anchor is detected");
    })
    .await;
}
