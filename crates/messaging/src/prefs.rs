//! A person's choice per topic and channel, and the consents behind them. Service e-mail is on
//! until the person turns it off (it rests on the contract); everything else is off until the
//! person turns it on: push on a device, news and offers (by e-mail only after confirming a
//! mailed link: double opt-in), and partner marketing. Every consent given, confirmed or
//! withdrawn, and every unsubscribe (an objection to direct marketing, article 21(3)), is written
//! to the consent ledger.

use passme_core::CoreError;
use passme_core::audit::{AuditEvent, ChainLog};
use passme_core::clock::SharedClock;
use passme_store::{AccountId, PrefRow, Store};
use serde_json::json;

use crate::links::{Confirm, Links, Unsubscribe};
use crate::{Channel, Topic, address_hash};

/// How long a double opt-in link works.
pub const CONFIRM_TTL_MS: i64 = 7 * 24 * 3_600_000;

/// Suppression reasons. An unsubscribe stops news and offers to the address; a bounce or a
/// complaint stops everything the outbox sends to it.
pub const UNSUBSCRIBED: &str = "unsubscribed";
pub const BOUNCED: &str = "bounced";
pub const COMPLAINED: &str = "complained";

/// One cell of the choice matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub topic: Topic,
    pub channel: Channel,
    pub on: bool,
    /// Asked for by e-mail and waiting for the mailed link.
    pub pending: bool,
    /// When the person last changed it; `None` while it is the default.
    pub changed_at: Option<i64>,
    pub grant_id: Option<String>,
}

impl Choice {
    /// `on`, `off`, or `pending` (waiting for the mailed confirmation).
    pub fn state(&self) -> &'static str {
        if self.pending {
            "pending"
        } else if self.on {
            "on"
        } else {
            "off"
        }
    }
}

/// What a change of choice did, and what the caller must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    Done,
    /// News and offers by e-mail: a confirmation must be mailed for this grant.
    ConfirmationNeeded {
        grant_id: String,
    },
    /// Partner marketing withdrawn: each partner that received the person must be asked to
    /// delete them: (partner, hashed address).
    PartnersToTell(Vec<(String, String)>),
}

/// What an unsubscribe link did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsubscribed {
    Now,
    /// The link's choice had ended already (a repeat, or a link from an earlier sign-up): nothing
    /// changed, and the address stays suppressed.
    Already,
}

fn default_on(topic: Topic, channel: Channel) -> bool {
    topic == Topic::Service && channel == Channel::Email
}

fn new_grant() -> String {
    passme_core::crypto::random_id::<12>("grant_")
}

#[derive(Debug, Clone)]
pub struct Preferences {
    store: Store,
    clock: SharedClock,
    ledger: ChainLog,
    pub(crate) links: Links,
}

impl Preferences {
    pub fn new(store: Store, clock: SharedClock, ledger: ChainLog, links: Links) -> Preferences {
        Preferences { store, clock, ledger, links }
    }

    /// The signed links (to check one before showing its page).
    pub fn links(&self) -> &Links {
        &self.links
    }

    /// Every topic and channel with the person's choice or its default.
    pub async fn choices(&self, account_id: &AccountId) -> Result<Vec<Choice>, CoreError> {
        let rows = self.store.message_prefs(account_id).await?;
        let mut out = Vec::new();
        for topic in Topic::ALL {
            for &channel in topic.channels() {
                let row: Option<&PrefRow> = rows.iter().find(|r| r.topic == topic.id() && r.channel == channel.id());
                out.push(match row {
                    Some(r) => Choice {
                        topic,
                        channel,
                        on: r.state == "on",
                        pending: r.state == "pending",
                        changed_at: Some(r.changed_at),
                        grant_id: r.grant_id.clone(),
                    },
                    None => Choice { topic, channel, on: default_on(topic, channel), pending: false, changed_at: None, grant_id: None },
                });
            }
        }
        Ok(out)
    }

    /// The person's choice for one cell.
    pub async fn choice(&self, account_id: &AccountId, topic: Topic, channel: Channel) -> Result<Choice, CoreError> {
        let choices = self.choices(account_id).await?;
        choices.into_iter().find(|c| c.topic == topic && c.channel == channel).ok_or(CoreError::input("message_channel_unknown"))
    }

    async fn record(&self, actor: &str, action: &str, account_id: &AccountId, details: serde_json::Value) -> Result<(), CoreError> {
        self.ledger.record(AuditEvent { actor, action, subject: &format!("account:{account_id}"), details }).await?;
        Ok(())
    }

    /// Turns one cell on or off for the signed-in person whose address is `address`.
    pub async fn set(&self, account_id: &AccountId, address: &str, topic: Topic, channel: Channel, on: bool) -> Result<Changed, CoreError> {
        if !topic.channels().contains(&channel) {
            return Err(CoreError::input("message_channel_unknown"));
        }
        let now = self.clock.now_ms();
        let current = self.choice(account_id, topic, channel).await?;
        let actor = format!("account:{account_id}");
        let details = json!({ "topic": topic.id(), "channel": channel.id(), "purpose": topic.purpose(channel) });
        if on {
            if current.on {
                return Ok(Changed::Done);
            }
            if let (true, Some(grant_id)) = (current.pending, current.grant_id) {
                // Asking again resends the confirmation of the pending grant.
                return Ok(Changed::ConfirmationNeeded { grant_id });
            }
            let grant_id = new_grant();
            if topic == Topic::Marketing && channel == Channel::Email {
                // A bounced address is not mailed again on a form's say-so: its mailbox does not
                // take mail. (After a complaint, the person's own confirmed sign-up lifts it.)
                if self.store.suppression(&address_hash(address)).await?.as_deref() == Some(BOUNCED) {
                    return Err(CoreError::Conflict { code: "address_suppressed" });
                }
                self.store.set_message_pref(account_id, topic.id(), channel.id(), "pending", Some(&grant_id), now).await?;
                self.record(&actor, "messaging.consent_requested", account_id, details).await?;
                return Ok(Changed::ConfirmationNeeded { grant_id });
            }
            self.store.set_message_pref(account_id, topic.id(), channel.id(), "on", Some(&grant_id), now).await?;
            self.record(&actor, "messaging.consent_given", account_id, details).await?;
            return Ok(Changed::Done);
        }
        if !current.on && !current.pending {
            return Ok(Changed::Done);
        }
        self.store.set_message_pref(account_id, topic.id(), channel.id(), "off", None, now).await?;
        self.record(&actor, "messaging.consent_withdrawn", account_id, details).await?;
        if topic == Topic::Marketing && channel == Channel::Email {
            self.store.suppress(&address_hash(address), UNSUBSCRIBED, now).await?;
        }
        if topic == Topic::Partner {
            return Ok(Changed::PartnersToTell(self.store.forget_partner_audience(account_id).await?));
        }
        Ok(Changed::Done)
    }

    /// The link of a double opt-in confirmation for `grant_id`.
    pub fn confirm_token(&self, account_id: &AccountId, grant_id: &str) -> String {
        self.links.confirm_token(&Confirm {
            account_id: account_id.clone(),
            grant_id: grant_id.to_string(),
            expires_at: self.clock.now_ms() + CONFIRM_TTL_MS,
        })
    }

    /// Confirms news and offers by e-mail from the mailed link: the grant must be the pending one.
    /// The address proved it reads our mail, so an earlier unsubscribe of it is lifted.
    pub async fn confirm(&self, token: &str) -> Result<(), CoreError> {
        let confirm = self.links.read_confirm(token).ok_or(CoreError::input("confirm_link_invalid"))?;
        if confirm.expires_at < self.clock.now_ms() {
            return Err(CoreError::input("confirm_link_expired"));
        }
        let current = self.choice(&confirm.account_id, Topic::Marketing, Channel::Email).await?;
        if current.on && current.grant_id.as_deref() == Some(confirm.grant_id.as_str()) {
            return Ok(());
        }
        if !current.pending || current.grant_id.as_deref() != Some(confirm.grant_id.as_str()) {
            return Err(CoreError::input("confirm_link_stale"));
        }
        let Some(account) = self.store.account(&confirm.account_id).await? else { return Err(CoreError::input("confirm_link_stale")) };
        let now = self.clock.now_ms();
        // The person asked, from their account, and confirmed from the mailbox: an earlier
        // unsubscribe or spam report of this address no longer stands.
        for reason in [UNSUBSCRIBED, COMPLAINED] {
            self.store.lift_suppression(&address_hash(&account.email), reason).await?;
        }
        self.store
            .set_message_pref(&confirm.account_id, Topic::Marketing.id(), Channel::Email.id(), "on", Some(&confirm.grant_id), now)
            .await?;
        let details = json!({ "topic": "marketing", "channel": "email", "purpose": "marketing_direct", "grant": confirm.grant_id });
        self.record(&format!("account:{}", confirm.account_id), "messaging.consent_confirmed", &confirm.account_id, details).await
    }

    /// The one-click unsubscribe link of a message about `topic` sent on `channel` to `address`.
    pub fn unsubscribe_token(
        &self,
        account_id: &AccountId,
        topic: Topic,
        channel: Channel,
        grant_id: Option<&str>,
        address: &str,
    ) -> String {
        self.links.unsubscribe_token(&Unsubscribe {
            account_id: account_id.clone(),
            topic,
            channel,
            grant_id: grant_id.map(str::to_string),
            address_hash: address_hash(address),
        })
    }

    /// Carries out an unsubscribe link, without signing in. A repeat changes nothing; a link for
    /// news and offers always (again) suppresses the address it was sent to.
    pub async fn unsubscribe(&self, token: &str) -> Result<Unsubscribed, CoreError> {
        let u = self.links.read_unsubscribe(token).ok_or(CoreError::input("unsubscribe_link_invalid"))?;
        let now = self.clock.now_ms();
        if u.topic == Topic::Marketing {
            self.store.suppress(&u.address_hash, UNSUBSCRIBED, now).await?;
        }
        let current = self.choice(&u.account_id, u.topic, u.channel).await?;
        let ended = match &u.grant_id {
            Some(grant) => self.store.withdraw_message_grant(&u.account_id, u.topic.id(), u.channel.id(), grant, now).await?,
            None if current.on => {
                self.store.set_message_pref(&u.account_id, u.topic.id(), u.channel.id(), "off", None, now).await?;
                true
            }
            None => false,
        };
        if !ended {
            return Ok(Unsubscribed::Already);
        }
        let details =
            json!({ "topic": u.topic.id(), "channel": u.channel.id(), "purpose": u.topic.purpose(u.channel), "via": "unsubscribe_link" });
        self.record("unsubscribe-link", "messaging.objection", &u.account_id, details).await?;
        Ok(Unsubscribed::Now)
    }
}
