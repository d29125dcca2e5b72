//! The storage contract, on both engines.

use passme_store::{MIGRATIONS, Store, StoreError, StoreOptions};
use passme_testkit::{each_engine, for_each_engine};
use secrecy::SecretString;

#[tokio::test]
async fn migrations_apply_once_and_are_recorded() {
    for_each_engine(|store| async move {
        assert_eq!(store.migrate().await.expect("second migrate"), Vec::<i64>::new(), "{:?}: nothing left to apply", store.engine());
        let tables: Vec<String> = store.schema().await.expect("schema").into_iter().map(|t| t.name).collect();
        for table in ["audit_anchor", "audit_log", "jobs", "schema_migrations"] {
            assert!(tables.contains(&table.to_string()), "{:?} lacks {table}: {tables:?}", store.engine());
        }
    })
    .await;
}

#[tokio::test]
async fn a_migration_edited_after_it_ran_is_refused() {
    for_each_engine(|store| async move {
        store.execute_script("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1").await.expect("tamper");
        let err = store.migrate().await.expect_err("checksum mismatch");
        assert!(matches!(&err, StoreError::Migration { version: 1, cause, .. } if cause.contains("changed after it was applied")), "{err}");
    })
    .await;
}

#[tokio::test]
async fn a_database_newer_than_the_binary_is_refused() {
    for_each_engine(|store| async move {
        store
            .execute_script("INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (9999, 'future', 'x', 0)")
            .await
            .expect("insert");
        let err = store.migrate().await.expect_err("unknown migration");
        assert!(err.to_string().contains("newer passme"), "{err}");
    })
    .await;
    assert!(!MIGRATIONS.is_empty());
}

#[tokio::test]
async fn an_unreachable_postgres_is_a_clear_error_not_a_panic() {
    let options = StoreOptions {
        database_url: Some(SecretString::from("postgres://passme:hunter2@127.0.0.1:1/passme".to_string())),
        data_dir: std::env::temp_dir(),
        max_connections: 1,
    };
    let err = Store::connect(&options).await.expect_err("nothing listens on port 1");
    let message = err.to_string();
    assert_eq!(err.code(), "database_unreachable");
    assert!(message.contains("postgres://127.0.0.1:1/passme"), "{message}");
    assert!(!message.contains("hunter2"), "the password must not appear: {message}");
}

#[tokio::test]
async fn an_unsupported_database_url_is_refused() {
    let options = StoreOptions {
        database_url: Some(SecretString::from("mysql://root@localhost/x".to_string())),
        data_dir: std::env::temp_dir(),
        max_connections: 1,
    };
    assert_eq!(Store::connect(&options).await.expect_err("mysql").code(), "database_url_invalid");
}

#[tokio::test]
async fn data_survives_reconnecting() {
    for db in each_engine().await {
        let url = db.url.clone().expect("url");
        let job =
            passme_store::NewJob { id: "j1".into(), queue: "q".into(), kind: "k".into(), payload: "{}".into(), max_attempts: 3, run_at: 0 };
        db.store.enqueue_job(&job, 0).await.expect("enqueue");
        db.store.close().await;
        let reopened = Store::connect(&StoreOptions {
            database_url: Some(SecretString::from(url)),
            data_dir: std::env::temp_dir(),
            max_connections: 1,
        })
        .await
        .expect("reopen");
        assert!(reopened.migrate().await.expect("migrate").is_empty());
        assert_eq!(reopened.job("j1").await.expect("read").map(|j| j.kind), Some("k".to_string()), "{}", db.engine_name());
        reopened.close().await;
    }
}

#[tokio::test]
async fn running_servers_register_refresh_and_leave_on_both_engines() {
    for_each_engine(|store| async move {
        let row = |id: &str, heartbeat_at: i64| passme_store::InstanceRow {
            id: id.into(),
            version: "0.1.0".into(),
            base_url: format!("http://127.0.0.1:{}", 9000 + heartbeat_at % 100),
            started_at: 1_000,
            heartbeat_at,
        };
        store.heartbeat_instance(&row("a", 1_000)).await.expect("register");
        store.heartbeat_instance(&row("b", 1_500)).await.expect("register");
        store.heartbeat_instance(&row("a", 2_000)).await.expect("heartbeat");
        let live = store.live_instances(1_200).await.expect("live");
        assert_eq!(live.iter().map(|r| (r.id.as_str(), r.heartbeat_at)).collect::<Vec<_>>(), [("a", 2_000), ("b", 1_500)]);
        assert_eq!(live[0].base_url, "http://127.0.0.1:9000", "a heartbeat keeps the registered address");
        store.remove_instance("a", 1_600).await.expect("remove");
        assert!(store.live_instances(0).await.expect("live").is_empty(), "the stopped one and the stale one are gone");
    })
    .await;
}

/// SQLite's writers queue in the process: background work (the minute pass) lets waiting
/// acknowledgements go first, but is never starved by them, and knows to write in small pieces
/// while they flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_writes_defer_to_acknowledgements_but_are_never_starved() {
    let db = passme_testkit::sqlite().await;
    let store = db.store.clone();
    assert!(!store.acknowledging(), "a fresh store is quiet");
    let row = |n: i64| passme_store::EventRow {
        site: "passme".into(),
        visitor: n,
        ts: n,
        received_at: n,
        path: "/".into(),
        source: String::new(),
        utm_source: String::new(),
        utm_medium: String::new(),
        utm_campaign: String::new(),
        browser: String::new(),
        browser_version: String::new(),
        os: String::new(),
        os_version: String::new(),
        isp: String::new(),
        ip: None,
        ip_prefix: String::new(),
    };
    // Four writers acknowledging page views back to back for a second and a half.
    let until = std::time::Instant::now() + std::time::Duration::from_millis(1_500);
    let mut acknowledging = tokio::task::JoinSet::new();
    for w in 0..4 {
        let store = store.clone();
        acknowledging.spawn(async move {
            let mut n = w * 1_000_000;
            while std::time::Instant::now() < until {
                store.insert_events(&[row(n)]).await.expect("insert");
                n += 1;
            }
        });
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(store.acknowledging(), "acknowledgements are flowing");
    let started = std::time::Instant::now();
    let moved = store.move_inbox(100).await.expect("move");
    let waited = started.elapsed();
    assert!(std::time::Instant::now() < until, "the move did not wait for the stream to end ({waited:?})");
    assert!(waited < std::time::Duration::from_millis(500), "deferred for {waited:?}");
    assert!(moved > 0);
    acknowledging.join_all().await;
    assert!(store.move_inbox(usize::MAX).await.expect("move the rest") > 0);
}
