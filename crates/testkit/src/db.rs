//! A fresh, migrated database per test, on each engine.
//!
//! SQLite: a file in a temporary folder. PostgreSQL: a database cloned from a migrated template
//! (`CREATE DATABASE … TEMPLATE …`, keyed on the migrations' checksum so a changed migration makes
//! a new template) and dropped when the test ends. The server comes from
//! `PASSME_TEST_POSTGRES_URL` (default: the local server as user postgres). When it cannot be
//! reached, tests skip PostgreSQL with a message, except under `CI=true`, where they fail.

use std::time::Duration;

use passme_store::{Store, StoreOptions};
use secrecy::SecretString;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, PgPool};

pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A test database; PostgreSQL ones are dropped when the last clone is. Clones share the
/// database, as several instances of the service share one in production.
#[derive(Clone)]
pub struct TestDb {
    pub store: Store,
    /// What to put in `PASSME_DATABASE_URL` to reach this database from another process.
    pub url: Option<String>,
    _cleanup: std::sync::Arc<Cleanup>,
}

/// Removes the database when the last clone of its [`TestDb`] is gone.
struct Cleanup {
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<(String, String)>,
}

impl TestDb {
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn engine_name(&self) -> &'static str {
        self.store.engine().name()
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.pg_name.take() else {
            return;
        };
        // Drop runs inside the test's runtime, which cannot be awaited here; a thread with its own
        // runtime drops the database. FORCE ends the test's pooled connections, which are driven by
        // the (now blocked) test runtime and so cannot be closed politely.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async move {
                if let Ok(admin) = admin_pool(&admin_url).await {
                    let _ = admin.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).await;
                    admin.close().await;
                }
            });
        })
        .join();
    }
}

pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("temporary folder");
    let options = StoreOptions { database_url: None, data_dir: dir.path().to_path_buf(), max_connections: 4 };
    let store = Store::connect(&options).await.expect("open SQLite");
    store.migrate().await.expect("migrate SQLite");
    let url = format!("sqlite://{}", dir.path().join("passme.db").display());
    TestDb { store, url: Some(url), _cleanup: std::sync::Arc::new(Cleanup { _dir: Some(dir), pg_name: None }) }
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

pub fn postgres_admin_url() -> String {
    std::env::var("PASSME_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string())
}

async fn admin_pool(url: &str) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new().max_connections(1).acquire_timeout(Duration::from_secs(5)).connect(url).await
}

/// Replaces the database name in a PostgreSQL URL.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{database}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// A fresh migrated PostgreSQL database, or `None` (with a message) when no server is reachable
/// outside CI.
pub async fn postgres() -> Option<TestDb> {
    postgres_at(&postgres_admin_url(), in_ci()).await
}

/// As [`postgres`], against the server at `admin_url`; `ci` makes an unreachable server a failure.
pub async fn postgres_at(admin_url: &str, ci: bool) -> Option<TestDb> {
    let admin_url = admin_url.to_string();
    let admin = match admin_pool(&admin_url).await {
        Ok(pool) => pool,
        Err(e) if ci => panic!(
            "PostgreSQL is not reachable at {} and CI=true: PostgreSQL tests must run, not skip ({e})",
            passme_store::redact_url(&admin_url)
        ),
        Err(e) => {
            eprintln!(
                "SKIPPED on PostgreSQL: not reachable at {} ({e}); set PASSME_TEST_POSTGRES_URL",
                passme_store::redact_url(&admin_url)
            );
            return None;
        }
    };
    let template = ensure_template(&admin, &admin_url).await;
    let name = format!("passme_t_{}", random_hex(8));
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name} TEMPLATE {template}")))
        .await
        .expect("create test database from template");
    admin.close().await;
    let url = with_database(&admin_url, &name);
    let options = StoreOptions { database_url: Some(SecretString::from(url.clone())), data_dir: std::env::temp_dir(), max_connections: 8 };
    let store = Store::connect(&options).await.expect("connect to test database");
    Some(TestDb { store, url: Some(url), _cleanup: std::sync::Arc::new(Cleanup { _dir: None, pg_name: Some((admin_url, name)) }) })
}

/// Creates the migrated template once per migration set. Concurrent test processes serialise on
/// an advisory lock; the template appears under its final name only when fully migrated.
async fn ensure_template(admin: &PgPool, admin_url: &str) -> String {
    let template = format!("passme_tpl_{}", Store::migrations_fingerprint());
    let mut conn = admin.acquire().await.expect("admin connection");
    sqlx::query("SELECT pg_advisory_lock(4242)").execute(&mut *conn).await.expect("template lock");
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&template)
        .fetch_optional(&mut *conn)
        .await
        .expect("look up template");
    if exists.is_none() {
        let building = format!("{template}_building");
        conn.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))).await.expect("drop stale template");
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {building}"))).await.expect("create template");
        let options = StoreOptions {
            database_url: Some(SecretString::from(with_database(admin_url, &building))),
            data_dir: std::env::temp_dir(),
            max_connections: 1,
        };
        let store = Store::connect(&options).await.expect("connect to template");
        store.migrate().await.expect("migrate template");
        store.close().await;
        conn.execute(sqlx::AssertSqlSafe(format!("ALTER DATABASE {building} RENAME TO {template}"))).await.expect("publish template");
    }
    sqlx::query("SELECT pg_advisory_unlock(4242)").execute(&mut *conn).await.expect("template unlock");
    template
}

pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::fill(&mut buf[..]);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `test` on a fresh SQLite database and then on a fresh PostgreSQL database. Every storage
/// behaviour is tested this way.
pub async fn for_each_engine<F, Fut>(test: F)
where
    F: Fn(Store) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let db = sqlite().await;
    test(db.store.clone()).await;
    drop(db);
    if let Some(db) = postgres().await {
        test(db.store.clone()).await;
        drop(db);
    }
}

/// Both engines' fresh databases, for tests that need the handle (URLs, engine name).
pub async fn each_engine() -> Vec<TestDb> {
    let mut dbs = vec![sqlite().await];
    dbs.extend(postgres().await);
    dbs
}
