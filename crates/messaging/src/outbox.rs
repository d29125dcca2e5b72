//! The notification outbox. A message is a row in the message log (who, which template, which
//! channel, how it went; never the body) and a job, stored in one transaction under an id derived
//! from the message's idempotency key, so queueing the same message twice queues it once. The
//! worker decides at sending time, in this order: the suppression list (it wins over every
//! choice), then the person's choice (consent, for marketing), then it renders the words in the
//! person's language and sends. The message id travels as the e-mail's `Message-ID` and the push
//! message's `Topic`, so a receiver can tell a retry from a new message.

use std::sync::Arc;

use passme_core::CoreError;
use passme_core::clock::SharedClock;
use passme_core::jobs::{Handlers, JobError, JobPayload};
use passme_core::mail::{MailFailure, Mailer, OutgoingMail};
use passme_messages::{Lang, TextsOf};
use passme_store::{AccountId, CampaignRow, Job, NewJob, NewMessage, Store};
use serde::{Deserialize, Serialize};

use crate::prefs::{BOUNCED, COMPLAINED, Preferences, UNSUBSCRIBED};
use crate::push::{Push, Pushed};
use crate::{Channel, Topic, address_hash};

pub const SEND_JOB: &str = "messaging.send";
/// Messages have a queue of their own, so a big announcement does not hold up account mail.
pub const QUEUE: &str = passme_core::jobs::MESSAGES_QUEUE;

/// What a message says. The words come from the message catalogue or, for an announcement,
/// from what staff wrote in both languages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "notice", rename_all = "snake_case", deny_unknown_fields)]
pub enum Notice {
    /// A staff announcement: service, maintenance or marketing.
    Campaign { campaign_id: String },
    /// A payment for the subscription failed.
    PaymentFailed,
    /// The double opt-in mail for news and offers.
    ConfirmMarketing { grant_id: String },
}

impl Notice {
    /// The template name in the message log.
    pub fn template(&self) -> &'static str {
        match self {
            Notice::Campaign { .. } => "campaign",
            Notice::PaymentFailed => "payment_failed",
            Notice::ConfirmMarketing { .. } => "confirm_marketing",
        }
    }

    fn campaign_id(&self) -> Option<String> {
        match self {
            Notice::Campaign { campaign_id } => Some(campaign_id.clone()),
            _ => None,
        }
    }

    /// Sent whatever the person chose for the topic: the message answers their own request or
    /// concerns their contract. The suppression list still wins.
    fn essential(&self) -> bool {
        !matches!(self, Notice::Campaign { .. })
    }
}

/// One message's job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    pub id: String,
    pub account_id: AccountId,
    pub channel: Channel,
    /// The push subscription, for a push message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    pub notice: Notice,
}

impl JobPayload for SendMessage {
    const KIND: &'static str = SEND_JOB;
}

/// The messages that reach a person about `notice` on `channels`, given their push devices.
pub fn messages_for(
    key: &str,
    account_id: &AccountId,
    notice: &Notice,
    channels: &[Channel],
    devices: &[String],
) -> Result<Vec<Outgoing>, CoreError> {
    let mut out = Vec::new();
    for &channel in channels {
        match channel {
            Channel::Email => out.push(Outgoing {
                key: format!("{key}:{account_id}:email"),
                account_id: account_id.clone(),
                channel,
                device: None,
                notice: notice.clone(),
            }),
            Channel::Push => out.extend(devices.iter().map(|device| Outgoing {
                key: format!("{key}:{account_id}:push:{device}"),
                account_id: account_id.clone(),
                channel,
                device: Some(device.clone()),
                notice: notice.clone(),
            })),
            Channel::Audience => return Err(CoreError::input("message_channel_unknown")),
        }
    }
    Ok(out)
}

pub use passme_core::mail::message_id;

/// A message to queue: its idempotency key says what makes it this message (the announcement
/// and the person, the invoice, the grant) so that queueing it again is a no-op.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub key: String,
    pub account_id: AccountId,
    pub channel: Channel,
    pub device: Option<String>,
    pub notice: Notice,
}

impl Outgoing {
    fn rows(&self, max_attempts: i64, now: i64) -> Result<(NewMessage, NewJob), CoreError> {
        let id = message_id(&self.key);
        let payload = SendMessage {
            id: id.clone(),
            account_id: self.account_id.clone(),
            channel: self.channel,
            device: self.device.clone(),
            notice: self.notice.clone(),
        };
        let message = NewMessage {
            id: id.clone(),
            account_id: Some(self.account_id.clone()),
            campaign_id: self.notice.campaign_id(),
            channel: self.channel.id().into(),
            template: self.notice.template().into(),
        };
        let job = NewJob {
            id: format!("job_{id}"),
            queue: QUEUE.into(),
            kind: SEND_JOB.into(),
            payload: serde_json::to_string(&payload).map_err(|e| CoreError::broken("message payload", e))?,
            max_attempts,
            run_at: now,
        };
        Ok((message, job))
    }
}

#[derive(Debug, Clone)]
pub struct Outbox {
    store: Store,
    clock: SharedClock,
    mailer: Arc<Mailer>,
    push: Push,
    prefs: Preferences,
    base_url: String,
    /// Announcements being sent, by id: their text never changes, and every message of one needs
    /// it. A few at a time; the oldest goes first.
    campaigns: Arc<std::sync::Mutex<Vec<Arc<CampaignRow>>>>,
}

/// Announcements kept in memory while their messages go out.
const CAMPAIGN_CACHE: usize = 8;

/// How many attempts a message gets: about a day with the queue's doubling backoff.
pub const MAX_ATTEMPTS: i64 = 12;

impl Outbox {
    pub fn new(store: Store, clock: SharedClock, mailer: Arc<Mailer>, push: Push, prefs: Preferences, base_url: &str) -> Outbox {
        Outbox { store, clock, mailer, push, prefs, base_url: base_url.trim_end_matches('/').to_string(), campaigns: Arc::default() }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn prefs(&self) -> &Preferences {
        &self.prefs
    }

    /// Queues messages in one transaction; returns how many were new.
    pub async fn enqueue(&self, messages: &[Outgoing]) -> Result<u64, CoreError> {
        let now = self.clock.now_ms();
        let rows = messages.iter().map(|m| m.rows(MAX_ATTEMPTS, now)).collect::<Result<Vec<_>, _>>()?;
        Ok(self.store.enqueue_messages(&rows, now).await?)
    }

    /// The messages that reach a person about `notice` on `channels`: one per e-mail, one per
    /// registered device for push. `key` identifies the occasion (an invoice, an announcement).
    pub async fn for_person(
        &self,
        key: &str,
        account_id: &AccountId,
        notice: &Notice,
        channels: &[Channel],
    ) -> Result<Vec<Outgoing>, CoreError> {
        let devices: Vec<String> = if channels.contains(&Channel::Push) {
            self.store.push_subscriptions_of(account_id).await?.into_iter().map(|d| d.id).collect()
        } else {
            Vec::new()
        };
        messages_for(key, account_id, notice, channels, &devices)
    }

    /// Queues a notice to one person; a marketing message to someone who has not consented is
    /// refused here, and logged as refused (the count of such attempts is the number of those
    /// log lines).
    pub async fn notify(&self, key: &str, account_id: &AccountId, notice: Notice, channels: &[Channel]) -> Result<u64, CoreError> {
        let messages = self.for_person(key, account_id, &notice, channels).await?;
        self.enqueue(&messages).await
    }

    /// How many messages were refused for want of consent, fleet-wide.
    pub async fn refused_without_consent(&self) -> Result<i64, CoreError> {
        Ok(self.store.count_messages("refused", Some("no_consent")).await?)
    }

    pub fn register(self, handlers: &mut Handlers) {
        handlers.register(SEND_JOB, move |job: Job| {
            let outbox = self.clone();
            async move {
                let message: SendMessage = serde_json::from_str(&job.payload).map_err(|e| JobError::Payload(e.to_string()))?;
                let last_attempt = job.attempts >= job.max_attempts;
                outbox.deliver(&message, last_attempt).await
            }
        });
    }

    async fn campaign(&self, id: &str) -> Result<Option<Arc<CampaignRow>>, CoreError> {
        let cached =
            self.campaigns.lock().map_err(|_| CoreError::broken("campaign cache", "poisoned"))?.iter().find(|c| c.id == id).cloned();
        if let Some(c) = cached {
            return Ok(Some(c));
        }
        let Some(row) = self.store.campaign(id).await? else { return Ok(None) };
        let row = Arc::new(row);
        let mut cache = self.campaigns.lock().map_err(|_| CoreError::broken("campaign cache", "poisoned"))?;
        if cache.len() >= CAMPAIGN_CACHE {
            cache.remove(0);
        }
        cache.push(row.clone());
        Ok(Some(row))
    }

    async fn finish(&self, id: &str, status: &str, detail: Option<&str>) -> Result<(), JobError> {
        self.store.set_message_status(id, status, detail, self.clock.now_ms()).await.map_err(|e| JobError::failed(CoreError::from(e)))
    }

    /// Sends one message, or records why not. A failure worth retrying returns an error (the
    /// queue tries again later); on the last attempt the message is logged as failed.
    pub async fn deliver(&self, m: &SendMessage, last_attempt: bool) -> Result<(), JobError> {
        let Some(row) = self.store.message_recipient(&m.id).await.map_err(|e| JobError::failed(CoreError::from(e)))? else {
            // Its log line went with the person (erasure): nothing to send to.
            return Ok(());
        };
        if row.status != "queued" {
            return Ok(());
        }
        let Some((email, lang)) = row.active else { return self.finish(&m.id, "dropped", Some("account_gone")).await };
        let campaign = match &m.notice {
            Notice::Campaign { campaign_id } => match self.campaign(campaign_id).await.map_err(JobError::failed)? {
                Some(c) => Some(c),
                None => return self.finish(&m.id, "dropped", Some("campaign_gone")).await,
            },
            _ => None,
        };
        let topic = match &campaign {
            Some(c) if c.kind == "marketing" => Topic::Marketing,
            _ => Topic::Service,
        };
        if m.channel == Channel::Email {
            let suppression = self.store.suppression(&address_hash(&email)).await.map_err(|e| JobError::failed(CoreError::from(e)))?;
            // The confirmation of a sign-up is the person's own request: a spam report does not
            // stop it (a bounce does: the mailbox takes nothing).
            let asked_for = matches!(m.notice, Notice::ConfirmMarketing { .. });
            match suppression.as_deref() {
                Some(BOUNCED) => return self.finish(&m.id, "suppressed", Some(BOUNCED)).await,
                Some(COMPLAINED) if !asked_for => return self.finish(&m.id, "suppressed", Some(COMPLAINED)).await,
                Some(UNSUBSCRIBED) if topic == Topic::Marketing => return self.finish(&m.id, "suppressed", Some(UNSUBSCRIBED)).await,
                _ => {}
            }
        }
        let choice = self.prefs.choice(&m.account_id, topic, m.channel).await.map_err(JobError::failed)?;
        // Push always needs the person's yes (consent); an essential notice skips only the
        // e-mail choice.
        let essential_mail = m.notice.essential() && m.channel == Channel::Email;
        if !essential_mail && !choice.on {
            let detail = if topic == Topic::Marketing { "no_consent" } else { "turned_off" };
            let status = if topic == Topic::Marketing { "refused" } else { "skipped" };
            return self.finish(&m.id, status, Some(detail)).await;
        }
        let lang = lang.as_deref().and_then(Lang::parse).unwrap_or(Lang::Da);
        match m.channel {
            Channel::Email => self.send_email(m, &email, lang, topic, choice.grant_id.as_deref(), campaign.as_deref(), last_attempt).await,
            Channel::Push => self.send_push(m, lang, campaign.as_deref(), last_attempt).await,
            Channel::Audience => self.finish(&m.id, "failed", Some("channel_unknown")).await,
        }
    }

    #[expect(clippy::too_many_arguments, reason = "one message's parts, gathered by deliver")]
    async fn send_email(
        &self,
        m: &SendMessage,
        email: &str,
        lang: Lang,
        topic: Topic,
        grant_id: Option<&str>,
        campaign: Option<&CampaignRow>,
        last_attempt: bool,
    ) -> Result<(), JobError> {
        let t = lang.texts();
        let (subject, body, unsubscribe) = match (&m.notice, campaign) {
            (Notice::Campaign { .. }, Some(c)) => {
                let token = self.prefs.unsubscribe_token(&m.account_id, topic, Channel::Email, grant_id, email);
                let unsubscribe = format!("{}/unsubscribe/{token}", self.base_url);
                let (subject, text) = if lang == Lang::En { (&c.subject_en, &c.body_en) } else { (&c.subject_da, &c.body_da) };
                let footer = if topic == Topic::Marketing {
                    t.mail_footer_marketing(&unsubscribe)
                } else {
                    t.mail_footer_service(format!("{}/account/messages?lang={}", self.base_url, lang.code()))
                };
                (subject.clone(), format!("{text}\n\n-- \n{footer}\n"), Some(unsubscribe))
            }
            (Notice::PaymentFailed, _) => (
                t.mail_payment_failed_subject().to_string(),
                format!("{}\n\n{}/billing?lang={}\n", t.mail_payment_failed_body(), self.base_url, lang.code()),
                None,
            ),
            (Notice::ConfirmMarketing { grant_id }, _) => {
                let token = self.prefs.confirm_token(&m.account_id, grant_id);
                let link = format!("{}/messages/confirm?token={token}&lang={}", self.base_url, lang.code());
                (
                    t.mail_marketing_confirm_subject().to_string(),
                    format!("{}\n\n{link}\n\n{}\n", t.mail_marketing_confirm_before(), t.mail_marketing_confirm_after()),
                    None,
                )
            }
            (Notice::Campaign { .. }, None) => return self.finish(&m.id, "dropped", Some("campaign_gone")).await,
        };
        let mut mail = OutgoingMail::new(email, &subject, body);
        mail.message_id = Some(m.id.clone());
        mail.unsubscribe_url = unsubscribe;
        match self.mailer.send_mail(&mail).await {
            Ok(()) => self.finish(&m.id, "sent", None).await,
            Err(MailFailure::Permanent(_)) => {
                let now = self.clock.now_ms();
                self.store.suppress(&address_hash(email), BOUNCED, now).await.map_err(|e| JobError::failed(CoreError::from(e)))?;
                self.finish(&m.id, "bounced", Some("smtp_5xx")).await
            }
            Err(MailFailure::Invalid(code)) => self.finish(&m.id, "failed", Some(code)).await,
            Err(failure @ MailFailure::Transient(_)) => {
                if last_attempt {
                    self.finish(&m.id, "failed", Some("relay_unavailable")).await?;
                }
                Err(JobError::failed(failure))
            }
        }
    }

    async fn send_push(&self, m: &SendMessage, lang: Lang, campaign: Option<&CampaignRow>, last_attempt: bool) -> Result<(), JobError> {
        let t = lang.texts();
        let Some(device) = &m.device else { return self.finish(&m.id, "failed", Some("device_missing")).await };
        let subs = self.store.push_subscriptions_of(&m.account_id).await.map_err(|e| JobError::failed(CoreError::from(e)))?;
        let Some(sub) = subs.into_iter().find(|s| &s.id == device) else { return self.finish(&m.id, "dropped", Some("device_gone")).await };
        let (title, body, path) = match (&m.notice, campaign) {
            (Notice::Campaign { .. }, Some(c)) => {
                if lang == Lang::En {
                    (c.subject_en.clone(), c.body_en.clone(), "/")
                } else {
                    (c.subject_da.clone(), c.body_da.clone(), "/")
                }
            }
            (Notice::PaymentFailed, _) => {
                (t.mail_payment_failed_subject().to_string(), t.mail_payment_failed_body().to_string(), "/billing")
            }
            _ => return self.finish(&m.id, "failed", Some("not_for_push")).await,
        };
        let payload =
            serde_json::json!({ "id": m.id, "title": title, "body": body, "url": format!("{path}?lang={}", lang.code()) }).to_string();
        // The push service's Topic header is at most 32 URL-safe characters.
        let topic = m.id.trim_start_matches("msg_").get(..32);
        match self.push.send(&sub, payload.as_bytes(), topic).await {
            Ok(Pushed::Delivered) => self.finish(&m.id, "sent", None).await,
            Ok(Pushed::Gone) => self.finish(&m.id, "dropped", Some("subscription_gone")).await,
            Ok(Pushed::TooLarge) => self.finish(&m.id, "failed", Some("push_payload_too_large")).await,
            Ok(Pushed::Refused(status)) => self.finish(&m.id, "failed", Some(&format!("push_{status}"))).await,
            Err(CoreError::Input { code, .. }) => self.finish(&m.id, "failed", Some(code)).await,
            Err(e) => Err(JobError::failed(e)),
            Ok(Pushed::Later { status, retry_after_ms }) => {
                if last_attempt {
                    self.finish(&m.id, "failed", Some("push_service_unavailable")).await?;
                }
                let code = if status == Some(429) { "push_rate_limited" } else { "push_service_unavailable" };
                let cause = Box::new(CoreError::Unavailable { code });
                // A 429 or 503 that says when to come back is taken at its word.
                Err(match retry_after_ms {
                    Some(after_ms) => JobError::Later { after_ms, cause },
                    None => JobError::Failed(cause),
                })
            }
        }
    }
}
