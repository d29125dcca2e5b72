//! A provider's configuration is checked against the policy before the service starts: it may
//! ask only for the declared scopes and keep only the declared profile fields.

use passme_core::clock;
use passme_core::config::{LinkingConfig, ProviderConfig};
use passme_linking::Linking;
use passme_testkit::sqlite;

fn provider(id: &str) -> ProviderConfig {
    ProviderConfig {
        id: id.into(),
        name: "Example".into(),
        issuer: Some("https://id.example.com".into()),
        authorization_endpoint: None,
        token_endpoint: None,
        userinfo_endpoint: None,
        revocation_endpoint: None,
        subject_field: None,
        client_id: "passme".into(),
        client_secret_file: None,
        client_secret: None,
        scopes: vec!["openid".into(), "email".into()],
        profile_fields: vec!["industry".into()],
        request_timeout_ms: 1000,
    }
}

async fn build(providers: Vec<ProviderConfig>) -> Result<Linking, String> {
    let db = sqlite().await;
    let policy = passme_policy::builtin().clone();
    Linking::new(&LinkingConfig { providers }, &policy, db.store.clone(), clock::system(), &[1; 32], "https://passme.test")
        .map_err(|e| format!("{e} [{}]", e.code()))
}

#[tokio::test]
async fn providers_may_ask_and_keep_only_what_the_policy_declares() {
    assert!(build(vec![provider("example")]).await.is_ok());
    let undeclared_scope = ProviderConfig { scopes: vec!["openid".into(), "contacts".into()], ..provider("example") };
    let refused = build(vec![undeclared_scope]).await.expect_err("refused");
    assert!(refused.contains("scope \"contacts\" is not declared") && refused.contains("linking_config_invalid"), "{refused}");
    let undeclared_field = ProviderConfig { profile_fields: vec!["birthdate".into()], ..provider("example") };
    assert!(build(vec![undeclared_field]).await.expect_err("refused").contains("profile field \"birthdate\" is not declared"));
    let no_openid = ProviderConfig { scopes: vec!["email".into()], ..provider("example") };
    assert!(build(vec![no_openid]).await.expect_err("refused").contains("needs the openid scope"));
    let half_oauth = ProviderConfig { issuer: None, authorization_endpoint: Some("https://x/auth".into()), ..provider("example") };
    assert!(build(vec![half_oauth]).await.expect_err("refused").contains("give either issuer"));
    let bad_id = provider("no spaces/please");
    assert!(build(vec![bad_id]).await.expect_err("refused").contains("the id must be"));
    assert!(build(vec![provider("twice"), provider("twice")]).await.expect_err("refused").contains("configured twice"));
}

#[tokio::test]
async fn an_unreachable_provider_is_a_clean_error_not_a_panic() {
    let mut dead = provider("dead");
    dead.issuer = Some("http://127.0.0.1:9".into());
    let linking = build(vec![dead]).await.expect("configured");
    let error = linking.start("dead", passme_linking::Intent::SignIn, "browser").await.expect_err("unreachable");
    assert_eq!(error.code(), "link_provider_unavailable");
    assert_eq!(
        linking.start("nobody", passme_linking::Intent::SignIn, "browser").await.expect_err("unknown").code(),
        "link_provider_unknown"
    );
}
