//! The OpenAPI document of the JSON API, generated from the handlers' annotations.

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "PassMe API",
        description = "The JSON API of PassMe: operations, the machine-readable privacy policy, security reporting and the signed-in user. Every error is `{\"error\":{\"code\":\"…\",\"message\":\"…\"}}`."
    ),
    paths(
        crate::routes::health::healthz,
        crate::routes::health::readyz,
        crate::routes::health::metrics,
        crate::routes::privacy::privacy_json,
        crate::routes::csp::report,
        crate::routes::api::me,
        crate::routes::api::signup,
        crate::routes::api::login,
        crate::routes::api::logout,
        crate::routes::api::sessions,
        crate::routes::api::end_session,
        crate::routes::api::preferences,
        crate::routes::api::put_preferences,
        crate::routes::api::consent,
        crate::routes::api::put_consent,
        crate::routes::tracking::events,
        crate::routes::analytics::report,
        crate::routes::billing::entitlements,
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// Declares the personal access token scheme (`Authorization: Bearer pm_…`).
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            utoipa::openapi::security::SecurityScheme::Http(utoipa::openapi::security::Http::new(
                utoipa::openapi::security::HttpAuthScheme::Bearer,
            )),
        );
    }
}

pub fn document_json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_else(|_| "{}".into())
}

#[utoipa::path(get, path = "/api/openapi.json", tag = "operations", responses((status = 200, description = "This document", content_type = "application/json")))]
pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], document_json())
}
