//! Extractors that say what a handler needs before it runs: a signed-in visitor, a member of
//! staff with a role, an API caller with a scope, a form that passed the CSRF check. Each answers
//! for itself when the request does not qualify: a page asks the browser to sign in (a redirect
//! that comes back), the API answers 401 or 403 as JSON. The session comes from the request's
//! [`Visitor`], worked out once however many extractors ask.

use passme_store::AccountId;
use std::marker::PhantomData;

use axum::extract::{Form, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use passme_core::identity::api_tokens::{SCOPE_ANALYTICS_READ, SCOPE_ME_READ};
use passme_core::identity::sessions::ActiveSession;
use passme_core::identity::staff::Role;
use secrecy::SecretString;
use serde::de::DeserializeOwned;

use crate::app::AppState;
use crate::csrf::{self, CsrfFailure};
use crate::error::WebError;
use crate::middleware::wants_json;
use crate::visitor::Visitor;

/// The signed-in session, or none.
#[derive(Debug, Clone)]
pub struct MaybeSignedIn(pub Option<ActiveSession>);

/// A signed-in session.
#[derive(Debug, Clone)]
pub struct SignedIn(pub ActiveSession);

impl SignedIn {
    pub fn account_id(&self) -> &AccountId {
        &self.0.account_id
    }
}

/// The answer to a request that needs a signed-in visitor and has none.
#[derive(Debug)]
pub enum NotSignedIn {
    /// A page: sign in first, then come back here.
    Page {
        next: String,
    },
    Api,
}

impl NotSignedIn {
    fn of(parts: &Parts) -> NotSignedIn {
        if wants_json(parts.uri.path(), &parts.headers) {
            NotSignedIn::Api
        } else {
            // A POST comes back to the page its form is on, not to the action.
            let next = if parts.method == axum::http::Method::GET { parts.uri.path() } else { "/account" };
            NotSignedIn::Page { next: next.to_string() }
        }
    }
}

pub(crate) fn unauthenticated() -> WebError {
    WebError::new(StatusCode::UNAUTHORIZED, "unauthenticated").with_header(header::WWW_AUTHENTICATE, "Bearer")
}

impl IntoResponse for NotSignedIn {
    fn into_response(self) -> Response {
        match self {
            NotSignedIn::Page { next } => {
                let next: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
                Redirect::to(&format!("/login?next={}", next.replace("%2F", "/"))).into_response()
            }
            NotSignedIn::Api => unauthenticated().into_response(),
        }
    }
}

impl FromRequestParts<AppState> for MaybeSignedIn {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(MaybeSignedIn(Visitor::of(parts, state).await.session))
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = NotSignedIn;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Visitor::of(parts, state).await.session.map(SignedIn).ok_or_else(|| NotSignedIn::of(parts))
    }
}

/// Who may use a staff page or API: the roles that grant it.
pub trait Roles: Send + Sync + 'static {
    const ALLOWED: &'static [Role];
}

/// The service-tracking dashboard and reports.
pub struct Analysts;

impl Roles for Analysts {
    const ALLOWED: &'static [Role] = &[Role::Analyst, Role::Admin];
}

/// The audit log.
pub struct Auditors;

impl Roles for Auditors {
    const ALLOWED: &'static [Role] = &[Role::Admin, Role::PrivacyOfficer];
}

/// Legal holds and the retention engine's reports.
pub struct PrivacyOfficers;

impl Roles for PrivacyOfficers {
    const ALLOWED: &'static [Role] = &[Role::PrivacyOfficer];
}

/// A signed-in member of staff holding one of `R`'s roles. Least privilege: everyone else gets
/// 403, whatever else they hold.
pub struct Staff<R: Roles> {
    pub session: ActiveSession,
    pub roles: Vec<Role>,
    _roles: PhantomData<R>,
}

impl<R: Roles> FromRequestParts<AppState> for Staff<R> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let visitor = Visitor::of(parts, state).await;
        let Some(session) = visitor.session else { return Err(NotSignedIn::of(parts).into_response()) };
        if !visitor.roles.iter().any(|r| R::ALLOWED.contains(r)) {
            return Err(WebError::forbidden().into_response());
        }
        Ok(Staff { session, roles: visitor.roles, _roles: PhantomData })
    }
}

/// A request that changes state from this site's own pages (its `Origin`, or `Sec-Fetch-Site`
/// when there is none); anything else is 403. The JSON endpoints rely on this plus their JSON
/// content type, which no cross-site form can send.
pub struct SameOrigin;

impl<S: Send + Sync> FromRequestParts<S> for SameOrigin {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        if csrf::same_origin(&parts.headers) { Ok(SameOrigin) } else { Err(WebError::new(StatusCode::FORBIDDEN, "cross_origin_refused")) }
    }
}

/// What a personal access token may read.
pub trait Scope: Send + Sync + 'static {
    const NAME: &'static str;
}

pub struct MeRead;

impl Scope for MeRead {
    const NAME: &'static str = SCOPE_ME_READ;
}

pub struct AnalyticsRead;

impl Scope for AnalyticsRead {
    const NAME: &'static str = SCOPE_ANALYTICS_READ;
}

/// Who calls the API: a personal access token with scope `S` (`Authorization: Bearer pm_…`), or
/// a signed-in session.
pub struct Caller<S: Scope> {
    pub account_id: AccountId,
    _scope: PhantomData<S>,
}

impl<S: Scope> FromRequestParts<AppState> for Caller<S> {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let caller = |account_id: AccountId| Caller { account_id, _scope: PhantomData };
        let Some(auth) = parts.headers.get(header::AUTHORIZATION) else {
            let session = Visitor::of(parts, state).await.session.ok_or_else(unauthenticated)?;
            return Ok(caller(session.account_id));
        };
        let bearer = auth.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).ok_or_else(unauthenticated)?;
        let grant =
            state.identity.api_tokens.authenticate(&SecretString::from(bearer.trim().to_string())).await?.ok_or_else(unauthenticated)?;
        if !grant.scopes.iter().any(|s| s == S::NAME) {
            return Err(WebError::new(StatusCode::FORBIDDEN, "insufficient_scope"));
        }
        Ok(caller(grant.account_id))
    }
}

/// A form that carries the CSRF token (its `csrf` field).
pub trait CsrfProtected {
    fn csrf(&self) -> &str;
    /// The error code when the browser refuses cookies: what that means for this form.
    const COOKIES_REFUSED: &'static str = "cookies_required";
}

/// Implements [`CsrfProtected`] for form structs with a `csrf` field.
#[macro_export]
macro_rules! csrf_protected {
    ($form:ty, refused = $code:literal) => {
        impl $crate::extract::CsrfProtected for $form {
            fn csrf(&self) -> &str {
                &self.csrf
            }
            const COOKIES_REFUSED: &'static str = $code;
        }
    };
    ($($form:ty),+ $(,)?) => {$(
        impl $crate::extract::CsrfProtected for $form {
            fn csrf(&self) -> &str {
                &self.csrf
            }
        }
    )+};
}

/// A form post, parsed and checked against CSRF: incomplete forms are `form_invalid`, forged ones
/// `csrf_failed`, and a browser that refuses cookies is told what that means for this form
/// instead of being sent round in a loop.
pub struct CsrfForm<T>(pub T);

impl<T> FromRequest<AppState> for CsrfForm<T>
where
    T: DeserializeOwned + CsrfProtected + Send,
{
    type Rejection = WebError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let headers = request.headers().clone();
        let Form(input) = Form::<T>::from_request(request, state).await.map_err(|_| WebError::bad_request("form_invalid"))?;
        match csrf::verify(state.secrets.master_key(), &headers, input.csrf()) {
            Ok(()) => Ok(CsrfForm(input)),
            Err(CsrfFailure::CookiesRefused) => Err(WebError::bad_request(T::COOKIES_REFUSED)),
            Err(CsrfFailure::Forged) => Err(WebError::new(StatusCode::FORBIDDEN, "csrf_failed")),
        }
    }
}
