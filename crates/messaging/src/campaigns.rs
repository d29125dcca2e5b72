//! Announcements: staff write a service, maintenance or marketing message in Danish and English
//! and send it to everyone or a segment (plan, language, recent activity). A job fans it out in
//! batches of people, each batch one transaction of messages under idempotency keys, then queues
//! the next batch; so a crash anywhere repeats at most one batch, and repeating it queues nothing
//! twice. Marketing reaches only people whose consent for the channel is on.

use passme_core::CoreError;
use passme_core::audit::{AuditEvent, AuditLog};
use passme_core::clock::SharedClock;
use passme_core::jobs::{EnqueueOptions, Handlers, JobError, JobPayload, JobQueue};
use passme_store::{CampaignRow, Segment, Store};
use serde::{Deserialize, Serialize};
use serde_json::json;

use std::collections::{HashMap, HashSet};

use crate::outbox::{Notice, Outbox, Outgoing, messages_for};
use crate::push::MAX_PAYLOAD;
use crate::{Channel, Topic};

/// People per fan-out batch.
pub const BATCH: i64 = 500;
const SUBJECT_MAX: usize = 200;
const BODY_MAX: usize = 20_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Service,
    Maintenance,
    Marketing,
}

impl Kind {
    pub fn id(self) -> &'static str {
        match self {
            Kind::Service => "service",
            Kind::Maintenance => "maintenance",
            Kind::Marketing => "marketing",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        [Kind::Service, Kind::Maintenance, Kind::Marketing].into_iter().find(|k| k.id() == s)
    }

    pub fn topic(self) -> Topic {
        if self == Kind::Marketing { Topic::Marketing } else { Topic::Service }
    }
}

/// An announcement as staff write it.
#[derive(Debug, Clone)]
pub struct NewCampaign {
    pub kind: Kind,
    pub segment: Segment,
    pub channels: Vec<Channel>,
    pub subject_da: String,
    pub subject_en: String,
    pub body_da: String,
    pub body_en: String,
}

/// A campaign and how far it got.
#[derive(Debug, Clone)]
pub struct Progress {
    pub campaign: CampaignRow,
    /// Messages per status (queued, sent, skipped, suppressed, …).
    pub statuses: Vec<(String, i64)>,
}

impl Progress {
    pub fn count(&self, status: &str) -> i64 {
        self.statuses.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n)
    }
}

/// One fan-out batch: the people after `after` (by id).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FanOut {
    pub campaign_id: String,
    pub after: Option<String>,
}

impl JobPayload for FanOut {
    const KIND: &'static str = "messaging.fan_out";
}

#[derive(Debug, Clone)]
pub struct Campaigns {
    store: Store,
    clock: SharedClock,
    queue: JobQueue,
    outbox: Outbox,
    audit: AuditLog,
}

fn clean(text: &str) -> String {
    text.replace("\r\n", "\n").trim().to_string()
}

impl Campaigns {
    pub fn new(store: Store, clock: SharedClock, queue: JobQueue, outbox: Outbox) -> Campaigns {
        Campaigns { audit: AuditLog::new(store.clone(), clock.clone()), store, clock, queue, outbox }
    }

    /// Checks and stores an announcement, and starts sending it.
    pub async fn create(&self, staff: &str, new: NewCampaign) -> Result<String, CoreError> {
        let texts = [&new.subject_da, &new.subject_en, &new.body_da, &new.body_en].map(|t| clean(t));
        if texts.iter().any(String::is_empty) {
            return Err(CoreError::input("announcement_incomplete"));
        }
        if texts[..2].iter().any(|s| s.chars().count() > SUBJECT_MAX) || texts[2..].iter().any(|b| b.chars().count() > BODY_MAX) {
            return Err(CoreError::input("announcement_too_long"));
        }
        if new.channels.is_empty() || new.channels.iter().any(|c| !matches!(c, Channel::Email | Channel::Push)) {
            return Err(CoreError::input("message_channel_unknown"));
        }
        if new.channels.contains(&Channel::Push) {
            // The whole push message (id, title, body, link) must fit the encrypted record.
            for (title, body) in [(&texts[0], &texts[2]), (&texts[1], &texts[3])] {
                let payload =
                    json!({ "id": "msg_00000000000000000000000000000000", "title": title, "body": body, "url": "/?lang=da" }).to_string();
                if payload.len() > MAX_PAYLOAD {
                    return Err(CoreError::input("push_payload_too_large"));
                }
            }
        }
        if let Some(lang) = &new.segment.lang
            && !matches!(lang.as_str(), "da" | "en")
        {
            return Err(CoreError::input("segment_invalid"));
        }
        if new.segment.active_within_days.is_some_and(|d| !(1..=3650).contains(&d)) {
            return Err(CoreError::input("segment_invalid"));
        }
        let id = passme_core::crypto::random_id::<10>("cmp_");
        let [subject_da, subject_en, body_da, body_en] = texts;
        let row = CampaignRow {
            id: id.clone(),
            kind: new.kind.id().into(),
            segment: serde_json::to_string(&new.segment).map_err(|e| CoreError::broken("segment", e))?,
            channels: new.channels.iter().map(|c| c.id()).collect::<Vec<_>>().join(","),
            subject_da,
            subject_en,
            body_da,
            body_en,
            created_at: self.clock.now_ms(),
            cursor: None,
            queued: 0,
            finished_at: None,
        };
        self.store.insert_campaign(&row).await?;
        self.audit
            .record(AuditEvent {
                actor: staff,
                action: "messaging.announced",
                subject: &id,
                details: json!({ "kind": row.kind, "segment": new.segment, "channels": row.channels }),
            })
            .await?;
        self.schedule(&FanOut { campaign_id: id.clone(), after: None }).await?;
        Ok(id)
    }

    async fn schedule(&self, batch: &FanOut) -> Result<(), CoreError> {
        let id = format!("fanout:{}:{}", batch.campaign_id, batch.after.as_deref().unwrap_or("-"));
        self.queue.push(batch, EnqueueOptions { id: Some(id), queue: Some(crate::outbox::QUEUE.into()), ..Default::default() }).await?;
        Ok(())
    }

    /// Queues the messages of one batch and the next batch.
    pub async fn fan_out(&self, batch: &FanOut) -> Result<(), CoreError> {
        let Some(campaign) = self.store.campaign(&batch.campaign_id).await? else { return Ok(()) };
        if campaign.finished_at.is_some() {
            return Ok(());
        }
        let segment: Segment = serde_json::from_str(&campaign.segment).map_err(|e| CoreError::broken("segment", e))?;
        let kind = Kind::parse(&campaign.kind).ok_or(CoreError::broken("campaign kind", &campaign.kind))?;
        let channels: Vec<Channel> = campaign.channels.split(',').filter_map(Channel::parse).collect();
        let now = self.clock.now_ms();
        let people = self.store.segment_recipients(&segment, batch.after.as_deref(), BATCH, now).await?;
        let notice = Notice::Campaign { campaign_id: campaign.id.clone() };
        let key = format!("campaign:{}", campaign.id);
        let mut messages: Vec<Outgoing> = Vec::new();
        if let (Some(first), Some(last)) = (people.first(), people.last()) {
            // One query each for the whole batch: its devices, and (for marketing) who said yes.
            let mut devices: HashMap<&str, Vec<String>> = HashMap::new();
            let subscriptions = if channels.contains(&Channel::Push) {
                self.store.push_subscriptions_between(&first.account_id, &last.account_id).await?
            } else {
                Vec::new()
            };
            for s in &subscriptions {
                devices.entry(s.account_id.as_str()).or_default().push(s.id.clone());
            }
            let consented: HashSet<(String, String)> = if kind == Kind::Marketing {
                let on = self.store.prefs_on_between(Topic::Marketing.id(), &first.account_id, &last.account_id).await?;
                on.into_iter().map(|(a, c)| (a.to_string(), c)).collect()
            } else {
                HashSet::new()
            };
            for person in &people {
                // Marketing goes only where the person said yes.
                let wanted: Vec<Channel> = channels
                    .iter()
                    .copied()
                    .filter(|c| kind != Kind::Marketing || consented.contains(&(person.account_id.to_string(), c.id().to_string())))
                    .collect();
                let own = devices.get(person.account_id.as_str()).map_or(&[][..], Vec::as_slice);
                messages.extend(messages_for(&key, &person.account_id, &notice, &wanted, own)?);
            }
        }
        let last = people.last().map(|p| p.account_id.to_string());
        let done = (people.len() as i64) < BATCH;
        if !done {
            // The next batch goes into the queue ahead of this one's messages, so workers fan
            // out and send at once. A crash before the messages are stored repeats this job,
            // which queues nothing twice.
            self.schedule(&FanOut { campaign_id: campaign.id.clone(), after: last.clone() }).await?;
        }
        let queued = self.outbox.enqueue(&messages).await?;
        let to = last.or(batch.after.clone());
        self.store.advance_campaign(&campaign.id, batch.after.as_deref(), to.as_deref(), queued as i64, done.then_some(now)).await?;
        Ok(())
    }

    pub async fn progress(&self, id: &str) -> Result<Option<Progress>, CoreError> {
        let Some(campaign) = self.store.campaign(id).await? else { return Ok(None) };
        let statuses = self.store.campaign_statuses(id).await?;
        Ok(Some(Progress { campaign, statuses }))
    }

    pub async fn recent(&self) -> Result<Vec<Progress>, CoreError> {
        let mut out = Vec::new();
        for campaign in self.store.recent_campaigns(20).await? {
            let statuses = self.store.campaign_statuses(&campaign.id).await?;
            out.push(Progress { campaign, statuses });
        }
        Ok(out)
    }

    pub fn register(self, handlers: &mut Handlers) {
        handlers.on(move |batch: FanOut| {
            let campaigns = self.clone();
            async move { campaigns.fan_out(&batch).await.map_err(JobError::from) }
        });
    }
}
