//! The boundary to the payment provider: what PassMe asks of it, and the few fields it reads
//! back from its objects. Everything else in the provider's answers is dropped on parsing.

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

pub type ProviderFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ProviderError>> + Send + 'a>>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// No answer, a timeout or 5xx after every retry: the provider's trouble, try later.
    #[error("the payment provider is unavailable: {0}")]
    Unavailable(String),
    /// A 4xx the provider explained: our request was wrong or refused.
    #[error("the payment provider refused the request ({status} {code}): {message}")]
    Refused { status: u16, code: String, message: String },
    #[error("the payment provider answered in an unexpected shape: {0}")]
    Malformed(String),
}

/// A hosted page to send the user to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostedSession {
    pub id: String,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutRequest {
    pub customer: String,
    pub price: String,
    /// Our account id; checked again when the completion event arrives.
    pub client_reference_id: String,
    pub success_url: String,
    pub cancel_url: String,
    /// `da` or `en`.
    pub locale: String,
    pub idempotency_key: String,
}

/// The fields of a provider subscription PassMe keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: String,
    pub customer: String,
    pub price: String,
    pub status: String,
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
}

/// The fields of a provider invoice PassMe keeps as an accounting record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    pub id: String,
    pub customer: String,
    pub subscription: Option<String>,
    pub number: Option<String>,
    pub amount: i64,
    pub currency: String,
    /// Unix seconds.
    pub created: i64,
    pub status: String,
    /// The attempt to pay it, whose payment method names the card.
    pub payment_intent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Price {
    pub id: String,
    pub active: bool,
    pub interval: Option<String>,
}

/// A payment provider. Every creating call carries an idempotency key, so a retry (ours, or a
/// user's double click) never creates a second customer or subscription.
pub trait BillingProvider: Send + Sync + std::fmt::Debug {
    /// The customer made earlier for this account (its metadata names it), if any.
    fn find_customer<'a>(&'a self, account_id: &'a str, email: &'a str) -> ProviderFuture<'a, Option<String>>;
    fn create_customer<'a>(&'a self, account_id: &'a str, email: &'a str, idempotency_key: &'a str) -> ProviderFuture<'a, String>;
    fn create_checkout_session<'a>(&'a self, request: &'a CheckoutRequest) -> ProviderFuture<'a, HostedSession>;
    fn create_portal_session<'a>(
        &'a self,
        customer: &'a str,
        return_url: &'a str,
        idempotency_key: &'a str,
    ) -> ProviderFuture<'a, HostedSession>;
    fn set_cancel_at_period_end<'a>(
        &'a self,
        subscription: &'a str,
        cancel: bool,
        idempotency_key: &'a str,
    ) -> ProviderFuture<'a, Subscription>;
    /// Ends a subscription now (an account being closed).
    fn cancel_now<'a>(&'a self, subscription: &'a str) -> ProviderFuture<'a, Option<Subscription>>;
    /// `None` when the provider does not know it.
    fn subscription<'a>(&'a self, id: &'a str) -> ProviderFuture<'a, Option<Subscription>>;
    /// Every subscription in any status.
    fn list_subscriptions(&self) -> ProviderFuture<'_, Vec<Subscription>>;
    fn price<'a>(&'a self, id: &'a str) -> ProviderFuture<'a, Option<Price>>;
    /// The provider's fingerprint of the card a payment attempt used (the same card gives the
    /// same fingerprint across customers); `None` when it was not a card or is unknown.
    fn card_fingerprint<'a>(&'a self, payment_intent: &'a str) -> ProviderFuture<'a, Option<String>>;
}

/// An id that may come as a string or as an expanded object with an `id`.
pub(crate) fn id_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("id").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

fn str_field(object: &Value, name: &str) -> Result<String, ProviderError> {
    object.get(name).and_then(Value::as_str).map(str::to_string).ok_or_else(|| ProviderError::Malformed(format!("no string {name}")))
}

impl Subscription {
    /// Reads a subscription object. The price is the first item's (`price`, or the legacy
    /// `plan`); the period end is top level in older API versions and per item in newer ones.
    pub fn from_object(object: &Value) -> Result<Subscription, ProviderError> {
        let item = object.pointer("/items/data/0");
        let price = item
            .and_then(|i| i.get("price").or_else(|| i.get("plan")))
            .or_else(|| object.get("plan"))
            .and_then(id_of)
            .ok_or_else(|| ProviderError::Malformed("subscription without a price".into()))?;
        let current_period_end = object
            .get("current_period_end")
            .and_then(Value::as_i64)
            .or_else(|| item.and_then(|i| i.get("current_period_end")).and_then(Value::as_i64));
        Ok(Subscription {
            id: str_field(object, "id")?,
            customer: object
                .get("customer")
                .and_then(id_of)
                .ok_or_else(|| ProviderError::Malformed("subscription without a customer".into()))?,
            price,
            status: str_field(object, "status")?,
            current_period_end,
            cancel_at_period_end: object.get("cancel_at_period_end").and_then(Value::as_bool).unwrap_or(false),
        })
    }
}

impl Subscription {
    /// The object again, holding only what PassMe reads, in the shape [`Subscription::from_object`]
    /// reads.
    pub fn to_object(&self) -> Value {
        serde_json::json!({
            "id": self.id, "object": "subscription", "customer": self.customer, "status": self.status,
            "current_period_end": self.current_period_end, "cancel_at_period_end": self.cancel_at_period_end,
            "items": { "data": [ { "price": { "id": self.price } } ] },
        })
    }
}

impl Invoice {
    /// The object again, holding only what PassMe keeps.
    pub fn to_object(&self) -> Value {
        serde_json::json!({
            "id": self.id, "object": "invoice", "customer": self.customer, "subscription": self.subscription, "number": self.number,
            "total": self.amount, "currency": self.currency, "created": self.created, "status": self.status,
            "payment_intent": self.payment_intent,
        })
    }

    pub fn from_object(object: &Value) -> Result<Invoice, ProviderError> {
        let subscription = object
            .get("subscription")
            .and_then(id_of)
            .or_else(|| object.pointer("/parent/subscription_details/subscription").and_then(id_of));
        Ok(Invoice {
            id: str_field(object, "id")?,
            customer: object
                .get("customer")
                .and_then(id_of)
                .ok_or_else(|| ProviderError::Malformed("invoice without a customer".into()))?,
            subscription,
            number: object.get("number").and_then(Value::as_str).map(str::to_string),
            amount: object.get("total").or_else(|| object.get("amount_due")).and_then(Value::as_i64).unwrap_or(0),
            currency: object.get("currency").and_then(Value::as_str).unwrap_or("").to_ascii_lowercase(),
            created: object
                .get("created")
                .and_then(Value::as_i64)
                .ok_or_else(|| ProviderError::Malformed("invoice without created".into()))?,
            status: object.get("status").and_then(Value::as_str).unwrap_or("draft").to_string(),
            payment_intent: object.get("payment_intent").and_then(id_of),
        })
    }
}

impl Price {
    pub fn from_object(object: &Value) -> Result<Price, ProviderError> {
        Ok(Price {
            id: str_field(object, "id")?,
            active: object.get("active").and_then(Value::as_bool).unwrap_or(false),
            interval: object.pointer("/recurring/interval").or_else(|| object.get("interval")).and_then(Value::as_str).map(str::to_string),
        })
    }
}

impl HostedSession {
    pub fn from_object(object: &Value) -> Result<HostedSession, ProviderError> {
        let url = str_field(object, "url")?;
        if !url.starts_with("https://") && !url.starts_with("http://") {
            return Err(ProviderError::Malformed("session URL is not http(s)".into()));
        }
        Ok(HostedSession { id: str_field(object, "id")?, url })
    }
}
