//! The payment provider for tests: `localstripe` (PyPI), a stateful Stripe emulator installed by
//! `scripts/test` into `.tools/py`, started per test on a free port; and [`ProviderFront`], a
//! recording proxy in front of it that
//! - records every request PassMe makes (method, path, `Idempotency-Key`, form fields),
//! - answers what localstripe lacks (Checkout sessions, portal sessions, prices read from its
//!   plans), so tests can assert the outgoing requests,
//! - replays the stored answer for a repeated `Idempotency-Key`, as Stripe does,
//! - and injects faults on demand (a 500 before or after the request took effect, a delay).
//!
//! Events PassMe would get from Checkout or the portal, which localstripe never sends, are signed
//! with [`signed`] exactly as the provider signs them.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use passme_billing::{Billing, Catalogue, StripeClient};
use passme_core::clock::SharedClock;
use passme_core::config::{PlanConfig, PlanName};
use passme_store::Store;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::smtp::tools_python;

pub const SECRET_KEY: &str = "sk_test_passme";
pub const WEBHOOK_SECRET: &str = "whsec_passme_test";
/// The monthly plan's id at the provider (a localstripe plan; Stripe accepts plan ids as prices).
pub const PRO_PRICE: &str = "pro-monthly";
pub const TEAM_PRICE: &str = "team-yearly";

/// localstripe on a free port; stopped on drop.
pub struct LocalStripe {
    pub port: u16,
    child: Child,
    http: reqwest::Client,
}

impl LocalStripe {
    /// Starts localstripe and seeds the catalogue's two plans.
    pub async fn start() -> LocalStripe {
        let bin = tools_python().with_file_name("localstripe");
        assert!(bin.exists(), "localstripe is not installed: run scripts/test (or: .tools/py/bin/pip install localstripe==1.15.10)");
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port");
        let child = Command::new(&bin)
            .args(["--port", &port.to_string(), "--from-scratch"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start localstripe");
        let stripe = LocalStripe { port, child, http: reqwest::Client::new() };
        let deadline = Instant::now() + Duration::from_secs(20);
        while stripe.http.get(format!("{}/v1/customers", stripe.url())).basic_auth(SECRET_KEY, Some("")).send().await.is_err() {
            assert!(Instant::now() < deadline, "localstripe did not start on port {port}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stripe.post("/v1/products", &[("id", "prod_passme"), ("name", "PassMe AI"), ("type", "service")]).await;
        for (id, amount, interval) in [(PRO_PRICE, "1500", "month"), (TEAM_PRICE, "12000", "year")] {
            let plan = stripe
                .post(
                    "/v1/plans",
                    &[("id", id), ("product", "prod_passme"), ("amount", amount), ("currency", "eur"), ("interval", interval)],
                )
                .await;
            assert_eq!(plan["id"], id, "{plan}");
        }
        stripe
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn call(&self, method: Method, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.url())).basic_auth(SECRET_KEY, Some(""));
        if !form.is_empty() {
            request = request.form(form);
        }
        let response = request.send().await.expect("localstripe answers");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A POST that must succeed.
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Value {
        let (status, body) = self.call(Method::POST, path, form).await;
        assert!(status.is_success(), "localstripe POST {path}: {status} {body}");
        body
    }

    pub async fn get(&self, path: &str) -> Value {
        self.call(Method::GET, path, &[]).await.1
    }

    pub async fn delete(&self, path: &str) -> Value {
        self.call(Method::DELETE, path, &[]).await.1
    }

    /// Sends localstripe's events for everything that follows to `url`, signed with
    /// [`WEBHOOK_SECRET`].
    pub async fn register_webhook(&self, url: &str) {
        let (status, _) = self.call(Method::POST, "/_config/webhooks/passme", &[("url", url), ("secret", WEBHOOK_SECRET)]).await;
        assert!(status.is_success(), "register webhook: {status}");
    }

    /// What a customer does on the hosted checkout page: adds `card` and subscribes to `price`.
    /// Returns the subscription, or the provider's error when the card is declined.
    pub async fn subscribe_with_card(&self, customer: &str, card: &str, price: &str) -> Result<Value, Value> {
        let method = self
            .post(
                "/v1/payment_methods",
                &[("type", "card"), ("card[number]", card), ("card[exp_month]", "12"), ("card[exp_year]", "2030"), ("card[cvc]", "123")],
            )
            .await;
        let pm = method["id"].as_str().expect("payment method id").to_string();
        let (status, attached) = self.call(Method::POST, &format!("/v1/payment_methods/{pm}/attach"), &[("customer", customer)]).await;
        if !status.is_success() {
            return Err(attached);
        }
        self.post(&format!("/v1/customers/{customer}"), &[("invoice_settings[default_payment_method]", &pm)]).await;
        let (status, subscription) =
            self.call(Method::POST, "/v1/subscriptions", &[("customer", customer), ("items[0][plan]", price)]).await;
        if status.is_success() { Ok(subscription) } else { Err(subscription) }
    }

    /// Every customer the emulator holds.
    pub async fn customers(&self) -> Vec<Value> {
        self.get("/v1/customers?limit=100").await["data"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for LocalStripe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request PassMe sent to the provider.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query.
    pub path: String,
    pub idempotency_key: Option<String>,
    pub authorization: Option<String>,
    pub form: Vec<(String, String)>,
}

impl Recorded {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A fault for the next request whose `METHOD path` starts with the prefix (e.g.
/// `POST /v1/customers`); each is used once.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer 500 without passing the request on (the provider failed before acting).
    Fail { path_prefix: String },
    /// Pass the request on, keep the answer for the key, but answer 500 (the answer was lost).
    FailAfter { path_prefix: String },
    /// Wait before passing the request on (longer than the client's timeout: a timeout).
    Delay { path_prefix: String, ms: u64 },
}

impl Fault {
    fn prefix(&self) -> &str {
        match self {
            Fault::Fail { path_prefix } | Fault::FailAfter { path_prefix } | Fault::Delay { path_prefix, .. } => path_prefix,
        }
    }
}

struct Front {
    upstream: String,
    http: reqwest::Client,
    recorded: Mutex<Vec<Recorded>>,
    faults: Mutex<Vec<Fault>>,
    replay: Mutex<HashMap<String, (u16, Value)>>,
    sessions: AtomicU64,
}

/// The recording, fault-injecting proxy in front of localstripe.
pub struct ProviderFront {
    pub addr: SocketAddr,
    front: Arc<Front>,
}

impl ProviderFront {
    pub async fn start(upstream: &str) -> ProviderFront {
        let front = Arc::new(Front {
            upstream: upstream.to_string(),
            http: reqwest::Client::new(),
            recorded: Mutex::new(Vec::new()),
            faults: Mutex::new(Vec::new()),
            replay: Mutex::new(HashMap::new()),
            sessions: AtomicU64::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new().fallback(handle).with_state(front.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ProviderFront { addr, front }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.front.recorded.lock().expect("lock").clone()
    }

    /// The requests to paths starting with `prefix`.
    pub fn requests_to(&self, method: &str, prefix: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.method == method && r.path.starts_with(prefix)).collect()
    }

    pub fn inject(&self, fault: Fault) {
        self.front.faults.lock().expect("lock").push(fault);
    }
}

async fn handle(State(front): State<Arc<Front>>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path_and_query().map_or_else(|| request.uri().path().to_string(), |p| p.as_str().to_string());
    let headers: HeaderMap = request.headers().clone();
    let body: Bytes = axum::body::to_bytes(request.into_body(), 1 << 20).await.unwrap_or_default();
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_string);
    front.recorded.lock().expect("lock").push(Recorded {
        method: method.to_string(),
        path: path.clone(),
        idempotency_key: key.clone(),
        authorization: headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string),
        form: form.clone(),
    });
    if let Some(key) = &key
        && let Some((status, value)) = front.replay.lock().expect("lock").get(key).cloned()
    {
        return answer(status, value);
    }
    let fault = {
        let mut faults = front.faults.lock().expect("lock");
        let line = format!("{method} {path}");
        faults.iter().position(|f| line.starts_with(f.prefix())).map(|i| faults.remove(i))
    };
    if let Some(Fault::Fail { .. }) = fault {
        return answer(500, json!({ "error": { "type": "api_error", "message": "injected failure" } }));
    }
    if let Some(Fault::Delay { ms, .. }) = fault {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let (status, value) = respond(&front, &method, &path, &headers, &body, &form).await;
    if let Some(key) = key
        && method == Method::POST
    {
        front.replay.lock().expect("lock").insert(key, (status, value.clone()));
    }
    if let Some(Fault::FailAfter { .. }) = fault {
        return answer(500, json!({ "error": { "type": "api_error", "message": "injected failure after the request took effect" } }));
    }
    answer(status, value)
}

fn answer(status: u16, value: Value) -> Response {
    (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), axum::Json(value)).into_response()
}

/// What the provider answers: the emulator's own answer, or ours for what it lacks.
async fn respond(front: &Front, method: &Method, path: &str, headers: &HeaderMap, body: &Bytes, form: &[(String, String)]) -> (u16, Value) {
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
    let next = || front.sessions.fetch_add(1, Ordering::Relaxed) + 1;
    match (method.as_str(), path) {
        ("POST", "/v1/checkout/sessions") => {
            let id = format!("cs_test_{}", next());
            (
                200,
                json!({ "id": id, "object": "checkout.session", "mode": field("mode"), "customer": field("customer"),
                "client_reference_id": field("client_reference_id"), "url": format!("https://checkout.stripe.test/c/pay/{id}") }),
            )
        }
        ("POST", "/v1/billing_portal/sessions") => {
            let id = format!("bps_{}", next());
            (
                200,
                json!({ "id": id, "object": "billing_portal.session", "customer": field("customer"),
                "url": format!("https://billing.stripe.test/p/session/{id}") }),
            )
        }
        ("GET", p) if p.starts_with("/v1/prices/") => {
            let id = p.trim_start_matches("/v1/prices/");
            let (status, plan) = forward(front, &Method::GET, &format!("/v1/plans/{id}"), headers, &Bytes::new()).await;
            if status != 200 {
                return (404, json!({ "error": { "type": "invalid_request_error", "message": "No such price" } }));
            }
            (
                200,
                json!({ "id": id, "object": "price", "active": plan["active"], "currency": plan["currency"],
                "unit_amount": plan["amount"], "recurring": { "interval": plan["interval"] } }),
            )
        }
        _ => forward(front, method, path, headers, body).await,
    }
}

async fn forward(front: &Front, method: &Method, path: &str, headers: &HeaderMap, body: &Bytes) -> (u16, Value) {
    let mut request = front.http.request(method.clone(), format!("{}{path}", front.upstream)).body(body.clone());
    for name in ["authorization", "content-type"] {
        if let Some(value) = headers.get(name) {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.json().await.unwrap_or(Value::Null))
        }
        Err(e) => (502, json!({ "error": { "message": e.to_string() } })),
    }
}

/// The test catalogue: `pro` monthly and `team` yearly.
pub fn catalogue() -> Catalogue {
    let plan = |id: &str, da: &str, en: &str, price: &str, interval: &str, entitlements: &[&str]| PlanConfig {
        id: id.into(),
        name: PlanName { da: da.into(), en: en.into() },
        price: price.into(),
        interval: interval.into(),
        entitlements: entitlements.iter().map(|e| (*e).to_string()).collect(),
    };
    Catalogue::from_config(&[
        plan("pro", "Pro (måned)", "Pro (monthly)", PRO_PRICE, "month", &["chat", "priority"]),
        plan("team", "Team (år)", "Team (yearly)", TEAM_PRICE, "year", &["chat", "priority", "team"]),
    ])
    .expect("test catalogue")
}

/// Billing over `provider_url` (a [`ProviderFront`]), in test mode, with short retry pauses.
pub fn billing(store: &Store, clock: &SharedClock, provider_url: &str) -> Arc<Billing> {
    let client = StripeClient::new(provider_url, SecretString::from(SECRET_KEY.to_string()), Duration::from_secs(2))
        .expect("client")
        .with_retry_base(Duration::from_millis(20));
    Arc::new(Billing::new(
        store.clone(),
        clock.clone(),
        Arc::new(client),
        catalogue(),
        vec![SecretString::from(WEBHOOK_SECRET.to_string())],
        false,
        "http://passme.test",
    ))
}

/// An event body and its `Stripe-Signature`, signed now with [`WEBHOOK_SECRET`], as the provider
/// sends it.
pub fn signed(id: &str, kind: &str, created: i64, object: Value) -> (String, String) {
    let body = json!({
        "id": id, "object": "event", "type": kind, "created": created, "livemode": false, "api_version": "2024-06-20",
        "data": { "object": object },
    })
    .to_string();
    let now = jiff::Timestamp::now().as_second();
    let header = passme_billing::signature::header(&[WEBHOOK_SECRET], now, body.as_bytes());
    (body, header)
}
