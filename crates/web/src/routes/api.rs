//! The JSON API the product calls.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use passme_core::consent::{Choices, ConsentState};
use passme_core::identity::service::SignIn;
use passme_core::prefs::{Prefs, TextSize, Theme};
use passme_messages::Lang;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::context::PageContext;
use crate::cookies;
use crate::error::WebError;
use crate::extract::{Caller, MeRead, SameOrigin, SignedIn, unauthenticated};
use crate::middleware::JsonBody;
use crate::routes::account::{session_cookies, sign_out};
use crate::routes::fraud::SignInScreen;

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

/// The signed-in user: identity, verification, roles and display preferences.
#[utoipa::path(get, path = "/api/v1/me", tag = "accounts", security(("bearer" = []), ("session" = [])), responses(
    (status = 200, description = "The caller", body = Me),
    (status = 401, description = "No valid token or session", body = crate::error::ErrorBody),
    (status = 403, description = "The token lacks the me:read scope", body = crate::error::ErrorBody),
))]
pub async fn me(State(state): State<AppState>, caller: Caller<MeRead>) -> Result<Json<Me>, WebError> {
    let account = state.identity.active_account(&caller.account_id).await?.ok_or_else(unauthenticated)?;
    let roles = state.identity.staff.roles(&account.id).await?;
    let (theme, lang, text) = state.store.account_prefs(&account.id).await?;
    let prefs = Prefs::from_parts(theme.as_deref(), lang.as_deref(), text.as_deref());
    Ok(Json(Me {
        id: account.id.to_string(),
        email: account.email,
        email_verified: account.email_verified_at.is_some(),
        roles: roles.iter().map(|r| r.id().to_string()).collect(),
        preferences: MePreferences {
            theme: prefs.theme.id().into(),
            language: prefs.lang.map(|l: Lang| l.code().to_string()),
            text_size: prefs.text.id().into(),
        },
    }))
}

// ---- the signed-in user's own data, for the web app (session only; changes same-origin) ----

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
pub async fn sessions(State(state): State<AppState>, SignedIn(session): SignedIn) -> Result<Json<Vec<SessionView>>, WebError> {
    let rows = state.identity.sessions.list(&session.account_id).await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| SessionView {
                current: r.id == session.id,
                id: r.id,
                created_at: r.created_at,
                last_seen_at: r.last_seen_at,
                user_agent: r.user_agent,
                network: r.ip_prefix,
                remembered: r.remembered,
            })
            .collect(),
    ))
}

/// Ends one of the signed-in user's sessions. Another account's session id is "not found".
#[utoipa::path(delete, path = "/api/v1/sessions/{id}", tag = "accounts", security(("session" = [])), params(("id" = String, Path, description = "Session id from GET /api/v1/sessions")), responses(
    (status = 204, description = "Ended"),
    (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    (status = 403, description = "Cross-origin request", body = crate::error::ErrorBody),
    (status = 404, description = "No such session of yours", body = crate::error::ErrorBody),
))]
pub async fn end_session(
    State(state): State<AppState>,
    _: SameOrigin,
    SignedIn(session): SignedIn,
    Path(id): Path<String>,
) -> Result<StatusCode, WebError> {
    if state.identity.sessions.revoke(&session.account_id, &id).await? { Ok(StatusCode::NO_CONTENT) } else { Err(WebError::not_found()) }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreferencesBody {
    /// `light` or `dark`.
    #[schema(pattern = "^(light|dark)$")]
    pub theme: String,
    /// `da`, `en`, or null to follow the browser.
    #[schema(pattern = "^(da|en)$")]
    pub language: Option<String>,
    /// `normal` or `large`.
    #[schema(pattern = "^(normal|large)$")]
    pub text_size: String,
}

/// The signed-in user's display preferences.
#[utoipa::path(get, path = "/api/v1/preferences", tag = "accounts", security(("session" = [])), responses(
    (status = 200, description = "Preferences", body = PreferencesBody),
    (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
))]
pub async fn preferences(State(state): State<AppState>, SignedIn(session): SignedIn) -> Result<Json<PreferencesBody>, WebError> {
    let (theme, lang, text) = state.store.account_prefs(&session.account_id).await?;
    let p = Prefs::from_parts(theme.as_deref(), lang.as_deref(), text.as_deref());
    Ok(Json(PreferencesBody { theme: p.theme.id().into(), language: p.lang.map(|l| l.code().into()), text_size: p.text.id().into() }))
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
pub async fn put_preferences(
    State(state): State<AppState>,
    _: SameOrigin,
    SignedIn(session): SignedIn,
    JsonBody(body): JsonBody<PreferencesBody>,
) -> Result<Json<PreferencesBody>, WebError> {
    let language = match body.language.as_deref() {
        None => Some(None),
        Some(code) => Lang::parse(code).map(Some),
    };
    let (Some(theme), Some(language), Some(text)) = (Theme::parse(&body.theme), language, TextSize::parse(&body.text_size)) else {
        return Err(WebError::bad_request("preferences_invalid"));
    };
    state
        .store
        .set_account_prefs(&session.account_id, theme.id(), language.map_or("auto", Lang::code), text.id(), state.clock.now_ms())
        .await?;
    Ok(Json(PreferencesBody { theme: theme.id().into(), language: language.map(|l| l.code().into()), text_size: text.id().into() }))
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
pub async fn consent(State(state): State<AppState>, ctx: PageContext) -> Json<ConsentView> {
    Json(consent_view(&state, &ctx.consent))
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
pub async fn put_consent(
    State(state): State<AppState>,
    _: SameOrigin,
    ctx: PageContext,
    JsonBody(body): JsonBody<ConsentChoices>,
) -> Result<Response, WebError> {
    let choices = Choices { preferences: body.preferences, statistics: body.statistics, marketing: body.marketing };
    let recorded = state
        .consent
        .record(
            ctx.consent.previous(),
            choices,
            ctx.account_id(),
            &state.policy.meta.version,
            crate::routes::consent::BANNER_VERSION,
            ctx.client_ip,
        )
        .await?;
    let mut response = Json(consent_view(&state, &ConsentState::Current(recorded.clone()))).into_response();
    response
        .headers_mut()
        .extend(cookies::set(&state.policy, passme_core::consent::COOKIE_NAME, &recorded.encode()).map(|v| (header::SET_COOKIE, v)));
    Ok(response)
}

// ---- sign-up, log-in and log-out as JSON (the forms' equivalents) ----

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupBody {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// At least 8 characters, not a common or breached password.
    #[schema(min_length = 8, max_length = 1024)]
    pub password: String,
    /// `da` (default) or `en`: the language of the verification mail.
    #[schema(pattern = "^(da|en)$")]
    pub language: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// Always `check_email`: the answer is the same whether or not the address had an account.
    pub status: &'static str,
}

/// Creates an account and mails a verification link; answers alike for a taken address.
#[utoipa::path(post, path = "/api/v1/signup", tag = "accounts", request_body = SignupBody, responses(
    (status = 202, description = "Check your e-mail", body = Accepted),
    (status = 400, description = "Invalid address (`email_invalid`), weak password (`password_weak`, `password_too_short`, `password_too_long`), card data (`card_data_refused`) or malformed JSON (`body_invalid_json`)", body = crate::error::ErrorBody),
    (status = 403, description = "Cross-origin request, or refused by fraud scanning (`signup_refused`; the message names the decision)", body = crate::error::ErrorBody),
    (status = 413, description = "Body too large", body = crate::error::ErrorBody),
    (status = 415, description = "Not application/json", body = crate::error::ErrorBody),
    (status = 503, description = "The verification mail could not be sent (`mail_send_failed`)", body = crate::error::ErrorBody),
))]
pub async fn signup(
    State(state): State<AppState>,
    _: SameOrigin,
    ctx: PageContext,
    headers: HeaderMap,
    JsonBody(body): JsonBody<SignupBody>,
) -> Result<Response, WebError> {
    let lang = body.language.as_deref().and_then(Lang::parse).unwrap_or(Lang::Da);
    crate::routes::fraud::screen_signup(&state, &ctx, &headers, &body.email, &body.password).await?;
    state.identity.sign_up(&body.email, SecretString::from(body.password), lang, ctx.client_ip).await?;
    Ok((StatusCode::ACCEPTED, Json(Accepted { status: "check_email" })).into_response())
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
pub struct SignedInAs {
    pub account_id: String,
}

/// Signs in and sets the session cookie; the same throttling and answers as the form.
#[utoipa::path(post, path = "/api/v1/login", tag = "accounts", request_body = LoginBody, responses(
    (status = 200, description = "Signed in; the session cookie is set", body = SignedInAs),
    (status = 400, description = "Malformed JSON (`body_invalid_json`)", body = crate::error::ErrorBody),
    (status = 401, description = "Wrong e-mail or password", body = crate::error::ErrorBody),
    (status = 403, description = "Address not confirmed, cross-origin request, stopped by fraud scanning (`signin_blocked`, naming the decision) or to be confirmed from the mailbox (`signin_challenged`: a link was mailed)", body = crate::error::ErrorBody),
    (status = 413, description = "Body too large", body = crate::error::ErrorBody),
    (status = 415, description = "Not application/json", body = crate::error::ErrorBody),
    (status = 429, description = "Too many attempts; see Retry-After", body = crate::error::ErrorBody),
))]
pub async fn login(
    State(state): State<AppState>,
    _: SameOrigin,
    ctx: PageContext,
    headers: HeaderMap,
    JsonBody(body): JsonBody<LoginBody>,
) -> Result<Response, WebError> {
    match state.identity.sign_in(&body.email, SecretString::from(body.password), ctx.lang, ctx.client_ip).await? {
        SignIn::SignedIn(account) => {
            if let SignInScreen::Challenged = crate::routes::fraud::screen_signin(&state, &ctx, &headers, &account).await? {
                return Err(WebError::new(StatusCode::FORBIDDEN, "signin_challenged"));
            }
            let cookies = session_cookies(&state, &ctx, &headers, &account.id, body.remember).await?;
            let mut response = Json(SignedInAs { account_id: account.id.to_string() }).into_response();
            response.headers_mut().extend(cookies.into_iter().map(|v| (header::SET_COOKIE, v)));
            Ok(response)
        }
        refused => {
            if matches!(refused, SignIn::Failed) {
                crate::routes::fraud::note_failed_signin(&state, &ctx, &headers, &body.email).await;
            }
            Err(crate::routes::account::login::refusal(refused))
        }
    }
}

/// Ends this session (and its remember-me series) and deletes the cookies.
#[utoipa::path(post, path = "/api/v1/logout", tag = "accounts", security((), ("session" = [])), responses(
    (status = 204, description = "Signed out"),
    (status = 403, description = "Cross-origin request", body = crate::error::ErrorBody),
))]
pub async fn logout(State(state): State<AppState>, _: SameOrigin, headers: HeaderMap) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().extend(sign_out(&state, &headers).await.into_iter().map(|v| (header::SET_COOKIE, v)));
    response
}
