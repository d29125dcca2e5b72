//! Middleware every response passes through: request id, access log (debug level), metrics,
//! security headers, body-size refusal, and the rendering of every error: a [`WebError`] a
//! handler or extractor returned, and a bare error status from a layer (405, 408, 413, a panic),
//! as JSON for API clients and as a page for browsers, in the visitor's language.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use passme_core::cards;
use tracing::Instrument;

use crate::app::AppState;
use crate::error::{Unrendered, WebError};
use crate::visitor::VisitorLang;
use passme_messages::TextsOf;

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
pub(crate) fn wants_json(path: &str, headers: &HeaderMap) -> bool {
    let api_path = path.starts_with("/api/")
        || path.starts_with("/webhooks/")
        || path.ends_with(".json")
        || matches!(path, "/healthz" | "/readyz" | "/metrics");
    let sent_json =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.to_ascii_lowercase().contains("json"));
    let browser = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"));
    api_path || sent_json || !browser
}

/// A server error on a signed-in person's request is a support signal (three in ten minutes open a
/// case). Looked up only on a 500, after the answer is made, so it costs the request nothing.
async fn server_error_signal(state: AppState, token: String, path: String) {
    let session = state.identity.sessions.resolve(&secrecy::SecretString::from(token)).await;
    if let Ok(Some(session)) = session
        && let Err(e) =
            state.support.signal(&session.account_id, passme_support::Signal::ServerError, serde_json::json!({ "path": path })).await
    {
        tracing::warn!(error = %e, "a server error was not recorded as a support signal");
    }
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
    let session = crate::cookies::single(request.headers(), crate::visitor::SESSION_COOKIE).map(str::to_string);
    let mut response =
        if too_large { StatusCode::PAYLOAD_TOO_LARGE.into_response() } else { next.run(request).instrument(span.clone()).await };
    if response.status() == StatusCode::INTERNAL_SERVER_ERROR
        && let Some(token) = session
    {
        tokio::spawn(server_error_signal(state.clone(), token, path.clone()));
    }

    let status = response.status();
    let failure = response.extensions_mut().remove::<Unrendered>().map(|u| u.0).or_else(|| {
        let bare = (status.is_client_error() || status.is_server_error()) && !response.headers().contains_key(header::CONTENT_TYPE);
        bare.then(|| WebError::for_status(status))
    });
    if let Some(error) = failure {
        // In the visitor's language when a handler worked the visitor out; else the request's.
        let t = response.extensions().get::<VisitorLang>().map_or(lang, |l| l.0).texts();
        let mut rendered = if json { error.json(t) } else { crate::routes::pages::error_page(t, &error) };
        for (name, value) in response.headers() {
            if name == header::SET_COOKIE || name == header::LOCATION {
                rendered.headers_mut().append(name, value.clone());
            }
        }
        std::mem::swap(rendered.extensions_mut(), response.extensions_mut());
        response = rendered;
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
        return card_data_refused();
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
        return card_data_refused();
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes))).await
}

fn card_data_refused() -> Response {
    WebError::bad_request("card_data_refused").into_response()
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
    type Rejection = WebError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(request, state, &["application/json"]).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Reads a body of one of the accepted content types, within the body limit.
pub async fn body_bytes<S: Send + Sync>(request: Request, state: &S, accepted: &[&str]) -> Result<axum::body::Bytes, WebError> {
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let essence = content_type.split(';').next().unwrap_or("").trim().to_string();
    if !accepted.contains(&essence.as_str()) {
        return Err(WebError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").with_detail(accepted.join(", ")));
    }
    <axum::body::Bytes as axum::extract::FromRequest<S>>::from_request(request, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            WebError::for_status(StatusCode::PAYLOAD_TOO_LARGE)
        } else {
            WebError::bad_request("body_unreadable")
        }
    })
}

pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, WebError> {
    serde_json::from_slice(bytes).map_err(|e| WebError::bad_request("body_invalid_json").with_detail(e.to_string()))
}
