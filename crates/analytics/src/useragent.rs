//! User agent → browser and operating system, with uap-core's maintained regexes (vendored,
//! Apache-2.0) through the official Rust port, behind an LRU cache: real traffic repeats a few
//! hundred agents, so a hot agent costs one hash lookup instead of a regex pass.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, OnceLock};

use lru::LruCache;

const REGEXES_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/uap-regexes.json"));
const CACHE_ENTRIES: usize = 10_000;
/// Longer agents are not parsed (no real browser sends one); they count as bots.
pub const MAX_USER_AGENT: usize = 512;

/// What the policy lets us keep of a user agent: browser and OS family with their versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub browser: String,
    pub browser_version: String,
    pub os: String,
    pub os_version: String,
    /// Set when the agent is a crawler, a headless browser or an HTTP library.
    pub bot: Option<&'static str>,
}

/// Agents of automation that uap-core files under an ordinary family, matched case-insensitively.
const AUTOMATION_MARKERS: &[&str] = &[
    "bot",
    "crawl",
    "spider",
    "slurp",
    "headless",
    "phantomjs",
    "puppeteer",
    "playwright",
    "lighthouse",
    "python-requests",
    "python-urllib",
    "aiohttp",
    "curl/",
    "wget/",
    "go-http-client",
    "okhttp",
    "java/",
    "libwww",
    "httpclient",
    "node-fetch",
    "axios/",
    "scrapy",
];

pub struct UserAgents {
    extractor: ua_parser::Extractor<'static>,
    cache: Mutex<LruCache<Box<str>, Arc<Client>>>,
}

impl std::fmt::Debug for UserAgents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserAgents").finish_non_exhaustive()
    }
}

impl UserAgents {
    /// The shared parser; compiling uap-core's regexes takes a moment, so it happens once.
    pub fn shared() -> &'static UserAgents {
        static PARSER: OnceLock<UserAgents> = OnceLock::new();
        PARSER.get_or_init(|| {
            let regexes: ua_parser::Regexes<'static> =
                serde_json::from_str(REGEXES_JSON).expect("the build script wrote valid uap-core JSON");
            let extractor = ua_parser::Extractor::try_from(regexes).expect("uap-core's regexes compile");
            let capacity = NonZeroUsize::new(CACHE_ENTRIES).expect("non-zero cache size");
            UserAgents { extractor, cache: Mutex::new(LruCache::new(capacity)) }
        })
    }

    pub fn parse(&self, agent: &str) -> Arc<Client> {
        if let Some(hit) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(agent) {
            return hit.clone();
        }
        let client = Arc::new(self.parse_uncached(agent));
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).put(agent.into(), client.clone());
        client
    }

    fn parse_uncached(&self, agent: &str) -> Client {
        let (browser, os, device) = self.extractor.extract(agent);
        let (browser, browser_version) =
            browser.map_or(("Other".to_string(), String::new()), |b| (b.family.into_owned(), b.major.unwrap_or("").to_string()));
        let (os, os_version) = os.map_or(("Other".to_string(), String::new()), |o| {
            let version = match (o.major, o.minor) {
                (Some(major), Some(minor)) => format!("{major}.{minor}"),
                (Some(major), None) => major.to_string(),
                _ => String::new(),
            };
            (o.os.into_owned(), version)
        });
        let lower = agent.to_ascii_lowercase();
        let bot = if agent.trim().is_empty() {
            Some("no_user_agent")
        } else if agent.len() > MAX_USER_AGENT {
            Some("oversized_user_agent")
        } else if device.is_some_and(|d| d.device == "Spider") {
            Some("crawler")
        } else if AUTOMATION_MARKERS.iter().any(|m| lower.contains(m)) {
            Some("automation")
        } else {
            None
        };
        Client { browser, browser_version, os, os_version, bot }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_and_systems_come_from_uap_core() {
        let ua = UserAgents::shared();
        let chrome =
            ua.parse("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36");
        assert_eq!(
            (chrome.browser.as_str(), chrome.browser_version.as_str(), chrome.os.as_str(), chrome.os_version.as_str()),
            ("Chrome", "126", "Windows", "10")
        );
        assert_eq!(chrome.bot, None);
        let safari = ua.parse("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1");
        assert_eq!((safari.browser.as_str(), safari.os.as_str(), safari.os_version.as_str()), ("Mobile Safari", "iOS", "17.4"));
        let firefox = ua.parse("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0");
        assert_eq!((firefox.browser.as_str(), firefox.browser_version.as_str(), firefox.os.as_str()), ("Firefox", "128", "Linux"));
    }

    #[test]
    fn crawlers_headless_browsers_and_libraries_are_bots() {
        let ua = UserAgents::shared();
        for agent in [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/126.0.0.0 Safari/537.36",
            "curl/8.5.0",
            "python-requests/2.31.0",
            "",
            &"x".repeat(MAX_USER_AGENT + 1),
        ] {
            assert!(ua.parse(agent).bot.is_some(), "{agent:?} should be a bot");
        }
    }

    #[test]
    fn a_cached_agent_is_the_same_answer() {
        let ua = UserAgents::shared();
        let agent = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15";
        assert!(Arc::ptr_eq(&ua.parse(agent), &ua.parse(agent)));
    }
}
