//! Liveness, readiness and metrics for operators and orchestrators.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use secrecy::ExposeSecret;
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::error::WebError;
use crate::metrics::{MetricsAccess, StatusLabels};

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` while the process serves requests.
    pub status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` when the database answers.
    pub status: &'static str,
    /// `sqlite` or `postgres`.
    pub database: &'static str,
}

/// The process is up. Never touches the database, so a slow database does not get it restarted.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The process can serve: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Ready", body = Readiness),
    (status = 503, description = "The database does not answer", body = crate::error::ErrorBody),
))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Readiness>, WebError> {
    match state.store.ping().await {
        Ok(()) => Ok(Json(Readiness { status: "ready", database: state.store.engine().name() })),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(WebError::new(StatusCode::SERVICE_UNAVAILABLE, "database_unavailable").retry_after(5))
        }
    }
}

/// Prometheus metrics in the OpenMetrics text format. With a configured token
/// (`PASSME_METRICS__TOKEN`) only a scraper presenting it may read them; without one they are
/// open in development and closed (404) in production.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(("bearer" = [])), responses(
    (status = 200, description = "OpenMetrics text format", body = String, content_type = "application/openmetrics-text"),
    (status = 401, description = "The metrics token is missing or wrong", body = crate::error::ErrorBody),
    (status = 404, description = "Metrics are closed (production without a token)", body = crate::error::ErrorBody),
))]
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<impl IntoResponse, WebError> {
    match &state.metrics_access {
        MetricsAccess::Open => {}
        MetricsAccess::Closed => return Err(WebError::not_found()),
        MetricsAccess::Token(token) => {
            let presented = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
            if !presented.is_some_and(|p| passme_core::crypto::constant_time_eq(p.trim().as_bytes(), token.expose_secret().as_bytes())) {
                return Err(WebError::new(StatusCode::UNAUTHORIZED, "metrics_token_required"));
            }
        }
    }
    if let Ok(counts) = state.store.job_counts().await {
        for (status, n) in [("queued", counts.queued), ("running", counts.running), ("done", counts.done), ("dead", counts.dead)] {
            state.metrics.jobs.get_or_create(&StatusLabels { status: status.into() }).set(n);
        }
    }
    // What `passme status` shows of the fleet, without its lists of jobs.
    if let Ok(live) = state.store.live_instances(state.clock.now_ms() - crate::app::missed_ms()).await {
        state.metrics.instances.set(i64::try_from(live.len()).unwrap_or(i64::MAX));
    }
    if let Ok(depths) = state.store.job_depths().await {
        // A kind whose queue emptied is no longer listed: its series goes, not its last value.
        state.metrics.job_depth.clear();
        for d in &depths {
            for (kind_state, n) in [("queued", d.queued), ("running", d.running), ("dead", d.dead)] {
                state
                    .metrics
                    .job_depth
                    .get_or_create(&crate::metrics::KindLabels { kind: d.kind.clone(), state: kind_state.into() })
                    .set(n);
            }
        }
    }
    if let Ok(Some(pass)) = state.store.lease(passme_analytics::rollup::PASS_LEASE).await {
        state.metrics.pass_finished.set(pass.finished_at.unwrap_or(0) / 1000);
        state.metrics.pass_took_ms.set(pass.took_ms.unwrap_or(0));
    }
    Ok(([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.encode()))
}
