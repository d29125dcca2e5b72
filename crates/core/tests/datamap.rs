//! The schema check: the live schema of each engine against the policy's data map.

use passme_core::datamap::check;
use passme_core::is_implemented;
use passme_policy::{Capability, proves};
use passme_testkit::for_each_engine;

#[tokio::test]
async fn every_table_and_column_is_classified_on_both_engines() {
    proves!("security.data_map");
    for_each_engine(|store| async move {
        let schema = store.schema().await.expect("schema");
        let problems = check(passme_policy::builtin(), &schema, &is_implemented);
        assert!(problems.is_empty(), "{:?}:\n{}", store.engine(), problems.join("\n"));
    })
    .await;
}

#[tokio::test]
async fn an_undeclared_column_or_table_fails_the_check() {
    proves!("security.data_map");
    for_each_engine(|store| async move {
        store.execute_script("ALTER TABLE jobs ADD COLUMN requester_email TEXT").await.expect("alter");
        store.execute_script("CREATE TABLE shadow_profiles (id BIGINT PRIMARY KEY, phone TEXT)").await.expect("create");
        let problems = check(passme_policy::builtin(), &store.schema().await.expect("schema"), &is_implemented);
        assert!(problems.iter().any(|p| p.starts_with("column jobs.requester_email can hold personal data")), "{problems:?}");
        assert!(problems.iter().any(|p| p.starts_with("table shadow_profiles is not classified")), "{problems:?}");
    })
    .await;
}

#[tokio::test]
async fn a_declared_field_without_its_column_fails_the_check() {
    for_each_engine(|store| async move {
        store.execute_script("ALTER TABLE audit_log RENAME COLUMN subject TO about").await.expect("rename");
        let problems = check(passme_policy::builtin(), &store.schema().await.expect("schema"), &is_implemented);
        assert!(problems.iter().any(|p| p == "field compliance.audit_log maps to audit_log.subject, which does not exist"), "{problems:?}");
        // A field of a capability not implemented yet may be declared before its storage
        // exists; once its capability is implemented, it must be stored somewhere.
        let mut policy = passme_policy::builtin().clone();
        let field = policy.categories.iter_mut().find(|c| c.id.get_ref() == "account").and_then(|c| c.fields.first_mut()).expect("a field");
        let id = field.id.get_ref().clone();
        field.columns.clear();
        let schema = store.schema().await.expect("schema");
        let pending = check(&policy, &schema, &|c| c == Capability::Platform);
        assert!(!pending.iter().any(|p| p.contains(&format!("field {id} "))), "{pending:?}");
        let all = check(&policy, &schema, &|_| true);
        let expected = format!("field {id} belongs to the implemented capability accounts but maps to no column");
        assert!(all.contains(&expected), "{all:?}");
    })
    .await;
}
