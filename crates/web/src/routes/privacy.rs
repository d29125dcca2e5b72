//! The machine-readable policy.

use axum::Json;
use axum::extract::State;
use utoipa::ToSchema;

use crate::app::AppState;

/// The policy declarations as JSON: controller, purposes, data categories with retention,
/// processors, cookies (name, category, lifetime, purpose) and security measures.
#[utoipa::path(get, path = "/privacy.json", tag = "privacy", responses((status = 200, description = "The declarations", body = PrivacyDocument)))]
pub async fn privacy_json(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(passme_policy::json::to_json(&state.policy))
}

// The shape of `/privacy.json` for the OpenAPI document. The policy crate builds the JSON; the
// documented-shape test checks every answer against these.

/// A text in both languages.
#[derive(ToSchema)]
#[expect(dead_code, reason = "documentation only")]
pub struct Bilingual {
    da: String,
    en: String,
}

#[derive(ToSchema)]
#[expect(dead_code, reason = "documentation only")]
pub struct PrivacyDocument {
    /// The policy's version; a new one asks for consent again.
    version: String,
    /// The date it took effect, YYYY-MM-DD.
    effective: String,
    controller: Controller,
    purposes: Vec<Purpose>,
    categories: Vec<Category>,
    processors: Vec<Processor>,
    cookie_categories: Vec<CookieCategoryText>,
    cookies: Vec<Cookie>,
    security: Vec<Measure>,
}

#[derive(ToSchema)]
#[expect(dead_code, reason = "documentation only")]
pub struct Controller {
    name: String,
    email: String,
    address: Option<String>,
    country: Bilingual,
    /// The supervisory authority to complain to.
    authority: Bilingual,
    authority_url: String,
}

#[derive(ToSchema)]
#[expect(dead_code, reason = "documentation only")]
pub struct Purpose {
    id: String,
    text: Bilingual,
    /// `consent`, `contract`, `legal_obligation` or `legitimate_interest`.
    legal_basis: Vec<String>,
    consent_required: bool,
}

#[derive(ToSchema)]
#[expect(dead_code, reason = "documentation only")]
pub struct Category {
    id: String,
    name: Bilingual,
    subjects: Bilingual,
    source: Bilingual,
    fields: Vec<Field>,
}

#[derive(ToSchema)]
#[expect(dead_code, reason = "documentation only")]
pub struct Field {
    id: String,
    name: Bilingual,
    purposes: Vec<String>,
    legal_basis: Vec<String>,
    retention: Option<Retention>,
}

#[derive(ToSchema)]
#[expect(dead_code, reason = "documentation only")]
pub struct Retention {
    id: String,
    /// ISO 8601 duration, e.g. `P30D`.
    period: String,
    /// When the period starts, e.g. `collected` or `account_closed`.
    trigger: String,
    action: RetentionAction,
    reason: Bilingual,
}

#[derive(ToSchema)]
#[expect(dead_code, reason = "documentation only")]
pub struct RetentionAction {
    /// `delete`, `anonymise` or `archive`.
    kind: String,
    /// For `anonymise`: how, e.g. `truncate_ip`.
    method: Option<String>,
    /// For `archive`: when the archive clean-up deletes it (ISO 8601 duration).
    cleanup: Option<String>,
}

#[derive(ToSchema)]
#[expect(dead_code, reason = "documentation only")]
pub struct Processor {
    id: String,
    name: Bilingual,
    /// `processor` or `independent_controller`.
    role: String,
    service: Bilingual,
    /// The field ids it receives, and nothing else.
    receives: Vec<String>,
    /// The field ids it sends us (an identity provider's tokens and profile).
    sends: Vec<String>,
    /// The OAuth scopes PassMe may ask it for.
    scopes: Vec<String>,
    /// The public profile fields kept from what it sends (under personalisation consent).
    profile_fields: Vec<String>,
    purposes: Vec<String>,
    location: Bilingual,
    safeguard: Option<Bilingual>,
    privacy_url: Option<String>,
}

#[derive(ToSchema)]
#[expect(dead_code, reason = "documentation only")]
pub struct CookieCategoryText {
    /// `necessary`, `preferences`, `statistics` or `marketing`.
    category: String,
    description: Bilingual,
}

#[derive(ToSchema)]
#[expect(dead_code, reason = "documentation only")]
pub struct Cookie {
    name: String,
    category: String,
    /// ISO 8601 duration, or `session`.
    lifetime: String,
    /// The lifetime's upper bound in seconds; null for a session cookie.
    lifetime_seconds: Option<i64>,
    purpose: Bilingual,
    /// What stops working without it.
    without: Bilingual,
}

#[derive(ToSchema)]
#[expect(dead_code, reason = "documentation only")]
pub struct Measure {
    id: String,
    text: Bilingual,
}
