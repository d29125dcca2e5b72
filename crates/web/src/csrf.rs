//! CSRF protection for every state-changing form: the form carries a token that is an HMAC of the
//! visitor's `__Host-csrf` cookie (so another visitor's or session's token never fits), and the
//! request must come from our own origin (`Origin`, or `Sec-Fetch-Site` when Origin is absent).

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::cookies;

pub const COOKIE: &str = "__Host-csrf";

type HmacSha256 = Hmac<Sha256>;

fn mac(master_key: &[u8; 32]) -> HmacSha256 {
    // A key of its own for CSRF, derived from the master key, so a leak of one use is not
    // a leak of the others.
    let key = passme_core::crypto::derive_key(master_key, b"passme/csrf/v1");
    <HmacSha256 as Mac>::new_from_slice(&key).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
}

/// A fresh random value for the `__Host-csrf` cookie.
pub fn new_cookie_value() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// The form token that belongs to a cookie value.
pub fn token(master_key: &[u8; 32], cookie_value: &str) -> String {
    let mut m = mac(master_key);
    m.update(cookie_value.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrfFailure {
    /// The browser sent no cookie at all: it refuses cookies, so nothing can be remembered.
    CookiesRefused,
    /// Cross-site request, missing or wrong token.
    Forged,
}

/// Checks a state-changing request.
pub fn verify(master_key: &[u8; 32], headers: &HeaderMap, form_token: &str) -> Result<(), CsrfFailure> {
    if !same_origin(headers) {
        return Err(CsrfFailure::Forged);
    }
    let Some(cookie) = cookies::single(headers, COOKIE) else {
        return Err(if cookies::any(headers) { CsrfFailure::Forged } else { CsrfFailure::CookiesRefused });
    };
    let mut m = mac(master_key);
    m.update(cookie.as_bytes());
    let expected = hex::decode(form_token).map_err(|_| CsrfFailure::Forged)?;
    m.verify_slice(&expected).map_err(|_| CsrfFailure::Forged)
}

/// `Origin` must name this host; without `Origin`, `Sec-Fetch-Site` must not say cross-site.
/// JSON endpoints rely on this plus their JSON content type, which no cross-site form can send.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    match headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        Some(origin) => {
            origin.split_once("://").is_some_and(|(scheme, rest)| matches!(scheme, "http" | "https") && rest == host && !host.is_empty())
        }
        None => !matches!(headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()), Some("cross-site" | "same-site")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_a_same_origin_request_with_this_cookies_token_passes() {
        let key = [3u8; 32];
        let good = token(&key, "cookie-a");
        let ok = headers(&[("host", "passme.test"), ("origin", "https://passme.test"), ("cookie", "__Host-csrf=cookie-a")]);
        assert_eq!(verify(&key, &ok, &good), Ok(()));
        assert_eq!(verify(&key, &ok, ""), Err(CsrfFailure::Forged), "no token");
        assert_eq!(verify(&key, &ok, &token(&key, "cookie-b")), Err(CsrfFailure::Forged), "another visitor's token");
        assert_eq!(verify(&[4u8; 32], &ok, &good), Err(CsrfFailure::Forged), "another key");
        let cross = headers(&[("host", "passme.test"), ("origin", "https://evil.example"), ("cookie", "__Host-csrf=cookie-a")]);
        assert_eq!(verify(&key, &cross, &good), Err(CsrfFailure::Forged));
        let lookalike =
            headers(&[("host", "passme.test"), ("origin", "https://passme.test.evil.example"), ("cookie", "__Host-csrf=cookie-a")]);
        assert_eq!(verify(&key, &lookalike, &good), Err(CsrfFailure::Forged));
        let fetch_cross = headers(&[("host", "passme.test"), ("sec-fetch-site", "cross-site"), ("cookie", "__Host-csrf=cookie-a")]);
        assert_eq!(verify(&key, &fetch_cross, &good), Err(CsrfFailure::Forged));
        let no_cookies = headers(&[("host", "passme.test"), ("origin", "https://passme.test")]);
        assert_eq!(verify(&key, &no_cookies, &good), Err(CsrfFailure::CookiesRefused));
    }
}
