//! Payments through the provider, without ever holding card data.
//!
//! PassMe creates the provider's customer for an account, sends the user to the provider's hosted
//! checkout and billing portal, and learns what happened only from signed webhooks (and from
//! reconciliation, which asks the provider directly). It keeps the customer id, each
//! subscription's price, status, period end and cancellation flag, the last event, and invoice
//! references as accounting records; nothing else from the provider.
//!
//! Events arrive at least once, in any order. Each is stored once (its id is a primary key),
//! acknowledged, and applied by a job. A subscription's stored state carries the provider's time
//! of that state; an older event is stale and ignored, an equally old one makes us ask the
//! provider for the current object, and an ended subscription never comes back.

pub mod catalogue;
pub mod events;
pub mod provider;
pub mod signature;
pub mod stripe;

use std::sync::Arc;
use std::time::Duration;

use passme_core::CoreError;
use passme_core::audit::{AuditEvent, AuditLog};
use passme_core::clock::SharedClock;
use passme_core::config::BillingConfig;
use passme_core::jobs::{EnqueueOptions, HandlerFuture, JobError, JobPayload, JobQueue};
use passme_store::AccountId;
use passme_store::{BillingEventRow, InvoiceRow, NewJob, Store, StoreError, SubscriptionRow};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use catalogue::{Catalogue, Plan, Status};
use events::{Event, Handled};
pub use provider::{BillingProvider, CheckoutRequest, HostedSession, ProviderError, Subscription};
use signature::SignatureError;
pub use stripe::StripeClient;

/// Applies one received provider event.
pub const EVENT_JOB: &str = "billing.event";
/// Compares every subscription with the provider and repairs drift; daily.
pub const RECONCILE_JOB: &str = "billing.reconcile";
/// Ends the subscriptions of an account being closed.
pub const ACCOUNT_CLOSED_JOB: &str = "billing.account_closed";
/// A payment failed: the person is told (by whoever handles this kind: messaging).
pub const PAYMENT_FAILED_JOB: &str = "billing.payment_failed";
pub const CARD_PAYMENT_JOB: &str = "billing.card_payment";
/// The largest webhook body accepted; the provider's events are a few kilobytes.
pub const WEBHOOK_BODY_LIMIT: usize = 1024 * 1024;

const DAY_MS: i64 = 86_400_000;

#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error("{message}")]
    Config { message: String },
    #[error("subscriptions are not available here (no payment provider is configured)")]
    NotConfigured,
    #[error("there is no plan {0:?}")]
    UnknownPlan(String),
    #[error("you have no subscription to change")]
    NoSubscription,
    #[error("you already have an active subscription; change it in the billing portal")]
    AlreadySubscribed,
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl From<StoreError> for BillingError {
    fn from(e: StoreError) -> BillingError {
        BillingError::Core(e.into())
    }
}

impl BillingError {
    pub fn code(&self) -> &'static str {
        match self {
            BillingError::Config { .. } => "billing_config_invalid",
            BillingError::NotConfigured => "billing_not_configured",
            BillingError::UnknownPlan(_) => "plan_unknown",
            BillingError::NoSubscription => "subscription_missing",
            BillingError::AlreadySubscribed => "already_subscribed",
            BillingError::Provider(ProviderError::Unavailable(_)) => "provider_unavailable",
            BillingError::Provider(ProviderError::Refused { .. }) => "provider_refused",
            BillingError::Provider(ProviderError::Malformed(_)) => "provider_malformed",
            BillingError::Core(e) => e.code(),
        }
    }
}

/// Why a webhook delivery was refused; each is a 4xx, so the provider retries or gives up.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("the event body is not acceptable: {0}")]
    Body(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl WebhookError {
    pub fn code(&self) -> &'static str {
        match self {
            WebhookError::Signature(e) => e.code(),
            WebhookError::Body(_) => "webhook_body_invalid",
            WebhookError::Store(e) => e.code(),
        }
    }
}

/// A delivery taken: new, or a duplicate of one already stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub event_id: String,
    pub duplicate: bool,
}

/// What an account has, for pages and the entitlements API.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The subscription that counts: one granting access, else the newest.
    pub subscription: Option<SubscriptionRow>,
    pub status: Option<Status>,
    pub plan: Option<Plan>,
    pub access: bool,
    pub entitlements: Vec<String>,
    /// A payment failed or is due: the user must act.
    pub payment_problem: bool,
    pub invoices: Vec<InvoiceRow>,
}

/// One repair made by reconciliation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Repair {
    pub subscription: String,
    pub before: Option<String>,
    pub after: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReconcileReport {
    /// Subscriptions of known customers compared with the provider.
    pub checked: usize,
    pub repaired: Vec<Repair>,
    /// Subscriptions at the provider whose customer is not one of ours.
    pub foreign: usize,
    /// Configured prices the provider does not have, or has inactive or billed otherwise.
    pub catalogue_problems: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Billing {
    store: Store,
    clock: SharedClock,
    provider: Arc<dyn BillingProvider>,
    catalogue: Catalogue,
    webhook_secrets: Arc<Vec<SecretString>>,
    livemode: bool,
    base_url: String,
}

impl Billing {
    /// Billing as configured: `None` when no secret key is set (billing off). A key without a
    /// webhook secret, or a malformed catalogue, stops the start.
    pub fn from_config(config: &BillingConfig, store: Store, clock: SharedClock, base_url: &str) -> Result<Option<Billing>, BillingError> {
        let Some(key) = &config.secret_key else {
            if !config.plans.is_empty() || !config.webhook_secrets.is_empty() {
                tracing::warn!("billing plans or webhook secrets are configured without a secret key: billing is off");
            }
            return Ok(None);
        };
        if config.webhook_secrets.is_empty() {
            return Err(BillingError::Config {
                message: "billing: a secret key is set but no webhook secret (PASSME_BILLING__WEBHOOK_SECRETS)".into(),
            });
        }
        let catalogue = Catalogue::from_config(&config.plans)?;
        let livemode = key.expose_secret().starts_with("sk_live_") || key.expose_secret().starts_with("rk_live_");
        let client = StripeClient::new(&config.api_base, key.clone(), Duration::from_millis(config.request_timeout_ms.max(100)))?;
        Ok(Some(Billing::new(store, clock, Arc::new(client), catalogue, config.webhook_secrets.clone(), livemode, base_url)))
    }

    pub fn new(
        store: Store,
        clock: SharedClock,
        provider: Arc<dyn BillingProvider>,
        catalogue: Catalogue,
        webhook_secrets: Vec<SecretString>,
        livemode: bool,
        base_url: &str,
    ) -> Billing {
        Billing {
            store,
            clock,
            provider,
            catalogue,
            webhook_secrets: Arc::new(webhook_secrets),
            livemode,
            base_url: base_url.trim_end_matches('/').to_string(),
        }
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// Whether this is the provider's live mode (an `sk_live_` key): only its events are taken.
    pub fn livemode(&self) -> bool {
        self.livemode
    }

    fn now_secs(&self) -> i64 {
        self.clock.now_ms().div_euclid(1000)
    }

    // ---- the user's side ----

    /// The account's customer at the provider, created on first need. The idempotency key is
    /// the account's, so concurrent or retried calls get the same customer; one made earlier
    /// whose answer never reached us (the provider keeps keys only a day) is found by its
    /// metadata first.
    pub async fn ensure_customer(&self, account_id: &AccountId) -> Result<String, BillingError> {
        if let Some(customer) = self.store.billing_customer_of(account_id).await? {
            return Ok(customer);
        }
        let account = self.store.account(account_id).await?.ok_or(CoreError::NotFound { code: "account_unknown" })?;
        let customer = match self.provider.find_customer(account_id.as_str(), &account.email).await? {
            Some(earlier) => earlier,
            None => self.provider.create_customer(account_id.as_str(), &account.email, &format!("passme-customer-{account_id}")).await?,
        };
        match self.store.insert_billing_customer(account_id, &customer, self.clock.now_ms()).await {
            Ok(()) => Ok(customer),
            Err(StoreError::Conflict) => self.store.billing_customer_of(account_id).await?.ok_or(BillingError::NoSubscription),
            Err(e) => Err(e.into()),
        }
    }

    /// A checkout session for `plan_id`, bound to the account's own customer; returns the
    /// provider's page to send the user to. Access follows from the provider's events only.
    pub async fn start_checkout(&self, account_id: &AccountId, plan_id: &str, lang: passme_policy::Lang) -> Result<String, BillingError> {
        let plan = self.catalogue.plan(plan_id).ok_or_else(|| BillingError::UnknownPlan(plan_id.chars().take(64).collect()))?;
        if self.current_subscription(account_id).await?.is_some_and(|s| Status::parse(&s.status).grants_access()) {
            return Err(BillingError::AlreadySubscribed);
        }
        let customer = self.ensure_customer(account_id).await?;
        let session = self
            .provider
            .create_checkout_session(&CheckoutRequest {
                customer,
                price: plan.price.clone(),
                client_reference_id: account_id.to_string(),
                success_url: format!("{}/billing?checkout=done", self.base_url),
                cancel_url: format!("{}/billing?checkout=cancelled", self.base_url),
                locale: lang.code().to_string(),
                idempotency_key: random_key("checkout"),
            })
            .await?;
        tracing::info!(plan = %plan.id, session = %session.id, "checkout session created");
        Ok(session.url)
    }

    /// The provider's billing portal for the account (payment method, plan, invoices).
    pub async fn open_portal(&self, account_id: &AccountId) -> Result<String, BillingError> {
        let customer = self.store.billing_customer_of(account_id).await?.ok_or(BillingError::NoSubscription)?;
        let return_url = format!("{}/billing", self.base_url);
        Ok(self.provider.create_portal_session(&customer, &return_url, &random_key("portal")).await?.url)
    }

    /// Cancels at the end of the paid period (or takes the cancellation back). The provider's
    /// answer is stored at once; its event follows.
    pub async fn set_cancel_at_period_end(&self, account_id: &AccountId, cancel: bool) -> Result<(), BillingError> {
        let current = self.current_subscription(account_id).await?.filter(|s| Status::parse(&s.status).grants_access());
        let current = current.ok_or(BillingError::NoSubscription)?;
        let updated = self.provider.set_cancel_at_period_end(&current.subscription_id, cancel, &random_key("cancel")).await?;
        self.store_fetched(&updated, Some(account_id.clone()), current.state_at.max(self.now_secs())).await?;
        Ok(())
    }

    /// The subscription that counts for an account: one granting access, else one not yet
    /// ended, else the newest.
    async fn current_subscription(&self, account_id: &AccountId) -> Result<Option<SubscriptionRow>, BillingError> {
        let subscriptions = self.store.billing_subscriptions_of(account_id).await?;
        Ok(subscriptions
            .iter()
            .find(|s| Status::parse(&s.status).grants_access())
            .or_else(|| subscriptions.iter().find(|s| s.ended_at.is_none()))
            .or(subscriptions.first())
            .cloned())
    }

    pub async fn summary(&self, account_id: &AccountId) -> Result<Summary, BillingError> {
        let current = self.current_subscription(account_id).await?;
        let invoices = self.store.billing_invoices_of(account_id, 24).await?;
        let status = current.as_ref().map(|s| Status::parse(&s.status));
        let access = status.as_ref().is_some_and(Status::grants_access);
        let plan = current.as_ref().and_then(|s| self.catalogue.by_price(&s.price_id)).cloned();
        let entitlements = if access { plan.as_ref().map(|p| p.entitlements.clone()).unwrap_or_default() } else { Vec::new() };
        let unpaid_invoice = invoices.iter().any(|i| i.payment_failed && i.status == "open");
        let payment_problem = status.as_ref().is_some_and(Status::payment_problem) || unpaid_invoice;
        Ok(Summary { subscription: current, status, plan, access, entitlements, payment_problem, invoices })
    }

    // ---- the provider's side ----

    /// Takes a webhook delivery: verifies the signature on the raw bytes, parses strictly, stores
    /// the event once and queues its processing, all before answering.
    pub async fn receive(&self, signature_header: Option<&str>, body: &[u8]) -> Result<Received, WebhookError> {
        signature::verify(signature_header, body, &self.webhook_secrets, self.now_secs())?;
        let event = Event::parse(body).map_err(WebhookError::Body)?;
        let now = self.clock.now_ms();
        // Only a handled event's minimised form is queued. Any other is recorded with its outcome
        // and its body dropped.
        let minimised = match event.handled() {
            Some(kind) => event.minimised(kind).map_err(|e| Outcome::Ignored(Ignored::Unreadable(e.to_string()))),
            None => Err(Outcome::Ignored(Ignored::TypeNotHandled)),
        };
        let row = BillingEventRow {
            event_id: event.id.clone(),
            event_type: event.kind.clone(),
            created: event.created,
            received_at: now,
            outcome: minimised.as_ref().err().map(Outcome::to_string),
        };
        let job = minimised.ok().map(|payload| NewJob {
            id: format!("billing-event-{}", event.id),
            queue: passme_core::jobs::DEFAULT_QUEUE.into(),
            kind: EVENT_JOB.into(),
            payload: payload.to_string(),
            max_attempts: 12,
            run_at: now,
        });
        let new = self.store.record_billing_event(&row, job.as_ref()).await?;
        Ok(Received { event_id: event.id, duplicate: !new })
    }

    /// Applies a stored event (the job's payload) and records the outcome. An error means "try
    /// again later" (the provider did not answer); everything else is an outcome.
    pub async fn process(&self, payload: &str) -> Result<Outcome, BillingError> {
        let event = Event::parse(payload.as_bytes())
            .map_err(|message| BillingError::Core(CoreError::broken("stored billing event unreadable", message)))?;
        let outcome = self.apply(&event).await?;
        self.store.set_billing_event_outcome(&event.id, &outcome.to_string()).await?;
        if let Outcome::Ignored(_) = outcome {
            tracing::info!(event = %event.id, kind = %event.kind, %outcome, "provider event ignored");
        } else {
            tracing::debug!(event = %event.id, kind = %event.kind, %outcome, "provider event processed");
        }
        Ok(outcome)
    }

    async fn apply(&self, event: &Event) -> Result<Outcome, BillingError> {
        if event.livemode != self.livemode {
            return Ok(Outcome::Ignored(Ignored::LivemodeMismatch));
        }
        match event.handled() {
            None => Ok(Outcome::Ignored(Ignored::TypeNotHandled)),
            Some(Handled::Subscription) => match Subscription::from_object(&event.object) {
                Ok(subscription) => self.apply_subscription(subscription, event, false).await,
                Err(e) => Ok(Outcome::Ignored(Ignored::Unreadable(e.to_string()))),
            },
            Some(Handled::Checkout) => self.apply_checkout(event).await,
            Some(Handled::Invoice) => self.apply_invoice(event).await,
            Some(Handled::CustomerDeleted) => {
                let customer = event.object.get("id").and_then(Value::as_str).unwrap_or_default();
                Ok(if self.store.unbind_billing_customer(customer).await? {
                    Outcome::Applied
                } else {
                    Outcome::Ignored(Ignored::UnknownCustomer)
                })
            }
        }
    }

    /// Stores a subscription state from `event` unless a newer one is stored. `fresh` says it was
    /// just fetched from the provider (no need to ask again on a tie).
    async fn apply_subscription(&self, mut subscription: Subscription, event: &Event, fresh: bool) -> Result<Outcome, BillingError> {
        let Some(account) = self.store.billing_account_of(&subscription.customer).await? else {
            return Ok(Outcome::Ignored(Ignored::UnknownCustomer));
        };
        if let Some(stored) = self.store.billing_subscription(&subscription.id).await? {
            if stored.ended_at.is_some() {
                return Ok(Outcome::Stale(Stale::Ended));
            }
            if stored.state_at > event.created {
                return Ok(Outcome::Stale(Stale::NewerStored));
            }
            // Same second: the order of the two is unknown, so ask the provider what is true now.
            if stored.state_at == event.created
                && !fresh
                && let Some(current) = self.provider.subscription(&subscription.id).await?
            {
                subscription = current;
            }
        }
        let row = self.row_of(&subscription, Some(account), Some(event.id.clone()), event.created);
        Ok(if self.store.put_billing_subscription(&row).await? { Outcome::Applied } else { Outcome::Stale(Stale::NewerStored) })
    }

    fn row_of(&self, s: &Subscription, account_id: Option<AccountId>, last_event_id: Option<String>, state_at: i64) -> SubscriptionRow {
        let now = self.clock.now_ms();
        SubscriptionRow {
            subscription_id: s.id.clone(),
            account_id,
            customer_id: s.customer.clone(),
            price_id: s.price.clone(),
            status: s.status.clone(),
            current_period_end: s.current_period_end,
            cancel_at_period_end: s.cancel_at_period_end,
            last_event_id,
            state_at,
            updated_at: now,
            ended_at: Status::parse(&s.status).is_terminal().then_some(now),
        }
    }

    /// Stores a state read from the provider's API (not from an event) as of `state_at`.
    async fn store_fetched(&self, s: &Subscription, account_id: Option<AccountId>, state_at: i64) -> Result<bool, BillingError> {
        Ok(self.store.put_billing_subscription(&self.row_of(s, account_id, None, state_at)).await?)
    }

    /// A completed checkout: the customer must be the one we created for the account named by
    /// the client reference, and the subscription is read from the provider, not from the event.
    async fn apply_checkout(&self, event: &Event) -> Result<Outcome, BillingError> {
        let text = |name: &str| {
            event.object.get(name).and_then(|v| v.as_str().map(str::to_string).or_else(|| v.get("id")?.as_str().map(str::to_string)))
        };
        if text("mode").as_deref() != Some("subscription") {
            return Ok(Outcome::Ignored(Ignored::NotSubscriptionCheckout));
        }
        let Some(customer) = text("customer") else { return Ok(Outcome::Ignored(Ignored::NoCustomer)) };
        let Some(account) = self.store.billing_account_of(&customer).await? else {
            return Ok(Outcome::Ignored(Ignored::UnknownCustomer));
        };
        if text("client_reference_id").as_deref() != Some(account.as_str()) {
            tracing::warn!(event = %event.id, "checkout completion whose client reference does not match its customer's account: ignored");
            return Ok(Outcome::Ignored(Ignored::ReferenceMismatch));
        }
        let Some(subscription_id) = text("subscription") else { return Ok(Outcome::Ignored(Ignored::NoSubscription)) };
        let Some(subscription) = self.provider.subscription(&subscription_id).await? else {
            return Ok(Outcome::Ignored(Ignored::UnknownToProvider));
        };
        if subscription.customer != customer {
            tracing::warn!(event = %event.id, "checkout completion naming another customer's subscription: ignored");
            return Ok(Outcome::Ignored(Ignored::AnotherCustomers));
        }
        self.apply_subscription(subscription, event, true).await
    }

    async fn apply_invoice(&self, event: &Event) -> Result<Outcome, BillingError> {
        let invoice = match provider::Invoice::from_object(&event.object) {
            Ok(invoice) => invoice,
            Err(e) => return Ok(Outcome::Ignored(Ignored::Unreadable(e.to_string()))),
        };
        let Some(account) = self.store.billing_account_of(&invoice.customer).await? else {
            return Ok(Outcome::Ignored(Ignored::UnknownCustomer));
        };
        let settled = matches!(invoice.status.as_str(), "paid" | "void");
        let failed_before = self.store.billing_invoice(&invoice.id).await?.is_some_and(|i| i.payment_failed);
        let row = InvoiceRow {
            invoice_id: invoice.id,
            account_id: Some(account),
            subscription_id: invoice.subscription,
            number: invoice.number,
            amount: invoice.amount,
            currency: invoice.currency,
            issued_at: invoice.created.saturating_mul(1000),
            status: invoice.status,
            payment_failed: !settled && (event.kind == "invoice.payment_failed" || failed_before),
            state_at: event.created,
        };
        let newly_failed = row.payment_failed && !failed_before;
        let account = row.account_id.clone();
        let attempt = match (event.kind.as_str(), &invoice.payment_intent, &account) {
            ("invoice.payment_succeeded" | "invoice.payment_failed", Some(intent), Some(account)) => Some(CardPayment {
                account: account.clone(),
                payment_intent: intent.clone(),
                succeeded: event.kind == "invoice.payment_succeeded",
            }),
            _ => None,
        };
        if !self.store.put_billing_invoice(&row).await? {
            return Ok(Outcome::Stale(Stale::NewerStored));
        }
        if let Some(attempt) = attempt {
            // Each attempt once (a repeated delivery of the event is the same attempt), for fraud
            // scanning's card signals.
            self.enqueue(&format!("card-payment:{}", event.id), CARD_PAYMENT_JOB, &attempt).await?;
        }
        if newly_failed && let Some(account) = account {
            // Once per invoice, however often the provider repeats the event.
            self.enqueue(
                &format!("payment-failed:{}", row.invoice_id),
                PAYMENT_FAILED_JOB,
                &PaymentFailed { account, invoice: row.invoice_id.clone() },
            )
            .await?;
        }
        Ok(Outcome::Applied)
    }

    /// Queues a job under a deterministic id: a second one with the same id is the same job.
    async fn enqueue(&self, id: &str, kind: &str, payload: &impl Serialize) -> Result<(), BillingError> {
        let job = passme_store::NewJob {
            id: id.to_string(),
            queue: passme_core::jobs::DEFAULT_QUEUE.into(),
            kind: kind.into(),
            payload: serde_json::to_string(payload).map_err(|e| BillingError::from(passme_core::CoreError::broken("billing job", e)))?,
            max_attempts: 8,
            run_at: self.clock.now_ms(),
        };
        match self.store.enqueue_job(&job, self.clock.now_ms()).await {
            Ok(()) | Err(passme_store::StoreError::Conflict) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The fingerprint of the card a payment attempt used, from the provider.
    pub async fn card_fingerprint(&self, payment_intent: &str) -> Result<Option<String>, BillingError> {
        Ok(self.provider.card_fingerprint(payment_intent).await?)
    }

    // ---- reconciliation ----

    /// Compares every subscription with the provider and stores the provider's state where ours
    /// differs (a missed or lost webhook), then checks the catalogue's prices.
    pub async fn reconcile(&self) -> Result<ReconcileReport, BillingError> {
        let mut report = ReconcileReport::default();
        let now = self.now_secs();
        let at_provider = self.provider.list_subscriptions().await?;
        for subscription in &at_provider {
            let Some(account) = self.store.billing_account_of(&subscription.customer).await? else {
                report.foreign += 1;
                continue;
            };
            report.checked += 1;
            self.repair(subscription, Some(account), now, &mut report).await?;
        }
        // Ours, but not in the provider's list: ask for each; one the provider has forgotten has
        // ended.
        for stored in self.store.open_billing_subscriptions().await? {
            if at_provider.iter().any(|s| s.id == stored.subscription_id) {
                continue;
            }
            report.checked += 1;
            let current = match self.provider.subscription(&stored.subscription_id).await? {
                Some(current) => current,
                None => Subscription {
                    id: stored.subscription_id.clone(),
                    customer: stored.customer_id.clone(),
                    price: stored.price_id.clone(),
                    status: "canceled".into(),
                    current_period_end: stored.current_period_end,
                    cancel_at_period_end: stored.cancel_at_period_end,
                },
            };
            self.repair(&current, stored.account_id.clone(), now, &mut report).await?;
        }
        for plan in self.catalogue.plans() {
            match self.provider.price(&plan.price).await? {
                None => report.catalogue_problems.push(format!("plan {}: the provider has no price {}", plan.id, plan.price)),
                Some(price) if !price.active => {
                    report.catalogue_problems.push(format!("plan {}: price {} is inactive", plan.id, plan.price))
                }
                Some(price) if price.interval.as_deref().is_some_and(|i| i != plan.interval) => report.catalogue_problems.push(format!(
                    "plan {}: price {} bills every {}, the catalogue says {}",
                    plan.id,
                    plan.price,
                    price.interval.as_deref().unwrap_or("?"),
                    plan.interval
                )),
                Some(_) => {}
            }
        }
        AuditLog::new(self.store.clone(), self.clock.clone())
            .record(AuditEvent {
                actor: "system",
                action: "billing.reconciled",
                subject: "billing",
                details: json!({
                    "checked": report.checked,
                    "repaired": report.repaired.len(),
                    "foreign": report.foreign,
                    "catalogue_problems": report.catalogue_problems.len(),
                }),
            })
            .await?;
        Ok(report)
    }

    async fn repair(
        &self,
        current: &Subscription,
        account: Option<AccountId>,
        now: i64,
        report: &mut ReconcileReport,
    ) -> Result<(), BillingError> {
        let stored = self.store.billing_subscription(&current.id).await?;
        let same = stored.as_ref().is_some_and(|s| {
            s.status == current.status
                && s.price_id == current.price
                && s.current_period_end == current.current_period_end
                && s.cancel_at_period_end == current.cancel_at_period_end
        });
        if same {
            return Ok(());
        }
        let state_at = stored.as_ref().map_or(now, |s| s.state_at.max(now));
        if self.store_fetched(current, account, state_at).await? {
            report.repaired.push(Repair {
                subscription: current.id.clone(),
                before: stored.map(|s| s.status),
                after: current.status.clone(),
            });
        }
        Ok(())
    }

    /// Ends, at the provider, every subscription of an account being closed. Their deletion
    /// events follow; the answer is stored at once.
    pub async fn end_subscriptions_of(&self, account_id: &AccountId) -> Result<usize, BillingError> {
        let mut ended = 0;
        for s in self.store.billing_subscriptions_of(account_id).await?.into_iter().filter(|s| s.ended_at.is_none()) {
            if let Some(current) = self.provider.cancel_now(&s.subscription_id).await? {
                self.store_fetched(&current, None, s.state_at.max(self.now_secs())).await?;
            }
            ended += 1;
        }
        Ok(ended)
    }

    /// Queues today's reconciliation; a no-op when another process already did.
    pub async fn schedule_reconcile(queue: &JobQueue, now_ms: i64) -> Result<bool, CoreError> {
        let id = format!("billing-reconcile:{}", now_ms.div_euclid(DAY_MS));
        let (_, new) = queue.enqueue(RECONCILE_JOB, &json!({}), EnqueueOptions { id: Some(id), ..Default::default() }).await?;
        Ok(new)
    }

    /// Queues ending the subscriptions of a closed account.
    pub async fn schedule_account_closed(queue: &JobQueue, account_id: &AccountId) -> Result<(), CoreError> {
        let options = EnqueueOptions { id: Some(format!("billing-closed-{account_id}")), ..Default::default() };
        queue.push(&AccountClosed { account: account_id.clone() }, options).await.map(|_| ())
    }

    /// The job handlers: events, reconciliation, account closure.
    pub fn register(self: &Arc<Self>, handlers: &mut passme_core::jobs::Handlers) {
        let billing = self.clone();
        // The provider's event, stored as it came: `process` reads what it handles and keeps the rest.
        handlers.register(EVENT_JOB, move |job| {
            let billing = billing.clone();
            async move { billing.process(&job.payload).await.map(|_| ()).map_err(JobError::failed) }
        });
        let billing = self.clone();
        handlers.register(RECONCILE_JOB, move |_job| -> HandlerFuture {
            let billing = billing.clone();
            Box::pin(async move {
                let report = billing.reconcile().await.map_err(JobError::failed)?;
                tracing::info!(checked = report.checked, repaired = report.repaired.len(), foreign = report.foreign, catalogue_problems = ?report.catalogue_problems, "billing reconciled");
                Ok(())
            })
        });
        let billing = self.clone();
        handlers.on(move |closed: AccountClosed| {
            let billing = billing.clone();
            async move { billing.end_subscriptions_of(&closed.account).await.map(|_| ()).map_err(JobError::failed) }
        });
    }
}

/// An account was closed: end its subscriptions at the provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountClosed {
    pub account: AccountId,
}

impl JobPayload for AccountClosed {
    const KIND: &'static str = ACCOUNT_CLOSED_JOB;
}

/// A payment attempt with a card, for fraud scanning: whose, which attempt (its card is looked up
/// at the provider when the job runs, so the event's payload holds no card data), and how it went.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardPayment {
    pub account: AccountId,
    pub payment_intent: String,
    pub succeeded: bool,
}

impl JobPayload for CardPayment {
    const KIND: &'static str = CARD_PAYMENT_JOB;
}

/// A payment for an invoice failed; the person is to be told.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentFailed {
    pub account: AccountId,
    pub invoice: String,
}

impl JobPayload for PaymentFailed {
    const KIND: &'static str = PAYMENT_FAILED_JOB;
}

/// What processing a provider event did; stored beside the event as its text
/// (`applied`, `stale: …`, `ignored: …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// The event is older than what is stored: it changes nothing.
    Stale(Stale),
    /// The event is not for us, or not to be trusted.
    Ignored(Ignored),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stale {
    Ended,
    NewerStored,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ignored {
    TypeNotHandled,
    LivemodeMismatch,
    UnknownCustomer,
    NotSubscriptionCheckout,
    NoCustomer,
    NoSubscription,
    /// A checkout whose client reference names another account than its customer's.
    ReferenceMismatch,
    UnknownToProvider,
    /// A checkout naming another customer's subscription.
    AnotherCustomers,
    /// The event's object lacks what we need (the reason says what).
    Unreadable(String),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Applied => f.write_str("applied"),
            Outcome::Stale(Stale::Ended) => f.write_str("stale: the subscription has ended"),
            Outcome::Stale(Stale::NewerStored) => f.write_str("stale: a newer state is stored"),
            Outcome::Ignored(why) => {
                let why = match why {
                    Ignored::TypeNotHandled => "type not handled",
                    Ignored::LivemodeMismatch => "livemode does not match our key",
                    Ignored::UnknownCustomer => "unknown customer",
                    Ignored::NotSubscriptionCheckout => "not a subscription checkout",
                    Ignored::NoCustomer => "no customer",
                    Ignored::NoSubscription => "no subscription",
                    Ignored::ReferenceMismatch => "client reference does not match the customer",
                    Ignored::UnknownToProvider => "the provider does not know the subscription",
                    Ignored::AnotherCustomers => "the subscription belongs to another customer",
                    Ignored::Unreadable(reason) => reason,
                };
                write!(f, "ignored: {why}")
            }
        }
    }
}

fn random_key(purpose: &str) -> String {
    format!("passme-{purpose}-{}", hex::encode(rand::random::<[u8; 16]>()))
}
