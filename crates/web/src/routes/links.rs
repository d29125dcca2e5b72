//! Linked accounts and personalisation on the web: linking, signing in with a provider, the
//! provider's callback, unlinking, the personalisation consent and the suggestions. Plain forms
//! (CSRF-protected) and redirects; the decisions are in `passme_linking` and
//! `passme_core::personalise`.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use passme_linking::{Callback, Finished, Intent, LinkError};
use serde::Deserialize;

use crate::app::AppState;
use crate::context::PageContext;
use crate::error::WebError;
use crate::extract::{CsrfForm, SignedIn};
use crate::routes::account::{CsrfOnly, done, sign_in};

pub fn link_error(e: LinkError) -> WebError {
    let code = e.code();
    match e {
        LinkError::UnknownProvider(_) | LinkError::LinkUnknown => WebError::new(StatusCode::NOT_FOUND, code),
        LinkError::StateMissing
        | LinkError::StateUnknown
        | LinkError::BrowserMismatch
        | LinkError::FlowExpired
        | LinkError::MixUp
        | LinkError::ProviderDenied(_)
        | LinkError::CodeRejected(_)
        | LinkError::IdToken(_)
        | LinkError::NotLinked => {
            tracing::info!(code, "a linking flow was refused");
            WebError::bad_request(code)
        }
        LinkError::SubjectTaken | LinkError::NeedsConsent => WebError::new(StatusCode::CONFLICT, code),
        LinkError::ProviderUnavailable { provider, cause } => {
            tracing::warn!(%provider, %cause, "identity provider unavailable");
            WebError::new(StatusCode::BAD_GATEWAY, code)
        }
        LinkError::Core(e) => e.into(),
        LinkError::Config { .. } | LinkError::Vault(_) => {
            tracing::error!(error = %e, code, "linking failed");
            WebError::for_status(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

/// The browser's own secret the flow is bound to: its CSRF cookie as it arrived (a cookie made
/// for this very response binds nothing).
fn browser_secret(ctx: &PageContext) -> &str {
    if ctx.new_csrf { "" } else { &ctx.csrf_cookie }
}

/// Starts linking a provider to the signed-in account.
pub async fn start_link(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: axum::http::HeaderMap,
    SignedIn(session): SignedIn,
    Path(provider): Path<String>,
    CsrfForm(_): CsrfForm<CsrfOnly>,
) -> Result<Response, WebError> {
    crate::routes::fraud::screen_account_event(&state, &ctx, &headers, passme_fraud::EventKind::Link, &session.account_id).await?;
    let url = state.linking.start(&provider, Intent::Link(session.account_id), browser_secret(&ctx)).await.map_err(link_error)?;
    Ok(Redirect::to(&url).into_response())
}

/// Starts signing in with a provider (from the sign-in page).
pub async fn start_sign_in(
    State(state): State<AppState>,
    ctx: PageContext,
    Path(provider): Path<String>,
    CsrfForm(_): CsrfForm<CsrfOnly>,
) -> Result<Response, WebError> {
    let url = state.linking.start(&provider, Intent::SignIn, browser_secret(&ctx)).await.map_err(link_error)?;
    Ok(Redirect::to(&url).into_response())
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    iss: Option<String>,
}

/// Where the provider sends the browser back.
pub async fn callback(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    Path(provider): Path<String>,
    Query(query): Query<CallbackQuery>,
) -> Result<Response, WebError> {
    let callback = Callback { state: query.state, code: query.code, error: query.error, iss: query.iss };
    match state.linking.finish(&provider, callback, browser_secret(&ctx)).await.map_err(link_error)? {
        Finished::Linked { account_id, .. } => {
            // A profile received under consent may change what is worth suggesting.
            state.personalisation.recompute(&account_id).await?;
            Ok(done("linked"))
        }
        Finished::SignedIn { account_id, .. } => {
            let Some(account) = state.identity.active_account(&account_id).await? else {
                return Err(link_error(LinkError::NotLinked));
            };
            // A sign-in through a provider passes the same fraud screen as one with a password.
            match crate::routes::fraud::screen_signin(&state, &ctx, &headers, &account).await? {
                crate::routes::fraud::SignInScreen::Allowed => sign_in(&state, &ctx, &headers, &account_id, "/account", false).await,
                crate::routes::fraud::SignInScreen::Challenged => {
                    let t = ctx.t;
                    Ok(crate::routes::account::notice(
                        &state,
                        &ctx,
                        t.fraud_challenge_heading(),
                        t.fraud_challenge_text(),
                        ("/login", t.account_to_sign_in()),
                    ))
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct LinkInput {
    csrf: String,
    link: Option<String>,
}

crate::csrf_protected!(LinkInput);

pub async fn unlink(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    CsrfForm(input): CsrfForm<LinkInput>,
) -> Result<Response, WebError> {
    state.linking.unlink(&session.account_id, input.link.as_deref().unwrap_or_default()).await.map_err(link_error)?;
    state.personalisation.recompute(&session.account_id).await?;
    Ok(done("unlinked"))
}

#[derive(Debug, Deserialize)]
pub struct ConsentInput {
    csrf: String,
    /// `on` or `off`.
    personalisation: Option<String>,
}

crate::csrf_protected!(ConsentInput);

/// Gives or withdraws the personalisation consent. Giving it reads the linked providers'
/// profiles again (their declared fields are kept from now on); withdrawing deletes them and
/// everything inferred at once.
pub async fn personalisation(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    CsrfForm(input): CsrfForm<ConsentInput>,
) -> Result<Response, WebError> {
    let account_id = &session.account_id;
    match input.personalisation.as_deref() {
        Some("on") => {
            state.personalisation.give(account_id).await?;
            for view in state.linking.links(account_id).await.map_err(link_error)? {
                if let Err(e) = state.linking.refresh_profile(&view.link.id).await {
                    // The consent stands; the profile comes with the next sign-in or refresh.
                    tracing::info!(code = e.code(), "a linked profile could not be read now");
                }
            }
            state.personalisation.recompute(account_id).await?;
            Ok(done("personalisation_on"))
        }
        Some("off") => {
            state.personalisation.withdraw(account_id).await?;
            Ok(done("personalisation_off"))
        }
        _ => Err(WebError::bad_request("consent_choice_invalid")),
    }
}

#[derive(Debug, Deserialize)]
pub struct SuggestionInput {
    csrf: String,
    item: Option<String>,
    /// `dismiss`, `forget` (everything inferred) or `refresh`.
    action: Option<String>,
}

crate::csrf_protected!(SuggestionInput);

pub async fn suggestions(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    CsrfForm(input): CsrfForm<SuggestionInput>,
) -> Result<Response, WebError> {
    let account_id = &session.account_id;
    match input.action.as_deref() {
        Some("dismiss") => {
            state.personalisation.dismiss(account_id, input.item.as_deref().unwrap_or_default()).await?;
            Ok(done("suggestion_dismissed"))
        }
        Some("forget") => {
            state.personalisation.forget_inferred(account_id).await?;
            Ok(done("suggestions_deleted"))
        }
        Some("refresh") => {
            state.personalisation.recompute(account_id).await?;
            Ok(Redirect::to("/account#suggestions").into_response())
        }
        _ => Err(WebError::bad_request("consent_choice_invalid")),
    }
}
