//! The one error type of the HTTP layer. Every failure a client sees is a [`WebError`]: an HTTP
//! status and a stable code. Handlers return it (and use `?` on core errors, mapped here and
//! nowhere else); the outer middleware renders it, because only there is everything known that
//! the rendering needs: JSON (`{"error":{"code":"…","message":"…"}}`) for API clients and for
//! requests that sent JSON, a page for browsers, and the message from the catalogue in the
//! visitor's language (the signed-in account's, `?lang=`, or the browser's).
//!
//! When to use what: [`WebError::new`] with a code that has a text under `[error]` in the
//! locales; [`WebError::with_detail`] to add what only a library can say (a JSON parser's
//! position), left untranslated; [`WebError::with_message`] for a message already in the
//! visitor's language. 5xx causes are logged in full where they arise; clients get an opaque
//! message.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use passme_core::CoreError;
use passme_messages::Texts;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone)]
pub struct WebError {
    pub status: StatusCode,
    pub code: &'static str,
    message: Message,
    headers: Vec<(HeaderName, HeaderValue)>,
}

#[derive(Debug, Clone)]
enum Message {
    /// The catalogue's text for the code (or the status's generic text when it has none), then
    /// the catalogue's `hint.*` text, if any.
    Catalogue(Option<&'static str>),
    /// The catalogue's text, then something untranslated in parentheses.
    Detail(String),
    /// Already in the visitor's language.
    Given(String),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable code, e.g. `body_too_large`.
    pub code: String,
    /// Human-readable explanation, in the request's language.
    pub message: String,
}

/// A response that still has to be rendered by the outer middleware.
#[derive(Debug, Clone)]
pub(crate) struct Unrendered(pub WebError);

impl WebError {
    pub fn new(status: StatusCode, code: &'static str) -> WebError {
        WebError { status, code, message: Message::Catalogue(None), headers: Vec::new() }
    }

    pub fn bad_request(code: &'static str) -> WebError {
        WebError::new(StatusCode::BAD_REQUEST, code)
    }

    pub fn not_found() -> WebError {
        WebError::new(StatusCode::NOT_FOUND, "not_found")
    }

    pub fn forbidden() -> WebError {
        WebError::new(StatusCode::FORBIDDEN, "forbidden")
    }

    /// The error that answers a bare status produced by a layer (405, 408, 413, 500 from a panic).
    pub fn for_status(status: StatusCode) -> WebError {
        WebError::new(status, status_code(status))
    }

    /// Adds the catalogue's `hint.*` text of `hint` after the message.
    pub fn with_hint(mut self, hint: Option<&'static str>) -> WebError {
        self.message = Message::Catalogue(hint);
        self
    }

    /// Adds something only a library can say, left untranslated (a JSON parser's position).
    pub fn with_detail(mut self, detail: impl Into<String>) -> WebError {
        self.message = Message::Detail(detail.into());
        self
    }

    /// Replaces the catalogue's text with one already in the visitor's language.
    pub fn with_message(mut self, message: impl Into<String>) -> WebError {
        self.message = Message::Given(message.into());
        self
    }

    pub fn with_header(mut self, name: HeaderName, value: &str) -> WebError {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.push((name, value));
        }
        self
    }

    pub fn retry_after(self, seconds: i64) -> WebError {
        self.with_header(axum::http::header::RETRY_AFTER, &seconds.max(1).to_string())
    }

    /// The message in the language of `texts`.
    pub fn message(&self, texts: Texts) -> String {
        let base = || texts.error(self.code).or_else(|| texts.error(status_code(self.status))).unwrap_or(self.code).to_string();
        match &self.message {
            Message::Catalogue(None) => base(),
            Message::Catalogue(Some(hint)) => match texts.hint(hint) {
                Some(hint) => format!("{} {hint}", base()),
                None => base(),
            },
            Message::Detail(detail) => format!("{} ({detail})", base()),
            Message::Given(message) => message.clone(),
        }
    }

    pub fn body(&self, texts: Texts) -> ErrorBody {
        ErrorBody { error: ErrorDetail { code: self.code.into(), message: self.message(texts) } }
    }

    /// The JSON answer, in the language of `texts`.
    pub fn json(&self, texts: Texts) -> Response {
        let mut response = (
            self.status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            serde_json::to_string(&self.body(texts)).unwrap_or_default(),
        )
            .into_response();
        self.add_headers(&mut response);
        response
    }

    pub(crate) fn add_headers(&self, response: &mut Response) {
        for (name, value) in &self.headers {
            response.headers_mut().insert(name.clone(), value.clone());
        }
    }
}

/// The generic code of a status, which also names its catalogue text.
fn status_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::UNAUTHORIZED => "unauthenticated",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        s if s.is_server_error() => "internal_error",
        _ => "bad_request",
    }
}

/// The status and headers now, the body later: see the module comment.
impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        self.add_headers(&mut response);
        response.extensions_mut().insert(Unrendered(self));
        response
    }
}

impl From<CoreError> for WebError {
    fn from(e: CoreError) -> WebError {
        match &e {
            CoreError::Input { code, hint } => WebError::bad_request(code).with_hint(*hint),
            CoreError::NotFound { code } => WebError::new(StatusCode::NOT_FOUND, code),
            CoreError::Conflict { code } => WebError::new(StatusCode::CONFLICT, code),
            CoreError::Forbidden => WebError::forbidden(),
            // Something we depend on is down (the database, the mail relay): come back shortly.
            CoreError::Unavailable { code } => WebError::new(StatusCode::SERVICE_UNAVAILABLE, code).retry_after(5),
            CoreError::Internal(_) => {
                tracing::error!(error = %e, code = e.code(), "request failed");
                WebError::for_status(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }
}

impl From<passme_store::StoreError> for WebError {
    fn from(e: passme_store::StoreError) -> WebError {
        CoreError::from(e).into()
    }
}
