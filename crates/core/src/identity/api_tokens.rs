//! Personal access tokens: let the product call the API as a user. `pm_` plus 256 random bits,
//! shown once; stored as SHA-256; scoped; revocable; never valid for anything outside their scopes.

use passme_store::AccountId;
use passme_store::{ApiTokenRow, Store};
use secrecy::{ExposeSecret, SecretString};

use super::{new_token, token_hash, well_formed};
use crate::CoreError;
use crate::clock::SharedClock;

pub const PREFIX: &str = "pm_";
/// Read who the user is and what they chose (`GET /api/v1/me`).
pub const SCOPE_ME_READ: &str = "me:read";
/// Read the analytics reports (`GET /api/v1/analytics/report`); the account must be an analyst.
pub const SCOPE_ANALYTICS_READ: &str = "analytics:read";
pub const SCOPES: &[&str] = &[SCOPE_ME_READ, SCOPE_ANALYTICS_READ];
const NAME_MAX: usize = 80;

#[derive(Debug, Clone)]
pub struct ApiTokens {
    store: Store,
    clock: SharedClock,
}

/// Who a presented token acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    pub token_id: String,
    pub account_id: AccountId,
    pub scopes: Vec<String>,
}

impl ApiTokens {
    pub fn new(store: Store, clock: SharedClock) -> ApiTokens {
        ApiTokens { store, clock }
    }

    /// Creates a token; the returned secret is shown to the user once and never stored.
    pub async fn create(&self, account_id: &AccountId, name: &str, scopes: &[&str]) -> Result<SecretString, CoreError> {
        let name: String = name.chars().filter(|c| !c.is_control()).take(NAME_MAX).collect::<String>().trim().to_string();
        if name.is_empty() {
            return Err(CoreError::input("token_name_missing"));
        }
        if scopes.is_empty() || scopes.iter().any(|s| !SCOPES.contains(s)) {
            return Err(CoreError::input("token_scope_invalid"));
        }
        let secret = new_token();
        let row = ApiTokenRow {
            id: token_hash(&secret),
            account_id: account_id.clone(),
            name,
            scopes: scopes.join(" "),
            created_at: self.clock.now_ms(),
            last_used_at: None,
            revoked_at: None,
        };
        self.store.insert_api_token(&row).await?;
        Ok(SecretString::from(format!("{PREFIX}{secret}")))
    }

    /// The grant behind a presented token, or `None` (malformed, unknown, revoked).
    pub async fn authenticate(&self, presented: &SecretString) -> Result<Option<TokenGrant>, CoreError> {
        let Some(secret) = presented.expose_secret().strip_prefix(PREFIX) else { return Ok(None) };
        if !well_formed(secret) {
            return Ok(None);
        }
        let Some(row) = self.store.api_token(&token_hash(secret)).await? else { return Ok(None) };
        if row.revoked_at.is_some() {
            return Ok(None);
        }
        self.store.touch_api_token(&row.id, self.clock.now_ms()).await?;
        Ok(Some(TokenGrant { token_id: row.id, account_id: row.account_id, scopes: row.scopes.split(' ').map(str::to_string).collect() }))
    }

    pub async fn list(&self, account_id: &AccountId) -> Result<Vec<ApiTokenRow>, CoreError> {
        Ok(self.store.api_tokens_of(account_id).await?)
    }

    pub async fn revoke(&self, account_id: &AccountId, token_id: &str) -> Result<bool, CoreError> {
        Ok(self.store.revoke_api_token(account_id, token_id, self.clock.now_ms()).await?)
    }
}
