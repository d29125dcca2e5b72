//! Middleware every response passes through: request id, access log (debug level), metrics,
//! security headers, body-size refusal, and an error body for bare error statuses from layers
//! (so 405, 408, 413 and panics answer in the same error format as handlers).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use passme_core::cards;
use tracing::Instrument;

use crate::app::AppState;
use crate::error::ApiError;

/// The request's id, from a well-formed `X-Request-Id` or freshly generated.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The matched route pattern, carried from the router to the outer middleware.
#[derive(Debug, Clone)]
struct RouteName(String);

pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; \
form-action 'self'; base-uri 'none'; frame-ancestors 'none'; report-uri /api/v1/csp-reports";

fn incoming_request_id(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("x-request-id")?.to_str().ok()?;
    let valid =
        !value.is_empty() && value.len() <= 64 && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    valid.then(|| value.to_string())
}

fn new_request_id() -> String {
    hex::encode(rand::random::<[u8; 12]>())
}

/// Inside the router: records which route matched.
pub async fn tag_route(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string());
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(RouteName(route));
    }
    response
}

/// Whether a failed request should be answered as JSON (API clients, and anything that sent JSON)
/// or as a page (browsers).
fn wants_json(path: &str, headers: &HeaderMap) -> bool {
    let api_path = path.starts_with("/api/")
        || path.starts_with("/webhooks/")
        || path.ends_with(".json")
        || matches!(path, "/healthz" | "/readyz" | "/metrics");
    let sent_json =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.to_ascii_lowercase().contains("json"));
    let browser = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"));
    api_path || sent_json || !browser
}

pub async fn request_context(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = incoming_request_id(request.headers()).unwrap_or_else(new_request_id);
    request.extensions_mut().insert(RequestId(id.clone()));
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let json = wants_json(&path, request.headers());
    let lang = crate::lang::of_request(request.uri(), request.headers());
    let span = tracing::info_span!("request", request_id = %id, method = crate::metrics::method_label(&method));

    let too_large = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|len| len > state.body_limit as u64);
    let mut response =
        if too_large { StatusCode::PAYLOAD_TOO_LARGE.into_response() } else { next.run(request).instrument(span.clone()).await };

    let status = response.status();
    if (status.is_client_error() || status.is_server_error()) && !response.headers().contains_key(header::CONTENT_TYPE) {
        let error = ApiError::for_status(status);
        let mut replacement = if json { error.into_response() } else { crate::routes::pages::error_page(&state, lang, &error) };
        std::mem::swap(replacement.extensions_mut(), response.extensions_mut());
        response = replacement;
    }
    let route = response.extensions().get::<RouteName>().map_or_else(|| "unmatched".to_string(), |r| r.0.clone());
    security_headers(response.headers_mut(), state.behind_tls);
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    let elapsed = started.elapsed();
    state.metrics.request(&method, &route, status.as_u16(), elapsed.as_secs_f64());
    // The route pattern only: raw paths and query strings may carry tokens or personal data.
    // One line per request is an access log, at debug (off by default: at a million page views it
    // was half a gigabyte); a server error is worth a warning.
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    if status.is_server_error() {
        tracing::warn!(parent: &span, %route, status = status.as_u16(), latency_ms, "request failed");
    } else {
        tracing::debug!(parent: &span, %route, status = status.as_u16(), latency_ms, "request");
    }
    response
}

/// Paths whose bodies are not scanned for card numbers: signed provider events, verified on
/// their raw bytes, which carry no card data and must not be lost to a false match.
const CARD_SCAN_EXEMPT: &[&str] = &["/webhooks/stripe"];

/// Refuses any request that carries a card number or asks for a card field, in its query or
/// body, before a handler (or a log line) sees it. Values are scanned as the handler will read
/// them: form fields and queries decoded (repeatedly, for double encodings), JSON strings with
/// their escapes resolved. PassMe never takes card details.
pub async fn refuse_card_data(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if CARD_SCAN_EXEMPT.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    if request.uri().query().is_some_and(|q| cards::form_carries_card(q.as_bytes())) {
        return card_data_refused(&state, request.uri(), request.headers());
    }
    if request.headers().get(header::CONTENT_LENGTH).is_some_and(|v| v == "0") || request.method() == axum::http::Method::GET {
        return next.run(request).await;
    }
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, state.body_limit).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    // JSON is recognised by its first byte too: the tracker sends it as text/plain.
    let looks_like_json = bytes.iter().find(|b| !b.is_ascii_whitespace()).is_some_and(|b| matches!(b, b'{' | b'['));
    let carries_card = if content_type.starts_with("application/x-www-form-urlencoded") {
        cards::form_carries_card(&bytes)
    } else if content_type.contains("json") || looks_like_json {
        cards::json_carries_card(&bytes)
    } else {
        cards::carries_card_number(&bytes)
    };
    if carries_card {
        return card_data_refused(&state, &parts.uri, &parts.headers);
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes))).await
}

/// The refusal in the request's language, as JSON or as a page like every other error of this
/// path.
fn card_data_refused(state: &AppState, uri: &axum::http::Uri, headers: &HeaderMap) -> Response {
    let lang = crate::lang::of_request(uri, headers);
    let error = ApiError::bad_request(
        "card_data_refused",
        lang.pick(
            "Det ligner et kortnummer. PassMe modtager aldrig kortoplysninger: du betaler på betalingsudbyderens egen side.",
            "This looks like card data. PassMe never takes card details: you pay on the payment provider's own page.",
        ),
    );
    if wants_json(uri.path(), headers) { error.into_response() } else { crate::routes::pages::error_page(state, lang, &error) }
}

fn security_headers(headers: &mut HeaderMap, behind_tls: bool) {
    let set = |headers: &mut HeaderMap, name: &'static str, value: &'static str| {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    };
    // Nothing is stored by browsers or proxies unless its handler says it may be (the script and
    // the stylesheet do): pages carry the visitor's CSRF token and consent state, signed-in pages
    // and API answers personal data.
    set(headers, "cache-control", "no-store");
    set(headers, "content-security-policy", CSP);
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "referrer-policy", "same-origin");
    set(headers, "x-frame-options", "DENY");
    set(headers, "cross-origin-opener-policy", "same-origin");
    set(headers, "permissions-policy", "camera=(), microphone=(), geolocation=(), interest-cohort=()");
    if behind_tls {
        set(headers, "strict-transport-security", "max-age=63072000; includeSubDomains");
    }
}

/// A JSON body parsed strictly: wrong content type, oversized and malformed bodies each get their
/// own 4xx code instead of axum's plain-text rejections.
pub struct JsonBody<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(request, state, &["application/json"]).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Reads a body of one of the accepted content types, within the body limit.
pub async fn body_bytes<S: Send + Sync>(request: Request, state: &S, accepted: &[&str]) -> Result<axum::body::Bytes, ApiError> {
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let essence = content_type.split(';').next().unwrap_or("").trim().to_string();
    if !accepted.contains(&essence.as_str()) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("expected a body of type {}", accepted.join(" or ")),
        ));
    }
    <axum::body::Bytes as axum::extract::FromRequest<S>>::from_request(request, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::for_status(StatusCode::PAYLOAD_TOO_LARGE)
        } else {
            ApiError::bad_request("body_unreadable", "the request body could not be read")
        }
    })
}

pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request("body_invalid_json", format!("the body is not valid JSON for this endpoint: {e}")))
}
