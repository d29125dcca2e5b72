//! The JSON API the product calls.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use passme_core::identity::api_tokens::{ApiTokens, SCOPE_ME_READ};
use passme_core::identity::staff::Staff;
use passme_core::prefs::Prefs;
use passme_policy::Lang;
use secrecy::SecretString;
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::error::ApiError;
use crate::routes::account::current_session;

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub id: String,
    pub email: String,
    pub email_verified: bool,
    /// Staff roles held (empty for customers).
    pub roles: Vec<String>,
    pub preferences: MePreferences,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MePreferences {
    pub theme: String,
    /// `da`, `en`, or null to follow the browser.
    pub language: Option<String>,
    pub text_size: String,
}

fn unauthenticated() -> Response {
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "Send a personal access token (Authorization: Bearer pm_…) or sign in.")
            .into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    response
}

/// Who is calling: a personal access token with the scope, or a signed-in session.
async fn caller(state: &AppState, headers: &HeaderMap, scope: &str) -> Result<String, Response> {
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let bearer = auth.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).ok_or_else(unauthenticated)?;
        let grant = ApiTokens::new(state.store.clone(), state.clock.clone())
            .authenticate(&SecretString::from(bearer.trim().to_string()))
            .await
            .map_err(|e| ApiError::from(e).into_response())?;
        let grant = grant.ok_or_else(unauthenticated)?;
        if !grant.scopes.iter().any(|s| s == scope) {
            return Err(
                ApiError::new(StatusCode::FORBIDDEN, "insufficient_scope", format!("this token lacks the scope {scope}")).into_response()
            );
        }
        return Ok(grant.account_id);
    }
    current_session(state, headers).await.map(|s| s.account_id).ok_or_else(unauthenticated)
}

/// The signed-in user: identity, verification, roles and display preferences.
#[utoipa::path(get, path = "/api/v1/me", tag = "accounts", security(("bearer" = [])), responses(
    (status = 200, description = "The caller", body = Me),
    (status = 401, description = "No valid token or session", body = crate::error::ErrorBody),
    (status = 403, description = "The token lacks the me:read scope", body = crate::error::ErrorBody),
))]
pub async fn me(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let account_id = match caller(&state, &headers, SCOPE_ME_READ).await {
        Ok(id) => id,
        Err(response) => return response,
    };
    let Ok(Some(account)) = state.store.account(&account_id).await else { return unauthenticated() };
    let roles = Staff::new(state.store.clone(), state.clock.clone()).roles(&account_id).await.unwrap_or_default();
    let (theme, lang, text) = state.store.account_prefs(&account_id).await.unwrap_or_default();
    let prefs = Prefs::from_parts(theme.as_deref(), lang.as_deref(), text.as_deref());
    Json(Me {
        id: account.id,
        email: account.email,
        email_verified: account.email_verified_at.is_some(),
        roles: roles.iter().map(|r| r.id().to_string()).collect(),
        preferences: MePreferences {
            theme: prefs.theme.id().into(),
            language: prefs.lang.map(|l: Lang| l.code().to_string()),
            text_size: prefs.text.id().into(),
        },
    })
    .into_response()
}
