//! Direct communication (the policy's "messaging" capability): every message is a typed job in
//! one outbox with an idempotency key and a log line without its body; e-mail and Web Push;
//! a person's choice per topic and channel; marketing only with consent (double opt-in by
//! e-mail) and RFC 8058 one-click unsubscribe; a suppression list that wins over every choice;
//! announcements to a segment; partner audiences of hashed addresses for consenting people.

pub mod campaigns;
pub mod dsn;
pub mod endpoint;
pub mod links;
pub mod outbox;
pub mod partners;
pub mod prefs;
pub mod push;

use std::sync::Arc;

use passme_core::CoreError;
use passme_core::audit::ChainLog;
use passme_core::clock::SharedClock;
use passme_core::config::MessagingConfig;
use passme_core::jobs::{Handlers, JobQueue};
use passme_core::mail::Mailer;
use passme_store::{AccountId, Store};
use serde::{Deserialize, Serialize};

pub use outbox::{Notice, Outbox};
pub use prefs::{Choice, Preferences};

/// What a message is about. Each topic rests on its own purpose in the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    /// Service and maintenance messages about the account and the service.
    Service,
    /// News and offers from us (consent, double opt-in for e-mail).
    Marketing,
    /// Marketing through a partner (consent): the person's hashed address in audiences.
    Partner,
}

impl Topic {
    pub const ALL: [Topic; 3] = [Topic::Service, Topic::Marketing, Topic::Partner];

    pub fn id(self) -> &'static str {
        match self {
            Topic::Service => "service",
            Topic::Marketing => "marketing",
            Topic::Partner => "partner",
        }
    }

    pub fn parse(s: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| t.id() == s)
    }

    /// The policy purpose that sending on `channel` serves.
    pub fn purpose(self, channel: Channel) -> &'static str {
        match (self, channel) {
            (Topic::Service, Channel::Email) => "communicate",
            (Topic::Service, _) => "messages",
            (Topic::Marketing, _) => "marketing_direct",
            (Topic::Partner, _) => "partner_marketing",
        }
    }

    /// The channels a topic uses.
    pub fn channels(self) -> &'static [Channel] {
        match self {
            Topic::Service | Topic::Marketing => &[Channel::Email, Channel::Push],
            Topic::Partner => &[Channel::Audience],
        }
    }
}

/// How a message reaches the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Push,
    /// A hashed address in a partner's audience.
    Audience,
}

impl Channel {
    pub fn id(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Push => "push",
            Channel::Audience => "audience",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        [Channel::Email, Channel::Push, Channel::Audience].into_iter().find(|c| c.id() == s)
    }
}

/// The suppression list and partner audiences hold this, never the address: SHA-256 of the
/// normalised address, hex.
pub fn address_hash(address: &str) -> String {
    passme_core::identity::token_hash(&passme_core::identity::email::key(address))
}

/// Everything messaging needs, built once per process.
#[derive(Debug, Clone)]
pub struct Messaging {
    pub outbox: Outbox,
    pub prefs: Preferences,
    pub push: push::Push,
    pub campaigns: campaigns::Campaigns,
    pub partners: partners::Partners,
}

impl Messaging {
    #[expect(clippy::too_many_arguments, reason = "the wiring of one capability, called from one place")]
    pub fn new(
        config: &MessagingConfig,
        store: Store,
        clock: SharedClock,
        queue: JobQueue,
        mailer: Arc<Mailer>,
        master_key: &[u8; 32],
        base_url: &str,
        production: bool,
    ) -> Result<Messaging, CoreError> {
        let links = links::Links::new(master_key);
        let ledger = ChainLog::consent(store.clone(), clock.clone());
        let guard = endpoint::Guard::new(&config.allowed_private_endpoints, production)?;
        let push = push::Push::new(store.clone(), clock.clone(), master_key, &config.push_contact, guard.clone())?;
        let prefs = Preferences::new(store.clone(), clock.clone(), ledger, links);
        let outbox = Outbox::new(store.clone(), clock.clone(), mailer, push.clone(), prefs.clone(), base_url);
        let partners = partners::Partners::new(&config.partners, store.clone(), clock.clone(), queue.clone(), guard)?;
        let campaigns = campaigns::Campaigns::new(store, clock, queue, outbox.clone());
        Ok(Messaging { outbox, prefs, push, campaigns, partners })
    }

    /// Turns one of the person's choices on or off, and does what follows: mails the double
    /// opt-in link, or asks partners to delete someone who withdrew.
    pub async fn choose(
        &self,
        account_id: &AccountId,
        address: &str,
        topic: Topic,
        channel: Channel,
        on: bool,
    ) -> Result<prefs::Changed, CoreError> {
        let changed = self.prefs.set(account_id, address, topic, channel, on).await?;
        match &changed {
            prefs::Changed::ConfirmationNeeded { grant_id } => {
                self.outbox
                    .notify(
                        &format!("confirm:{grant_id}"),
                        account_id,
                        Notice::ConfirmMarketing { grant_id: grant_id.clone() },
                        &[Channel::Email],
                    )
                    .await?;
            }
            prefs::Changed::PartnersToTell(shared) => self.partners.forget(shared).await?,
            prefs::Changed::Done => {}
        }
        Ok(changed)
    }

    /// Tells the person that a payment failed: by e-mail always, by push where they turned
    /// service push on. Once per invoice.
    pub async fn payment_failed(&self, account_id: &AccountId, invoice: &str) -> Result<(), CoreError> {
        self.outbox
            .notify(&format!("payment_failed:{invoice}"), account_id, Notice::PaymentFailed, &[Channel::Email, Channel::Push])
            .await?;
        Ok(())
    }

    /// Acts on a delivery report from the mail relay; returns how many addresses it suppressed.
    pub async fn apply_report(&self, report: &dsn::Report, now: i64) -> Result<usize, CoreError> {
        let (addresses, reason) = match report {
            dsn::Report::Bounced(a) => (a, prefs::BOUNCED),
            dsn::Report::Complained(a) => (a, prefs::COMPLAINED),
            dsn::Report::Nothing => return Ok(0),
        };
        for address in addresses {
            self.outbox.store().suppress(&address_hash(address), reason, now).await?;
        }
        Ok(addresses.len())
    }

    /// A closed or erased account: its devices and choices go, and partners that received the
    /// person are asked to delete them.
    pub async fn forget_account(&self, account_id: &AccountId) -> Result<(), CoreError> {
        let shared = self.outbox.store().forget_messaging_of(account_id).await?;
        self.partners.forget(&shared).await
    }

    /// The job handlers: sending, announcements' fan-out, partner deliveries.
    pub fn register(&self, handlers: &mut Handlers) {
        self.outbox.clone().register(handlers);
        self.campaigns.clone().register(handlers);
        self.partners.clone().register(handlers);
    }
}
