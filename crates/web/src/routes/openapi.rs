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
        crate::routes::messages::api_choices,
        crate::routes::messages::api_choose,
        crate::routes::messages::push_key,
        crate::routes::messages::subscribe,
        crate::routes::messages::unsubscribe_device,
        crate::routes::messages::report,
        crate::routes::support::api_cases,
        crate::routes::support::api_open,
        crate::routes::support::api_reply,
        crate::routes::openapi::document,
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail)),
    modifiers(&BearerAuth, &BodyErrors)
)]
pub struct ApiDoc;

/// Declares the two ways to authenticate: a personal access token (`Authorization: Bearer pm_…`)
/// and the browser's session cookie.
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
        // The browser's session, for the web app on PassMe's own origin.
        components.add_security_scheme(
            "session",
            utoipa::openapi::security::SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Cookie(
                utoipa::openapi::security::ApiKeyValue::with_description(
                    crate::routes::account::SESSION_COOKIE,
                    "The session cookie set by signing in; requests that change state must also come from this site (Origin).",
                ),
            )),
        );
    }
}

/// Every operation that reads a JSON body answers 400 for malformed JSON (`body_invalid_json`)
/// and 415 for another media type (`unsupported_media_type`): the extractor does so before the
/// handler runs, so the document says it once here rather than in every handler's annotation.
struct BodyErrors;

impl utoipa::Modify for BodyErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let error = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build())
                    .build(),
            )
        };
        for item in openapi.paths.paths.values_mut() {
            for operation in [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch].into_iter().flatten() {
                let json_body = matches!(&operation.request_body, Some(RefOr::T(body)) if body.content.keys().any(|t| t.contains("json")));
                if !json_body {
                    continue;
                }
                let responses = &mut operation.responses.responses;
                responses.entry("400".into()).or_insert_with(|| error("Malformed JSON (`body_invalid_json`) or a refused field"));
                responses.entry("415".into()).or_insert_with(|| error("The body is not JSON (`unsupported_media_type`)"));
            }
        }
    }
}

pub fn document_json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_else(|_| "{}".into())
}

/// The top of an OpenAPI 3.1 document, for the document's own entry.
#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "documentation only")]
pub struct OpenApiDocument {
    openapi: String,
    info: std::collections::BTreeMap<String, serde_json::Value>,
    paths: std::collections::BTreeMap<String, serde_json::Value>,
    components: std::collections::BTreeMap<String, serde_json::Value>,
}

#[utoipa::path(get, path = "/api/openapi.json", tag = "operations", responses((status = 200, description = "This document", body = OpenApiDocument)))]
pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], document_json())
}
