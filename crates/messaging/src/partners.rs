//! Partner marketing (the policy's `marketing_partners`): an audience for a declared partner holds
//! only people who consented to partner marketing and whose address is not suppressed, and only as
//! SHA-256 of the normalised address. Every export is recorded (who, when, how many) with its
//! members, so that a withdrawal removes the person from every kept audience (and so from a
//! delivery not yet made) and asks each partner that received them to delete them. Deliveries
//! are signed like the payment provider's webhooks: `PassMe-Signature: t=<unix>,v1=<hex HMAC-SHA-256
//! of "t.body">`, with the export id as `Idempotency-Key`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use passme_core::CoreError;
use passme_core::audit::{AuditEvent, AuditLog};
use passme_core::clock::SharedClock;
use passme_core::config::PartnerConfig;
use passme_core::jobs::{EnqueueOptions, Handlers, JobError, JobPayload, JobQueue};
use passme_store::{PartnerExportRow, Store};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;

use crate::endpoint::Guard;
use crate::prefs::{BOUNCED, COMPLAINED, UNSUBSCRIBED};
use crate::{Channel, Topic, address_hash};

const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct Partner {
    pub id: String,
    pub name: String,
    endpoint: url::Url,
    secret: SecretString,
}

/// Sends an export to its partner.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverExport {
    pub export_id: String,
}

impl JobPayload for DeliverExport {
    const KIND: &'static str = "messaging.partner_export";
}

/// Asks a partner to delete a person who withdrew.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgetAtPartner {
    pub partner: String,
    pub email_hash: String,
}

impl JobPayload for ForgetAtPartner {
    const KIND: &'static str = "messaging.partner_forget";
    const FORGET_WHEN_DONE: bool = true;
}

#[derive(Debug, Clone)]
pub struct Partners {
    by_id: Arc<HashMap<String, Partner>>,
    store: Store,
    clock: SharedClock,
    queue: JobQueue,
    guard: Guard,
    audit: AuditLog,
}

/// `t=<unix>,v1=<hex>` over `"{t}.{body}"`.
pub fn signature(secret: &[u8], unix: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(unix.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={unix},v1={}", hex::encode(mac.finalize().into_bytes()))
}

impl Partners {
    pub fn new(configs: &[PartnerConfig], store: Store, clock: SharedClock, queue: JobQueue, guard: Guard) -> Result<Partners, CoreError> {
        let mut by_id = HashMap::new();
        for c in configs {
            let endpoint = guard
                .check(&c.endpoint)
                .map_err(|e| CoreError::broken("messaging.partners.endpoint", format!("{}: {}", c.id, e.code())))?;
            let secret = std::fs::read_to_string(&c.secret_file)
                .map_err(|e| CoreError::broken("messaging.partners.secret_file", format!("{}: {e}", c.secret_file.display())))?;
            let secret = secret.trim().to_string();
            if secret.len() < 32 {
                return Err(CoreError::broken(
                    "messaging.partners.secret_file",
                    format!("{}: the key must be at least 32 characters", c.id),
                ));
            }
            by_id.insert(c.id.clone(), Partner { id: c.id.clone(), name: c.name.clone(), endpoint, secret: SecretString::from(secret) });
        }
        Ok(Partners { by_id: Arc::new(by_id), audit: AuditLog::new(store.clone(), clock.clone()), store, clock, queue, guard })
    }

    pub fn list(&self) -> Vec<&Partner> {
        let mut all: Vec<&Partner> = self.by_id.values().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    fn partner(&self, id: &str) -> Result<&Partner, CoreError> {
        self.by_id.get(id).ok_or(CoreError::NotFound { code: "partner_unknown" })
    }

    /// Builds and records an audience for `partner` and queues its delivery.
    pub async fn export(&self, staff: &str, partner: &str) -> Result<PartnerExportRow, CoreError> {
        let partner = self.partner(partner)?;
        let mut audience = Vec::new();
        for person in self.store.recipients_with_pref(Topic::Partner.id(), Channel::Audience.id()).await? {
            let hash = address_hash(&person.email);
            if matches!(self.store.suppression(&hash).await?.as_deref(), Some(BOUNCED | COMPLAINED | UNSUBSCRIBED)) {
                continue;
            }
            audience.push((person.account_id, hash));
        }
        let export = PartnerExportRow {
            id: passme_core::crypto::random_id::<10>("exp_"),
            partner: partner.id.clone(),
            requested_by: staff.to_string(),
            created_at: self.clock.now_ms(),
            people: audience.len() as i64,
            status: "pending".into(),
            delivered_at: None,
        };
        self.store.insert_partner_export(&export, &audience).await?;
        self.audit
            .record(AuditEvent {
                actor: staff,
                action: "messaging.partner_export",
                subject: &export.id,
                details: json!({ "partner": partner.id, "people": export.people }),
            })
            .await?;
        let options = EnqueueOptions { id: Some(format!("partner-export:{}", export.id)), ..Default::default() };
        self.queue.push(&DeliverExport { export_id: export.id.clone() }, options).await?;
        Ok(export)
    }

    /// Queues a deletion request to each partner that received the person.
    pub async fn forget(&self, shared: &[(String, String)]) -> Result<(), CoreError> {
        for (partner, email_hash) in shared {
            let options = EnqueueOptions { id: Some(format!("partner-forget:{partner}:{email_hash}")), ..Default::default() };
            self.queue.push(&ForgetAtPartner { partner: partner.clone(), email_hash: email_hash.clone() }, options).await?;
        }
        Ok(())
    }

    pub async fn exports(&self, partner: &str) -> Result<Vec<PartnerExportRow>, CoreError> {
        Ok(self.store.recent_partner_exports(partner).await?)
    }

    async fn post(&self, partner: &Partner, idempotency_key: &str, body: &serde_json::Value) -> Result<(), CoreError> {
        let body = serde_json::to_vec(body).map_err(|e| CoreError::broken("partner body", e))?;
        let unix = self.clock.now_ms() / 1000;
        let client = self.guard.client_for(partner.endpoint.as_str(), TIMEOUT).await?;
        let response = client
            .post(partner.endpoint.clone())
            .header("content-type", "application/json")
            .header("PassMe-Signature", signature(partner.secret.expose_secret().as_bytes(), unix, &body))
            .header("Idempotency-Key", idempotency_key)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(partner = %partner.id, error = %e.without_url(), "partner unreachable");
                CoreError::Unavailable { code: "partner_unreachable" }
            })?;
        if response.status().is_success() {
            Ok(())
        } else {
            tracing::warn!(partner = %partner.id, status = response.status().as_u16(), "partner refused a delivery");
            Err(CoreError::Unavailable { code: "partner_refused" })
        }
    }

    /// Delivers an export: its members as they are now (a person who withdrew meanwhile is gone).
    pub async fn deliver(&self, export_id: &str) -> Result<(), CoreError> {
        let Some(export) = self.store.partner_export(export_id).await? else { return Ok(()) };
        if export.status == "delivered" {
            return Ok(());
        }
        let partner = self.partner(&export.partner)?;
        let hashes = self.store.partner_audience(export_id).await?;
        let body =
            json!({ "type": "audience", "export_id": export.id, "created_at": export.created_at, "hash": "sha256", "members": hashes });
        self.post(partner, &export.id, &body).await?;
        self.store.set_partner_export_status(export_id, "delivered", self.clock.now_ms()).await?;
        Ok(())
    }

    pub async fn request_deletion(&self, job: &ForgetAtPartner) -> Result<(), CoreError> {
        let Ok(partner) = self.partner(&job.partner) else {
            tracing::warn!(partner = %job.partner, "a deletion request for a partner no longer configured");
            return Ok(());
        };
        let key = format!("forget-{}", &job.email_hash[..job.email_hash.len().min(32)]);
        self.post(partner, &key, &json!({ "type": "deletion", "hash": "sha256", "members": [job.email_hash] })).await
    }

    pub fn register(self, handlers: &mut Handlers) {
        let partners = self.clone();
        handlers.on(move |job: DeliverExport| {
            let partners = partners.clone();
            async move { partners.deliver(&job.export_id).await.map_err(JobError::from) }
        });
        handlers.on(move |job: ForgetAtPartner| {
            let partners = self.clone();
            async move { partners.request_deletion(&job).await.map_err(JobError::from) }
        });
    }
}
