//! Wiring: from a [`Config`] to a bound, running application. `Application::build` does every
//! start-up step (policy, secrets, database, migrations) and binds the listener, so tests start
//! the real thing on port 0 and ask it for its port.

use passme_core::rights::erasure::Erasures;
use passme_core::rights::holds::LegalHolds;
use passme_core::rights::objections::Objections;
use passme_core::rights::requests::{RequestMailer, Requests};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use passme_analytics::event::Site;
use passme_analytics::rollup::{self, Rollups};
use passme_analytics::{Analytics, asn};
use passme_billing::{Billing, BillingError};
use passme_core::CoreError;
use passme_core::audit::{AuditEvent, AuditLog};
use passme_core::clock::{self, SharedClock};
use passme_core::config::{Config, ConfigError, Secrets};
use passme_core::consent::ConsentLedger;
use passme_core::housekeeping::{self, Housekeeping};
use passme_core::identity::account_mail::AccountMailer;
use passme_core::identity::service::Identity;
use passme_core::jobs::{Handlers, JobError, JobQueue, Worker};
use passme_core::mail::Mailer;
use passme_core::personalise::Personalisation;
use passme_linking::Linking;
use passme_messaging::Messaging;
use passme_policy::{Policy, PolicyError};
use passme_store::{Store, StoreError, StoreOptions};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

use crate::metrics::{Metrics, MetricsAccess};
use crate::middleware::{refuse_card_data, request_context, tag_route};
use crate::routes::{
    account, analytics, api, billing, compliance, consent, csp, fraud, health, links, messages, openapi, pages, people, prefs, privacy,
    requests, staff, support, tracking,
};
use crate::serve::ConnectionTimeouts;

/// Everything a handler may need. Cloned several times per request (each middleware and the
/// handler take it), so it is one shared pointer to [`Services`].
#[derive(Clone, Debug)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> AppState {
        AppState(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// Every service a handler may need, built once for the process (see [`Services::new`]).
#[derive(Debug)]
pub struct Services {
    pub policy: Arc<Policy>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub metrics_access: MetricsAccess,
    pub secrets: Arc<Secrets>,
    pub clock: SharedClock,
    /// The durable job queue, with the configured attempts per job.
    pub jobs: JobQueue,
    /// How long a job (and the minute pass) is held without renewal.
    pub job_lease_ms: i64,
    pub mailer: Arc<Mailer>,
    /// Accounts, sessions, remember-me, tokens, staff roles, and the use cases over them.
    pub identity: Identity,
    pub consent: ConsentLedger,
    pub audit: AuditLog,
    /// Erasure with proof (article 17) and legal holds.
    pub erasures: Erasures,
    pub holds: LegalHolds,
    /// The register of privacy requests.
    pub requests: Requests,
    pub objections: Objections,
    /// Where people reach us, for links in e-mails: the public URL, or this server's address.
    pub base_url: String,
    pub behind_tls: bool,
    pub body_limit: usize,
    pub trusted_proxies: Arc<Vec<std::net::IpAddr>>,
    pub analytics: Arc<Analytics>,
    /// Subscriptions at the payment provider; `None` when no provider is configured.
    pub billing: Option<Arc<Billing>>,
    /// Linked accounts at identity providers (none configured: nothing to link).
    pub linking: Linking,
    /// Personalisation consent, partner profile data and suggestions.
    pub personalisation: Personalisation,
    /// The outbox, message choices, push, announcements and partner audiences.
    pub messaging: Messaging,
    /// Actions under the terms of service and the register of authority requests.
    pub compliance: passme_core::compliance::Compliance,
    /// Customer support: cases, canned replies, signals that open cases.
    pub support: passme_support::Support,
    /// Fraud scanning: signals, rules, decisions, review and lists.
    pub fraud: passme_fraud::Fraud,
    /// The token the mail relay presents with delivery reports; `None` closes that endpoint.
    pub dsn_token: Option<secrecy::SecretString>,
}

/// What [`Services::new`] builds the services from.
pub struct Wiring {
    pub policy: Policy,
    pub store: Store,
    pub clock: SharedClock,
    pub secrets: Secrets,
    pub mailer: Mailer,
    pub analytics: Analytics,
    pub billing: Option<Arc<Billing>>,
    pub linking: Linking,
    pub base_url: String,
    pub behind_tls: bool,
    pub body_limit: usize,
    pub trusted_proxies: Vec<std::net::IpAddr>,
    pub metrics_access: MetricsAccess,
    pub max_job_attempts: i64,
    /// How long a job (and the minute pass) is held without renewal: a dead holder's work is
    /// taken over after it.
    pub job_lease_ms: i64,
    pub messaging: passme_core::config::MessagingConfig,
    pub production: bool,
    /// The disposable-mail domains fraud scanning knows.
    pub disposable_domains: Arc<passme_fraud::DisposableDomains>,
}

impl Services {
    pub fn new(w: Wiring) -> Result<Services, CoreError> {
        let jobs = JobQueue::new(w.store.clone(), w.clock.clone(), w.max_job_attempts);
        let policy = Arc::new(w.policy);
        let mailer = Arc::new(w.mailer);
        let messaging = Messaging::new(
            &w.messaging,
            w.store.clone(),
            w.clock.clone(),
            jobs.clone(),
            mailer.clone(),
            w.secrets.master_key(),
            &w.base_url,
            w.production,
        )?;
        let dsn_token = match &w.messaging.dsn_token_file {
            Some(path) => Some(secrecy::SecretString::from(
                std::fs::read_to_string(path)
                    .map_err(|e| CoreError::broken("messaging.dsn_token_file", format!("{}: {e}", path.display())))?
                    .trim()
                    .to_string(),
            )),
            None => None,
        };
        let fraud = passme_fraud::Fraud::new(
            w.store.clone(),
            w.clock.clone(),
            w.secrets.master_key(),
            w.analytics.asn.clone(),
            w.disposable_domains,
        );
        Ok(Services {
            compliance: passme_core::compliance::Compliance::new(w.store.clone(), w.clock.clone(), jobs.clone()),
            support: passme_support::Support::new(w.store.clone(), w.clock.clone(), jobs.clone()),
            fraud,
            messaging,
            dsn_token,
            erasures: Erasures::new(w.store.clone(), w.clock.clone(), policy.clone()),
            holds: LegalHolds::new(w.store.clone(), w.clock.clone()),
            requests: Requests::new(w.store.clone(), w.clock.clone()),
            objections: Objections::new(w.store.clone(), w.clock.clone()),
            personalisation: Personalisation::new(w.store.clone(), w.clock.clone()),
            identity: Identity::new(w.store.clone(), w.clock.clone(), w.secrets.master_key(), jobs.clone()),
            consent: ConsentLedger::new(w.store.clone(), w.clock.clone()),
            audit: AuditLog::new(w.store.clone(), w.clock.clone()),
            jobs,
            job_lease_ms: w.job_lease_ms,
            policy,
            store: w.store,
            metrics: Arc::new(Metrics::new()),
            metrics_access: w.metrics_access,
            secrets: Arc::new(w.secrets),
            clock: w.clock,
            mailer,
            base_url: w.base_url,
            behind_tls: w.behind_tls,
            body_limit: w.body_limit,
            trusted_proxies: Arc::new(w.trusted_proxies),
            analytics: Arc::new(w.analytics),
            billing: w.billing,
            linking: w.linking,
        })
    }

    /// Sends the account mail the job queue holds.
    pub fn account_mailer(&self) -> AccountMailer {
        AccountMailer::new(self.identity.accounts.clone(), self.store.clone(), self.mailer.clone(), self.base_url.clone())
    }

    /// The handlers of every job kind this process runs.
    pub fn job_handlers(&self) -> Result<Handlers, CoreError> {
        let mut handlers = Handlers::default();
        let housekeeping = Housekeeping::new(self.store.clone(), self.clock.clone(), &self.policy)?;
        handlers.register(housekeeping::JOB_KIND, housekeeping::handler(Arc::new(housekeeping)));
        handlers.register(rollup::JOB_KIND, rollup::handler(Rollups::new(self.store.clone(), self.clock.clone()), self.job_lease_ms));
        self.account_mailer().register(&mut handlers);
        self.erasures.clone().register(&mut handlers);
        RequestMailer { requests: self.requests.clone(), mailer: self.mailer.clone(), base_url: self.base_url.clone() }
            .register(&mut handlers);
        if let Some(billing) = &self.billing {
            billing.register(&mut handlers);
        }
        self.messaging.register(&mut handlers);
        self.support.register(&mut handlers, self.mailer.clone(), self.base_url.clone());
        self.compliance.register(&mut handlers, self.mailer.clone(), self.base_url.clone());
        if let Some(billing) = self.billing.clone() {
            let (fraud, store) = (self.fraud.clone(), self.store.clone());
            handlers.on(move |payment: passme_billing::CardPayment| {
                let (billing, fraud, store) = (billing.clone(), fraud.clone(), store.clone());
                async move { crate::routes::fraud::card_payment(&billing, &fraud, &store, &payment).await }
            });
        }
        let (messaging, support) = (self.messaging.clone(), self.support.clone());
        handlers.on(move |failed: passme_billing::PaymentFailed| {
            let (messaging, support) = (messaging.clone(), support.clone());
            async move {
                messaging.payment_failed(&failed.account, &failed.invoice).await.map_err(JobError::from)?;
                // The first failure opens a support case: help before dunning runs out.
                let detail = serde_json::json!({ "invoice": failed.invoice });
                support.signal(&failed.account, passme_support::Signal::PaymentFailed, detail).await.map(|_| ()).map_err(JobError::from)
            }
        });
        Ok(handlers)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Policy(#[from] PolicyError),
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Core(#[from] CoreError),
    #[error("{0}")]
    Billing(#[from] BillingError),
    #[error("{0}")]
    Linking(#[from] passme_linking::LinkError),
    #[error(
        "refusing to start in production: the policy publishes {} promise(s) the code does not keep yet ({}); build them, or remove their declarations",
        .0.len(),
        .0.join(", ")
    )]
    PendingPromises(Vec<String>),
    #[error("cannot listen on {addr}: {cause}")]
    Bind { addr: SocketAddr, cause: std::io::Error },
}

/// Loads the policy the configuration names, or the built-in one.
pub fn load_policy(config: &Config) -> Result<Policy, PolicyError> {
    match &config.policy {
        Some(path) => Policy::from_path(path),
        None => Policy::builtin(),
    }
}

pub fn store_options(config: &Config) -> StoreOptions {
    StoreOptions { database_url: config.database_url.clone(), data_dir: config.data_dir.clone(), max_connections: 10 }
}

pub fn router(state: AppState, request_timeout: Duration) -> Router {
    router_with(state, request_timeout, Router::new())
}

/// The application's routes plus `extra` (benchmarks add an empty handler), all behind the same
/// middleware.
pub fn router_with(state: AppState, request_timeout: Duration, extra: Router<AppState>) -> Router {
    Router::new()
        .merge(extra)
        .route("/", get(pages::landing))
        .route("/privacy", get(pages::privacy))
        .route("/cookies", get(pages::cookies))
        .route("/consent", post(consent::submit))
        .route("/signup", get(account::signup::signup_form).post(account::signup::signup))
        .route("/verify", get(account::signup::verify_form).post(account::signup::verify))
        .route("/login", get(account::login::login_form).post(account::login::login))
        .route("/login/confirm", get(account::login::confirm_form).post(account::login::confirm))
        .route("/logout", post(account::login::logout))
        .route("/account", get(account::page::account))
        .route("/account/sessions/revoke", post(account::sessions::revoke_one))
        .route("/account/sessions/revoke-others", post(account::sessions::revoke_others))
        .route("/account/password", post(account::password::change_password))
        .route("/account/email", post(account::email::request_email_change))
        .route("/account/close", post(account::close::close))
        .route("/account/privacy", get(account::privacy::privacy_centre))
        .route("/account/privacy/export", get(account::privacy::export))
        .route("/account/privacy/erase", post(account::privacy::erase))
        .route("/erasure/{id}", get(account::privacy::receipt))
        .route("/account/privacy/request", post(requests::submit_signed_in))
        .route("/account/privacy/object", post(requests::object))
        .route("/privacy-request", get(requests::form).post(requests::submit))
        .route("/privacy-request/confirm", get(requests::confirm_form).post(requests::confirm))
        .route("/staff/privacy/requests/extend", post(requests::extend))
        .route("/staff/privacy/requests/close", post(requests::close))
        .route("/email-confirm", get(account::email::email_confirm_form).post(account::email::email_confirm))
        .route("/preferences", get(prefs::form).post(prefs::save))
        .route("/api/v1/me", get(api::me))
        .route("/api/v1/signup", post(api::signup))
        .route("/api/v1/login", post(api::login))
        .route("/api/v1/logout", post(api::logout))
        .route("/api/v1/sessions", get(api::sessions))
        .route("/api/v1/sessions/{id}", axum::routing::delete(api::end_session))
        .route("/api/v1/preferences", get(api::preferences).put(api::put_preferences))
        .route("/api/v1/consent", get(api::consent).put(api::put_consent))
        .route("/account/tokens", post(account::tokens::create_token))
        .route("/account/links/{provider}/start", post(links::start_link))
        .route("/account/links/unlink", post(links::unlink))
        .route("/account/personalisation", post(links::personalisation))
        .route("/account/suggestions", post(links::suggestions))
        .route("/login/{provider}", post(links::start_sign_in))
        .route("/link/{provider}/callback", get(links::callback))
        .route("/account/tokens/revoke", post(account::tokens::revoke_token))
        .route("/account/messages", get(messages::page_of_choices).post(messages::change_choice))
        .route("/account/messages/devices/remove", post(messages::remove_device))
        .route("/api/v1/messaging/preferences", get(messages::api_choices).put(messages::api_choose))
        .route("/api/v1/messaging/reports", post(messages::report).layer(DefaultBodyLimit::max(passme_messaging::dsn::MAX_REPORT)))
        .route("/api/v1/push/key", get(messages::push_key))
        .route("/api/v1/push/subscriptions", post(messages::subscribe).layer(DefaultBodyLimit::max(messages::SUBSCRIBE_BODY_LIMIT)))
        .route("/api/v1/push/subscriptions/{id}", axum::routing::delete(messages::unsubscribe_device))
        .route("/unsubscribe/{token}", get(messages::unsubscribe_page).post(messages::unsubscribe))
        .route("/messages/confirm", get(messages::confirm_page).post(messages::confirm))
        .route("/staff/people", get(people::form).post(people::open))
        .route("/staff/fraud", get(fraud::staff_page))
        .route("/staff/fraud/review", post(fraud::review))
        .route("/staff/fraud/rules", post(fraud::save_rule))
        .route("/staff/fraud/lists", post(fraud::add_to_list))
        .route("/staff/fraud/lists/remove", post(fraud::remove_from_list))
        .route("/account/privacy/appeal", post(fraud::appeal))
        .route("/staff", get(staff::console))
        .route("/staff/compliance", get(compliance::staff_page))
        .route("/staff/compliance/enforce", post(compliance::enforce))
        .route("/staff/compliance/appeals", post(compliance::resolve))
        .route("/staff/compliance/authority", post(compliance::register))
        .route("/staff/compliance/authority/complete", post(compliance::complete))
        .route("/appeal", get(compliance::appeal_form).post(compliance::appeal))
        .route("/api/v1/support/cases", get(support::api_cases).post(support::api_open))
        .route("/api/v1/support/cases/{id}/messages", post(support::api_reply))
        .route("/contact", get(support::contact_form).post(support::contact))
        .route("/account/support", get(support::my_cases))
        .route("/account/support/{id}", get(support::my_case))
        .route("/account/support/{id}/reply", post(support::my_reply))
        .route("/staff/support", get(support::queue))
        .route("/staff/support/{id}", get(support::staff_view))
        .route("/staff/support/{id}/reply", post(support::staff_reply))
        .route("/staff/support/{id}/assign", post(support::assign))
        .route("/staff/support/{id}/close", post(support::close))
        .route("/staff/messages", get(messages::staff_page))
        .route("/staff/messages/announce", post(messages::announce))
        .route("/staff/messages/partners/export", post(messages::export_audience))
        .route("/sw.js", get(messages::service_worker))
        .route("/static/push.js", get(messages::push_script))
        .route("/staff/audit", get(staff::audit))
        .route("/staff/privacy", get(staff::privacy_officer))
        .route("/staff/privacy/holds", post(staff::place_hold))
        .route("/staff/privacy/holds/lift", post(staff::lift_hold))
        .route("/staff/analytics", get(analytics::dashboard))
        .route("/api/v1/analytics/report", get(analytics::report))
        .route("/billing", get(billing::billing_page))
        .route("/billing/checkout", post(billing::checkout))
        .route("/billing/portal", post(billing::portal))
        .route("/billing/cancel", post(billing::cancel))
        .route("/api/v1/entitlements", get(billing::entitlements))
        .route("/webhooks/stripe", post(billing::stripe_webhook).layer(DefaultBodyLimit::max(passme_billing::WEBHOOK_BODY_LIMIT)))
        .route("/t.js", get(tracking::script))
        .route("/api/v1/events", post(tracking::events).layer(DefaultBodyLimit::max(tracking::EVENTS_BODY_LIMIT)))
        .route("/api/v1/events/pixel.gif", get(tracking::pixel))
        .route("/reset-request", get(account::password::reset_request_form).post(account::password::reset_request))
        .route("/reset", get(account::password::reset_form).post(account::password::reset))
        .route("/static/style.css", get(pages::stylesheet))
        .route("/favicon.svg", get(pages::favicon))
        .route("/privacy.json", get(privacy::privacy_json))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/api/openapi.json", get(openapi::document))
        .route("/api/v1/csp-reports", post(csp::report))
        .route_layer(from_fn(tag_route))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(DefaultBodyLimit::max(state.body_limit))
        .layer(CatchPanicLayer::custom(|panic: Box<dyn std::any::Any + Send>| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(panic = %message, "handler panicked");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }))
        .layer(from_fn(crate::visitor::attach))
        .layer(from_fn_with_state(state.clone(), refuse_card_data))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, request_timeout))
        .layer(from_fn_with_state(state.clone(), request_context))
        .with_state(state)
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
    config: Config,
    /// This server in the instance registry; its workers' ids start with it, so an operator
    /// (and `passme status`) sees which instance holds a job.
    instance_id: String,
}

impl Application {
    pub async fn build(config: Config) -> Result<Application, StartError> {
        let policy = load_policy(&config)?;
        let secrets = Secrets::resolve(&config)?;
        // Production publishes nothing as fact that the code does not do.
        let pending = passme_core::pending_promises(&policy);
        if config.is_production() && !pending.is_empty() {
            return Err(StartError::PendingPromises(pending.into_iter().map(|(p, _)| p.id).collect()));
        }
        if secrets.development_key {
            tracing::warn!(path = %config.data_dir.join("dev-secrets.key").display(), "using a generated development key file; set PASSME_SECRETS__MASTER_KEY in production");
        }
        let store = Store::connect(&store_options(&config)).await?;
        let applied = store.migrate().await?;
        if !applied.is_empty() {
            tracing::info!(?applied, "database migrated");
        }
        let clock = clock::system();
        // Refuses to start when a retention rule of an implemented capability has no executor.
        Housekeeping::new(store.clone(), clock.clone(), &policy)?;
        AuditLog::new(store.clone(), clock.clone())
            .record(AuditEvent {
                actor: "system",
                action: "service.started",
                subject: "platform",
                details: serde_json::json!({ "policy_version": policy.meta.version, "engine": store.engine().name(), "version": env!("CARGO_PKG_VERSION") }),
            })
            .await?;
        let mailer = match &config.mail.smtp_url {
            Some(url) => Mailer::smtp(url, &config.mail.from)?,
            None => {
                let outbox = config.data_dir.join("outbox");
                tracing::warn!(outbox = %outbox.display(), "no SMTP relay configured: e-mail is written to files (development)");
                Mailer::files(outbox, &config.mail.from)?
            }
        };
        let listener = TcpListener::bind(config.listen).await.map_err(|cause| StartError::Bind { addr: config.listen, cause })?;
        let bound = listener.local_addr().unwrap_or(config.listen);
        let base_url = config.public_url.clone().unwrap_or_else(|| format!("http://{bound}")).trim_end_matches('/').to_string();
        // Compiling uap-core's regexes takes a moment: do it before listening, not in the first
        // request.
        let _ = tokio::task::spawn_blocking(passme_analytics::useragent::UserAgents::shared).await;
        let asn_path = config.analytics.asn_table.clone().unwrap_or_else(|| config.data_dir.join(asn::FILE_NAME));
        let analytics = Analytics::new(
            store.clone(),
            clock.clone(),
            secrets.master_key(),
            tracked_sites(&config, &base_url),
            Analytics::load_asn(&asn_path),
            config.analytics.queue_events,
        );
        if matches!(MetricsAccess::from_config(&config), MetricsAccess::Closed) {
            tracing::warn!("/metrics is closed: set PASSME_METRICS__TOKEN (or _FILE) for a scraper to read it");
        }
        let billing = Billing::from_config(&config.billing, store.clone(), clock.clone(), &base_url)?.map(Arc::new);
        if let Some(billing) = &billing {
            tracing::info!(api = %config.billing.api_base, plans = billing.catalogue().plans().len(), "billing is on");
        }
        let linking = Linking::new(&config.linking, &policy, store.clone(), clock.clone(), secrets.master_key(), &base_url)?;
        for provider in linking.providers() {
            tracing::info!(provider = provider.id(), oidc = provider.is_oidc(), "identity provider configured");
        }
        let state = AppState::new(Services::new(Wiring {
            policy,
            store,
            clock,
            secrets,
            mailer,
            analytics,
            billing,
            linking,
            base_url,
            behind_tls: config.behind_tls(),
            body_limit: config.http.body_limit,
            trusted_proxies: config.http.trusted_proxies.clone(),
            metrics_access: MetricsAccess::from_config(&config),
            max_job_attempts: config.jobs.max_attempts,
            job_lease_ms: config.jobs.lease_ms(),
            messaging: config.messaging.clone(),
            production: config.is_production(),
            disposable_domains: Arc::new(passme_fraud::DisposableDomains::load(
                &config.fraud.disposable_domains.clone().unwrap_or_else(|| config.data_dir.join(passme_fraud::signals::FILE_NAME)),
            )),
        })?);
        Ok(Application { listener, state, config, instance_id: passme_core::crypto::random_id::<8>("inst_") })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.config.listen)
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then lets requests in flight and job passes finish.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        self.run_with(Router::new(), shutdown).await
    }

    /// As [`Application::run_until`], serving `extra` routes too.
    pub async fn run_with(self, extra: Router<AppState>, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut background = self.spawn_background(stop_rx.clone());
        background.push(tokio::spawn(announce_instance(self.state.clone(), self.instance_id.clone(), stop_rx)));
        let app = router_with(self.state.clone(), Duration::from_secs(self.config.http.request_timeout_secs), extra);
        let served = crate::serve::serve(self.listener, app, ConnectionTimeouts::from_config(&self.config.http), shutdown).await;
        let _ = stop_tx.send(true);
        for task in background {
            let _ = task.await;
        }
        self.state.store.close().await;
        served
    }

    fn spawn_background(&self, stop: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
        let state = &self.state;
        let mut tasks = Vec::new();
        if self.config.jobs.workers == 0 {
            return tasks;
        }
        let handlers = match state.job_handlers() {
            Ok(handlers) => handlers,
            Err(e) => {
                tracing::error!(error = %e, "background jobs disabled");
                return tasks;
            }
        };
        let poll = Duration::from_millis(self.config.jobs.poll_interval_ms);
        let lease_ms = self.config.jobs.lease_ms();
        for n in 0..self.config.jobs.workers {
            let worker = Worker {
                id: format!("{}.worker{n}", self.instance_id),
                lease_ms,
                ..Worker::new(state.store.clone(), state.clock.clone(), handlers.clone())
            };
            tasks.push(tokio::spawn(worker.run(poll, stop.clone())));
            let sender = Worker {
                id: format!("{}.sender{n}", self.instance_id),
                lease_ms,
                ..Worker::messages(state.store.clone(), state.clock.clone(), handlers.clone())
            };
            tasks.push(tokio::spawn(sender.run(poll, stop.clone())));
        }
        let queue = state.jobs.clone();
        let clock = state.clock.clone();
        let billing_on = state.billing.is_some();
        let mut stop = stop;
        tasks.push(tokio::spawn(async move {
            loop {
                if let Err(e) = Housekeeping::schedule(&queue, clock.now_ms()).await {
                    tracing::warn!(error = %e, "could not schedule housekeeping");
                }
                if let Err(e) = passme_support::Support::schedule_scan(&queue, clock.now_ms()).await {
                    tracing::warn!(error = %e, "could not schedule the support scan");
                }
                if let Err(e) = Rollups::schedule(&queue, clock.now_ms()).await {
                    tracing::warn!(error = %e, "could not schedule the analytics rollup");
                }
                if billing_on && let Err(e) = Billing::schedule_reconcile(&queue, clock.now_ms()).await {
                    tracing::warn!(error = %e, "could not schedule billing reconciliation");
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                    _ = stop.changed() => return,
                }
            }
        }));
        tasks
    }
}

/// How often a running server says so in the instance registry, and after how many missed
/// heartbeats it no longer counts as running.
pub const HEARTBEAT: Duration = Duration::from_secs(30);
pub const HEARTBEATS_MISSED: u32 = 4;

/// How long a server may stay silent before it no longer counts as running.
pub fn missed_ms() -> i64 {
    i64::try_from((HEARTBEAT * HEARTBEATS_MISSED).as_millis()).unwrap_or(i64::MAX)
}

/// Keeps this server in the instance registry (where operator commands find its address) until
/// it stops, then removes it.
async fn announce_instance(state: AppState, id: String, mut stop: watch::Receiver<bool>) {
    let now = state.clock.now_ms();
    let mut row = passme_store::InstanceRow {
        id,
        version: env!("CARGO_PKG_VERSION").to_string(),
        base_url: state.base_url.clone(),
        started_at: now,
        heartbeat_at: now,
    };
    loop {
        row.heartbeat_at = state.clock.now_ms();
        if let Err(e) = state.store.heartbeat_instance(&row).await {
            tracing::warn!(error = %e, "could not record this server in the instance registry");
        }
        // Shared limits give each instance its share of what may pass before the database hears.
        match state.store.live_instances(row.heartbeat_at - missed_ms()).await {
            Ok(live) => state.analytics.limit.set_fleet_size(live.len()),
            Err(e) => tracing::warn!(error = %e, "could not count the running servers"),
        }
        tokio::select! {
            _ = tokio::time::sleep(HEARTBEAT) => {}
            _ = stop.changed() => break,
        }
    }
    let stale_before = state.clock.now_ms() - missed_ms();
    if let Err(e) = state.store.remove_instance(&row.id, stale_before).await {
        tracing::warn!(error = %e, "could not remove this server from the instance registry");
    }
}

/// PassMe's own site (`passme`, on the public host, plus localhost in development) and the
/// configured ones.
pub fn tracked_sites(config: &Config, base_url: &str) -> Vec<Site> {
    let own_host = base_url.split("://").nth(1).unwrap_or("").split(['/', ':']).next().unwrap_or("").to_ascii_lowercase();
    let mut hosts = vec![own_host];
    if !config.is_production() {
        hosts.extend(["localhost".to_string(), "127.0.0.1".to_string()]);
    }
    hosts.dedup();
    let mut sites = vec![Site { id: "passme".into(), hosts }];
    sites.extend(
        config.analytics.sites.iter().map(|s| Site { id: s.id.clone(), hosts: s.hosts.iter().map(|h| h.to_ascii_lowercase()).collect() }),
    );
    sites
}
