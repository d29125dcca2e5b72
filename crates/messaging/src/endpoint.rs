//! Addresses we post to on someone else's say-so (a browser's push endpoint, a partner's
//! receiver) must not turn the service into a proxy into its own network (SSRF): only HTTPS to
//! a public address, checked when the address is registered and again, after resolving the
//! name, right before each request, which then goes to exactly the checked address and follows
//! no redirect. Loopback or private `host:port` pairs can be allowed one by one for tests; never
//! in production.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use passme_core::CoreError;
use url::{Host, Url};

#[derive(Debug, Clone)]
pub struct Guard {
    allowed_private: Vec<String>,
}

/// Whether an address is one anyone on the internet can reach (not loopback, private,
/// link-local, shared, documentation, multicast or unspecified).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0)
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

impl Guard {
    pub fn new(allowed_private: &[String], production: bool) -> Result<Guard, CoreError> {
        if production && !allowed_private.is_empty() {
            return Err(CoreError::broken(
                "messaging.allowed_private_endpoints",
                "private endpoints are for tests only; remove them in production",
            ));
        }
        Ok(Guard { allowed_private: allowed_private.to_vec() })
    }

    fn allowed_exception(&self, url: &Url) -> bool {
        let Some(host) = url.host_str() else { return false };
        let port = url.port_or_known_default().unwrap_or(0);
        self.allowed_private.iter().any(|a| *a == format!("{host}:{port}"))
    }

    /// Checks an address as given: its shape, scheme and (for an IP literal) range. A name is
    /// resolved only when used, by [`Guard::client_for`].
    pub fn check(&self, raw: &str) -> Result<Url, CoreError> {
        if raw.len() > 2048 {
            return Err(CoreError::input("endpoint_invalid"));
        }
        let url = Url::parse(raw).map_err(|_| CoreError::input("endpoint_invalid"))?;
        if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
            return Err(CoreError::input("endpoint_invalid"));
        }
        if self.allowed_exception(&url) {
            return Ok(url);
        }
        if url.scheme() != "https" {
            return Err(CoreError::input("endpoint_not_https"));
        }
        match url.host() {
            Some(Host::Ipv4(ip)) if !is_public(IpAddr::V4(ip)) => Err(CoreError::input("endpoint_not_public")),
            Some(Host::Ipv6(ip)) if !is_public(IpAddr::V6(ip)) => Err(CoreError::input("endpoint_not_public")),
            Some(Host::Domain(name)) if name == "localhost" || name.ends_with(".localhost") || !name.contains('.') => {
                Err(CoreError::input("endpoint_not_public"))
            }
            Some(_) => Ok(url),
            None => Err(CoreError::input("endpoint_invalid")),
        }
    }

    /// A client that sends to `url` only at an address checked to be public (or an allowed
    /// exception), and follows no redirect.
    pub async fn client_for(&self, raw: &str, timeout: Duration) -> Result<reqwest::Client, CoreError> {
        let url = self.check(raw)?;
        let builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(timeout);
        if self.allowed_exception(&url) {
            return builder.build().map_err(|e| CoreError::broken("http client", e));
        }
        let host = url.host_str().unwrap_or_default().to_string();
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|_| CoreError::Unavailable { code: "endpoint_unresolvable" })?
            .collect();
        let Some(public) = addrs.iter().find(|a| is_public(a.ip())) else {
            return Err(CoreError::input("endpoint_not_public"));
        };
        if addrs.iter().any(|a| !is_public(a.ip())) {
            // A name that resolves to both kinds is how DNS rebinding starts.
            return Err(CoreError::input("endpoint_not_public"));
        }
        builder.resolve(&host, *public).build().map_err(|e| CoreError::broken("http client", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_https_addresses_pass_unless_allowed_one_by_one() {
        let guard = Guard::new(&["127.0.0.1:8090".to_string()], false).expect("guard");
        for (url, code) in [
            ("http://push.example.com/x", "endpoint_not_https"),
            ("https://127.0.0.1/x", "endpoint_not_public"),
            ("https://127.0.0.1:8091/x", "endpoint_not_public"),
            ("https://10.1.2.3/x", "endpoint_not_public"),
            ("https://192.168.0.1/x", "endpoint_not_public"),
            ("https://169.254.169.254/latest/meta-data", "endpoint_not_public"),
            ("https://[::1]/x", "endpoint_not_public"),
            ("https://[::ffff:10.0.0.1]/x", "endpoint_not_public"),
            ("https://[fd00::1]/x", "endpoint_not_public"),
            ("https://localhost/x", "endpoint_not_public"),
            ("https://intranet/x", "endpoint_not_public"),
            ("https://user:pw@push.example.com/x", "endpoint_invalid"),
            ("not a url", "endpoint_invalid"),
            ("file:///etc/passwd", "endpoint_not_https"),
        ] {
            assert_eq!(guard.check(url).map(|_| ()).map_err(|e| e.code()), Err(code), "{url}");
        }
        assert!(guard.check("https://fcm.googleapis.com/fcm/send/abc").is_ok());
        assert!(guard.check("http://127.0.0.1:8090/notify/abc").is_ok(), "the one allowed test peer");
        assert!(Guard::new(&["127.0.0.1:8090".to_string()], true).is_err(), "no exceptions in production");
    }
}
