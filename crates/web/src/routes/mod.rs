//! Route handlers, one module per area. Thin: parse, call core, render.

pub mod account;
pub mod analytics;
pub mod api;
pub mod billing;
pub mod consent;
pub mod csp;
pub mod health;
pub mod openapi;
pub mod pages;
pub mod prefs;
pub mod privacy;
pub mod staff;
pub mod tracking;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use passme_policy::Lang;

use crate::app::AppState;
use crate::csrf::{self, CsrfFailure};
use crate::error::ApiError;

/// The page refusing a form post that fails the CSRF check, or `None` when it passes. A browser
/// that refuses cookies gets `cookies_refused` (what that means for this form) instead of a
/// retry loop.
pub(crate) fn csrf_refusal(
    state: &AppState,
    lang: Lang,
    headers: &HeaderMap,
    token: &str,
    cookies_refused: (&'static str, &str),
) -> Option<Response> {
    let error = match csrf::verify(state.secrets.master_key(), headers, token) {
        Ok(()) => return None,
        Err(CsrfFailure::CookiesRefused) => ApiError::new(StatusCode::BAD_REQUEST, cookies_refused.0, cookies_refused.1),
        Err(CsrfFailure::Forged) => ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf_failed",
            lang.pick("Formularen kom ikke fra denne side. Prøv igen.", "The form did not come from this site. Please try again."),
        ),
    };
    Some(pages::error_page(state, lang, &error))
}
