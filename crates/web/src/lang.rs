//! The language of a page: `?lang=` wins, then the browser's Accept-Language, then Danish (the
//! policy's original language).

use axum::http::HeaderMap;
use passme_policy::Lang;

/// The `lang=` parameter of a query string, if any.
pub fn query_param(query: Option<&str>) -> Option<&str> {
    query?.split('&').find_map(|pair| pair.strip_prefix("lang="))
}

/// The language of a request as seen before any handler: `?lang=`, then Accept-Language. Pages
/// also honour the signed-in account's choice (see `PageContext`).
pub fn of_request(uri: &axum::http::Uri, headers: &HeaderMap) -> Lang {
    choose(query_param(uri.query()), headers)
}

pub fn choose(query: Option<&str>, headers: &HeaderMap) -> Lang {
    if let Some(lang) = query.and_then(Lang::parse) {
        return lang;
    }
    let accept = headers.get(axum::http::header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or("");
    for part in accept.split(',') {
        let tag = part.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if tag.starts_with("da") {
            return Lang::Da;
        }
        if tag.starts_with("en") {
            return Lang::En;
        }
    }
    Lang::Da
}
