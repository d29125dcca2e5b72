//! Prometheus metrics, kept in a registry owned by the application (no global recorder).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    /// The matched route pattern, never the raw path (which may carry ids or tokens).
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectiveLabels {
    pub directive: String,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram>,
    pub jobs: Family<StatusLabels, Gauge>,
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
        registry.register("csp_violations", "Content-Security-Policy violations reported by browsers", csp_violations.clone());
        let billing_events = Family::<StatusLabels, Counter>::default();
        registry.register(
            "billing_webhook_deliveries",
            "Payment provider webhook deliveries: accepted, duplicate, refused",
            billing_events.clone(),
        );
        Metrics { registry, requests, latency, jobs, csp_violations, billing_events }
    }

    /// Counts one webhook delivery by outcome.
    pub fn billing_events(&self, outcome: &str) {
        self.billing_events.get_or_create(&StatusLabels { status: outcome.to_string() }).inc();
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
