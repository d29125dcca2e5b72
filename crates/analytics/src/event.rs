//! What the tracker may send and how strictly it is checked. The wire format has exactly the
//! declared fields (page address, referrer, time) and refuses any other, so the tracker cannot
//! collect what the policy does not declare. A batch is taken whole or refused whole.

use serde::Deserialize;
use url::Url;

/// The largest batch the tracker sends; larger ones are refused, not truncated.
pub const MAX_BATCH: usize = 50;
pub const MAX_URL: usize = 2048;
const MAX_PATH: usize = 512;
const MAX_UTM: usize = 100;
/// How far back an event may be dated: the session window, so a late event still finds its
/// session. And how far ahead, for clients whose clocks run fast.
pub const MAX_AGE_MS: i64 = 60 * 60 * 1000;
pub const MAX_SKEW_MS: i64 = 5 * 60 * 1000;

/// Domains that send fake referrals to advertise themselves; events they refer are dropped.
const REFERRER_SPAM: &[&str] = &[
    "semalt.com",
    "buttons-for-website.com",
    "darodar.com",
    "ilovevitaly.com",
    "priceg.com",
    "hulfingtonpost.com",
    "best-seo-offer.com",
    "buttons-for-your-website.com",
    "free-share-buttons.com",
    "get-free-traffic-now.com",
    "social-buttons.com",
    "trafficmonetize.org",
    "webmonetizer.net",
    "7makemoneyonline.com",
    "floating-share-buttons.com",
    "event-tracking.com",
    "site-auditor.online",
];

/// One page view as the tracker sends it. No other field is accepted.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "site": "passme", "url": "https://passme.ai/pricing?utm_source=newsletter", "referrer": "https://www.example.com/", "ts": 1_796_084_472_077_i64 }))]
pub struct EventIn {
    /// The site's id: `passme` for PassMe's own pages (served from the host of its public URL,
    /// and in development also from `localhost` and `127.0.0.1`), or the id of a site configured
    /// under `[[analytics.sites]]` with its hosts.
    #[schema(min_length = 1, max_length = 64)]
    pub site: String,
    /// The page's full address: `http` or `https`, on one of the site's hosts, at most 2048
    /// characters. Only its path and `utm_source`, `utm_medium` and `utm_campaign` are kept.
    #[schema(min_length = 1, max_length = 2048)]
    pub url: String,
    /// The referring page's address, if any (only its domain is kept, and none for the site's
    /// own pages).
    #[serde(default)]
    #[schema(max_length = 2048, nullable)]
    pub referrer: Option<String>,
    /// When the page was viewed: milliseconds since 1970-01-01 UTC, from the browser's clock
    /// (`Date.now()`), within the last hour and at most five minutes ahead.
    #[schema(minimum = 0)]
    pub ts: i64,
}

/// A site that may send events: its id and the hosts its pages are served from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub id: String,
    pub hosts: Vec<String>,
}

/// An event that passed validation, reduced to what is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageView {
    pub site: String,
    pub ts: i64,
    pub path: String,
    /// The referring site's domain, empty for direct visits and internal navigation.
    pub source: String,
    pub utm_source: String,
    pub utm_medium: String,
    pub utm_campaign: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventError {
    pub code: &'static str,
    pub message: String,
}

fn refuse(index: usize, code: &'static str, message: impl std::fmt::Display) -> EventError {
    EventError { code, message: format!("event {index}: {message}") }
}

/// Why an otherwise valid event is not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    ReferrerSpam,
}

pub fn validate(index: usize, event: &EventIn, sites: &[Site], now_ms: i64) -> Result<Result<PageView, Drop>, EventError> {
    let site =
        sites.iter().find(|s| s.id == event.site).ok_or_else(|| refuse(index, "unknown_site", format!("no site {:?}", event.site)))?;
    if event.ts < now_ms - MAX_AGE_MS || event.ts > now_ms + MAX_SKEW_MS {
        return Err(refuse(index, "timestamp_out_of_window", "ts must be within the last hour (and at most five minutes ahead)"));
    }
    let page = parse_http_url(index, "url", &event.url)?;
    let host = page.host_str().unwrap_or_default().to_ascii_lowercase();
    if !site.hosts.contains(&host) {
        return Err(refuse(index, "foreign_url", format!("the page is not on a host of site {}", site.id)));
    }
    let path = page.path();
    if path.len() > MAX_PATH {
        return Err(refuse(index, "url_too_long", format!("the path exceeds {MAX_PATH} characters")));
    }
    let path = clean_path(path).map_err(|code| refuse(index, code, "the path holds percent-encoded control characters"))?;
    let source = match event.referrer.as_deref().filter(|r| !r.is_empty()) {
        None => String::new(),
        Some(referrer) => {
            let referrer = parse_http_url(index, "referrer", referrer)?;
            let domain = referrer.host_str().unwrap_or_default().to_ascii_lowercase();
            if site.hosts.contains(&domain) || private_host(&referrer) {
                // Our own pages, or a private network's: neither is a source anyone else could
                // have linked from, and the second would only reveal a network's layout.
                String::new()
            } else {
                let domain = domain.strip_prefix("www.").unwrap_or(&domain).to_string();
                if REFERRER_SPAM.iter().any(|spam| domain == *spam || domain.ends_with(&format!(".{spam}"))) {
                    return Ok(Err(Drop::ReferrerSpam));
                }
                domain
            }
        }
    };
    let utm = |key: &str| {
        page.query_pairs().find(|(k, _)| k == key).map(|(_, v)| v.trim().chars().take(MAX_UTM).collect::<String>()).unwrap_or_default()
    };
    let view = PageView {
        site: site.id.clone(),
        ts: event.ts,
        path,
        source,
        utm_source: utm("utm_source"),
        utm_medium: utm("utm_medium"),
        utm_campaign: utm("utm_campaign"),
    };
    if [&view.utm_source, &view.utm_medium, &view.utm_campaign].iter().any(|v| v.chars().any(char::is_control)) {
        return Err(refuse(index, "control_characters", "utm parameters may not hold control characters"));
    }
    // What is stored is checked as stored, decoded: the page may also come from a pixel's Referer
    // header, which the request scan does not read.
    // The path as sent, too: a card number in it would otherwise be stored as `:token`, where
    // the promise is to refuse it.
    if [page.path(), &view.path, &view.utm_source, &view.utm_medium, &view.utm_campaign]
        .iter()
        .any(|v| passme_core::cards::carries_card_number(v.as_bytes()))
    {
        return Err(refuse(index, "card_data_refused", "this looks like card data; PassMe never takes card details"));
    }
    Ok(Ok(view))
}

/// The path as stored: path parameters (`;jsessionid=…`) dropped, and a segment that holds an
/// e-mail address or a secret (a reset token in the path) replaced by `:email` or `:token`, so
/// only what the policy says is collected (the page) is kept. Percent-encoded control characters
/// are refused (`control_characters`): no page has them.
fn clean_path(path: &str) -> Result<String, &'static str> {
    let mut clean = String::with_capacity(path.len());
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            clean.push('/');
        }
        let segment = segment.split(';').next().unwrap_or_default();
        let decoded = percent_decode(segment);
        if decoded.chars().any(char::is_control) {
            return Err("control_characters");
        }
        if decoded.contains('@') {
            clean.push_str(":email");
        } else if secret_shaped(&decoded) {
            clean.push_str(":token");
        } else {
            clean.push_str(segment);
        }
    }
    Ok(clean)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(high), Some(low)) => {
                out.push(u8::try_from(high * 16 + low).unwrap_or(0));
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A segment that looks generated rather than written: 16 or more characters of a token
/// alphabet that are hexadecimal, or mix letters and digits the way random strings do (a slug
/// such as `best-password-managers-2024` mixes them once; a token does every few characters).
fn secret_shaped(segment: &str) -> bool {
    if segment.len() < 16 || !segment.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'=' | b'~')) {
        return false;
    }
    let kinds: Vec<bool> = segment.bytes().filter(u8::is_ascii_alphanumeric).map(|b| b.is_ascii_digit()).collect();
    let switches = kinds.windows(2).filter(|pair| pair[0] != pair[1]).count();
    let hex = segment.bytes().all(|b| b.is_ascii_hexdigit()) && segment.bytes().any(|b| b.is_ascii_digit());
    switches >= 4 || hex
}

/// Whether a referrer is on a private, loopback or link-local network (or `localhost`).
fn private_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_private() || ip.is_loopback() || ip.is_link_local() || ip.is_unspecified(),
        Some(url::Host::Ipv6(ip)) => {
            let first = ip.segments()[0];
            ip.is_loopback() || ip.is_unspecified() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost") || domain.to_ascii_lowercase().ends_with(".localhost"),
        None => false,
    }
}

fn parse_http_url(index: usize, what: &str, text: &str) -> Result<Url, EventError> {
    if text.len() > MAX_URL {
        return Err(refuse(index, "url_too_long", format!("{what} exceeds {MAX_URL} characters")));
    }
    // The URL parser would silently strip tabs and newlines; a browser never sends them.
    if text.chars().any(char::is_control) {
        return Err(refuse(index, "control_characters", format!("{what} holds control characters")));
    }
    let url = Url::parse(text).map_err(|e| refuse(index, "invalid_url", format!("{what} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(refuse(index, "invalid_url", format!("{what} must be an http or https address")));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn sites() -> Vec<Site> {
        vec![Site { id: "passme".into(), hosts: vec!["passme.ai".into(), "www.passme.ai".into()] }]
    }

    fn event(url: &str, referrer: Option<&str>) -> EventIn {
        EventIn { site: "passme".into(), url: url.into(), referrer: referrer.map(str::to_string), ts: NOW }
    }

    fn code(e: &EventIn) -> &'static str {
        validate(0, e, &sites(), NOW).expect_err("refused").code
    }

    #[test]
    fn a_page_view_keeps_the_path_the_source_and_the_campaign() {
        let e = event(
            "https://passme.ai/pricing?utm_source=news&utm_medium=email&utm_campaign=launch&email=x@y.z#top",
            Some("https://www.google.com/search?q=passme"),
        );
        let view = validate(0, &e, &sites(), NOW).expect("valid").expect("counted");
        assert_eq!(view.path, "/pricing");
        assert_eq!(view.source, "google.com");
        assert_eq!((view.utm_source.as_str(), view.utm_medium.as_str(), view.utm_campaign.as_str()), ("news", "email", "launch"));
        let internal =
            validate(0, &event("https://passme.ai/", Some("https://www.passme.ai/a")), &sites(), NOW).expect("valid").expect("counted");
        assert_eq!(internal.source, "");
    }

    #[test]
    fn hostile_events_are_refused_with_stable_codes() {
        assert_eq!(code(&event("javascript:alert(1)", None)), "invalid_url");
        assert_eq!(code(&event("ftp://passme.ai/", None)), "invalid_url");
        assert_eq!(code(&event("https://evil.example/", None)), "foreign_url");
        assert_eq!(code(&event(&format!("https://passme.ai/?q={}", "a".repeat(50 * 1024)), None)), "url_too_long");
        assert_eq!(code(&event("https://passme.ai/a\u{0}b", None)), "control_characters");
        assert_eq!(code(&event("https://passme.ai/a\nb", None)), "control_characters");
        assert_eq!(code(&event("https://passme.ai/", Some("data:text/html,hi"))), "invalid_url");
        assert_eq!(code(&EventIn { site: "nope".into(), ..event("https://passme.ai/", None) }), "unknown_site");
        assert_eq!(code(&EventIn { ts: NOW - MAX_AGE_MS - 1, ..event("https://passme.ai/", None) }), "timestamp_out_of_window");
        assert_eq!(code(&EventIn { ts: NOW + MAX_SKEW_MS + 1, ..event("https://passme.ai/", None) }), "timestamp_out_of_window");
        assert_eq!(code(&EventIn { ts: 0, ..event("https://passme.ai/", None) }), "timestamp_out_of_window");
    }

    #[test]
    fn paths_keep_the_page_and_nothing_else() {
        let path = |url: &str| validate(0, &event(url, None), &sites(), NOW).expect("accepted").expect("kept").path;
        assert_eq!(path("https://passme.ai/page;jsessionid=ABC123"), "/page", "path parameters are dropped");
        assert_eq!(path("https://passme.ai/a;x=1/b;y=2"), "/a/b");
        assert_eq!(
            path("https://passme.ai/u/victim@x.dk/reset/k3J9xQ2mZ8vL4nR7tB1wY5pC6dF0gH2j"),
            "/u/:email/reset/:token",
            "an address and a secret in the path become placeholders"
        );
        assert_eq!(path("https://passme.ai/u/victim%40x.dk"), "/u/:email", "also percent-encoded");
        assert_eq!(path("https://passme.ai/verify/0123456789abcdef0123456789abcdef"), "/verify/:token");
        assert_eq!(path("https://passme.ai/blog/best-password-managers-2024"), "/blog/best-password-managers-2024", "a slug is a page");
        assert_eq!(path("https://passme.ai/pricing"), "/pricing");
        for encoded in
            ["https://passme.ai/a%00b", "https://passme.ai/a%0d%0aSet-Cookie", "https://passme.ai/%7F", "https://passme.ai/%C2%85"]
        {
            assert_eq!(code(&event(encoded, None)), "control_characters", "{encoded}");
        }
    }

    #[test]
    fn private_and_loopback_referrers_are_not_sources() {
        let source = |referrer: &str| {
            validate(0, &event("https://passme.ai/", Some(referrer)), &sites(), NOW).expect("accepted").expect("kept").source
        };
        for private in [
            "http://10.1.2.3/admin",
            "http://192.168.1.1/",
            "http://127.0.0.1:8080/",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://localhost/x",
            "http://169.254.1.1/",
        ] {
            assert_eq!(source(private), "", "{private}");
        }
        assert_eq!(source("https://news.example/story"), "news.example");
        assert_eq!(source("http://8.8.8.8/"), "8.8.8.8", "a public address stays a source");
    }

    #[test]
    fn referrer_spam_is_dropped_not_refused() {
        let e = event("https://passme.ai/", Some("http://best.semalt.com/"));
        assert_eq!(validate(0, &e, &sites(), NOW), Ok(Err(Drop::ReferrerSpam)));
    }
}
