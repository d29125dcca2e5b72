//! Web Push (RFC 8030) with VAPID (RFC 8292) and aes128gcm payload encryption (RFC 8291), built
//! by `web-push-native` and sent with reqwest. The VAPID key pair is created once, kept in the
//! database with its private half sealed by the master key, so every instance signs with the same
//! key. A browser's keys are sealed at rest too. The push service's answer decides what happens:
//! 404/410 deletes the subscription, 413 is a message too big, 429 and 5xx are tried again later.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use passme_core::CoreError;
use passme_core::clock::SharedClock;
use passme_core::crypto::{AES_256_GCM, NONCE_LEN, derive_key, open, seal};
use passme_store::{AccountId, PushSubscriptionRow, Store, StoreError};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;
use web_push_native::jwt_simple::algorithms::{ECDSAP256PublicKeyLike as _, ES256KeyPair};
use web_push_native::p256::PublicKey;
use web_push_native::{Auth, WebPushBuilder};

use crate::endpoint::Guard;

/// The most plaintext one push message may carry (RFC 8291: 4096 bytes of record, less the
/// header and padding).
pub const MAX_PAYLOAD: usize = 3993;
const VAPID: &str = "vapid";
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// The most devices one person may register.
pub const MAX_DEVICES: usize = 20;

/// A browser's subscription as `PushSubscription.toJSON()` gives it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    pub endpoint: String,
    pub keys: SubscriptionKeys,
    #[serde(default, rename = "expirationTime")]
    pub expiration_time: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionKeys {
    pub p256dh: String,
    pub auth: String,
}

/// A registered device, as the account page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Device {
    pub id: String,
    pub device: String,
    pub created_at: i64,
    pub last_sent_at: Option<i64>,
}

/// How one push went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    Delivered,
    /// The push service no longer knows the subscription (404/410): it was deleted.
    Gone,
    /// The push service refused the size (413).
    TooLarge,
    /// Worth another attempt: 429 (after `retry_after_ms` if it said), 5xx, or no answer.
    Later {
        status: Option<u16>,
        retry_after_ms: Option<i64>,
    },
    /// Refused for another reason (a 4xx): another attempt would be refused too.
    Refused(u16),
}

struct Vapid {
    key: ES256KeyPair,
    public: String,
}

#[derive(Clone)]
pub struct Push {
    store: Store,
    clock: SharedClock,
    seal_key: [u8; 32],
    contact: String,
    guard: Guard,
    vapid: Arc<OnceCell<Vapid>>,
}

impl std::fmt::Debug for Push {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Push").field("contact", &self.contact).finish_non_exhaustive()
    }
}

fn decode_b64url(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

impl Push {
    pub fn new(store: Store, clock: SharedClock, master_key: &[u8; 32], contact: &str, guard: Guard) -> Result<Push, CoreError> {
        if !(contact.starts_with("mailto:") || contact.starts_with("https://")) {
            return Err(CoreError::broken("messaging.push_contact", "must be a mailto: or https: address"));
        }
        Ok(Push {
            store,
            clock,
            seal_key: derive_key(master_key, b"passme/messaging/seal/v1"),
            contact: contact.to_string(),
            guard,
            vapid: Arc::new(OnceCell::new()),
        })
    }

    fn seal(&self, context: &str, plain: &[u8]) -> String {
        let (nonce, sealed) = seal(&AES_256_GCM, &self.seal_key, context.as_bytes(), plain);
        format!("v1:{}:{}", STANDARD_NO_PAD.encode(nonce), STANDARD_NO_PAD.encode(sealed))
    }

    fn open(&self, context: &str, blob: &str) -> Option<Vec<u8>> {
        let mut parts = blob.splitn(3, ':');
        let (Some("v1"), Some(nonce), Some(sealed)) = (parts.next(), parts.next(), parts.next()) else { return None };
        let nonce: [u8; NONCE_LEN] = STANDARD_NO_PAD.decode(nonce).ok()?.try_into().ok()?;
        open(&AES_256_GCM, &self.seal_key, context.as_bytes(), nonce, STANDARD_NO_PAD.decode(sealed).ok()?)
    }

    /// The VAPID key pair: the stored one, or a new one that every instance then agrees on (the
    /// first to store it wins; the others read it back).
    async fn vapid(&self) -> Result<&Vapid, CoreError> {
        self.vapid
            .get_or_try_init(|| async {
                if self.store.signing_key(VAPID).await?.is_none() {
                    let key = ES256KeyPair::generate();
                    let public = URL_SAFE_NO_PAD.encode(key.public_key().public_key().to_bytes_uncompressed());
                    let sealed = self.seal("signing_keys|vapid", &key.to_bytes());
                    self.store.insert_signing_key(VAPID, &public, &sealed, self.clock.now_ms()).await?;
                }
                let (public, sealed) =
                    self.store.signing_key(VAPID).await?.ok_or(CoreError::broken("vapid key", "vanished after insert"))?;
                let private =
                    self.open("signing_keys|vapid", &sealed).ok_or(CoreError::broken("vapid key", "does not open with this master key"))?;
                let key = ES256KeyPair::from_bytes(&private).map_err(|e| CoreError::broken("vapid key", e))?;
                Ok::<_, CoreError>(Vapid { key, public })
            })
            .await
    }

    /// The VAPID public key (uncompressed P-256 point, base64url) browsers subscribe with.
    pub async fn public_key(&self) -> Result<String, CoreError> {
        Ok(self.vapid().await?.public.clone())
    }

    /// Registers a browser's subscription for the person; the same endpoint again is the same
    /// device. An endpoint another person registered is refused, not moved.
    pub async fn subscribe(&self, account_id: &AccountId, sub: &Subscription, device: &str) -> Result<String, CoreError> {
        self.guard.check(&sub.endpoint)?;
        let p256dh = decode_b64url(&sub.keys.p256dh).ok_or(CoreError::input("push_keys_invalid"))?;
        let auth = decode_b64url(&sub.keys.auth).ok_or(CoreError::input("push_keys_invalid"))?;
        if p256dh.len() != 65 || PublicKey::from_sec1_bytes(&p256dh).is_err() || auth.len() != 16 {
            return Err(CoreError::input("push_keys_invalid"));
        }
        if let Some(existing) = self.store.push_subscription_by_endpoint(&sub.endpoint).await? {
            return if existing.account_id == *account_id {
                Ok(existing.id)
            } else {
                Err(CoreError::Conflict { code: "push_endpoint_taken" })
            };
        }
        if self.store.push_subscriptions_of(account_id).await?.len() >= MAX_DEVICES {
            return Err(CoreError::Conflict { code: "push_too_many_devices" });
        }
        let id = passme_core::crypto::random_id::<12>("push_");
        let keys = serde_json::to_vec(&sub.keys).map_err(|e| CoreError::broken("push keys", e))?;
        let device: String = device.chars().filter(|c| !c.is_control()).take(80).collect();
        let row = PushSubscriptionRow {
            sealed_keys: self.seal(&format!("push_subscriptions|sealed_keys|{id}|{account_id}"), &keys),
            id: id.clone(),
            account_id: account_id.clone(),
            endpoint: sub.endpoint.clone(),
            device: if device.trim().is_empty() { "?".into() } else { device },
            created_at: self.clock.now_ms(),
            last_sent_at: None,
        };
        match self.store.insert_push_subscription(&row).await {
            Ok(()) => Ok(id),
            // Two registrations of one endpoint at once: the other won.
            Err(StoreError::Conflict) => match self.store.push_subscription_by_endpoint(&sub.endpoint).await? {
                Some(existing) if existing.account_id == *account_id => Ok(existing.id),
                _ => Err(CoreError::Conflict { code: "push_endpoint_taken" }),
            },
            Err(e) => Err(e.into()),
        }
    }

    pub async fn unsubscribe(&self, account_id: &AccountId, id: &str) -> Result<bool, CoreError> {
        Ok(self.store.delete_push_subscription(id, Some(account_id)).await?)
    }

    pub async fn devices(&self, account_id: &AccountId) -> Result<Vec<Device>, CoreError> {
        Ok(self
            .store
            .push_subscriptions_of(account_id)
            .await?
            .into_iter()
            .map(|s| Device { id: s.id, device: s.device, created_at: s.created_at, last_sent_at: s.last_sent_at })
            .collect())
    }

    /// Encrypts and sends one message to one device. A payload over [`MAX_PAYLOAD`] is refused
    /// before anything is sent.
    pub async fn send(&self, sub: &PushSubscriptionRow, payload: &[u8], topic: Option<&str>) -> Result<Pushed, CoreError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(CoreError::input("push_payload_too_large"));
        }
        let keys = self
            .open(&format!("push_subscriptions|sealed_keys|{}|{}", sub.id, sub.account_id), &sub.sealed_keys)
            .ok_or(CoreError::broken("push keys", "do not open"))?;
        let keys: SubscriptionKeys = serde_json::from_slice(&keys).map_err(|e| CoreError::broken("push keys", e))?;
        let (Some(p256dh), Some(auth)) = (decode_b64url(&keys.p256dh), decode_b64url(&keys.auth)) else {
            return Err(CoreError::broken("push keys", "not base64url"));
        };
        let public = PublicKey::from_sec1_bytes(&p256dh).map_err(|e| CoreError::broken("push keys", e))?;
        let client = self.guard.client_for(&sub.endpoint, SEND_TIMEOUT).await?;
        let vapid = self.vapid().await?;
        let endpoint = sub.endpoint.parse().map_err(|_| CoreError::input("endpoint_invalid"))?;
        let request = WebPushBuilder::new(endpoint, public, Auth::clone_from_slice(&auth))
            .with_valid_duration(Duration::from_secs(24 * 3600))
            .with_vapid(&vapid.key, &self.contact)
            .build(payload.to_vec())
            .map_err(|e| CoreError::broken("push request", e))?;
        let mut request = reqwest::Request::try_from(request).map_err(|e| CoreError::broken("push request", e))?;
        if let Some(topic) = topic.and_then(|t| reqwest::header::HeaderValue::from_str(t).ok()) {
            // Replaces an undelivered earlier copy of the same message at the push service.
            request.headers_mut().insert("Topic", topic);
        }
        let response = match client.execute(request).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(subscription = %sub.id, error = %e.without_url(), "push service unreachable");
                return Ok(Pushed::Later { status: None, retry_after_ms: None });
            }
        };
        let status = response.status().as_u16();
        Ok(match status {
            200..=299 => {
                self.store.mark_push_sent(&sub.id, self.clock.now_ms()).await?;
                Pushed::Delivered
            }
            404 | 410 => {
                self.store.delete_push_subscription(&sub.id, None).await?;
                Pushed::Gone
            }
            413 => Pushed::TooLarge,
            429 | 500..=599 => {
                let retry_after_ms = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<i64>().ok())
                    .map(|secs| secs.clamp(0, 86_400) * 1000);
                Pushed::Later { status: Some(status), retry_after_ms }
            }
            other => Pushed::Refused(other),
        })
    }
}
