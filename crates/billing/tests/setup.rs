//! Billing's start-up checks: off without a key, refused with a key but no webhook secret or with
//! a malformed catalogue, live mode only with a live key.

use passme_billing::Billing;
use passme_core::config::{BillingConfig, PlanConfig, PlanName};
use passme_testkit::sqlite;
use secrecy::SecretString;

fn plan(id: &str, interval: &str) -> PlanConfig {
    PlanConfig {
        id: id.into(),
        name: PlanName { da: "Pro".into(), en: "Pro".into() },
        price: "price_1".into(),
        interval: interval.into(),
        entitlements: vec![],
    }
}

#[tokio::test]
async fn billing_starts_only_when_fully_and_correctly_configured() {
    let db = sqlite().await;
    let start = |config: &BillingConfig| Billing::from_config(config, db.store.clone(), passme_core::clock::system(), "http://passme.test");
    let mut config = BillingConfig { plans: vec![plan("pro", "month")], ..BillingConfig::default() };
    assert!(start(&config).expect("no key is not an error").is_none(), "off without a key");

    config.secret_key = Some(SecretString::from("sk_test_1"));
    let refused = start(&config).expect_err("a key without a webhook secret");
    assert_eq!(refused.code(), "billing_config_invalid");
    assert!(refused.to_string().contains("PASSME_BILLING__WEBHOOK_SECRETS"), "{refused}");

    config.webhook_secrets = vec![SecretString::from("whsec_1")];
    let test_mode = start(&config).expect("valid").expect("on");
    assert!(!test_mode.livemode());
    assert_eq!(test_mode.catalogue().plans().len(), 1);

    config.secret_key = Some(SecretString::from("sk_live_1"));
    assert!(start(&config).expect("valid").expect("on").livemode());

    config.plans = vec![plan("pro", "fortnight")];
    assert_eq!(start(&config).expect_err("bad interval").code(), "billing_config_invalid");
}
