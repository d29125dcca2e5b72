//! The identity provider for tests: npm `oidc-provider` 8 (a certified OpenID Provider), installed
//! by `scripts/test` into `.tools/oidc` and started per test on a free loopback port with
//! `tests/oidc/provider.mjs`. [`OidcPeer::authorize`] walks its real login and consent pages as a
//! browser would (keeping the provider's cookies) and returns where the provider sends the
//! browser back. Hooks of the script forge the next ID token, rotate the signing key and count
//! token requests.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use passme_core::config::ProviderConfig;
use secrecy::SecretString;
use serde_json::{Value, json};

pub const CLIENT_ID: &str = "passme-test";
pub const CLIENT_SECRET: &str = "passme-test-client-secret";

fn tools() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/oidc")
}

/// oidc-provider on a free port; stopped on drop.
pub struct OidcPeer {
    pub port: u16,
    child: Child,
    accounts: tempfile::NamedTempFile,
    http: reqwest::Client,
}

impl Drop for OidcPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Options for [`OidcPeer::start_with`].
#[derive(Debug, Clone)]
pub struct PeerOptions {
    /// Where PassMe's callbacks are (one per configured provider id).
    pub redirect_uris: Vec<String>,
    pub access_ttl_secs: u64,
}

impl OidcPeer {
    /// A provider whose one client may come back to `redirect_uri`.
    pub async fn start(redirect_uri: &str) -> OidcPeer {
        OidcPeer::start_with(PeerOptions { redirect_uris: vec![redirect_uri.into()], access_ttl_secs: 3600 }).await
    }

    pub async fn start_with(options: PeerOptions) -> OidcPeer {
        let dir = tools();
        assert!(
            dir.join("node_modules/oidc-provider").exists(),
            "oidc-provider is not installed: run scripts/test (or: npm ci --prefix .tools/oidc with tests/oidc/package*.json)"
        );
        // The script resolves its imports from where it lies: next to the installed packages.
        let script = dir.join("provider.mjs");
        std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/oidc/provider.mjs"), &script).expect("copy provider.mjs");
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port");
        let accounts = tempfile::NamedTempFile::new().expect("accounts file");
        std::fs::write(accounts.path(), "{}").expect("accounts file");
        let config = json!({
            "port": port,
            "clients": [{ "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": options.redirect_uris }],
            "accounts": accounts.path(),
            "access_ttl": options.access_ttl_secs,
        });
        let child = Command::new("node")
            .arg(&script)
            .arg(config.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node");
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        let peer = OidcPeer { port, child, accounts, http };
        let deadline = Instant::now() + Duration::from_secs(20);
        while peer.http.get(format!("{}/.well-known/openid-configuration", peer.issuer())).send().await.is_err() {
            assert!(Instant::now() < deadline, "oidc-provider did not start on port {port}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        peer
    }

    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// PassMe's configuration for this provider under `id`.
    pub fn provider_config(&self, id: &str) -> ProviderConfig {
        ProviderConfig {
            id: id.into(),
            name: "Example ID".into(),
            issuer: Some(self.issuer()),
            authorization_endpoint: None,
            token_endpoint: None,
            userinfo_endpoint: None,
            revocation_endpoint: None,
            subject_field: None,
            client_id: CLIENT_ID.into(),
            client_secret_file: None,
            client_secret: Some(SecretString::from(CLIENT_SECRET)),
            scopes: vec!["openid".into(), "email".into(), "profile".into(), "offline_access".into()],
            profile_fields: vec!["name".into(), "industry".into(), "interests".into()],
            request_timeout_ms: 5_000,
        }
    }

    /// The same provider as plain OAuth 2.0: explicit endpoints, the subject from userinfo.
    pub fn oauth_config(&self, id: &str) -> ProviderConfig {
        ProviderConfig {
            issuer: None,
            authorization_endpoint: Some(format!("{}/auth", self.issuer())),
            token_endpoint: Some(format!("{}/token", self.issuer())),
            userinfo_endpoint: Some(format!("{}/me", self.issuer())),
            revocation_endpoint: Some(format!("{}/token/revocation", self.issuer())),
            subject_field: Some("sub".into()),
            ..self.provider_config(id)
        }
    }

    /// What the provider says about `login` from now on (merged over its defaults:
    /// `<login>@example.test`, verified).
    pub fn set_account(&self, login: &str, claims: Value) {
        let mut all: HashMap<String, Value> =
            serde_json::from_str(&std::fs::read_to_string(self.accounts.path()).unwrap_or_default()).unwrap_or_default();
        all.insert(login.into(), claims);
        std::fs::write(self.accounts.path(), serde_json::to_string(&all).expect("json")).expect("write accounts");
    }

    /// Walks the provider's login (as `login`) and consent pages from `authorize_url`; returns
    /// the URL the provider sends the browser back to (PassMe's callback with code and state).
    pub async fn authorize(&self, authorize_url: &str, login: &str) -> String {
        let mut jar: HashMap<String, String> = HashMap::new();
        let mut url = authorize_url.to_string();
        for _ in 0..12 {
            if !url.starts_with(&self.issuer()) {
                return url;
            }
            let cookie = jar.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
            let page = self.http.get(&url).header("cookie", &cookie).send().await.expect("provider answers");
            remember(&mut jar, &page);
            if let Some(next) = location(&page, &self.issuer()) {
                url = next;
                continue;
            }
            let html = page.text().await.expect("page");
            let action =
                html.split("action=\"").nth(1).and_then(|s| s.split('"').next()).expect("a form on the provider's page").to_string();
            let prompt = html.split("name=\"prompt\" value=\"").nth(1).and_then(|s| s.split('"').next()).unwrap_or("login").to_string();
            let form: Vec<(&str, &str)> = if prompt == "login" {
                vec![("prompt", "login"), ("login", login), ("password", "any")]
            } else {
                vec![("prompt", prompt.as_str())]
            };
            let cookie = jar.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
            let posted = self.http.post(&action).header("cookie", &cookie).form(&form).send().await.expect("provider answers");
            remember(&mut jar, &posted);
            url = location(&posted, &self.issuer()).expect("the provider redirects after a form");
        }
        panic!("the provider's pages did not lead back to PassMe");
    }

    /// The next token response carries a forged ID token (see `tests/oidc/provider.mjs`).
    pub async fn tamper_next_id_token(&self, mode: &str) {
        let r = self.http.post(format!("{}/__test/tamper?mode={mode}", self.issuer())).send().await.expect("tamper");
        assert!(r.status().is_success());
    }

    /// A new signing key; the provider signs with it from now on. Returns its key id.
    pub async fn rotate_key(&self) -> String {
        let r: Value = self.http.post(format!("{}/__test/rotate", self.issuer())).send().await.expect("rotate").json().await.expect("json");
        r["kid"].as_str().expect("kid").to_string()
    }

    /// (token requests, of which refresh-token grants) so far.
    pub async fn token_requests(&self) -> (u64, u64) {
        let r: Value = self.http.get(format!("{}/__test/stats", self.issuer())).send().await.expect("stats").json().await.expect("json");
        (r["token_requests"].as_u64().unwrap_or(0), r["refresh_requests"].as_u64().unwrap_or(0))
    }

    /// Uses a refresh token at the token endpoint directly, as a thief holding it would: the
    /// provider's answer status.
    pub async fn try_refresh(&self, refresh_token: &str) -> u16 {
        self.http
            .post(format!("{}/token", self.issuer()))
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token)])
            .send()
            .await
            .expect("token endpoint")
            .status()
            .as_u16()
    }
}

fn remember(jar: &mut HashMap<String, String>, response: &reqwest::Response) {
    for set in response.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()) {
        if let Some((name, value)) = set.split(';').next().and_then(|p| p.split_once('=')) {
            jar.insert(name.to_string(), value.to_string());
        }
    }
}

fn location(response: &reqwest::Response, issuer: &str) -> Option<String> {
    if !response.status().is_redirection() {
        return None;
    }
    let to = response.headers().get("location")?.to_str().ok()?;
    Some(if to.starts_with('/') { format!("{issuer}{to}") } else { to.to_string() })
}
