//! A thin client over Stripe's HTTP API: form-encoded requests, JSON answers, the secret key as a
//! bearer token. Every POST carries an `Idempotency-Key`; timeouts, connection failures, 5xx,
//! 429 and 409 (the same key still in flight) are retried with that same key, so a retry can only
//! ever replay, never create twice.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::provider::{BillingProvider, CheckoutRequest, HostedSession, Price, ProviderError, ProviderFuture, Subscription};

/// The API version we read: pinned, so the provider's upgrades cannot change shapes under us.
pub const API_VERSION: &str = "2024-06-20";
/// Attempts per request, the first included.
const ATTEMPTS: u32 = 4;

#[derive(Clone)]
pub struct StripeClient {
    http: reqwest::Client,
    base: String,
    secret_key: Arc<SecretString>,
    retry_base: Duration,
}

impl std::fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeClient").field("base", &self.base).field("secret_key", &"[redacted]").finish()
    }
}

impl StripeClient {
    pub fn new(base: &str, secret_key: SecretString, timeout: Duration) -> Result<StripeClient, ProviderError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("PassMe/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ProviderError::Unavailable(format!("cannot build the HTTP client: {e}")))?;
        Ok(StripeClient {
            http,
            base: base.trim_end_matches('/').to_string(),
            secret_key: Arc::new(secret_key),
            retry_base: Duration::from_millis(200),
        })
    }

    /// Shorter pauses between retries, for tests.
    pub fn with_retry_base(mut self, pause: Duration) -> StripeClient {
        self.retry_base = pause;
        self
    }

    /// Sends one request, retrying what may be retried. `Ok(None)` is a 404.
    async fn call(
        &self,
        method: Method,
        path: &str,
        form: &[(&str, &str)],
        idempotency_key: Option<&str>,
    ) -> Result<Option<Value>, ProviderError> {
        let url = format!("{}{path}", self.base);
        // Errors and logs name the path without its query: a lookup's query carries the
        // customer's e-mail address.
        let path = path.split('?').next().unwrap_or_default();
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let mut last_problem = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(self.retry_base * 2u32.pow(attempt - 1)).await;
            }
            let mut request =
                self.http.request(method.clone(), &url).bearer_auth(self.secret_key.expose_secret()).header("Stripe-Version", API_VERSION);
            if let Some(key) = idempotency_key {
                request = request.header("Idempotency-Key", key);
            }
            if method == Method::POST {
                request = request.header("Content-Type", "application/x-www-form-urlencoded").body(body.clone());
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(e) => {
                    last_problem = if e.is_timeout() { "timed out".into() } else { format!("no answer ({})", without_url(&e)) };
                    continue;
                }
            };
            let status = response.status();
            let bytes = match response.bytes().await {
                Ok(bytes) => bytes,
                Err(e) => {
                    last_problem = format!("answer cut off ({})", without_url(&e));
                    continue;
                }
            };
            if status.is_success() {
                return serde_json::from_slice(&bytes).map(Some).map_err(|e| ProviderError::Malformed(format!("{path}: {e}")));
            }
            if status == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::CONFLICT {
                last_problem = format!("answered {status}");
                continue;
            }
            let error: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let text = |name: &str| error.pointer(&format!("/error/{name}")).and_then(Value::as_str).unwrap_or("").to_string();
            return Err(ProviderError::Refused { status: status.as_u16(), code: text("code"), message: text("message") });
        }
        tracing::warn!(%path, attempts = ATTEMPTS, problem = %last_problem, "payment provider request failed");
        Err(ProviderError::Unavailable(format!("{path}: {last_problem} after {ATTEMPTS} attempts")))
    }

    async fn post(&self, path: &str, form: &[(&str, &str)], idempotency_key: &str) -> Result<Value, ProviderError> {
        self.call(Method::POST, path, form, Some(idempotency_key)).await?.ok_or_else(|| ProviderError::Refused {
            status: 404,
            code: "resource_missing".into(),
            message: format!("{path} does not exist at the provider"),
        })
    }

    async fn get(&self, path: &str) -> Result<Option<Value>, ProviderError> {
        self.call(Method::GET, path, &[], None).await
    }
}

/// A reqwest error without the URL: paths carry ids, and the log does not need them twice.
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "<url>");
    }
    text
}

/// Path segments are provider ids; anything else is refused before it reaches a URL.
fn id_segment(id: &str) -> Result<&str, ProviderError> {
    if !id.is_empty() && id.len() <= 255 && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-')) {
        Ok(id)
    } else {
        Err(ProviderError::Refused { status: 400, code: "invalid_id".into(), message: "malformed provider id".into() })
    }
}

impl BillingProvider for StripeClient {
    fn card_fingerprint<'a>(&'a self, payment_intent: &'a str) -> ProviderFuture<'a, Option<String>> {
        Box::pin(async move {
            let Some(intent) = self.get(&format!("/v1/payment_intents/{}", id_segment(payment_intent)?)).await? else { return Ok(None) };
            let Some(method) = intent.get("payment_method").and_then(super::provider::id_of) else { return Ok(None) };
            let Some(method) = self.get(&format!("/v1/payment_methods/{}", id_segment(&method)?)).await? else { return Ok(None) };
            Ok(method.pointer("/card/fingerprint").and_then(Value::as_str).map(str::to_string))
        })
    }

    fn find_customer<'a>(&'a self, account_id: &'a str, email: &'a str) -> ProviderFuture<'a, Option<String>> {
        Box::pin(async move {
            let query =
                url::form_urlencoded::Serializer::new(String::new()).append_pair("email", email).append_pair("limit", "100").finish();
            let Some(page) = self.get(&format!("/v1/customers?{query}")).await? else { return Ok(None) };
            let data = page.get("data").and_then(Value::as_array).ok_or_else(|| ProviderError::Malformed("list without data".into()))?;
            Ok(data
                .iter()
                .find(|c| c.pointer("/metadata/passme_account").and_then(Value::as_str) == Some(account_id))
                .and_then(|c| c.get("id").and_then(Value::as_str))
                .map(str::to_string))
        })
    }

    fn create_customer<'a>(&'a self, account_id: &'a str, email: &'a str, idempotency_key: &'a str) -> ProviderFuture<'a, String> {
        Box::pin(async move {
            let customer =
                self.post("/v1/customers", &[("email", email), ("metadata[passme_account]", account_id)], idempotency_key).await?;
            customer
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| ProviderError::Malformed("customer without id".into()))
        })
    }

    fn create_checkout_session<'a>(&'a self, r: &'a CheckoutRequest) -> ProviderFuture<'a, HostedSession> {
        Box::pin(async move {
            let form = [
                ("mode", "subscription"),
                ("customer", r.customer.as_str()),
                ("client_reference_id", r.client_reference_id.as_str()),
                ("line_items[0][price]", r.price.as_str()),
                ("line_items[0][quantity]", "1"),
                ("success_url", r.success_url.as_str()),
                ("cancel_url", r.cancel_url.as_str()),
                ("locale", r.locale.as_str()),
                ("subscription_data[metadata][passme_account]", r.client_reference_id.as_str()),
            ];
            HostedSession::from_object(&self.post("/v1/checkout/sessions", &form, &r.idempotency_key).await?)
        })
    }

    fn create_portal_session<'a>(
        &'a self,
        customer: &'a str,
        return_url: &'a str,
        idempotency_key: &'a str,
    ) -> ProviderFuture<'a, HostedSession> {
        Box::pin(async move {
            let form = [("customer", customer), ("return_url", return_url)];
            HostedSession::from_object(&self.post("/v1/billing_portal/sessions", &form, idempotency_key).await?)
        })
    }

    fn set_cancel_at_period_end<'a>(
        &'a self,
        subscription: &'a str,
        cancel: bool,
        idempotency_key: &'a str,
    ) -> ProviderFuture<'a, Subscription> {
        Box::pin(async move {
            let path = format!("/v1/subscriptions/{}", id_segment(subscription)?);
            let flag = if cancel { "true" } else { "false" };
            Subscription::from_object(&self.post(&path, &[("cancel_at_period_end", flag)], idempotency_key).await?)
        })
    }

    fn cancel_now<'a>(&'a self, subscription: &'a str) -> ProviderFuture<'a, Option<Subscription>> {
        Box::pin(async move {
            let path = format!("/v1/subscriptions/{}", id_segment(subscription)?);
            match self.call(Method::DELETE, &path, &[], None).await? {
                Some(object) => Subscription::from_object(&object).map(Some),
                None => Ok(None),
            }
        })
    }

    fn subscription<'a>(&'a self, id: &'a str) -> ProviderFuture<'a, Option<Subscription>> {
        Box::pin(async move {
            match self.get(&format!("/v1/subscriptions/{}", id_segment(id)?)).await? {
                Some(object) => Subscription::from_object(&object).map(Some),
                None => Ok(None),
            }
        })
    }

    fn list_subscriptions(&self) -> ProviderFuture<'_, Vec<Subscription>> {
        Box::pin(async move {
            let mut out: Vec<Subscription> = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let mut path = "/v1/subscriptions?status=all&limit=100".to_string();
                if let Some(last) = &after {
                    path.push_str(&format!("&starting_after={}", id_segment(last)?));
                }
                let page = self.get(&path).await?.ok_or_else(|| ProviderError::Malformed("no subscription list".into()))?;
                let data =
                    page.get("data").and_then(Value::as_array).ok_or_else(|| ProviderError::Malformed("list without data".into()))?;
                for object in data {
                    let subscription = Subscription::from_object(object)?;
                    // An emulator that ignores `starting_after` would repeat itself forever.
                    if out.iter().any(|s| s.id == subscription.id) {
                        return Ok(out);
                    }
                    out.push(subscription);
                }
                let more = page.get("has_more").and_then(Value::as_bool).unwrap_or(false);
                match (more, out.last()) {
                    (true, Some(last)) => after = Some(last.id.clone()),
                    _ => return Ok(out),
                }
            }
        })
    }

    fn price<'a>(&'a self, id: &'a str) -> ProviderFuture<'a, Option<Price>> {
        Box::pin(async move {
            match self.get(&format!("/v1/prices/{}", id_segment(id)?)).await? {
                Some(object) => Price::from_object(&object).map(Some),
                None => Ok(None),
            }
        })
    }
}
