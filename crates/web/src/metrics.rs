//! Prometheus metrics, kept in a registry owned by the application (no global recorder).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Every label takes its value from a fixed set, so no request can add a series: the method from
/// the standard ones (anything else is `other`), the route from the router's patterns (anything
/// unmatched is `unmatched`), the status from the three-digit codes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: &'static str,
    /// The matched route pattern, never the raw path (which may carry ids or tokens).
    pub route: String,
    pub status: u16,
}

/// The method as a metrics label: one of the standard methods, or `other`.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    const KNOWN: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::HEAD, "HEAD"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::DELETE, "DELETE"),
        (Method::PATCH, "PATCH"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::CONNECT, "CONNECT"),
        (Method::TRACE, "TRACE"),
    ];
    KNOWN.iter().find(|(known, _)| known == method).map_or("other", |(_, label)| label)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectiveLabels {
    /// One of [`CSP_DIRECTIVES`], or `other`: reports come from anyone.
    pub directive: &'static str,
}

/// The CSP directives a report can name (CSP level 3), as metrics label values.
pub const CSP_DIRECTIVES: &[&str] = &[
    "base-uri",
    "child-src",
    "connect-src",
    "default-src",
    "font-src",
    "form-action",
    "frame-ancestors",
    "frame-src",
    "img-src",
    "manifest-src",
    "media-src",
    "object-src",
    "script-src",
    "script-src-attr",
    "script-src-elem",
    "style-src",
    "style-src-attr",
    "style-src-elem",
    "worker-src",
];

/// Who may read `/metrics`.
#[derive(Debug, Clone)]
pub enum MetricsAccess {
    /// Anyone: development, where the server listens on loopback.
    Open,
    /// Whoever sends `Authorization: Bearer <token>`.
    Token(secrecy::SecretString),
    /// Nobody: production without a configured token.
    Closed,
}

impl MetricsAccess {
    pub fn from_config(config: &passme_core::config::Config) -> MetricsAccess {
        match &config.metrics.token {
            Some(token) => MetricsAccess::Token(token.clone()),
            None if config.is_production() => MetricsAccess::Closed,
            None => MetricsAccess::Open,
        }
    }
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram>,
    pub jobs: Family<StatusLabels, Gauge>,
    /// Per job kind and state (queued, running, dead): the fleet's backlog.
    pub job_depth: Family<KindLabels, Gauge>,
    /// Instances that heartbeat within the last two minutes.
    pub instances: Gauge,
    /// The last minute pass: when it finished (Unix seconds) and how long it took.
    pub pass_finished: Gauge,
    pub pass_took_ms: Gauge,
    pub csp_violations: Family<DirectiveLabels, Counter>,
    pub billing_events: Family<StatusLabels, Counter>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("passme");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| Histogram::new(exponential_buckets(0.0005, 2.0, 16)));
        let jobs = Family::<StatusLabels, Gauge>::default();
        let csp_violations = Family::<DirectiveLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        registry.register("http_request_duration_seconds", "Time to answer HTTP requests", latency.clone());
        registry.register("jobs", "Background jobs by status", jobs.clone());
        let job_depth = Family::<KindLabels, Gauge>::default();
        registry.register("job_depth", "Background jobs by kind and state (queued, running, dead)", job_depth.clone());
        let instances = Gauge::default();
        registry.register("fleet_instances", "Instances that heartbeat within the last two minutes", instances.clone());
        let pass_finished = Gauge::default();
        registry.register("analytics_pass_finished_seconds", "When the last minute pass finished (Unix time)", pass_finished.clone());
        let pass_took_ms = Gauge::default();
        registry.register("analytics_pass_took_milliseconds", "How long the last minute pass took", pass_took_ms.clone());
        registry.register("csp_violations", "Content-Security-Policy violations reported by browsers", csp_violations.clone());
        let billing_events = Family::<StatusLabels, Counter>::default();
        registry.register(
            "billing_webhook_deliveries",
            "Payment provider webhook deliveries: accepted, duplicate, refused",
            billing_events.clone(),
        );
        Metrics { registry, requests, latency, jobs, job_depth, instances, pass_finished, pass_took_ms, csp_violations, billing_events }
    }

    /// Counts one webhook delivery by outcome (the billing crate's fixed outcome names).
    pub fn billing_events(&self, outcome: &str) {
        self.billing_events.get_or_create(&StatusLabels { status: outcome.to_string() }).inc();
    }

    /// Counts one request.
    pub fn request(&self, method: &axum::http::Method, route: &str, status: u16, seconds: f64) {
        self.requests.get_or_create(&RequestLabels { method: method_label(method), route: route.to_string(), status }).inc();
        self.latency.get_or_create(&RouteLabels { route: route.to_string() }).observe(seconds);
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
