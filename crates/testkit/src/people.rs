//! Looking people up and giving them staff roles in tests, and counting rows.

use passme_core::identity::staff::{Role, Staff};
use passme_store::{AccountId, Store};

use crate::TestApp;

/// The account of an address, which the test made.
pub async fn account_of(store: &Store, email: &str) -> AccountId {
    store.account_by_email_key(&passme_core::identity::email::key(email)).await.expect("store").expect("account").id
}

/// Gives the account of `email` a staff role.
pub async fn grant(app: &TestApp, email: &str, role: Role) {
    let id = account_of(&app.state.store, email).await;
    Staff::new(app.state.store.clone(), app.state.clock.clone()).grant(&id, role, "test").await.expect("grant");
}

/// The one number a `SELECT COUNT(*)` (or similar) answers.
pub async fn count(store: &Store, sql: &str) -> i64 {
    store.scalar_i64(sql).await.expect("count")
}

/// A member of staff, signed in: signs `email` up (its confirmation is mail number `seen + 1` at
/// the sink) and gives the account `role`.
pub async fn staff_member<'a>(
    app: &'a TestApp,
    sink: &crate::SmtpSink,
    email: &str,
    seen: usize,
    role: Role,
) -> crate::browser::Browser<'a> {
    let browser = crate::browser::signed_in(app, sink, email, seen).await;
    grant(app, email, role).await;
    browser
}
