//! Linked third-party accounts (the policy's "linking" capability): linking and signing in with
//! OpenID Connect or OAuth 2.0 providers, the tokens they give us sealed in the [`vault`], their
//! refresh and revocation, and the declared public profile fields they send.
//!
//! The flow is the authorization-code flow with PKCE (S256), a `state` bound to the browser that
//! started it, and a `nonce`. Links are keyed on (issuer, subject), never on an e-mail address.

pub mod idtoken;
pub mod provider;
pub mod vault;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use passme_core::CoreError;
use passme_core::audit::{AuditEvent, AuditLog};
use passme_core::clock::SharedClock;
use passme_core::config::LinkingConfig;
use passme_core::crypto;
use passme_policy::Policy;
use passme_store::{AccountId, FlowRow, LinkRow, Store, StoreError, TokenRow};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::idtoken::{Expected, TokenFault};
use crate::provider::{Provider, Refusal, TokenResponse};
use crate::vault::{Vault, VaultError};

/// How long a started flow may take to come back.
pub const FLOW_TTL_MS: i64 = 10 * 60 * 1000;
/// An access token this close to expiry is refreshed before use.
const REFRESH_MARGIN_MS: i64 = 30_000;
/// How long one refresh may hold its link's lease.
const REFRESH_LEASE_MS: i64 = 30_000;
/// The purpose the partner profile fields are kept for (and whose consent they need).
pub const PERSONALISE: &str = "personalise";

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("{message}")]
    Config { message: String },
    #[error("there is no provider {0:?}")]
    UnknownProvider(String),
    #[error("the sign-in came back without its state")]
    StateMissing,
    #[error("the sign-in is unknown, used or belongs to another provider")]
    StateUnknown,
    #[error("the sign-in was started in another browser")]
    BrowserMismatch,
    #[error("the sign-in took too long")]
    FlowExpired,
    #[error("the answer names another issuer than the provider the sign-in went to")]
    MixUp,
    #[error("the provider did not grant access ({0})")]
    ProviderDenied(String),
    #[error("the provider refused the authorization code ({0})")]
    CodeRejected(String),
    #[error("the provider's ID token was refused: {0}")]
    IdToken(TokenFault),
    #[error("that account at the provider is linked to another PassMe account")]
    SubjectTaken,
    #[error("no PassMe account is linked to that account at the provider")]
    NotLinked,
    #[error("the link does not exist")]
    LinkUnknown,
    #[error("the provider must be asked for consent again")]
    NeedsConsent,
    #[error("the provider {provider} is unavailable: {cause}")]
    ProviderUnavailable { provider: String, cause: String },
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl From<StoreError> for LinkError {
    fn from(e: StoreError) -> LinkError {
        LinkError::Core(e.into())
    }
}

impl LinkError {
    pub fn code(&self) -> &'static str {
        match self {
            LinkError::Config { .. } => "linking_config_invalid",
            LinkError::UnknownProvider(_) => "link_provider_unknown",
            LinkError::StateMissing => "link_state_missing",
            LinkError::StateUnknown => "link_state_unknown",
            LinkError::BrowserMismatch => "link_browser_mismatch",
            LinkError::FlowExpired => "link_flow_expired",
            LinkError::MixUp => "link_issuer_mismatch",
            LinkError::ProviderDenied(_) => "link_provider_denied",
            LinkError::CodeRejected(_) => "link_code_rejected",
            LinkError::IdToken(_) => "link_id_token_invalid",
            LinkError::SubjectTaken => "link_subject_taken",
            LinkError::NotLinked => "link_not_linked",
            LinkError::LinkUnknown => "link_unknown",
            LinkError::NeedsConsent => "link_needs_consent",
            LinkError::ProviderUnavailable { .. } => "link_provider_unavailable",
            LinkError::Vault(e) => e.code(),
            LinkError::Core(e) => e.code(),
        }
    }
}

/// What a flow was started for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    Link(AccountId),
    SignIn,
}

/// What a finished flow did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finished {
    Linked { account_id: AccountId, provider: String },
    SignedIn { account_id: AccountId, provider: String },
}

/// The parameters the provider sends back to the callback.
#[derive(Debug, Clone, Default)]
pub struct Callback {
    pub state: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
    /// The issuer the answer says it comes from (RFC 9207), when the provider sends it.
    pub iss: Option<String>,
}

/// A link as the account page shows it.
#[derive(Debug, Clone)]
pub struct LinkView {
    pub link: LinkRow,
    pub provider_name: String,
    /// The profile fields received, when kept (personalisation consent), and when.
    pub profile: Option<(Vec<(String, String)>, i64)>,
}

#[derive(Clone)]
pub struct Linking {
    store: Store,
    clock: SharedClock,
    audit: AuditLog,
    vault: Vault,
    providers: Arc<Vec<Arc<Provider>>>,
    /// The key the flows' PKCE verifier, nonce and browser binding are derived with.
    flow_key: Arc<SecretBox<[u8; 32]>>,
    base_url: String,
    /// The profile fields the policy declares as partner data; nothing else is kept.
    declared_fields: Arc<Vec<String>>,
}

impl std::fmt::Debug for Linking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Linking").field("providers", &self.providers.iter().map(|p| p.id()).collect::<Vec<_>>()).finish_non_exhaustive()
    }
}

/// The policy's declaration behind linking: the processor that names what providers send, with
/// its scopes and profile fields.
pub const PROCESSOR: &str = "identity_providers";

impl Linking {
    /// Checks each provider against the policy: its scopes and profile fields must be declared
    /// by the identity-provider processor, or the service does not start.
    pub fn new(
        config: &LinkingConfig,
        policy: &Policy,
        store: Store,
        clock: SharedClock,
        master: &[u8; 32],
        base_url: &str,
    ) -> Result<Linking, LinkError> {
        let processor = policy.processors.iter().find(|p| p.id.get_ref() == PROCESSOR);
        let (scopes, fields): (Vec<String>, Vec<String>) =
            processor.map(|p| (p.scopes.clone(), p.profile_fields.iter().map(|f| f.claim.clone()).collect())).unwrap_or_default();
        let mut providers = Vec::new();
        for provider in &config.providers {
            if processor.is_none() {
                return Err(LinkError::Config {
                    message: format!("linking provider {:?}: the policy declares no processor {PROCESSOR}", provider.id),
                });
            }
            if let Some(scope) = provider.scopes.iter().find(|s| !scopes.contains(s)) {
                return Err(LinkError::Config {
                    message: format!(
                        "linking provider {:?}: scope {scope:?} is not declared in the policy's processor {PROCESSOR}",
                        provider.id
                    ),
                });
            }
            if let Some(field) = provider.profile_fields.iter().find(|f| !fields.contains(f)) {
                return Err(LinkError::Config {
                    message: format!(
                        "linking provider {:?}: profile field {field:?} is not declared in the policy's processor {PROCESSOR}",
                        provider.id
                    ),
                });
            }
            if providers.iter().any(|p: &Arc<Provider>| p.id() == provider.id) {
                return Err(LinkError::Config { message: format!("linking provider {:?} is configured twice", provider.id) });
            }
            providers.push(Arc::new(Provider::new(provider.clone())?));
        }
        Ok(Linking {
            audit: AuditLog::new(store.clone(), clock.clone()),
            vault: Vault::new(store.clone(), clock.clone(), master),
            store,
            clock,
            providers: Arc::new(providers),
            flow_key: Arc::new(SecretBox::new(Box::new(crypto::derive_key(master, b"passme/linking/flows/v1")))),
            base_url: base_url.trim_end_matches('/').to_string(),
            declared_fields: Arc::new(fields),
        })
    }

    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    pub fn providers(&self) -> impl Iterator<Item = &Provider> {
        self.providers.iter().map(|p| p.as_ref())
    }

    fn provider(&self, id: &str) -> Result<&Provider, LinkError> {
        self.providers.iter().find(|p| p.id() == id).map(|p| p.as_ref()).ok_or_else(|| LinkError::UnknownProvider(id.to_string()))
    }

    /// The name people see for a provider; its id when it is no longer configured.
    pub fn provider_name<'a>(&'a self, id: &'a str) -> &'a str {
        self.provider(id).map_or(id, |p| p.config.name.as_str())
    }

    pub fn callback_url(&self, provider: &str) -> String {
        format!("{}/link/{provider}/callback", self.base_url)
    }

    /// A value only this service can compute from the state: the PKCE verifier and the nonce are
    /// derived, so neither is stored.
    fn derive(&self, what: &str, state: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.flow_key.expose_secret())
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(what.as_bytes());
        mac.update(b"|");
        mac.update(state.as_bytes());
        B64.encode(mac.finalize().into_bytes())
    }

    fn browser_hash(&self, browser_secret: &str) -> String {
        self.derive("browser", browser_secret)
    }

    /// Starts a flow; returns the provider's authorization URL to send the browser to.
    /// `browser_secret` is a value only this browser holds (its CSRF cookie): the callback must
    /// come back with the same.
    pub async fn start(&self, provider_id: &str, intent: Intent, browser_secret: &str) -> Result<String, LinkError> {
        let provider = self.provider(provider_id)?;
        let endpoints = provider.endpoints().await?;
        let state = B64.encode(rand::random::<[u8; 32]>());
        let now = self.clock.now_ms();
        let (intent_name, account_id) = match intent {
            Intent::Link(account) => ("link", Some(account)),
            Intent::SignIn => ("sign_in", None),
        };
        self.store
            .insert_flow(&FlowRow {
                state_hash: hex::encode(Sha256::digest(state.as_bytes())),
                browser_hash: self.browser_hash(browser_secret),
                provider: provider_id.to_string(),
                intent: intent_name.to_string(),
                account_id,
                created_at: now,
                expires_at: now + FLOW_TTL_MS,
            })
            .await?;
        let verifier = self.derive("pkce", &state);
        let challenge = B64.encode(Sha256::digest(verifier.as_bytes()));
        let mut url = url::Url::parse(&endpoints.authorization_endpoint)
            .map_err(|e| LinkError::ProviderUnavailable { provider: provider_id.into(), cause: format!("authorization endpoint: {e}") })?;
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &provider.config.client_id)
                .append_pair("redirect_uri", &self.callback_url(provider_id))
                .append_pair("scope", &provider.config.scopes.join(" "))
                .append_pair("state", &state)
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256");
            if provider.is_oidc() {
                query.append_pair("nonce", &self.derive("nonce", &state));
            }
            if provider.config.scopes.iter().any(|s| s == "offline_access") {
                // OpenID Connect issues a refresh token for offline_access only after consent.
                query.append_pair("prompt", "consent");
            }
        }
        Ok(url.into())
    }

    /// Finishes a flow from the provider's callback.
    pub async fn finish(&self, provider_id: &str, callback: Callback, browser_secret: &str) -> Result<Finished, LinkError> {
        let provider = self.provider(provider_id)?;
        let state = callback.state.filter(|s| !s.is_empty()).ok_or(LinkError::StateMissing)?;
        // Taken whatever happens next: a state works once.
        let flow = self.store.take_flow(&hex::encode(Sha256::digest(state.as_bytes()))).await?.ok_or(LinkError::StateUnknown)?;
        if flow.provider != provider_id {
            return Err(LinkError::StateUnknown);
        }
        let intent = match (flow.intent.as_str(), flow.account_id) {
            ("link", Some(account_id)) => Intent::Link(account_id),
            ("sign_in", None) => Intent::SignIn,
            _ => return Err(LinkError::StateUnknown),
        };
        if !crypto::constant_time_eq(flow.browser_hash.as_bytes(), self.browser_hash(browser_secret).as_bytes()) {
            return Err(LinkError::BrowserMismatch);
        }
        if self.clock.now_ms() > flow.expires_at {
            return Err(LinkError::FlowExpired);
        }
        // RFC 9207: an answer naming another issuer was sent to the wrong client (a mix-up).
        if let (Some(iss), Some(issuer)) = (&callback.iss, &provider.config.issuer)
            && iss != issuer
        {
            return Err(LinkError::MixUp);
        }
        if let Some(error) = callback.error {
            return Err(LinkError::ProviderDenied(error.chars().filter(char::is_ascii_alphanumeric).take(40).collect()));
        }
        let code = callback.code.filter(|c| !c.is_empty()).ok_or(LinkError::StateMissing)?;
        let verifier = self.derive("pkce", &state);
        let redirect_uri = self.callback_url(provider_id);
        let tokens = provider
            .token_request(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &redirect_uri),
                ("code_verifier", &verifier),
            ])
            .await
            .map_err(|refusal| match refusal {
                Refusal::Grant(error) => LinkError::CodeRejected(error),
                Refusal::Unavailable(cause) => LinkError::ProviderUnavailable { provider: provider_id.into(), cause },
            })?;
        let identity = self.identity(provider, &tokens, &self.derive("nonce", &state)).await?;
        let issuer = provider.issuer();
        let now = self.clock.now_ms();
        let existing = self.store.link_by_subject(&issuer, &identity.subject).await?;
        let link = match &intent {
            Intent::Link(account_id) => {
                let account_id = account_id.clone();
                let link = match existing {
                    Some(row) if row.account_id != account_id => return Err(LinkError::SubjectTaken),
                    Some(row) => {
                        self.store.revive_link(&row.id, &account_id, identity.email.as_deref(), identity.email_verified, now).await?;
                        row
                    }
                    None => {
                        let row = LinkRow {
                            id: format!("lnk_{}", hex::encode(rand::random::<[u8; 12]>())),
                            account_id: account_id.clone(),
                            provider: provider_id.to_string(),
                            issuer: issuer.clone(),
                            subject: identity.subject.clone(),
                            email: identity.email.clone(),
                            email_verified: identity.email_verified,
                            linked_at: now,
                            last_used_at: None,
                            needs_consent_at: None,
                            unlinked_at: None,
                        };
                        // Two browsers linking one subject at once: the second insert loses.
                        if !self.store.insert_link(&row).await? {
                            return Err(LinkError::SubjectTaken);
                        }
                        row
                    }
                };
                self.audit_link("link.created", &link).await?;
                link
            }
            Intent::SignIn => match existing {
                // Never by e-mail: a provider's address, verified or not, signs nobody in.
                Some(row) if row.unlinked_at.is_none() => row,
                _ => return Err(LinkError::NotLinked),
            },
        };
        self.store.touch_link(&link.id, identity.email.as_deref(), identity.email_verified, now).await?;
        let replaced = self.store.tokens(&link.id).await?;
        self.store_tokens(provider, &link, &tokens, replaced.as_ref()).await?;
        // A new grant replaces the old one: its refresh token must not stay valid at the provider.
        if let Some(old) = replaced
            && tokens.refresh_token.is_some()
        {
            self.revoke_at_provider(provider, &old).await?;
        }
        self.keep_profile(&link, &identity.claims).await?;
        Ok(match intent {
            Intent::Link(_) => Finished::Linked { account_id: link.account_id, provider: provider_id.to_string() },
            Intent::SignIn => Finished::SignedIn { account_id: link.account_id, provider: provider_id.to_string() },
        })
    }

    async fn audit_link(&self, action: &str, link: &LinkRow) -> Result<(), LinkError> {
        let subject = format!("account:{}", link.account_id);
        self.audit
            .record(AuditEvent {
                actor: &subject,
                action,
                subject: &subject,
                details: json!({ "provider": link.provider, "link": link.id }),
            })
            .await?;
        Ok(())
    }

    /// Who the tokens say the person is: the validated ID token's subject (OpenID Connect) or the
    /// userinfo subject field (OAuth 2.0), with the userinfo claims.
    async fn identity(&self, provider: &Provider, tokens: &TokenResponse, nonce: &str) -> Result<Identity, LinkError> {
        let access = tokens.access_token.clone().map(SecretString::from);
        let userinfo = match &access {
            Some(token) => provider.userinfo(token).await.map_err(|r| r.unavailable(provider.id()))?,
            None => Map::new(),
        };
        let (subject, mut claims) = if provider.is_oidc() {
            let token = tokens.id_token.as_deref().ok_or(LinkError::IdToken(TokenFault::Malformed))?;
            let kid = idtoken::key_id(token);
            let keys = provider.keys_for(kid.as_deref()).await?;
            let expected = Expected {
                issuer: provider.config.issuer.as_deref().unwrap_or_default(),
                client_id: &provider.config.client_id,
                nonce,
                now: self.clock.now_ms() / 1000,
            };
            let verified = idtoken::verify(token, &keys, expected).map_err(|fault| {
                tracing::warn!(provider = provider.id(), fault = fault.name(), "ID token refused");
                LinkError::IdToken(fault)
            })?;
            // Userinfo about someone else is a mix-up (OpenID Connect Core 5.3.2).
            if userinfo.get("sub").is_some_and(|s| s.as_str() != Some(verified.subject.as_str())) {
                return Err(LinkError::IdToken(TokenFault::Subject));
            }
            (verified.subject, verified.claims)
        } else {
            let field = provider.config.subject_field.as_deref().unwrap_or("sub");
            let subject = match userinfo.get(field) {
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => return Err(LinkError::IdToken(TokenFault::Subject)),
            };
            (subject, Map::new())
        };
        claims.extend(userinfo);
        let email = claims.get("email").and_then(Value::as_str).map(str::to_string);
        let email_verified = claims.get("email_verified").and_then(Value::as_bool).unwrap_or(false);
        Ok(Identity { subject, email, email_verified, claims })
    }

    /// Seals and stores what the token endpoint gave; a refresh that brought no new refresh
    /// token keeps the old one.
    /// `previous` is the row these tokens replace, as the caller read it.
    async fn store_tokens(
        &self,
        provider: &Provider,
        link: &LinkRow,
        tokens: &TokenResponse,
        previous: Option<&TokenRow>,
    ) -> Result<(), LinkError> {
        let key = self.vault.active().await?;
        let place = |column| Vault::token_place(&link.id, &link.account_id, provider.id(), column);
        // A new value is sealed; a kept one is re-sealed under the active key with the rest of
        // the row.
        let seal_or_keep = async |column, new: &Option<String>, old: Option<&String>| -> Result<Option<String>, LinkError> {
            Ok(match (new, old) {
                (Some(value), _) => Some(self.vault.seal(&key, place(column), value)),
                (None, Some(blob)) => Some(self.vault.reseal(&key, place(column), blob).await?),
                (None, None) => None,
            })
        };
        let refresh = seal_or_keep("refresh_token", &tokens.refresh_token, previous.and_then(|p| p.refresh_token.as_ref())).await?;
        let id_token = seal_or_keep("id_token", &tokens.id_token, previous.and_then(|p| p.id_token.as_ref())).await?;
        let access_token = seal_or_keep("access_token", &tokens.access_token, None).await?;
        let now = self.clock.now_ms();
        self.store
            .put_tokens(&TokenRow {
                link_id: link.id.clone(),
                account_id: link.account_id.clone(),
                provider: provider.id().to_string(),
                key_id: key.id.clone(),
                id_token,
                access_token,
                refresh_token: refresh,
                access_expires_at: tokens.expires_in.map(|s| now + s.saturating_mul(1000)),
                // The row's version: strictly increasing, so a reader can tell it changed even
                // within one millisecond.
                updated_at: previous.map_or(now, |p| now.max(p.updated_at + 1)),
            })
            .await?;
        Ok(())
    }

    /// A usable access token for the link: refreshed first when expired, one refresh at a time
    /// per link across every process (a lease in the database); a refused refresh marks the link
    /// as needing consent again and deletes the dead tokens.
    pub async fn access_token(&self, link_id: &str) -> Result<SecretString, LinkError> {
        let link = self.store.link(link_id).await?.filter(|l| l.unlinked_at.is_none()).ok_or(LinkError::LinkUnknown)?;
        let provider = self.provider(&link.provider)?;
        let deadline = self.clock.now_ms() + REFRESH_LEASE_MS;
        loop {
            let Some(row) = self.store.tokens(link_id).await? else {
                // Gone (a crash between storing the link and its tokens, or deleted): the person
                // must connect again, and the account page says so.
                self.needs_consent(&link, "no tokens").await?;
                return Err(LinkError::NeedsConsent);
            };
            let now = self.clock.now_ms();
            let place = |column| Vault::token_place(&row.link_id, &row.account_id, &row.provider, column);
            if let Some(blob) = &row.access_token
                && row.access_expires_at.is_none_or(|at| at > now + REFRESH_MARGIN_MS)
            {
                return Ok(self.vault.open(place("access_token"), blob).await?);
            }
            let Some(refresh_blob) = &row.refresh_token else {
                self.needs_consent(&link, "no refresh token").await?;
                return Err(LinkError::NeedsConsent);
            };
            if !self.store.take_refresh_lease(link_id, row.updated_at, now, now + REFRESH_LEASE_MS).await? {
                // Another refresh is running, or has just replaced what we read: wait for (or
                // read) its result rather than spend the refresh token twice (a rotating
                // provider would revoke the grant).
                if self.clock.now_ms() > deadline {
                    return Err(LinkError::ProviderUnavailable {
                        provider: link.provider.clone(),
                        cause: "a refresh is still running".into(),
                    });
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            let refresh = self.vault.open(place("refresh_token"), refresh_blob).await?;
            let result = provider.token_request(&[("grant_type", "refresh_token"), ("refresh_token", refresh.expose_secret())]).await;
            return match result {
                Ok(tokens) => {
                    self.store_tokens(provider, &link, &tokens, Some(&row)).await?;
                    tokens.access_token.map(SecretString::from).ok_or(LinkError::NeedsConsent)
                }
                Err(Refusal::Grant(error)) => {
                    self.needs_consent(&link, &error).await?;
                    Err(LinkError::NeedsConsent)
                }
                Err(Refusal::Unavailable(cause)) => {
                    self.store.release_refresh_lease(link_id).await?;
                    Err(LinkError::ProviderUnavailable { provider: link.provider.clone(), cause })
                }
            };
        }
    }

    async fn needs_consent(&self, link: &LinkRow, why: &str) -> Result<(), LinkError> {
        tracing::info!(provider = %link.provider, link = %link.id, why = %why.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ' ').collect::<String>(), "linked account needs consent again");
        self.store.delete_tokens(&link.id).await?;
        self.store.mark_link_needs_consent(&link.id, self.clock.now_ms()).await?;
        self.audit_link("link.needs_consent", link).await
    }

    /// Reads the person's profile at the provider again (with a fresh access token) and keeps
    /// the declared fields, when they consented.
    pub async fn refresh_profile(&self, link_id: &str) -> Result<(), LinkError> {
        let link = self.store.link(link_id).await?.filter(|l| l.unlinked_at.is_none()).ok_or(LinkError::LinkUnknown)?;
        let provider = self.provider(&link.provider)?;
        let token = self.access_token(link_id).await?;
        let claims = provider.userinfo(&token).await.map_err(|r| r.unavailable(provider.id()))?;
        self.keep_profile(&link, &claims).await
    }

    /// Keeps the declared public profile fields this provider is configured for, and only with
    /// the person's personalisation consent; anything else the provider sent is dropped here.
    async fn keep_profile(&self, link: &LinkRow, claims: &Map<String, Value>) -> Result<(), LinkError> {
        if self.store.account_consent(&link.account_id, PERSONALISE).await?.is_none() {
            return Ok(());
        }
        let provider = self.provider(&link.provider)?;
        let kept: Map<String, Value> = provider
            .config
            .profile_fields
            .iter()
            .filter(|f| self.declared_fields.contains(f))
            .filter_map(|f| claims.get(f).filter(|v| is_plain(v)).map(|v| (f.clone(), v.clone())))
            .collect();
        let text = serde_json::to_string(&kept).map_err(|e| CoreError::broken("partner profile", e))?;
        self.store.put_partner_profile(&link.id, &link.account_id, &link.provider, &text, self.clock.now_ms()).await?;
        Ok(())
    }

    /// Unlinks: revokes the refresh (and access) token at the provider where it supports
    /// revocation, then deletes the tokens and the partner data. Returns whether the provider
    /// confirmed the revocation. A provider that cannot be reached does not keep the link alive.
    pub async fn unlink(&self, account_id: &AccountId, link_id: &str) -> Result<bool, LinkError> {
        let link = self
            .store
            .link(link_id)
            .await?
            .filter(|l| &l.account_id == account_id && l.unlinked_at.is_none())
            .ok_or(LinkError::LinkUnknown)?;
        let mut revoked = false;
        if let (Ok(provider), Some(row)) = (self.provider(&link.provider), self.store.tokens(link_id).await?) {
            revoked = self.revoke_at_provider(provider, &row).await?;
        }
        if !self.store.unlink(link_id, account_id, self.clock.now_ms()).await? {
            return Err(LinkError::LinkUnknown);
        }
        self.audit_link("link.removed", &link).await?;
        Ok(revoked)
    }

    /// Unlinks every link of the account (closing or erasing it): revoked at each provider,
    /// deleted here. Returns how many.
    pub async fn unlink_all(&self, account_id: &AccountId) -> Result<usize, LinkError> {
        let links = self.store.links_of(account_id).await?;
        for link in &links {
            self.unlink(account_id, &link.id).await?;
        }
        Ok(links.len())
    }

    /// Revokes a token row's refresh and access tokens where the provider supports it; true when
    /// it confirmed. Failures are logged: the tokens are deleted here in any case.
    async fn revoke_at_provider(&self, provider: &Provider, row: &TokenRow) -> Result<bool, LinkError> {
        let mut revoked = false;
        for (column, blob) in [("refresh_token", &row.refresh_token), ("access_token", &row.access_token)] {
            let Some(blob) = blob else { continue };
            let token = self.vault.open(Vault::token_place(&row.link_id, &row.account_id, &row.provider, column), blob).await?;
            match provider.revoke(&token, column).await {
                Ok(done) => revoked |= done,
                Err(Refusal::Grant(cause) | Refusal::Unavailable(cause)) => {
                    tracing::warn!(provider = %row.provider, %cause, "revoking a token at the provider failed; deleting it here anyway");
                }
            }
        }
        Ok(revoked)
    }

    /// The account's links with what each provider sent.
    pub async fn links(&self, account_id: &AccountId) -> Result<Vec<LinkView>, LinkError> {
        let profiles: HashMap<String, (String, i64)> =
            self.store.partner_profiles_of(account_id).await?.into_iter().map(|p| (p.link_id, (p.claims, p.received_at))).collect();
        let mut out = Vec::new();
        for link in self.store.links_of(account_id).await? {
            let provider_name = self.provider_name(&link.provider).to_string();
            let profile = profiles.get(&link.id).map(|(claims, at)| {
                let fields: Map<String, Value> = serde_json::from_str(claims).unwrap_or_default();
                (fields.into_iter().map(|(k, v)| (k, display(&v))).collect(), *at)
            });
            out.push(LinkView { link, provider_name, profile });
        }
        Ok(out)
    }
}

struct Identity {
    subject: String,
    email: Option<String>,
    email_verified: bool,
    claims: Map<String, Value>,
}

/// A profile value worth keeping: text, a number, a flag, or a list of texts; never a nested
/// object (which could carry anything).
fn is_plain(value: &Value) -> bool {
    match value {
        Value::String(s) => s.len() <= 200,
        Value::Number(_) | Value::Bool(_) => true,
        Value::Array(items) => items.len() <= 20 && items.iter().all(|i| matches!(i, Value::String(s) if s.len() <= 100)),
        _ => false,
    }
}

fn display(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}
