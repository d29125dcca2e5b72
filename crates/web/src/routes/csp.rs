//! Content-Security-Policy violation reports from browsers. Counted by directive; nothing about
//! the visitor is stored, and only the blocked origin (never a full URL) reaches the log.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use serde::Deserialize;

use crate::app::AppState;
use crate::error::WebError;
use crate::metrics::{CSP_DIRECTIVES, DirectiveLabels};
use crate::middleware::{body_bytes, parse_json};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CspReport {
    #[serde(rename = "csp-report")]
    pub report: CspReportBody,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CspReportBody {
    #[serde(rename = "violated-directive", alias = "effective-directive")]
    pub violated_directive: String,
    #[serde(rename = "blocked-uri", default)]
    pub blocked_uri: String,
}

/// The directive's name only (`script-src`), from at most 64 well-formed characters; a name no
/// CSP level knows is counted as `other`, so reports cannot add metrics series.
fn directive_name(raw: &str) -> Option<&'static str> {
    let name = raw.split_whitespace().next()?;
    if name.len() > 64 || !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') {
        return None;
    }
    Some(CSP_DIRECTIVES.iter().find(|d| **d == name).copied().unwrap_or("other"))
}

fn origin_only(uri: &str) -> String {
    match uri.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}", rest.split(['/', '?', '#']).next().unwrap_or("")),
        None => uri.chars().take(16).filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect(),
    }
}

/// Receives a browser's CSP violation report.
#[utoipa::path(post, path = "/api/v1/csp-reports", tag = "security", request_body(content = CspReport, content_type = "application/csp-report"), responses(
    (status = 204, description = "Counted"),
    (status = 400, description = "Malformed report", body = crate::error::ErrorBody),
    (status = 413, description = "Body too large", body = crate::error::ErrorBody),
    (status = 415, description = "Wrong content type", body = crate::error::ErrorBody),
))]
pub async fn report(State(state): State<AppState>, request: Request) -> Result<StatusCode, WebError> {
    let bytes = body_bytes(request, &state, &["application/csp-report", "application/json"]).await?;
    let report: CspReport = parse_json(&bytes)?;
    let directive = directive_name(&report.report.violated_directive).ok_or_else(|| WebError::bad_request("csp_report_invalid"))?;
    state.metrics.csp_violations.get_or_create(&DirectiveLabels { directive }).inc();
    tracing::info!(%directive, blocked = %origin_only(&report.report.blocked_uri), "csp violation reported");
    Ok(StatusCode::NO_CONTENT)
}
