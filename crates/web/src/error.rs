//! The one error type of the HTTP layer. Every failure a client sees is an [`ApiError`] with a
//! stable code: rendered as `{"error":{"code":"…","message":"…"}}` for the API and as a plain page
//! for HTML. Core errors are mapped here and nowhere else. 5xx causes are logged in full; the
//! client gets an opaque message.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use passme_core::CoreError;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable code, e.g. `body_too_large`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into() }
    }

    pub fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "No such resource.")
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// The error that answers a bare status produced by a layer (405, 408, 413, 500 from a panic).
    pub fn for_status(status: StatusCode) -> ApiError {
        let (code, message) = match status {
            StatusCode::NOT_FOUND => ("not_found", "No such resource."),
            StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "This method is not allowed here."),
            StatusCode::REQUEST_TIMEOUT => ("request_timeout", "The request took too long."),
            StatusCode::PAYLOAD_TOO_LARGE => ("body_too_large", "The request body is too large."),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", "This content type is not accepted here."),
            s if s.is_server_error() => ("internal_error", "Something went wrong on our side. It has been logged."),
            _ => ("bad_request", "The request could not be understood."),
        };
        ApiError::new(status, code, message)
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody { error: ErrorDetail { code: self.code.into(), message: self.message.clone() } }
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> ApiError {
        match &e {
            CoreError::Invalid { code, message } => ApiError::bad_request(code, message.clone()),
            CoreError::Forbidden => ApiError::new(StatusCode::FORBIDDEN, "forbidden", "This needs a role you do not hold."),
            CoreError::Unavailable { code, message } => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message.clone()),
            CoreError::SecretInAuditDetails(_) | CoreError::AuditContention | CoreError::Store(_) => {
                tracing::error!(error = %e, code = e.code(), "request failed");
                ApiError::for_status(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }
}

impl From<passme_store::StoreError> for ApiError {
    fn from(e: passme_store::StoreError) -> ApiError {
        CoreError::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, [(header::CONTENT_TYPE, "application/json")], serde_json::to_string(&self.body()).unwrap_or_default()).into_response()
    }
}
