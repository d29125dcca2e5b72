//! Reading and writing cookies. Every cookie we set is a `__Host-` cookie: Secure, HttpOnly,
//! SameSite=Lax, Path=/, no Domain, so no subdomain can plant or read it. Lifetimes come from the
//! policy's cookie declarations, never from constants here.

use axum::http::{HeaderMap, HeaderValue, header};
use passme_policy::{CookieCategory, Period, Policy};

/// Every value of cookie `name` in the request (more than one means someone planted a second).
pub fn values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .collect()
}

/// The one value of cookie `name`; `None` when absent or duplicated (a duplicate is treated as
/// tampering, never resolved by guessing which one is real).
pub fn single<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    match values(headers, name)[..] {
        [one] => Some(one),
        _ => None,
    }
}

/// Whether the request carries any cookie at all (to tell "cookies refused" from "cookie missing").
pub fn any(headers: &HeaderMap) -> bool {
    headers.get_all(header::COOKIE).iter().any(|v| v.to_str().is_ok_and(|s| s.contains('=')))
}

/// A `Set-Cookie` value for a declared cookie, with the declared lifetime. Panics in debug builds
/// when the cookie is not declared: every cookie must be in the policy.
pub fn set(policy: &Policy, name: &str, value: &str) -> Option<HeaderValue> {
    let cookie = policy.cookie(name);
    debug_assert!(cookie.is_some(), "cookie {name} is not declared in the policy");
    let lifetime = cookie?.lifetime.get_ref();
    let max_age = Period::parse(lifetime).ok().map(|p| format!("; Max-Age={}", p.max_millis() / 1000)).unwrap_or_default();
    HeaderValue::from_str(&format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Lax{max_age}")).ok()
}

/// A `Set-Cookie` value that deletes a cookie.
pub fn delete(name: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("{name}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0")).ok()
}

/// The declared cookies of a category.
pub fn of_category(policy: &Policy, category: CookieCategory) -> impl Iterator<Item = &str> {
    policy.cookies.iter().filter(move |c| c.category == category).map(|c| c.name.get_ref().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_and_absent_cookies_have_no_single_value() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; __Host-consent=x; b=2"));
        assert_eq!(single(&headers, "__Host-consent"), Some("x"));
        headers.append(header::COOKIE, HeaderValue::from_static("__Host-consent=y"));
        assert_eq!(single(&headers, "__Host-consent"), None, "planted duplicate");
        assert_eq!(single(&headers, "missing"), None);
    }

    #[test]
    fn set_cookies_are_host_cookies_with_the_declared_lifetime() {
        let policy = passme_policy::builtin();
        let value = set(policy, "__Host-consent", "v").expect("declared");
        assert_eq!(value.to_str().ok(), Some("__Host-consent=v; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=32140800"));
        let session = set(policy, "__Host-csrf", "t").expect("declared");
        assert!(!session.to_str().unwrap_or_default().contains("Max-Age"), "a session cookie has no Max-Age");
    }
}
