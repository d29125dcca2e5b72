//! The last line of defence for logs: every line is passed through [`redact_line`] before it is
//! written, so personal data or a secret that slipped into an error message never reaches the
//! log. Code does not log such things on purpose (requests are logged by route, secrets are typed
//! and have no `Display`); this catches what a library's error text carries.
//!
//! Masked: card numbers; e-mail addresses; IP addresses, cut to the /24 or /48 network that
//! PassMe keeps anyway (loopback and unspecified addresses, which are the server's own, stay);
//! our tokens (`pm_…` and 43-character mailed-link and cookie tokens), the payment provider's
//! keys (`sk_…`, `rk_…`, `whsec_…`), and any other run of 40 or more token characters mixing
//! letters and digits.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::cards;

pub const EMAIL_MASK: &str = "[e-mail removed]";
pub const TOKEN_MASK: &str = "[token removed]";

/// Prefixes of secrets that are masked whatever their length.
const SECRET_PREFIXES: &[&str] = &["pm_", "sk_live_", "sk_test_", "rk_live_", "rk_test_", "whsec_"];
/// A run of token characters this long is treated as a secret.
const LONG_TOKEN: usize = 40;

/// `line` with card numbers, e-mail addresses, IP addresses and tokens masked.
pub fn redact_line(line: &str) -> Cow<'_, str> {
    let mut text = cards::redact(line);
    for pass in [mask_emails, mask_ips, mask_tokens] {
        if let Cow::Owned(changed) = pass(&text) {
            text = Cow::Owned(changed);
        }
    }
    text
}

fn is_local_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._%+-".contains(&b)
}

fn is_domain_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'-'
}

/// Rebuilds `text` from the ranges `find` reports, each replaced by what it returns.
fn replace_all(text: &str, found: Vec<(usize, usize, String)>) -> Cow<'_, str> {
    if found.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end, replacement) in found {
        out.push_str(&text[at..start]);
        out.push_str(&replacement);
        at = end;
    }
    out.push_str(&text[at..]);
    Cow::Owned(out)
}

/// Addresses written plainly and percent-encoded (`kim%40example.com`, as in a query string).
fn mask_emails(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut ats: Vec<(usize, usize)> = text.match_indices('@').map(|(i, _)| (i, 1)).collect();
    ats.extend(text.match_indices("%40").map(|(i, _)| (i, 3)));
    ats.sort_unstable();
    let mut found = Vec::new();
    let mut next_free = 0;
    for (at, width) in ats {
        if at < next_free {
            continue;
        }
        let start = (next_free..at).rev().take_while(|&i| is_local_char(bytes[i])).last().unwrap_or(at);
        let after = at + width;
        let end = (after..bytes.len()).take_while(|&i| is_domain_char(bytes[i])).last().map_or(after, |i| i + 1);
        let domain = text[after..end].trim_end_matches(['.', '-']);
        let end = after + domain.len();
        if start < at && domain.contains('.') && !domain.starts_with('.') {
            found.push((start, end, EMAIL_MASK.to_string()));
            next_free = end;
        }
    }
    replace_all(text, found)
}

/// The network an address belongs to as PassMe keeps it, or `None` for the server's own kinds
/// of address (loopback, unspecified), which are no one's personal data.
fn network_of(ip: IpAddr) -> Option<String> {
    if ip.is_loopback() || ip.is_unspecified() {
        return None;
    }
    Some(match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{}/24", Ipv4Addr::new(a, b, c, 0))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{}/48", Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0))
        }
    })
}

fn mask_ips(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let candidate = bytes[i].is_ascii_hexdigit() || bytes[i] == b':';
        let glued = i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || matches!(bytes[i - 1], b'.' | b':' | b'_'));
        if !candidate || glued {
            i += 1;
            continue;
        }
        let end = (i..bytes.len()).find(|&j| !(bytes[j].is_ascii_hexdigit() || matches!(bytes[j], b'.' | b':'))).unwrap_or(bytes.len());
        // A trailing `:port` or a sentence's full stop is not part of the address.
        let mut span = &text[i..end];
        let parsed = loop {
            if let Ok(ip) = span.parse::<IpAddr>() {
                break Some(ip);
            }
            match span.rfind([':', '.']) {
                Some(cut) if cut > 0 => span = &span[..cut],
                _ => break None,
            }
        };
        match parsed.and_then(|ip| network_of(ip).map(|net| (ip, net))) {
            Some((_, net)) if !bytes.get(i + span.len()).is_some_and(|b| b.is_ascii_alphanumeric()) => {
                found.push((i, i + span.len(), net));
                i += span.len();
            }
            _ => i = end.max(i + 1),
        }
    }
    replace_all(text, found)
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fn mask_tokens(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !is_token_char(bytes[i]) || (i > 0 && is_token_char(bytes[i - 1])) {
            i += 1;
            continue;
        }
        let end = (i..bytes.len()).find(|&j| !is_token_char(bytes[j])).unwrap_or(bytes.len());
        let run = &text[i..end];
        let prefixed = SECRET_PREFIXES.iter().any(|p| run.starts_with(p) && run.len() > p.len() + 8);
        let long = run.len() >= LONG_TOKEN && run.bytes().any(|b| b.is_ascii_digit()) && run.bytes().any(|b| b.is_ascii_alphabetic());
        if prefixed || long {
            found.push((i, end, TOKEN_MASK.to_string()));
        }
        i = end;
    }
    replace_all(text, found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_data_and_secrets_are_masked() {
        let line = r#"{"level":"WARN","path":"/v1/customers?email=victim@example.com&limit=100","q":"e=kim.v%40example.com","peer":"203.0.113.77:51234","v6":"2001:db8:85a3::8a2e:370:7334","auth":"Bearer pm_Q2hlY2tNYXRlVGhpc0lzQVRva2VuT2ZGb3J0eVRocmVl","key":"sk_test_4eC39HqLyjWDarjtT1zdp7dc","link":"https://x/reset?token=AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCdE","card":"4242 4242 4242 4242"}"#;
        let masked = redact_line(line);
        for secret in [
            "victim@example.com",
            "kim.v",
            "203.0.113.77",
            "2001:db8:85a3::8a2e",
            "pm_Q2hl",
            "sk_test_4eC39",
            "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
            "4242 4242",
        ] {
            assert!(!masked.contains(secret), "{secret} in {masked}");
        }
        for kept in ["/v1/customers?email=[e-mail removed]&limit=100", "203.0.113.0/24:51234", "2001:db8:85a3::/48", cards::MASK] {
            assert!(masked.contains(kept), "{kept} not in {masked}");
        }
    }

    #[test]
    fn ordinary_log_text_is_left_alone() {
        for line in [
            "listening addr=127.0.0.1:8080",
            "listening on [::1]:8080 and 0.0.0.0:9000",
            "job failed job=job_0123456789abcdef0123456789abcdef kind=account.mail attempt=2",
            "request request_id=5f2c1a9b8e7d6c5b4a392817 route=/api/v1/events status=202 latency_ms=1.25",
            "retention rule applied rule=retention.account.tokens removed=3",
            "uap-core 0.18.0 loaded at 10:15:30, version 1.2.3",
            "policy version 2026-11-01 from policy/10-data.toml",
        ] {
            assert_eq!(redact_line(line), line);
        }
        assert!(matches!(redact_line("plain"), Cow::Borrowed(_)));
    }
}
