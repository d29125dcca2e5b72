//! Outgoing e-mail. Account messages (address verification, password reset, notices) in Danish
//! and English from the message catalogue, sent over SMTP with TLS — or, in development without an SMTP server, written as
//! `.eml` files to `<data dir>/outbox` so nothing is lost and nothing (tokens!) reaches a log.

use std::path::PathBuf;

use lettre::message::Mailbox;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use passme_messages::{Lang, Texts, TextsOf};
use secrecy::{ExposeSecret, SecretString};

use crate::CoreError;

/// The message-log id of the message with this idempotency key (`msg_` and 32 hex digits).
pub fn message_id(key: &str) -> String {
    format!("msg_{}", &crate::identity::token_hash(key)[..32])
}

/// A message we send, with what it needs to say. The words come from the message catalogue.
#[derive(Debug, Clone)]
pub enum Template {
    /// Confirms the address at sign-up.
    VerifyAddress { link: String },
    /// Someone (maybe the owner) tried to sign up with an address that has an account.
    AlreadyRegistered { login_link: String },
    /// A single-use link to choose a new password.
    PasswordReset { link: String },
    /// A copied "remember me" cookie was used; every remembered sign-in and every session ended.
    RememberTheft { reset_link: String },
    /// Sent to a new address to confirm an e-mail change.
    ConfirmNewAddress { link: String },
    /// Sent to the old address after an e-mail change.
    AddressChanged { new_address: String },
    /// The password was changed (by the account's owner, signed in).
    PasswordChanged { reset_link: String },
    /// An action under the terms of service: what, under which clause, why, and how to appeal.
    TermsAction { closed: bool, clause: String, reason: String, link: String },
    /// The receipt of a support case.
    SupportReceived { ticket: String, link: String },
    /// An agent's answer on a support case.
    SupportAnswered { ticket: String, answer: String, link: String },
    /// Confirms a sign-in that fraud scanning challenged.
    ConfirmSignIn { link: String },
    /// Confirms a privacy request made by the contact form or e-mail.
    ConfirmPrivacyRequest { link: String },
}

impl Template {
    fn subject(&self, t: Texts) -> &'static str {
        match self {
            Template::VerifyAddress { .. } => t.mail_verify_subject(),
            Template::AlreadyRegistered { .. } => t.mail_registered_subject(),
            Template::PasswordReset { .. } => t.mail_reset_subject(),
            Template::RememberTheft { .. } => t.mail_theft_subject(),
            Template::ConfirmNewAddress { .. } => t.mail_confirm_subject(),
            Template::AddressChanged { .. } => t.mail_changed_subject(),
            Template::PasswordChanged { .. } => t.mail_password_subject(),
            Template::ConfirmSignIn { .. } => t.mail_signin_subject(),
            Template::TermsAction { closed: false, .. } => t.mail_terms_suspended_subject(),
            Template::TermsAction { closed: true, .. } => t.mail_terms_closed_subject(),
            Template::SupportReceived { .. } => t.mail_support_received_subject(),
            Template::SupportAnswered { .. } => t.mail_support_answered_subject(),
            Template::ConfirmPrivacyRequest { .. } => t.mail_request_subject(),
        }
    }

    fn body(&self, t: Texts) -> String {
        match self {
            Template::VerifyAddress { link } => format!("{}\n\n{link}\n\n{}\n", t.mail_verify_before(), t.mail_verify_after()),
            Template::AlreadyRegistered { login_link } => {
                format!("{}\n\n{login_link}\n\n{}\n", t.mail_registered_before(), t.mail_registered_after())
            }
            Template::PasswordReset { link } => format!("{}\n\n{link}\n\n{}\n", t.mail_reset_before(), t.mail_reset_after()),
            Template::RememberTheft { reset_link } => format!("{}\n\n{reset_link}\n", t.mail_theft_before()),
            Template::ConfirmNewAddress { link } => format!("{}\n\n{link}\n\n{}\n", t.mail_confirm_before(), t.mail_confirm_after()),
            Template::AddressChanged { new_address } => format!("{}\n\n{}\n", t.mail_changed_body(new_address), t.mail_changed_after()),
            Template::PasswordChanged { reset_link } => {
                format!("{}\n\n{}\n\n{reset_link}\n", t.mail_password_body(), t.mail_password_after())
            }
            Template::TermsAction { closed, clause, reason, link } => {
                let what = if *closed { t.mail_terms_closed_body(clause) } else { t.mail_terms_suspended_body(clause) };
                format!("{what}\n\n{reason}\n\n{}\n\n{link}\n", t.mail_terms_appeal())
            }
            Template::SupportReceived { ticket, link } => {
                format!("{}\n\n{link}\n\n{}\n", t.mail_support_received_body(ticket), t.mail_support_after())
            }
            Template::SupportAnswered { ticket, answer, link } => {
                format!("{}\n\n{answer}\n\n{link}\n\n{}\n", t.mail_support_answered_body(ticket), t.mail_support_after())
            }
            Template::ConfirmSignIn { link } => format!("{}\n\n{link}\n\n{}\n", t.mail_signin_before(), t.mail_signin_after()),
            Template::ConfirmPrivacyRequest { link } => format!("{}\n\n{link}\n\n{}\n", t.mail_request_before(), t.mail_request_after()),
        }
    }
}

#[derive(Clone)]
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(AsyncFileTransport<Tokio1Executor>, PathBuf),
}

#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.transport {
            Transport::Smtp(_) => "smtp".to_string(),
            Transport::Files(_, dir) => format!("files in {}", dir.display()),
        };
        f.debug_struct("Mailer").field("transport", &kind).field("from", &self.from.to_string()).finish()
    }
}

/// A mail set-up that cannot work: the message says what to fix, at start-up.
fn misconfigured(what: &'static str, message: String) -> CoreError {
    CoreError::broken(what, message)
}

impl Mailer {
    /// SMTP from a URL (`smtp://host:25`, `smtps://user:pass@host:465`,
    /// `smtp://host:587?tls=required`). Call it within the Tokio runtime: the pool starts a task.
    /// Unencrypted SMTP is accepted only to a loopback host (a local relay or a test sink).
    pub fn smtp(url: &SecretString, from: &str) -> Result<Mailer, CoreError> {
        let url = url.expose_secret();
        let host = url
            .split("://")
            .nth(1)
            .map(|rest| rest.rsplit('@').next().unwrap_or(rest))
            .and_then(|h| h.split([':', '/', '?']).next())
            .unwrap_or("");
        let encrypted = url.starts_with("smtps://") || url.contains("tls=required");
        if !encrypted && !matches!(host, "127.0.0.1" | "localhost" | "::1" | "[::1]") {
            return Err(misconfigured("mail.smtp_url", format!("must use TLS (smtps:// or ?tls=required) for {host}")));
        }
        let transport =
            AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map_err(|e| misconfigured("mail.smtp_url", e.to_string()))?.build();
        Ok(Mailer { transport: Transport::Smtp(transport), from: parse_from(from)? })
    }

    /// Development: messages become `.eml` files in `dir`.
    pub fn files(dir: PathBuf, from: &str) -> Result<Mailer, CoreError> {
        std::fs::create_dir_all(&dir).map_err(|e| misconfigured("mail outbox", format!("{}: {e}", dir.display())))?;
        Ok(Mailer { transport: Transport::Files(AsyncFileTransport::new(&dir), dir), from: parse_from(from)? })
    }

    pub async fn send(&self, to: &str, lang: Lang, template: &Template) -> Result<(), CoreError> {
        let texts = lang.texts();
        let mail = OutgoingMail::new(to, template.subject(texts), template.body(texts));
        self.send_mail(&mail).await.map_err(|failure| match failure {
            MailFailure::Invalid(code) => CoreError::input(code),
            MailFailure::Permanent(_) | MailFailure::Transient(_) => CoreError::Unavailable { code: "mail_send_failed" },
        })
    }

    /// Sends one message; says whether a failure is the relay refusing the address for good
    /// (a bounce) or one worth retrying.
    pub async fn send_mail(&self, mail: &OutgoingMail) -> Result<(), MailFailure> {
        // Parsing refuses anything that could inject headers (CR, LF, commas making a list).
        let to: Mailbox = mail.to.parse().map_err(|_| MailFailure::Invalid("email_invalid"))?;
        let mut builder = Message::builder().from(self.from.clone()).to(to).subject(mail.subject.as_str());
        if let Some(id) = &mail.message_id {
            builder = builder.message_id(Some(format!("<{id}@passme>")));
        }
        if let Some(url) = &mail.unsubscribe_url {
            // RFC 8058: a mail client may unsubscribe with one POST, without a page.
            builder = builder
                .raw_header(HeaderValue::new(HeaderName::new_from_ascii_str("List-Unsubscribe"), format!("<{url}>")))
                .raw_header(HeaderValue::new(HeaderName::new_from_ascii_str("List-Unsubscribe-Post"), "List-Unsubscribe=One-Click".into()));
        }
        let message = builder.header(ContentType::TEXT_PLAIN).body(mail.body.clone()).map_err(|_| MailFailure::Invalid("mail_invalid"))?;
        match &self.transport {
            Transport::Smtp(t) => t.send(message).await.map(|_| ()).map_err(|e| {
                tracing::warn!(error = %e, permanent = e.is_permanent(), "mail not sent");
                if e.is_permanent() {
                    MailFailure::Permanent(e.status().map(|c| c.to_string()).unwrap_or_default())
                } else {
                    MailFailure::Transient(e.to_string())
                }
            }),
            Transport::Files(t, _) => t.send(message).await.map(|_| ()).map_err(|e| MailFailure::Transient(e.to_string())),
        }
    }
}

/// A message ready to send: the words are chosen, the headers are not yet written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMail {
    pub to: String,
    pub subject: String,
    pub body: String,
    /// The message's idempotency key, sent as its `Message-ID`, so a receiver can tell a retry
    /// from a new message.
    pub message_id: Option<String>,
    /// The one-click unsubscribe address (RFC 8058), for mail a person may stop.
    pub unsubscribe_url: Option<String>,
}

impl OutgoingMail {
    /// A subject is one line: line breaks and other control characters (a header injection
    /// attempt, or a careless paste) become spaces.
    pub fn new(to: &str, subject: &str, body: String) -> OutgoingMail {
        let subject = subject.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>().trim().to_string();
        OutgoingMail { to: to.to_string(), subject, body, message_id: None, unsubscribe_url: None }
    }
}

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailFailure {
    /// The address or message cannot be sent at all (a stable code).
    Invalid(&'static str),
    /// The relay refused for good (SMTP 5xx): a bounce.
    Permanent(String),
    /// Worth another attempt (SMTP 4xx, the relay unreachable).
    Transient(String),
}

impl std::fmt::Display for MailFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MailFailure::Invalid(code) => write!(f, "{code}"),
            MailFailure::Permanent(status) => write!(f, "refused for good ({status})"),
            MailFailure::Transient(error) => write!(f, "not sent: {error}"),
        }
    }
}

impl std::error::Error for MailFailure {}

fn parse_from(from: &str) -> Result<Mailbox, CoreError> {
    from.parse().map_err(|e| misconfigured("mail.from", format!("{from:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn header_injection_and_address_lists_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mailer = Mailer::files(dir.path().to_path_buf(), "PassMe AI <no-reply@passme.ai>").expect("mailer");
        let template = Template::PasswordReset { link: "https://passme.test/reset?token=x".into() };
        for to in ["a@example.com\r\nBcc: victim@example.com", "a@example.com, b@example.com", "not an address"] {
            assert!(mailer.send(to, Lang::Da, &template).await.is_err(), "{to:?}");
        }
        mailer.send("ola@example.com", Lang::Da, &template).await.expect("sent");
        let files: Vec<_> = std::fs::read_dir(dir.path()).expect("outbox").collect();
        assert_eq!(files.len(), 1, "exactly the one valid message");
    }

    #[tokio::test]
    async fn unencrypted_smtp_is_refused_beyond_loopback() {
        let from = "PassMe AI <no-reply@passme.ai>";
        assert!(Mailer::smtp(&SecretString::from("smtp://mail.example.com:25".to_string()), from).is_err());
        assert!(Mailer::smtp(&SecretString::from("smtp://user:pw@mail.example.com:587?tls=required".to_string()), from).is_ok());
        assert!(Mailer::smtp(&SecretString::from("smtp://127.0.0.1:1025".to_string()), from).is_ok());
    }
}
