//! Erasure with proof and legal holds, on both engines: everything about a person goes except what
//! a legal duty keeps, the search for leftovers finds nothing, another person is untouched, and a
//! hold stops the erasure or keeps its category.

use std::sync::Arc;

use passme_core::clock::{ManualClock, SharedClock};
use passme_core::consent::{Choices, ConsentLedger};
use passme_core::identity::account_mail::AccountMail;
use passme_core::identity::accounts::{Accounts, SignUp};
use passme_core::identity::api_tokens::ApiTokens;
use passme_core::identity::remember::Remember;
use passme_core::identity::sessions::Sessions;
use passme_core::identity::staff::{Role, Staff};
use passme_core::jobs::{Handlers, JobQueue, Worker};
use passme_core::rights::erasure::{Erasures, manifest_gaps};
use passme_core::rights::holds::{HoldScope, LegalHolds};
use passme_policy::Erasure;
use passme_store::{AccountId, InvoiceRow, Store, SubscriptionRow};
use passme_testkit::for_each_engine;
use secrecy::{ExposeSecret, SecretString};

const T0: i64 = 1_790_000_000_000;
const DAY: i64 = 86_400_000;
const PASSWORD: &str = "correct horse battery staple";

#[test]
fn every_table_erased_with_the_account_has_an_eraser() {
    let policy = passme_policy::builtin();
    assert_eq!(manifest_gaps(policy), Vec::<String>::new());
    let mut edited = policy.clone();
    let throttle = edited.tables.iter_mut().find(|t| t.name.get_ref() == "throttle").expect("table");
    throttle.erasure = Some(Erasure::WithAccount);
    assert_eq!(manifest_gaps(&edited), vec!["throttle is erased with the account, but no eraser removes its rows".to_string()]);
}

/// Personal tables whose rows name an account but are not in the export, each with why.
const NOT_EXPORTED: &[(&str, &str)] = &[
    ("remember_series", "hashed sign-in keys; the sessions they open are exported"),
    ("account_tokens", "hashed single-use links, gone within a week"),
    ("person_keys", "the key that encrypts the person's archived records, not data about them"),
    ("link_flows", "a sign-in with a provider in progress, gone within the hour"),
    ("legal_holds", "a hold may concern proceedings the person may not be told of (GDPR article 23); the privacy officer answers for it"),
    ("authority_requests", "the law may forbid telling the person of a request from the police or a court (GDPR article 23)"),
];

#[tokio::test]
async fn every_personal_table_that_names_an_account_is_exported_or_says_why_not() {
    let policy = passme_policy::builtin();
    let db = passme_testkit::sqlite().await;
    let exported: Vec<&str> = passme_core::rights::access::exported_tables().collect();
    let mut missing = Vec::new();
    for table in db.store.schema().await.expect("schema") {
        let personal = policy.tables.iter().any(|t| t.name.get_ref() == &table.name && t.personal);
        let names_account = table.columns.iter().any(|c| c == "account_id") || table.name == "accounts";
        if personal && names_account && !exported.contains(&table.name.as_str()) && !NOT_EXPORTED.iter().any(|(t, _)| *t == table.name) {
            missing.push(table.name);
        }
    }
    assert_eq!(missing, Vec::<String>::new(), "personal tables naming an account, missing from the export");
}

struct World {
    clock: ManualClock,
    shared: SharedClock,
    store: Store,
    queue: JobQueue,
    erasures: Erasures,
}

impl World {
    fn new(store: Store) -> World {
        let clock = ManualClock::at(T0);
        let shared: SharedClock = Arc::new(clock.clone());
        let queue = JobQueue::new(store.clone(), shared.clone(), 3);
        let erasures = Erasures::new(store.clone(), shared.clone(), Arc::new(passme_policy::builtin().clone()));
        World { clock, shared, store, queue, erasures }
    }

    async fn run_jobs(&self) {
        let mut handlers = Handlers::default();
        self.erasures.clone().register(&mut handlers);
        let worker = Worker::new(self.store.clone(), self.shared.clone(), handlers);
        while worker.run_once().await.expect("pass").claimed() > 0 {}
    }

    /// A person with a year of everything: sessions, remember-me, a personal token, a staff role,
    /// a consent record, queued mail, a customer, a subscription and an invoice at the provider.
    async fn person(&self, email: &str, n: u8) -> (AccountId, SecretString) {
        let accounts = Accounts::new(self.store.clone(), self.shared.clone());
        let SignUp::Created { account_id } = accounts.sign_up(email, SecretString::from(PASSWORD)).await.expect("sign up") else {
            panic!("new")
        };
        let (session, _) = Sessions::new(self.store.clone(), self.shared.clone())
            .issue(&account_id, "Firefox", "192.0.2.7".parse().expect("ip"))
            .await
            .expect("session");
        Remember::new(self.store.clone(), self.shared.clone()).start(&account_id).await.expect("remember");
        ApiTokens::new(self.store.clone(), self.shared.clone()).create(&account_id, "laptop", &["me:read"]).await.expect("token");
        Staff::new(self.store.clone(), self.shared.clone()).grant(&account_id, Role::Support, "test").await.expect("role");
        ConsentLedger::new(self.store.clone(), self.shared.clone())
            .record(
                None,
                Choices { preferences: true, statistics: false, marketing: false },
                Some(&account_id),
                "v1",
                "1",
                "192.0.2.7".parse().expect("ip"),
            )
            .await
            .expect("consent");
        AccountMail::VerifyAddress { account_id: account_id.clone(), lang: passme_policy::Lang::Da }
            .enqueue(&self.queue)
            .await
            .expect("mail");
        let customer = format!("cus_{n}{n}{n}");
        self.store.insert_billing_customer(&account_id, &customer, T0).await.expect("customer");
        let subscription = SubscriptionRow {
            subscription_id: format!("sub_{n}{n}{n}"),
            account_id: Some(account_id.clone()),
            customer_id: customer.clone(),
            price_id: "pro-monthly".into(),
            status: "active".into(),
            current_period_end: Some(1_800_000_000),
            cancel_at_period_end: false,
            last_event_id: None,
            state_at: 1,
            updated_at: 1,
            ended_at: None,
        };
        self.store.put_billing_subscription(&subscription).await.expect("subscription");
        let invoice = InvoiceRow {
            invoice_id: format!("in_{n}{n}{n}"),
            account_id: Some(account_id.clone()),
            subscription_id: Some(subscription.subscription_id.clone()),
            number: Some(format!("INV-{n}")),
            amount: 9900,
            currency: "dkk".into(),
            issued_at: T0,
            status: "paid".into(),
            payment_failed: false,
            state_at: 1,
        };
        self.store.put_billing_invoice(&invoice).await.expect("invoice");
        (account_id, session)
    }
}

#[tokio::test]
async fn an_erasure_removes_everything_but_the_legal_duties_and_proves_it() {
    for_each_engine(|store| async move {
        let w = World::new(store.clone());
        let (ola, ola_session) = w.person("Ola@Example.com", 1).await;
        let (kari, kari_session) = w.person("kari@example.com", 2).await;
        let sessions = Sessions::new(store.clone(), w.shared.clone());

        let receipt_id = w.erasures.request(&ola, &w.queue).await.expect("request");
        assert!(sessions.resolve(&ola_session).await.expect("resolve").is_none(), "the session ends at once, before the erasure runs");
        w.clock.advance(1_000);
        w.run_jobs().await;

        let receipt = w.erasures.receipt(&receipt_id).await.expect("read").expect("receipt");
        assert!(receipt.verified_at.is_some(), "nothing left outside the legal duties: {:?}", receipt.leftovers);
        for table in
            ["accounts", "sessions", "remember_series", "api_tokens", "account_roles", "billing_customers", "billing_subscriptions", "jobs"]
        {
            assert!(receipt.removed.get(table).is_some_and(|n| *n > 0), "{table} in {:?}", receipt.removed);
        }
        let kept: Vec<&str> = receipt.kept.iter().map(|k| k.table.as_str()).collect();
        assert_eq!(kept, ["audit_log", "consent_ledger", "billing_invoices"], "kept for a legal duty, and only that");
        let invoices = receipt.kept.iter().find(|k| k.table == "billing_invoices").expect("invoices");
        assert_eq!((invoices.rows, invoices.rules.as_slice()), (1, ["retention.payment.invoices".to_string()].as_slice()));
        assert!(store.account(&ola).await.expect("read").is_none());
        // The receipt and the finished job name nobody.
        let receipt_row = store.erasure_receipt(&receipt_id).await.expect("read").expect("row");
        for text in [&receipt_row.removed, &receipt_row.kept, &receipt_row.leftovers] {
            assert!(!text.contains(ola.as_str()) && !text.to_lowercase().contains("ola@example.com"), "{text}");
        }
        let payloads = store.column_text("jobs", "payload").await.expect("payloads");
        assert!(payloads.iter().all(|p| !p.contains(ola.as_str())), "{payloads:?}");

        // Kari is untouched.
        assert!(sessions.resolve(&kari_session).await.expect("resolve").is_some());
        assert!(store.account(&kari).await.expect("read").is_some());
        assert_eq!(store.billing_customer_of(&kari).await.expect("read").as_deref(), Some("cus_222"));
        assert_eq!(store.roles_of(&kari).await.expect("read"), ["support"]);

        // A second pass (a crash before the job was marked done) changes nothing.
        let again =
            w.erasures.run(&passme_core::rights::erasure::EraseAccount { account_id: ola.clone(), receipt: receipt_id.clone() }).await;
        assert_eq!(again.expect("again"), receipt);
    })
    .await;
}

#[tokio::test]
async fn an_interrupted_erasure_finishes_on_the_next_pass_with_one_receipt() {
    for_each_engine(|store| async move {
        let w = World::new(store.clone());
        let (ola, _) = w.person("ola@example.com", 1).await;
        let receipt_id = w.erasures.request(&ola, &w.queue).await.expect("request");
        // The pass died after removing some rows: the sessions and tokens are gone, the rest not.
        store.delete_rows_where("sessions", "account_id", ola.as_str()).await.expect("partial");
        store.delete_rows_where("api_tokens", "account_id", ola.as_str()).await.expect("partial");
        w.run_jobs().await;
        let receipt = w.erasures.receipt(&receipt_id).await.expect("read").expect("receipt");
        assert!(receipt.verified_at.is_some(), "{:?}", receipt.leftovers);
        assert!(store.account(&ola).await.expect("read").is_none());
    })
    .await;
}

#[tokio::test]
async fn a_legal_hold_stops_an_erasure_or_keeps_its_category_and_is_audited() {
    for_each_engine(|store| async move {
        let w = World::new(store.clone());
        let policy = passme_policy::builtin();
        let holds = LegalHolds::new(store.clone(), w.shared.clone());
        let (ola, ola_session) = w.person("ola@example.com", 1).await;
        let hold = holds
            .place(policy, HoldScope::Person(ola.clone()), "Police request 2026-117", T0 + 30 * DAY, "account:officer")
            .await
            .expect("hold");
        let refused = w.erasures.request(&ola, &w.queue).await.expect_err("held");
        assert_eq!(refused.code(), "erasure_on_hold");
        assert!(Sessions::new(store.clone(), w.shared.clone()).resolve(&ola_session).await.expect("resolve").is_some(), "nothing happened");
        for bad in [
            holds.place(policy, HoldScope::Category("payment".into()), "  ", T0 + DAY, "x").await,
            holds.place(policy, HoldScope::Category("payment".into()), "reason", T0 - 1, "x").await,
            holds.place(policy, HoldScope::Category("nonsense".into()), "reason", T0 + DAY, "x").await,
        ] {
            assert!(matches!(bad, Err(passme_core::CoreError::Input { .. })), "{bad:?}");
        }

        // Lifted, and with the payment category held instead: the erasure keeps that category.
        holds.lift(&hold, "account:officer").await.expect("lift");
        holds.place(policy, HoldScope::Category("payment".into()), "Tax audit 2026", T0 + 90 * DAY, "account:officer").await.expect("hold");
        let receipt_id = w.erasures.request(&ola, &w.queue).await.expect("request");
        w.run_jobs().await;
        let receipt = w.erasures.receipt(&receipt_id).await.expect("read").expect("receipt");
        assert!(receipt.verified_at.is_some(), "{:?}", receipt.leftovers);
        let kept: Vec<&str> = receipt.kept.iter().map(|k| k.table.as_str()).collect();
        assert!(kept.contains(&"billing_customers") && kept.contains(&"billing_subscriptions") && kept.contains(&"accounts"), "{kept:?}");
        let customers = receipt.kept.iter().find(|k| k.table == "billing_customers").expect("kept");
        assert_eq!(customers.held_until, Some(T0 + 90 * DAY), "the person is told until when");
        let account = store.account(&ola).await.expect("read").expect("the row stays for the held rows");
        assert!(account.email.is_empty() && account.password_hash.is_empty(), "with nothing but its id");
        assert!(!receipt.removed.contains_key("billing_customers"));

        // The hold ends by itself at its date.
        w.clock.advance(91 * DAY);
        assert!(holds.in_force().await.expect("holds").is_empty());
        let actions = store.column_text("audit_log", "action").await.expect("actions");
        for action in ["hold.placed", "hold.lifted", "rights.erasure_requested", "rights.erasure_completed"] {
            assert!(actions.iter().any(|a| a == action), "{action} audited: {actions:?}");
        }
        let _ = ExposeSecret::expose_secret(&SecretString::from("unused"));
    })
    .await;
}

#[tokio::test]
async fn the_search_reports_what_an_erasure_left_behind_instead_of_calling_it_verified() {
    for_each_engine(|store| async move {
        let w = World::new(store.clone());
        let (ola, _) = w.person("ola@example.com", 1).await;
        // A counter named in clear text (no code does this; the search must notice if one did).
        store.throttle_failure(&format!("debug:{ola}"), T0, T0).await.expect("counter");
        let receipt_id = w.erasures.request(&ola, &w.queue).await.expect("request");
        w.run_jobs().await;
        let receipt = w.erasures.receipt(&receipt_id).await.expect("read").expect("receipt");
        assert_eq!(receipt.verified_at, None, "not verified while something is left");
        assert_eq!(receipt.leftovers.get("throttle"), Some(&1));
    })
    .await;
}
