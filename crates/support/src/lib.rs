//! Customer support (the policy's "support" capability): cases from the contact form, signed in
//! or not, with states, an assignee, first-response and resolution targets, canned replies in both
//! languages, and the person's view of their own cases; and anticipating needs: signals from the
//! service (a failed payment, repeated server errors, a lockout, password resets, a quiet new
//! account) open a case for an agent, at most one per person per day, with the signal shown.
//!
//! Texts are kept as written: pages escape them. Signals live 90 days (`support.signals`), cases
//! three years after they close (`support.tickets`).

use passme_core::CoreError;
use passme_core::clock::SharedClock;
use passme_core::jobs::{EnqueueOptions, Handlers, JobError, JobPayload, JobQueue};
use passme_core::mail::{Mailer, Template};
use passme_messages::Lang;
use passme_store::{AccountId, Store, TicketMessageRow, TicketRow};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
/// An agent answers a new case within 8 hours and settles it within 3 days.
pub const FIRST_RESPONSE_MS: i64 = 8 * HOUR;
pub const RESOLUTION_MS: i64 = 3 * DAY;
/// A case waiting for the person closes after two weeks without an answer (a reply reopens it).
pub const WAITING_CLOSES_MS: i64 = 14 * DAY;
pub const SUBJECT_MAX: usize = 200;
pub const BODY_MIN: usize = 10;
pub const BODY_MAX: usize = 5_000;

/// What the service noticed about a person that may mean they need help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Their first failed payment (not after dunning has run out).
    PaymentFailed,
    /// A server error (5xx) on a request of theirs.
    ServerError,
    /// Sign-in throttled for their address.
    Lockout,
    /// A password reset asked for.
    PasswordReset,
    /// Signed up, confirmed, and not back a day later.
    Quiet,
}

impl Signal {
    pub const ALL: [Signal; 5] = [Signal::PaymentFailed, Signal::ServerError, Signal::Lockout, Signal::PasswordReset, Signal::Quiet];

    pub fn id(self) -> &'static str {
        match self {
            Signal::PaymentFailed => "payment_failed",
            Signal::ServerError => "server_error",
            Signal::Lockout => "lockout",
            Signal::PasswordReset => "password_reset",
            Signal::Quiet => "quiet",
        }
    }

    /// How many signals within which window open a case.
    fn threshold(self) -> (i64, i64) {
        match self {
            Signal::PaymentFailed | Signal::Lockout | Signal::Quiet => (1, DAY),
            Signal::ServerError => (3, 10 * MINUTE),
            Signal::PasswordReset => (2, HOUR),
        }
    }
}

/// Where a message on a case comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Author {
    Person,
    Staff(AccountId),
}

#[derive(Debug, Clone)]
pub struct NewCase<'a> {
    pub account_id: Option<&'a AccountId>,
    pub email: &'a str,
    pub lang: Lang,
    pub subject: &'a str,
    pub body: &'a str,
}

/// The mail a case sends: the receipt of a new case, or an agent's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mail", rename_all = "snake_case", deny_unknown_fields)]
pub enum CaseMail {
    Received { ticket: String },
    Answered { ticket: String, message: String },
}

impl JobPayload for CaseMail {
    const KIND: &'static str = "support.mail";
}

/// Looks for new accounts that went quiet; one job per hour, whatever the number of instances.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scan {
    pub hour: i64,
}

impl JobPayload for Scan {
    const KIND: &'static str = "support.scan";
}

#[derive(Clone)]
pub struct Support {
    store: Store,
    clock: SharedClock,
    jobs: JobQueue,
}

impl std::fmt::Debug for Support {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Support").finish_non_exhaustive()
    }
}

fn new_id(prefix: &str) -> String {
    passme_core::crypto::random_id::<8>(prefix)
}

fn body_of(text: &str) -> Result<String, CoreError> {
    let body = passme_core::text::plain(text);
    match body.chars().count() {
        n if n < BODY_MIN => Err(CoreError::input("support_message_too_short")),
        n if n > BODY_MAX => Err(CoreError::input("support_message_too_long")),
        _ => Ok(body),
    }
}

impl Support {
    pub fn new(store: Store, clock: SharedClock, jobs: JobQueue) -> Support {
        Support { store, clock, jobs }
    }

    /// Opens a case from the contact form, and mails its receipt.
    pub async fn open(&self, case: NewCase<'_>) -> Result<TicketRow, CoreError> {
        let subject = passme_core::text::plain(case.subject).replace('\n', " ");
        if subject.chars().count() < 3 || subject.chars().count() > SUBJECT_MAX {
            return Err(CoreError::input("support_subject_length"));
        }
        let body = body_of(case.body)?;
        let now = self.clock.now_ms();
        let ticket = TicketRow {
            id: new_id("tkt_"),
            account_id: case.account_id.cloned(),
            email: case.email.to_string(),
            lang: case.lang.code().to_string(),
            subject,
            state: "new".into(),
            source: "form".into(),
            signal: None,
            proactive_day: None,
            assignee: None,
            created_at: now,
            updated_at: now,
            first_response_due: now + FIRST_RESPONSE_MS,
            resolution_due: now + RESOLUTION_MS,
            first_response_at: None,
            closed_at: None,
        };
        let first = self.message(&ticket, "person", None, body, now);
        self.store.open_ticket(&ticket, &first).await?;
        self.jobs.push(&CaseMail::Received { ticket: ticket.id.clone() }, EnqueueOptions::default()).await?;
        Ok(ticket)
    }

    fn message(&self, ticket: &TicketRow, author: &str, staff: Option<&AccountId>, body: String, at: i64) -> TicketMessageRow {
        TicketMessageRow {
            id: new_id("tmsg_"),
            ticket_id: ticket.id.clone(),
            account_id: ticket.account_id.clone(),
            author: author.into(),
            staff_id: staff.map(ToString::to_string),
            body,
            at,
        }
    }

    /// A case as its owner may see it: theirs, or nothing.
    pub async fn case_of(&self, id: &str, account_id: &AccountId) -> Result<Option<TicketRow>, CoreError> {
        Ok(self.store.ticket(id).await?.filter(|t| t.account_id.as_ref() == Some(account_id)))
    }

    /// Adds a message. The person's reopens the case; an agent's waits for the person and is
    /// mailed to them.
    pub async fn reply(&self, ticket: &TicketRow, author: Author, text: &str) -> Result<(), CoreError> {
        let body = body_of(text)?;
        let now = self.clock.now_ms();
        let (message, state) = match &author {
            Author::Person => (self.message(ticket, "person", None, body, now), "open"),
            Author::Staff(staff) => (self.message(ticket, "staff", Some(staff), body, now), "pending"),
        };
        self.store.add_ticket_message(&message, state).await?;
        if let Author::Staff(_) = author {
            self.jobs.push(&CaseMail::Answered { ticket: ticket.id.clone(), message: message.id }, EnqueueOptions::default()).await?;
        }
        Ok(())
    }

    pub async fn assign(&self, ticket_id: &str, staff: &AccountId) -> Result<bool, CoreError> {
        Ok(self.store.assign_ticket(ticket_id, staff.as_str(), self.clock.now_ms()).await?)
    }

    pub async fn close(&self, ticket_id: &str) -> Result<bool, CoreError> {
        Ok(self.store.close_ticket(ticket_id, self.clock.now_ms()).await?)
    }

    /// Records a signal about a person and opens a case when it crosses its threshold, at most
    /// one per person per day (the database's unique index decides, so two instances seeing the
    /// same signals open one). Returns the case opened, if any.
    pub async fn signal(&self, account_id: &AccountId, signal: Signal, detail: serde_json::Value) -> Result<Option<String>, CoreError> {
        let now = self.clock.now_ms();
        self.store.record_support_signal(&new_id("ssig_"), account_id, signal.id(), now, &detail.to_string()).await?;
        let (count, window) = signal.threshold();
        if self.store.support_signals_since(account_id, signal.id(), now - window).await? < count {
            return Ok(None);
        }
        if signal == Signal::PaymentFailed && self.store.has_proactive_ticket(account_id, signal.id()).await? {
            return Ok(None);
        }
        let Some(account) = self.store.account(account_id).await? else { return Ok(None) };
        let lang = self.store.account_prefs(account_id).await?.1.unwrap_or_else(|| "da".into());
        let ticket = TicketRow {
            id: new_id("tkt_"),
            account_id: Some(account_id.clone()),
            email: account.email,
            lang,
            subject: signal.id().into(),
            state: "new".into(),
            source: "proactive".into(),
            signal: Some(signal.id().into()),
            proactive_day: Some(now.div_euclid(DAY)),
            assignee: None,
            created_at: now,
            updated_at: now,
            first_response_due: now + FIRST_RESPONSE_MS,
            resolution_due: now + RESOLUTION_MS,
            first_response_at: None,
            closed_at: None,
        };
        let note = self.message(&ticket, "system", None, json!({ "signal": signal.id(), "detail": detail }).to_string(), now);
        Ok(self.store.open_ticket(&ticket, &note).await?.then_some(ticket.id))
    }

    /// Queues this hour's scan; a no-op when another instance did.
    pub async fn schedule_scan(queue: &JobQueue, now: i64) -> Result<bool, CoreError> {
        let hour = now / HOUR;
        let (_, new) =
            queue.push(&Scan { hour }, EnqueueOptions { id: Some(format!("support-scan:{hour}")), ..Default::default() }).await?;
        Ok(new)
    }

    /// Opens a case for each confirmed account made 24 to 48 hours ago that was not used after
    /// its first hour, once per account.
    pub async fn scan_quiet(&self) -> Result<usize, CoreError> {
        let now = self.clock.now_ms();
        let mut opened = 0;
        for (account_id, _, _) in self.store.quiet_new_accounts(now - 2 * DAY, now - DAY).await? {
            if self.store.has_proactive_ticket(&account_id, Signal::Quiet.id()).await? {
                continue;
            }
            opened += usize::from(self.signal(&account_id, Signal::Quiet, json!({})).await?.is_some());
        }
        Ok(opened)
    }

    /// Closes the cases that waited two weeks for the person, so that every case ends and its
    /// retention period starts.
    pub async fn close_waiting(&self) -> Result<u64, CoreError> {
        let now = self.clock.now_ms();
        Ok(self.store.close_waiting_tickets(now - WAITING_CLOSES_MS, now).await?)
    }

    /// Registers the mail and scan jobs.
    pub fn register(&self, handlers: &mut Handlers, mailer: Arc<Mailer>, base_url: String) {
        let support = self.clone();
        handlers.on(move |mail: CaseMail| {
            let (support, mailer, base_url) = (support.clone(), mailer.clone(), base_url.clone());
            async move { support.deliver(&mail, &mailer, &base_url).await.map_err(JobError::from) }
        });
        let support = self.clone();
        handlers.on(move |_: Scan| {
            let support = support.clone();
            async move {
                support.scan_quiet().await.map_err(JobError::from)?;
                support.close_waiting().await.map(|_| ()).map_err(JobError::from)
            }
        });
    }

    async fn deliver(&self, mail: &CaseMail, mailer: &Mailer, base_url: &str) -> Result<(), CoreError> {
        let (ticket_id, template) = match mail {
            CaseMail::Received { ticket } => (ticket, "support_received"),
            CaseMail::Answered { ticket, .. } => (ticket, "support_answered"),
        };
        let Some(ticket) = self.store.ticket(ticket_id).await? else { return Ok(()) };
        let lang = Lang::parse(&ticket.lang).unwrap_or(Lang::Da);
        let link = match ticket.account_id {
            Some(_) => format!("{base_url}/account/support/{}?lang={}", ticket.id, lang.code()),
            None => format!("{base_url}/contact?lang={}", lang.code()),
        };
        let content = match mail {
            CaseMail::Received { .. } => Template::SupportReceived { ticket: ticket.id.clone(), link },
            CaseMail::Answered { message, .. } => {
                let messages = self.store.ticket_messages(&ticket.id).await?;
                let Some(answer) = messages.into_iter().find(|m| &m.id == message) else { return Ok(()) };
                Template::SupportAnswered { ticket: ticket.id.clone(), answer: answer.body, link }
            }
        };
        mailer.send(&ticket.email, lang, &content).await?;
        let line = passme_store::NewMessage {
            id: passme_core::mail::message_id(&format!("{template}:{ticket_id}:{mail:?}")),
            account_id: ticket.account_id.clone(),
            campaign_id: None,
            channel: "email".into(),
            template: template.into(),
        };
        self.store.log_message(&line, "sent", None, self.clock.now_ms()).await?;
        Ok(())
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}
