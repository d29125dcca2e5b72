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
pub(crate) async fn caller(state: &AppState, headers: &HeaderMap, scope: &str) -> Result<String, Response> {
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
#[utoipa::path(get, path = "/api/v1/me", tag = "accounts", security(("bearer" = []), ("session" = [])), responses(
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

// ---- the signed-in user's own data, for the web app (session only) ----

use axum::extract::{FromRequest, Path, Request};
use passme_core::consent::{Choices, ConsentCookie, ConsentLedger, ConsentState};
use passme_core::identity::sessions::Sessions;
use passme_core::prefs::{TextSize, Theme};
use serde::Deserialize;

use crate::context::PageContext;
use crate::middleware::JsonBody;
use crate::{cookies, csrf};

/// The signed-in account for a session-only endpoint; state changes must also be same-origin.
async fn session_account(state: &AppState, headers: &HeaderMap, changes_state: bool) -> Result<(String, String), Response> {
    if changes_state && !csrf::same_origin(headers) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "cross_origin_refused", "State changes must come from this site.").into_response());
    }
    current_session(state, headers).await.map(|s| (s.account_id, s.id)).ok_or_else(unauthenticated)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// Use this id to end the session.
    pub id: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub user_agent: String,
    /// The truncated address (/24 or /48) the session started from.
    pub network: String,
    pub current: bool,
    pub remembered: bool,
}

/// The signed-in user's live sessions.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "accounts", security(("session" = [])), responses(
    (status = 200, description = "Live sessions, newest first", body = [SessionView]),
    (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
))]
pub async fn sessions(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (account_id, current) = match session_account(&state, &headers, false).await {
        Ok(ids) => ids,
        Err(response) => return response,
    };
    match Sessions::new(state.store.clone(), state.clock.clone()).list(&account_id).await {
        Ok(rows) => Json(
            rows.into_iter()
                .map(|r| SessionView {
                    current: r.id == current,
                    id: r.id,
                    created_at: r.created_at,
                    last_seen_at: r.last_seen_at,
                    user_agent: r.user_agent,
                    network: r.ip_prefix,
                    remembered: r.remembered,
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Ends one of the signed-in user's sessions. Another account's session id is "not found".
#[utoipa::path(delete, path = "/api/v1/sessions/{id}", tag = "accounts", security(("session" = [])), params(("id" = String, Path, description = "Session id from GET /api/v1/sessions")), responses(
    (status = 204, description = "Ended"),
    (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    (status = 403, description = "Cross-origin request", body = crate::error::ErrorBody),
    (status = 404, description = "No such session of yours", body = crate::error::ErrorBody),
))]
pub async fn end_session(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let (account_id, _) = match session_account(&state, &headers, true).await {
        Ok(ids) => ids,
        Err(response) => return response,
    };
    match Sessions::new(state.store.clone(), state.clock.clone()).revoke(&account_id, &id).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => ApiError::not_found().into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreferencesBody {
    /// `light` or `dark`.
    pub theme: String,
    /// `da`, `en`, or null to follow the browser.
    pub language: Option<String>,
    /// `normal` or `large`.
    pub text_size: String,
}

/// The signed-in user's display preferences.
#[utoipa::path(get, path = "/api/v1/preferences", tag = "accounts", security(("session" = [])), responses(
    (status = 200, description = "Preferences", body = PreferencesBody),
    (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
))]
pub async fn preferences(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (account_id, _) = match session_account(&state, &headers, false).await {
        Ok(ids) => ids,
        Err(response) => return response,
    };
    let (theme, lang, text) = state.store.account_prefs(&account_id).await.unwrap_or_default();
    let p = Prefs::from_parts(theme.as_deref(), lang.as_deref(), text.as_deref());
    Json(PreferencesBody { theme: p.theme.id().into(), language: p.lang.map(|l| l.code().into()), text_size: p.text.id().into() })
        .into_response()
}

/// Replaces the signed-in user's display preferences. Only allow-listed values.
#[utoipa::path(put, path = "/api/v1/preferences", tag = "accounts", security(("session" = [])), request_body = PreferencesBody, responses(
    (status = 200, description = "Saved", body = PreferencesBody),
    (status = 400, description = "A value outside the allow-list (`preferences_invalid`), or malformed JSON (`body_invalid_json`)", body = crate::error::ErrorBody),
    (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    (status = 403, description = "Cross-origin request", body = crate::error::ErrorBody),
    (status = 413, description = "Body too large", body = crate::error::ErrorBody),
    (status = 415, description = "Not application/json", body = crate::error::ErrorBody),
))]
pub async fn put_preferences(State(state): State<AppState>, request: Request) -> Response {
    let headers = request.headers().clone();
    let (account_id, _) = match session_account(&state, &headers, true).await {
        Ok(ids) => ids,
        Err(response) => return response,
    };
    let JsonBody(body) = match JsonBody::<PreferencesBody>::from_request(request, &state).await {
        Ok(body) => body,
        Err(e) => return e.into_response(),
    };
    let language = match body.language.as_deref() {
        None => Some(None),
        Some(code) => Lang::parse(code).map(Some),
    };
    let (Some(theme), Some(language), Some(text)) = (Theme::parse(&body.theme), language, TextSize::parse(&body.text_size)) else {
        return ApiError::bad_request(
            "preferences_invalid",
            "theme must be light or dark, language da, en or null, text_size normal or large",
        )
        .into_response();
    };
    if let Err(e) =
        state.store.set_account_prefs(&account_id, theme.id(), language.map_or("auto", Lang::code), text.id(), state.clock.now_ms()).await
    {
        return ApiError::from(e).into_response();
    }
    Json(PreferencesBody { theme: theme.id().into(), language: language.map(|l| l.code().into()), text_size: text.id().into() })
        .into_response()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentView {
    /// `unanswered`, `current` or `outdated` (the policy changed since the choice).
    pub state: String,
    pub policy_version: String,
    /// What is allowed now (all false unless the choice is current).
    pub choices: ConsentChoices,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentChoices {
    pub preferences: bool,
    pub statistics: bool,
    pub marketing: bool,
}

fn consent_view(state: &AppState, consent: &ConsentState) -> ConsentView {
    let c = consent.choices();
    let name = match consent {
        ConsentState::Unanswered => "unanswered",
        ConsentState::Current(_) => "current",
        ConsentState::Outdated(_) => "outdated",
    };
    ConsentView {
        state: name.into(),
        policy_version: state.policy.meta.version.clone(),
        choices: ConsentChoices { preferences: c.preferences, statistics: c.statistics, marketing: c.marketing },
    }
}

/// This browser's cookie consent. Works signed out.
#[utoipa::path(get, path = "/api/v1/consent", tag = "consent", responses((status = 200, description = "The consent state", body = ConsentView)))]
pub async fn consent(State(state): State<AppState>, ctx: PageContext) -> Response {
    Json(consent_view(&state, &ctx.consent)).into_response()
}

/// Records a consent choice (given, changed or withdrawn) in the ledger and sets the consent
/// cookie. Same-origin only.
#[utoipa::path(put, path = "/api/v1/consent", tag = "consent", request_body = ConsentChoices, responses(
    (status = 200, description = "Recorded", body = ConsentView),
    (status = 400, description = "Malformed JSON (`body_invalid_json`)", body = crate::error::ErrorBody),
    (status = 403, description = "Cross-origin request", body = crate::error::ErrorBody),
    (status = 413, description = "Body too large", body = crate::error::ErrorBody),
    (status = 415, description = "Not application/json", body = crate::error::ErrorBody),
))]
pub async fn put_consent(State(state): State<AppState>, ctx: PageContext, request: Request) -> Response {
    if !csrf::same_origin(request.headers()) {
        return ApiError::new(StatusCode::FORBIDDEN, "cross_origin_refused", "State changes must come from this site.").into_response();
    }
    let JsonBody(body) = match JsonBody::<ConsentChoices>::from_request(request, &state).await {
        Ok(body) => body,
        Err(e) => return e.into_response(),
    };
    let choices = Choices { preferences: body.preferences, statistics: body.statistics, marketing: body.marketing };
    let ledger = ConsentLedger::new(state.store.clone(), state.clock.clone());
    let previous: Option<&ConsentCookie> = ctx.consent.previous();
    let recorded = match ledger
        .record(
            previous,
            choices,
            ctx.account_id.as_deref(),
            &state.policy.meta.version,
            crate::routes::consent::BANNER_VERSION,
            ctx.client_ip,
        )
        .await
    {
        Ok(cookie) => cookie,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let mut response = Json(consent_view(&state, &ConsentState::Current(recorded.clone()))).into_response();
    response
        .headers_mut()
        .extend(cookies::set(&state.policy, passme_core::consent::COOKIE_NAME, &recorded.encode()).map(|v| (header::SET_COOKIE, v)));
    response
}

// ---- sign-up, log-in and log-out as JSON (the forms' equivalents) ----

use crate::routes::account::{LoginOutcome, attempt_login, register, session_cookies, sign_out};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupBody {
    pub email: String,
    pub password: String,
    /// `da` (default) or `en`: the language of the verification mail.
    pub language: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// Always `check_email`: the answer is the same whether or not the address had an account.
    pub status: &'static str,
}

fn refuse_cross_origin(headers: &HeaderMap) -> Option<Response> {
    (!csrf::same_origin(headers))
        .then(|| ApiError::new(StatusCode::FORBIDDEN, "cross_origin_refused", "This must come from this site.").into_response())
}

/// Creates an account and mails a verification link; answers alike for a taken address.
#[utoipa::path(post, path = "/api/v1/signup", tag = "accounts", request_body = SignupBody, responses(
    (status = 202, description = "Check your e-mail", body = Accepted),
    (status = 400, description = "Invalid address (`email_invalid`), weak password (`password_weak`, `password_too_short`, `password_too_long`), card data (`card_data_refused`) or malformed JSON (`body_invalid_json`)", body = crate::error::ErrorBody),
    (status = 403, description = "Cross-origin request", body = crate::error::ErrorBody),
    (status = 413, description = "Body too large", body = crate::error::ErrorBody),
    (status = 415, description = "Not application/json", body = crate::error::ErrorBody),
    (status = 503, description = "The verification mail could not be sent (`mail_send_failed`)", body = crate::error::ErrorBody),
))]
pub async fn signup(State(state): State<AppState>, ctx: PageContext, request: Request) -> Response {
    if let Some(refused) = refuse_cross_origin(request.headers()) {
        return refused;
    }
    let JsonBody(body) = match JsonBody::<SignupBody>::from_request(request, &state).await {
        Ok(body) => body,
        Err(e) => return e.into_response(),
    };
    let lang = body.language.as_deref().and_then(Lang::parse).unwrap_or(Lang::Da);
    match register(&state, lang, &body.email, SecretString::from(body.password), ctx.client_ip).await {
        Ok(()) => (StatusCode::ACCEPTED, Json(Accepted { status: "check_email" })).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub email: String,
    pub password: String,
    /// Start a 30-day "remember me" series (honoured only with preference consent).
    #[serde(default)]
    pub remember: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignedIn {
    pub account_id: String,
}

/// Signs in and sets the session cookie; the same throttling and answers as the form.
#[utoipa::path(post, path = "/api/v1/login", tag = "accounts", request_body = LoginBody, responses(
    (status = 200, description = "Signed in; the session cookie is set", body = SignedIn),
    (status = 400, description = "Malformed JSON (`body_invalid_json`)", body = crate::error::ErrorBody),
    (status = 401, description = "Wrong e-mail or password", body = crate::error::ErrorBody),
    (status = 403, description = "Address not confirmed, or cross-origin request", body = crate::error::ErrorBody),
    (status = 413, description = "Body too large", body = crate::error::ErrorBody),
    (status = 415, description = "Not application/json", body = crate::error::ErrorBody),
    (status = 429, description = "Too many attempts; see Retry-After", body = crate::error::ErrorBody),
))]
pub async fn login(State(state): State<AppState>, ctx: PageContext, request: Request) -> Response {
    if let Some(refused) = refuse_cross_origin(request.headers()) {
        return refused;
    }
    let headers = request.headers().clone();
    let JsonBody(body) = match JsonBody::<LoginBody>::from_request(request, &state).await {
        Ok(body) => body,
        Err(e) => return e.into_response(),
    };
    match attempt_login(&state, &ctx, &body.email, SecretString::from(body.password)).await {
        Ok(LoginOutcome::SignedIn(account)) => match session_cookies(&state, &ctx, &headers, &account.id, body.remember).await {
            Ok(values) => {
                let mut response = Json(SignedIn { account_id: account.id }).into_response();
                response.headers_mut().extend(values.into_iter().map(|v| (header::SET_COOKIE, v)));
                response
            }
            Err(e) => ApiError::from(e).into_response(),
        },
        Ok(LoginOutcome::Unverified) => {
            ApiError::new(StatusCode::FORBIDDEN, "email_unverified", "Confirm the address with the link we sent first.").into_response()
        }
        Ok(LoginOutcome::Failed) => {
            ApiError::new(StatusCode::UNAUTHORIZED, "invalid_credentials", "Wrong e-mail or password.").into_response()
        }
        Ok(LoginOutcome::Throttled { retry_after_secs }) => {
            let mut response =
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "login_throttled", "Too many attempts; wait and try again.").into_response();
            if let Ok(value) = retry_after_secs.to_string().parse() {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Ends this session (and its remember-me series) and deletes the cookies.
#[utoipa::path(post, path = "/api/v1/logout", tag = "accounts", security((), ("session" = [])), responses(
    (status = 204, description = "Signed out"),
    (status = 403, description = "Cross-origin request", body = crate::error::ErrorBody),
))]
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(refused) = refuse_cross_origin(&headers) {
        return refused;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().extend(sign_out(&state, &headers).await.into_iter().map(|v| (header::SET_COOKIE, v)));
    response
}
