//! The real application router over a test database, driven in-process (`oneshot`): every
//! middleware, extractor and handler runs exactly as in production, without a socket.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use passme_analytics::Analytics;
use passme_analytics::asn::AsnTable;
use passme_analytics::event::Site;
use passme_core::clock::{self, SharedClock};
use passme_core::config::Secrets;
use passme_core::mail::Mailer;
use passme_web::metrics::MetricsAccess;
use passme_web::{AppState, Services, router};
use tower::ServiceExt;

use crate::db::TestDb;

/// Where the test application says it is (links in mail, provider callbacks).
pub const BASE_URL: &str = "http://passme.test";

pub struct TestApp {
    pub state: AppState,
    pub db: TestDb,
    timeout: Duration,
    /// Where mail goes when no SMTP sink is given.
    pub outbox: tempfile::TempDir,
}

/// A response, read whole.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl TestResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `error.code` of a JSON error body.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or_default().to_string()
    }
}

impl TestApp {
    pub fn new(db: TestDb) -> TestApp {
        TestApp::builder(db).build()
    }

    pub fn builder(db: TestDb) -> TestAppBuilder {
        TestAppBuilder {
            db,
            behind_tls: false,
            body_limit: 1024 * 1024,
            clock: clock::system(),
            smtp_url: None,
            trusted_proxies: Vec::new(),
            asn_table: None,
            event_queue: 20_000,
            billing: None,
            metrics_access: MetricsAccess::Open,
            providers: Vec::new(),
            messaging: Default::default(),
        }
    }

    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        let response = router(self.state.clone(), self.timeout).oneshot(request).await.unwrap_or_else(|e| match e {});
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
        TestResponse { status, headers, body }
    }

    /// Serves the router on a loopback port, for peers that call back (webhooks).
    pub async fn serve(&self) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = router(self.state.clone(), self.timeout);
        tokio::spawn(passme_web::serve::serve(listener, app, passme_web::serve::ConnectionTimeouts::default(), std::future::pending()));
        addr
    }

    /// Runs due background jobs with the handlers the service runs until none is left; returns
    /// what the passes did together.
    pub async fn run_jobs(&self) -> passme_core::jobs::Pass {
        let handlers = self.state.job_handlers().expect("job handlers");
        let worker = passme_core::jobs::Worker::new(self.state.store.clone(), self.state.clock.clone(), handlers);
        let sender = passme_core::jobs::Worker::messages(self.state.store.clone(), self.state.clock.clone(), worker.handlers.clone());
        let mut total = passme_core::jobs::Pass::default();
        loop {
            let mut pass = worker.run_once().await.expect("worker pass");
            let sent = sender.run_once().await.expect("sender pass");
            pass.succeeded += sent.succeeded;
            pass.retried += sent.retried;
            pass.dead += sent.dead;
            pass.lost += sent.lost;
            if pass.claimed() == 0 {
                return total;
            }
            total.succeeded += pass.succeeded;
            total.retried += pass.retried;
            total.dead += pass.dead;
            total.lost += pass.lost;
        }
    }

    /// Runs the queued jobs, as the service's worker would, and waits until the sink holds `n`
    /// messages (account mail goes out through the job queue).
    pub async fn deliver(&self, sink: &crate::SmtpSink, n: usize) -> Vec<crate::smtp::ReceivedMail> {
        self.run_jobs().await;
        sink.wait_for(n)
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        self.send(Request::get(path).body(Body::empty()).expect("request")).await
    }

    /// A GET as a browser sends it (asks for HTML).
    pub async fn browse(&self, path: &str) -> TestResponse {
        self.send(Request::get(path).header("accept", "text/html,application/xhtml+xml").body(Body::empty()).expect("request")).await
    }

    pub async fn post(&self, path: &str, content_type: &str, body: impl Into<Body>) -> TestResponse {
        self.send(Request::post(path).header("content-type", content_type).body(body.into()).expect("request")).await
    }
}

pub struct TestAppBuilder {
    db: TestDb,
    behind_tls: bool,
    body_limit: usize,
    clock: SharedClock,
    smtp_url: Option<String>,
    trusted_proxies: Vec<std::net::IpAddr>,
    asn_table: Option<Arc<AsnTable>>,
    event_queue: usize,
    billing: Option<Arc<passme_billing::Billing>>,
    metrics_access: MetricsAccess,
    providers: Vec<passme_core::config::ProviderConfig>,
    messaging: passme_core::config::MessagingConfig,
}

impl TestAppBuilder {
    /// Messaging as configured: the push emulator and partner receivers to allow, the partners.
    pub fn messaging(mut self, config: passme_core::config::MessagingConfig) -> Self {
        self.messaging = config;
        self
    }

    /// Who may read `/metrics` (open by default, as in development).
    pub fn metrics_access(mut self, access: MetricsAccess) -> Self {
        self.metrics_access = access;
        self
    }

    /// Billing through `billing` (see [`crate::stripe`]).
    pub fn billing(mut self, billing: Arc<passme_billing::Billing>) -> Self {
        self.billing = Some(billing);
        self
    }

    /// How many page views may wait for their group commit before the endpoint answers 503.
    pub fn event_queue(mut self, events: usize) -> Self {
        self.event_queue = events;
        self
    }

    /// Resolves ISPs with the real IP-to-ASN table (see [`crate::asn_table`]).
    pub fn with_isps(mut self) -> Self {
        self.asn_table = Some(crate::asn::asn_table());
        self
    }

    pub fn behind_tls(mut self) -> Self {
        self.behind_tls = true;
        self
    }

    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Identity providers to link and sign in with (see [`crate::oidc::OidcPeer`]).
    pub fn providers(mut self, providers: Vec<passme_core::config::ProviderConfig>) -> Self {
        self.providers = providers;
        self
    }

    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    pub fn trusted_proxy(mut self, ip: std::net::IpAddr) -> Self {
        self.trusted_proxies.push(ip);
        self
    }

    /// Sends mail to a real SMTP server (a [`crate::SmtpSink`]). Call inside the test's runtime.
    pub fn smtp(mut self, url: String) -> Self {
        self.smtp_url = Some(url);
        self
    }

    pub fn build(self) -> TestApp {
        let outbox = tempfile::tempdir().expect("outbox");
        let from = "PassMe AI <no-reply@passme.ai>";
        let mailer = match &self.smtp_url {
            Some(url) => Mailer::smtp(&secrecy::SecretString::from(url.clone()), from).expect("smtp mailer"),
            None => Mailer::files(outbox.path().to_path_buf(), from).expect("file mailer"),
        };
        let sites = vec![
            Site { id: "passme".into(), hosts: vec!["passme.test".into()] },
            Site { id: "product".into(), hosts: vec!["app.passme.test".into()] },
        ];
        let analytics = Analytics::new(self.db.store.clone(), self.clock.clone(), &[7; 32], sites, self.asn_table, self.event_queue);
        let policy = passme_policy::builtin().clone();
        let linking = passme_linking::Linking::new(
            &passme_core::config::LinkingConfig { providers: self.providers },
            &policy,
            self.db.store.clone(),
            self.clock.clone(),
            &[7; 32],
            BASE_URL,
        )
        .expect("linking providers");
        let state = AppState::new(
            Services::new(passme_web::app::Wiring {
                analytics,
                linking,
                policy,
                store: self.db.store.clone(),
                metrics_access: self.metrics_access,
                secrets: Secrets::from_key([7; 32]),
                max_job_attempts: 8,
                job_lease_ms: 300_000,
                clock: self.clock,
                mailer,
                base_url: BASE_URL.into(),
                behind_tls: self.behind_tls,
                body_limit: self.body_limit,
                trusted_proxies: self.trusted_proxies,
                billing: self.billing,
                messaging: self.messaging,
                production: false,
                disposable_domains: crate::asn::disposable_domains(),
            })
            .expect("services"),
        );
        TestApp { state, db: self.db, timeout: Duration::from_secs(30), outbox }
    }
}
