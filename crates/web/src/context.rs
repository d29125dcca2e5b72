//! What every page needs to know about the request: the visitor (session, preferences,
//! language), the consent state, the visitor's CSRF cookie (made when a form is shown and there
//! is none yet) and the client address.

use passme_store::AccountId;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use passme_core::consent::{self, ConsentCookie, ConsentState};
use passme_core::identity::sessions::ActiveSession;
use passme_core::identity::staff::Role;
use passme_core::prefs::Prefs;
use passme_messages::{Lang, Texts, TextsOf};

use crate::app::AppState;
use crate::visitor::Visitor;
use crate::{cookies, csrf};

#[derive(Debug, Clone)]
pub struct PageContext {
    pub lang: Lang,
    /// The catalogue in the visitor's language.
    pub t: Texts,
    pub prefs: Prefs,
    /// The signed-in session, if any.
    pub session: Option<ActiveSession>,
    /// The staff page the visitor's roles open, for the header.
    pub staff_home: Option<&'static str>,
    pub consent: ConsentState,
    /// The `__Host-csrf` value in use; `new_csrf` says it must still be set on the response.
    pub csrf_cookie: String,
    pub new_csrf: bool,
    /// Path and query of this page, to come back to after a form.
    pub here: String,
    pub client_ip: IpAddr,
}

impl PageContext {
    pub fn account_id(&self) -> Option<&AccountId> {
        self.session.as_ref().map(|s| &s.account_id)
    }

    /// The token the forms of this page carry.
    pub fn csrf_token(&self, state: &AppState) -> String {
        csrf::token(state.secrets.master_key(), &self.csrf_cookie)
    }
}

fn well_formed_csrf(value: &str) -> bool {
    value.len() == 43 && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The client's address: the peer, or — only when the peer is a trusted proxy — the rightmost
/// address in `X-Forwarded-For` that is not itself a trusted proxy. A forged header from anyone
/// else changes nothing.
pub fn client_ip(headers: &axum::http::HeaderMap, extensions: &axum::http::Extensions, trusted: &[IpAddr]) -> IpAddr {
    let peer = extensions.get::<ConnectInfo<SocketAddr>>().map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |c| c.0.ip());
    if !trusted.contains(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map_while(|s| s.trim().parse().ok())
        .collect();
    forwarded.into_iter().rev().find(|ip| !trusted.contains(ip)).unwrap_or(peer)
}

/// Where a member of staff starts: the console, which lists the parts their roles open.
fn staff_home(roles: &[Role]) -> Option<&'static str> {
    (!crate::routes::staff::console_sections(roles).is_empty()).then_some("/staff")
}

impl FromRequestParts<AppState> for PageContext {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let visitor = Visitor::of(parts, state).await;
        let cookie = cookies::single(&parts.headers, consent::COOKIE_NAME).and_then(ConsentCookie::parse);
        let existing = cookies::single(&parts.headers, csrf::COOKIE).filter(|v| well_formed_csrf(v)).map(str::to_string);
        let new_csrf = existing.is_none();
        Ok(PageContext {
            lang: visitor.lang,
            t: visitor.lang.texts(),
            prefs: visitor.prefs,
            staff_home: staff_home(&visitor.roles),
            session: visitor.session,
            consent: ConsentState::of(cookie, &state.policy.meta.version),
            csrf_cookie: existing.unwrap_or_else(csrf::new_cookie_value),
            new_csrf,
            here: parts.uri.path_and_query().map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
            client_ip: client_ip(&parts.headers, &parts.extensions, &state.trusted_proxies),
        })
    }
}
