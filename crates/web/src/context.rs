//! What every page needs to know about the request: language, consent state, the visitor's CSRF
//! cookie (made when a form is shown and there is none yet) and the client address.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use passme_core::consent::{self, ConsentCookie, ConsentState};
use passme_core::prefs::{self, Prefs};
use passme_policy::{CookieCategory, Lang};

use crate::app::AppState;
use crate::routes::account::current_session;
use crate::{cookies, csrf, lang};

#[derive(Debug, Clone)]
pub struct PageContext {
    pub lang: Lang,
    /// Interface preferences: the account's, or the prefs cookie's with preference consent.
    pub prefs: Prefs,
    /// The signed-in account, if any.
    pub account_id: Option<String>,
    pub consent: ConsentState,
    /// The `__Host-csrf` value in use; `new_csrf` says it must still be set on the response.
    pub csrf_cookie: String,
    pub new_csrf: bool,
    /// Path and query of this page, to come back to after a form.
    pub here: String,
    pub client_ip: IpAddr,
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

impl FromRequestParts<AppState> for PageContext {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let cookie = cookies::single(&parts.headers, consent::COOKIE_NAME).and_then(ConsentCookie::parse);
        let consent = ConsentState::of(cookie, &state.policy.meta.version);
        let account_id = current_session(state, &parts.headers).await.map(|s| s.account_id);
        let prefs = match &account_id {
            Some(id) => state
                .store
                .account_prefs(id)
                .await
                .map(|(t, l, x)| Prefs::from_parts(t.as_deref(), l.as_deref(), x.as_deref()))
                .unwrap_or_default(),
            None if consent.choices().allows(CookieCategory::Preferences) => {
                cookies::single(&parts.headers, prefs::COOKIE).and_then(Prefs::parse_cookie).unwrap_or_default()
            }
            None => Prefs::default(),
        };
        let lang =
            lang::query_param(parts.uri.query()).and_then(Lang::parse).or(prefs.lang).unwrap_or_else(|| lang::choose(None, &parts.headers));
        let existing = cookies::single(&parts.headers, csrf::COOKIE).filter(|v| well_formed_csrf(v)).map(str::to_string);
        let new_csrf = existing.is_none();
        let csrf_cookie = existing.unwrap_or_else(csrf::new_cookie_value);
        let here = parts.uri.path_and_query().map_or_else(|| "/".to_string(), |p| p.as_str().to_string());
        Ok(PageContext {
            lang,
            prefs,
            account_id,
            consent,
            csrf_cookie,
            new_csrf,
            here,
            client_ip: client_ip(&parts.headers, &parts.extensions, &state.trusted_proxies),
        })
    }
}
