//! Billing records follow their declared retention rules, run by housekeeping from the policy:
//! the customer link goes with the account, provider events after 30 days, ended subscriptions
//! after 13 months, and invoice references 5 years after their financial year ends, surviving the
//! account's erasure without the link to it.

use std::sync::Arc;

use passme_core::clock::{ManualClock, SharedClock};
use passme_core::housekeeping::Housekeeping;
use passme_core::identity::accounts::{Accounts, SignUp};
use passme_policy::proves;
use passme_store::{BillingEventRow, InvoiceRow, NewJob, SubscriptionRow};
use passme_testkit::for_each_engine;
use secrecy::SecretString;

use passme_testkit::PASSWORD;
const DAY: i64 = 86_400_000;

fn ms(text: &str) -> i64 {
    text.parse::<jiff::Timestamp>().expect("timestamp").as_millisecond()
}

fn subscription(id: &str, account: &passme_store::AccountId, status: &str, ended_at: Option<i64>) -> SubscriptionRow {
    SubscriptionRow {
        subscription_id: id.into(),
        account_id: Some(account.clone()),
        customer_id: "cus_ola".into(),
        price_id: "pro-monthly".into(),
        status: status.into(),
        current_period_end: Some(1_800_000_000),
        cancel_at_period_end: false,
        last_event_id: None,
        state_at: 1,
        updated_at: 1,
        ended_at,
    }
}

#[tokio::test]
async fn billing_records_are_kept_and_erased_on_the_declared_schedule() {
    proves!(
        "retention.payment.customer_ref",
        "retention.payment.subscription",
        "retention.payment.invoices",
        "retention.payment.provider_events"
    );
    for_each_engine(|store| async move {
        let start = ms("2026-03-03T12:00:00Z");
        let clock = ManualClock::at(start);
        let shared: SharedClock = Arc::new(clock.clone());
        let accounts = Accounts::new(store.clone(), shared.clone());
        let SignUp::Created { account_id: ola } =
            accounts.sign_up("ola@example.test", SecretString::from(PASSWORD)).await.expect("sign up")
        else {
            panic!("exists")
        };
        store.insert_billing_customer(&ola, "cus_ola", start).await.expect("customer");
        store.put_billing_subscription(&subscription("sub_live", &ola, "active", None)).await.expect("live");
        store.put_billing_subscription(&subscription("sub_ended", &ola, "canceled", Some(start))).await.expect("ended");
        let invoice = InvoiceRow {
            invoice_id: "in_2026".into(),
            account_id: Some(ola.clone()),
            subscription_id: Some("sub_live".into()),
            number: Some("PM-0001".into()),
            amount: 1500,
            currency: "eur".into(),
            issued_at: start,
            status: "paid".into(),
            payment_failed: false,
            state_at: 1,
        };
        store.put_billing_invoice(&invoice).await.expect("invoice");
        let event =
            BillingEventRow { event_id: "evt_1".into(), event_type: "invoice.paid".into(), created: 1, received_at: start, outcome: None };
        let job = NewJob {
            id: "job_evt_1".into(),
            queue: "default".into(),
            kind: "billing.event".into(),
            payload: "{}".into(),
            max_attempts: 1,
            run_at: start,
        };
        assert!(store.record_billing_event(&event, Some(&job)).await.expect("event"));
        accounts.close(&ola, SecretString::from(PASSWORD)).await.expect("close");

        let housekeeping = Housekeeping::new(store.clone(), shared.clone(), passme_policy::builtin()).expect("rules");
        housekeeping.run().await.expect("run");
        assert_eq!(store.billing_customer_of(&ola).await.expect("read").as_deref(), Some("cus_ola"), "nothing goes on day 0");
        assert!(store.billing_event_outcome("evt_1").await.expect("read").is_some());

        // 30 days after closing: the customer link, the account and the provider events are gone;
        // the invoice and the subscriptions stay, no longer linked to anyone here.
        clock.advance(30 * DAY + 1);
        housekeeping.run().await.expect("run");
        assert_eq!(store.billing_customer_of(&ola).await.expect("read"), None);
        assert!(store.account(&ola).await.expect("read").is_none());
        assert!(store.billing_event_outcome("evt_1").await.expect("read").is_none(), "events go after 30 days");
        let kept = store.billing_invoice("in_2026").await.expect("read").expect("an accounting record survives erasure");
        assert_eq!((kept.account_id, kept.number.as_deref(), kept.amount), (None, Some("PM-0001"), 1500));
        assert!(store.billing_subscription("sub_ended").await.expect("read").is_some_and(|s| s.account_id.is_none()));

        // 13 months after it ended, the ended subscription goes; the live one has not ended.
        clock.advance(ms("2027-04-04T00:00:00Z") - shared.now_ms());
        housekeeping.run().await.expect("run");
        assert!(store.billing_subscription("sub_ended").await.expect("read").is_none(), "13 months after the end");
        assert!(store.billing_subscription("sub_live").await.expect("read").is_some());

        // The invoice of 2026 belongs to the financial year ending 31 December 2026: kept through
        // 2031, gone in 2032.
        clock.advance(ms("2031-12-31T23:00:00Z") - shared.now_ms());
        housekeeping.run().await.expect("run");
        assert!(store.billing_invoice("in_2026").await.expect("read").is_some(), "kept until the fifth year after ends");
        clock.advance(ms("2032-01-01T00:00:01Z") - shared.now_ms());
        housekeeping.run().await.expect("run");
        assert!(
            store.billing_invoice("in_2026").await.expect("read").is_none(),
            "gone once five years after the financial year have passed"
        );
    })
    .await;
}
