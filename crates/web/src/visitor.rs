//! Who is asking: the session (resumed from a "remember me" cookie when there is none), the
//! display preferences and the language. Worked out at most once per request, and only when a
//! handler or extractor asks: the stylesheet, the tracker and page-view ingestion never pay for a
//! session lookup.
//!
//! The middleware [`attach`] puts an empty cell in the request; the first extractor that needs the
//! visitor fills it. On the way out the middleware adds the cookies a resumed sign-in set, and
//! tells the outer middleware the visitor's language so that errors are rendered in it.

use passme_store::AccountId;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use passme_core::consent::{self, ConsentCookie, ConsentState};
use passme_core::identity::remember::{self, Resume};
use passme_core::identity::sessions::ActiveSession;
use passme_core::identity::staff::Role;
use passme_core::prefs::{self, Prefs};
use passme_messages::Lang;
use passme_policy::CookieCategory;
use secrecy::{ExposeSecret, SecretString};

use crate::app::AppState;
use crate::context::client_ip;
use crate::{cookies, lang};

pub const SESSION_COOKIE: &str = "__Host-session";

/// The visitor of a request.
#[derive(Debug, Clone)]
pub struct Visitor {
    pub session: Option<ActiveSession>,
    /// The staff roles the signed-in account holds (none for customers and visitors).
    pub roles: Vec<Role>,
    /// The account's preferences, or (signed out, with preference consent) the prefs cookie's.
    pub prefs: Prefs,
    /// `?lang=`, else the preferences', else the browser's.
    pub lang: Lang,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct VisitorCell(Arc<tokio::sync::OnceCell<(Visitor, Vec<HeaderValue>)>>);

/// The language errors of this request are rendered in, when the visitor was worked out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct VisitorLang(pub Lang);

pub async fn attach(mut request: Request, next: Next) -> Response {
    let cell = VisitorCell::default();
    request.extensions_mut().insert(cell.clone());
    let mut response = next.run(request).await;
    if let Some((visitor, set_cookies)) = cell.0.get() {
        for value in set_cookies {
            response.headers_mut().append(header::SET_COOKIE, value.clone());
        }
        response.extensions_mut().insert(VisitorLang(visitor.lang));
    }
    response
}

impl Visitor {
    /// The request's visitor, worked out on first use.
    pub async fn of(parts: &Parts, state: &AppState) -> Visitor {
        match parts.extensions.get::<VisitorCell>() {
            Some(cell) => cell.0.get_or_init(|| resolve(parts, state)).await.0.clone(),
            // Outside the router's middleware (never in production): worked out each time.
            None => resolve(parts, state).await.0,
        }
    }

    pub fn account_id(&self) -> Option<&AccountId> {
        self.session.as_ref().map(|s| &s.account_id)
    }
}

async fn resolve(parts: &Parts, state: &AppState) -> (Visitor, Vec<HeaderValue>) {
    let headers = &parts.headers;
    let mut set_cookies = Vec::new();
    let mut session = match cookies::single(headers, SESSION_COOKIE) {
        Some(token) => state.identity.sessions.resolve(&SecretString::from(token.to_string())).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, code = e.code(), "session lookup failed");
            None
        }),
        None => None,
    };
    if session.is_none()
        && let Some(cookie) = cookies::single(headers, remember::COOKIE)
    {
        session = resume(parts, state, cookie, &mut set_cookies).await;
    }
    let consent =
        ConsentState::of(cookies::single(headers, consent::COOKIE_NAME).and_then(ConsentCookie::parse), &state.policy.meta.version);
    let prefs = match &session {
        Some(s) => state
            .store
            .account_prefs(&s.account_id)
            .await
            .map(|(theme, lang, text)| Prefs::from_parts(theme.as_deref(), lang.as_deref(), text.as_deref()))
            .unwrap_or_default(),
        None if consent.choices().allows(CookieCategory::Preferences) => {
            cookies::single(headers, prefs::COOKIE).and_then(Prefs::parse_cookie).unwrap_or_default()
        }
        None => Prefs::default(),
    };
    let roles = match &session {
        Some(s) => state.identity.staff.roles(&s.account_id).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, code = e.code(), "role lookup failed");
            Vec::new()
        }),
        None => Vec::new(),
    };
    let lang = lang::query_param(parts.uri.query()).and_then(Lang::parse).or(prefs.lang).unwrap_or_else(|| lang::choose(None, headers));
    (Visitor { session, roles, prefs, lang }, set_cookies)
}

/// A remembered sign-in: a fresh session (marked remembered) and the rotated cookie, or the
/// cookie's removal when it is no good.
async fn resume(parts: &Parts, state: &AppState, cookie: &str, set_cookies: &mut Vec<HeaderValue>) -> Option<ActiveSession> {
    match state.identity.resume(&SecretString::from(cookie.to_string())).await {
        Ok(Resume::Resumed { account_id, new_cookie }) => {
            let ip = client_ip(&parts.headers, &parts.extensions, &state.trusted_proxies);
            let agent = parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
            let (token, session) = match state.identity.sessions.issue_with(&account_id, agent, ip, true).await {
                Ok(issued) => issued,
                Err(e) => {
                    tracing::warn!(error = %e, code = e.code(), "a remembered sign-in could not start a session");
                    return None;
                }
            };
            set_cookies.extend(cookies::set(&state.policy, SESSION_COOKIE, token.expose_secret()));
            if let Some(rotated) = new_cookie {
                set_cookies.extend(cookies::set(&state.policy, remember::COOKIE, &rotated));
            }
            Some(session)
        }
        // The owner is told by mail (queued by the identity service).
        Ok(Resume::Stolen { .. } | Resume::Invalid) => {
            set_cookies.extend(cookies::delete(remember::COOKIE));
            None
        }
        // Left alone: the browser may already hold the rotated cookie another tab received.
        Ok(Resume::Refused) => None,
        Err(e) => {
            tracing::warn!(error = %e, code = e.code(), "remember-me resume failed");
            None
        }
    }
}
