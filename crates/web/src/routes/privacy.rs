//! The machine-readable policy.

use axum::Json;
use axum::extract::State;

use crate::app::AppState;

/// The policy declarations as JSON: controller, purposes, data categories with retention,
/// processors, cookies (name, category, lifetime, purpose) and security measures.
#[utoipa::path(get, path = "/privacy.json", tag = "privacy", responses((status = 200, description = "The declarations", content_type = "application/json")))]
pub async fn privacy_json(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(passme_policy::json::to_json(&state.policy))
}
