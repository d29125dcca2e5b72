//! An identity provider as configured: OpenID Connect by issuer (discovery, JWKS with caching and
//! refetch on an unknown key id, so a key rotation at the provider is followed), or plain OAuth
//! 2.0 by explicit endpoints.

use std::sync::Arc;
use std::time::{Duration, Instant};

use passme_core::config::ProviderConfig;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::RwLock;

use crate::LinkError;
use crate::idtoken::{Jwk, JwkSet};

/// How long a fetched key set is trusted without asking again.
const JWKS_TTL: Duration = Duration::from_secs(3600);
/// An unknown key id fetches the set again at most this often (a flood of forged tokens must not
/// become a flood of requests to the provider).
const JWKS_REFETCH_MIN: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Deserialize)]
pub struct Endpoints {
    pub issuer: Option<String>,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    #[serde(default)]
    pub jwks_uri: Option<String>,
}

#[derive(Debug)]
struct KeyCache {
    keys: Vec<Jwk>,
    fetched: Option<Instant>,
}

/// A token endpoint's answer.
#[derive(Debug, Deserialize)]
pub struct TokenResponse {
    pub access_token: Option<String>,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub id_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<i64>,
}

/// How a request to the provider failed.
#[derive(Debug)]
pub enum Refusal {
    /// The provider said no (`invalid_grant` and friends): the grant is dead.
    Grant(String),
    /// The provider could not be reached or answered nonsense: try later.
    Unavailable(String),
}

impl Refusal {
    /// Where a refusal means no more than "cannot use the provider now" (reading a profile).
    pub fn unavailable(self, provider: &str) -> LinkError {
        let (Refusal::Grant(cause) | Refusal::Unavailable(cause)) = self;
        LinkError::ProviderUnavailable { provider: provider.to_string(), cause }
    }
}

#[derive(Debug)]
pub struct Provider {
    pub config: ProviderConfig,
    http: reqwest::Client,
    endpoints: RwLock<Option<Arc<Endpoints>>>,
    keys: RwLock<KeyCache>,
}

impl Provider {
    pub fn new(config: ProviderConfig) -> Result<Provider, LinkError> {
        let bad = |message: String| LinkError::Config { message: format!("linking provider {:?}: {message}", config.id) };
        if config.id.is_empty() || !config.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(bad("the id must be letters, digits, - or _".into()));
        }
        match (&config.issuer, &config.authorization_endpoint, &config.token_endpoint) {
            (Some(_), None, None) => {}
            (None, Some(_), Some(_)) if config.userinfo_endpoint.is_some() && config.subject_field.is_some() => {}
            _ => {
                return Err(bad(
                    "give either issuer (OpenID Connect) or authorization_endpoint, token_endpoint, userinfo_endpoint and subject_field (OAuth 2.0)"
                        .into(),
                ));
            }
        }
        if config.issuer.is_some() && !config.scopes.iter().any(|s| s == "openid") {
            return Err(bad("an OpenID Connect provider needs the openid scope".into()));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.request_timeout_ms.max(100)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(Provider { config, http, endpoints: RwLock::new(None), keys: RwLock::new(KeyCache { keys: Vec::new(), fetched: None }) })
    }

    pub fn id(&self) -> &str {
        &self.config.id
    }

    pub fn is_oidc(&self) -> bool {
        self.config.issuer.is_some()
    }

    /// The issuer a link is recorded under: the OpenID issuer, or for OAuth 2.0 the
    /// authorization endpoint's origin (a subject is only unique per provider).
    pub fn issuer(&self) -> String {
        match (&self.config.issuer, &self.config.authorization_endpoint) {
            (Some(issuer), _) => issuer.clone(),
            (None, Some(endpoint)) => url::Url::parse(endpoint).map_or_else(|_| endpoint.clone(), |u| u.origin().ascii_serialization()),
            (None, None) => self.config.id.clone(),
        }
    }

    /// The endpoints: configured, or discovered once (and again after a failure).
    pub async fn endpoints(&self) -> Result<Arc<Endpoints>, LinkError> {
        if let Some(found) = self.endpoints.read().await.as_ref() {
            return Ok(found.clone());
        }
        let endpoints = match &self.config.issuer {
            None => Endpoints {
                issuer: None,
                authorization_endpoint: self.config.authorization_endpoint.clone().unwrap_or_default(),
                token_endpoint: self.config.token_endpoint.clone().unwrap_or_default(),
                userinfo_endpoint: self.config.userinfo_endpoint.clone(),
                revocation_endpoint: self.config.revocation_endpoint.clone(),
                jwks_uri: None,
            },
            Some(issuer) => {
                let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
                let doc: Endpoints = self.get_json(&url).await?;
                // The document must be the issuer's own (OpenID Connect Discovery 1.0, 4.3).
                if doc.issuer.as_deref() != Some(issuer.as_str()) {
                    return Err(LinkError::ProviderUnavailable {
                        provider: self.config.id.clone(),
                        cause: "discovery names another issuer".into(),
                    });
                }
                doc
            }
        };
        let endpoints = Arc::new(endpoints);
        *self.endpoints.write().await = Some(endpoints.clone());
        Ok(endpoints)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, LinkError> {
        let unavailable = |cause: String| LinkError::ProviderUnavailable { provider: self.config.id.clone(), cause };
        let response = self.http.get(url).send().await.map_err(|e| unavailable(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(unavailable(format!("{} answered {}", url, response.status())));
        }
        let bytes = response.bytes().await.map_err(|e| unavailable(e.without_url().to_string()))?;
        serde_json::from_slice(&bytes).map_err(|e| unavailable(format!("{url}: {e}")))
    }

    /// The provider's signing keys; fetched again when `kid` is not among them (a rotation), at
    /// most once a second.
    pub async fn keys_for(&self, kid: Option<&str>) -> Result<Vec<Jwk>, LinkError> {
        {
            let cache = self.keys.read().await;
            let fresh = cache.fetched.is_some_and(|t| t.elapsed() < JWKS_TTL);
            let known = kid.is_none_or(|kid| cache.keys.iter().any(|k| k.kid.as_deref() == Some(kid)));
            let recently = cache.fetched.is_some_and(|t| t.elapsed() < JWKS_REFETCH_MIN);
            if fresh && (known || recently) {
                return Ok(cache.keys.clone());
            }
        }
        let endpoints = self.endpoints().await?;
        let Some(uri) = &endpoints.jwks_uri else {
            return Err(LinkError::ProviderUnavailable { provider: self.config.id.clone(), cause: "no jwks_uri".into() });
        };
        let set: JwkSet = self.get_json(uri).await?;
        let mut cache = self.keys.write().await;
        cache.keys = set.keys;
        cache.fetched = Some(Instant::now());
        Ok(cache.keys.clone())
    }

    /// A form POST authenticated as our client: HTTP Basic with the secret, or (a public client)
    /// `client_id` in the form.
    fn client_post(&self, url: &str, form: &[(&str, &str)]) -> reqwest::RequestBuilder {
        let request = self.http.post(url).header("accept", "application/json");
        match &self.config.client_secret {
            Some(secret) => request.basic_auth(form_encode(&self.config.client_id), Some(form_encode(secret.expose_secret()))).form(form),
            None => request.form(&[form, &[("client_id", self.config.client_id.as_str())]].concat()),
        }
    }

    /// Sends a request; the status and the body, or why nothing usable came back.
    async fn send(request: reqwest::RequestBuilder) -> Result<(reqwest::StatusCode, Vec<u8>), Refusal> {
        let response = request.send().await.map_err(|e| Refusal::Unavailable(e.without_url().to_string()))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| Refusal::Unavailable(e.without_url().to_string()))?;
        Ok((status, body.to_vec()))
    }

    /// A form POST to the token endpoint (`authorization_code` or `refresh_token` grant).
    pub async fn token_request(&self, form: &[(&str, &str)]) -> Result<TokenResponse, Refusal> {
        let endpoints = self.endpoints().await.map_err(|e| Refusal::Unavailable(e.to_string()))?;
        let (status, bytes) = Provider::send(self.client_post(&endpoints.token_endpoint, form)).await?;
        if status.is_client_error() {
            let error = serde_json::from_slice::<Map<String, Value>>(&bytes)
                .ok()
                .and_then(|m| m.get("error").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_else(|| status.to_string());
            return Err(Refusal::Grant(error));
        }
        if !status.is_success() {
            return Err(Refusal::Unavailable(format!("token endpoint answered {status}")));
        }
        serde_json::from_slice(&bytes).map_err(|e| Refusal::Unavailable(format!("token endpoint: {e}")))
    }

    /// The userinfo endpoint's claims, read with `access_token`.
    pub async fn userinfo(&self, access_token: &SecretString) -> Result<Map<String, Value>, Refusal> {
        let endpoints = self.endpoints().await.map_err(|e| Refusal::Unavailable(e.to_string()))?;
        let Some(url) = &endpoints.userinfo_endpoint else { return Ok(Map::new()) };
        let request = self.http.get(url).bearer_auth(access_token.expose_secret()).header("accept", "application/json");
        let (status, bytes) = Provider::send(request).await?;
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(Refusal::Grant(format!("userinfo answered {status}")));
        }
        if !status.is_success() {
            return Err(Refusal::Unavailable(format!("userinfo answered {status}")));
        }
        serde_json::from_slice(&bytes).map_err(|e| Refusal::Unavailable(format!("userinfo: {e}")))
    }

    /// Revokes a token where the provider supports revocation (RFC 7009); `Ok(false)` when it
    /// does not.
    pub async fn revoke(&self, token: &SecretString, hint: &str) -> Result<bool, Refusal> {
        let endpoints = self.endpoints().await.map_err(|e| Refusal::Unavailable(e.to_string()))?;
        let Some(url) = &endpoints.revocation_endpoint else { return Ok(false) };
        let (status, _) = Provider::send(self.client_post(url, &[("token", token.expose_secret()), ("token_type_hint", hint)])).await?;
        if status.is_success() { Ok(true) } else { Err(Refusal::Unavailable(format!("revocation answered {status}"))) }
    }
}

/// RFC 6749 section 2.3.1: client credentials are form-encoded before Basic authentication.
fn form_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
