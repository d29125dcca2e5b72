//! Outgoing e-mail. Transactional messages (address verification, password reset) in Danish and
//! English, sent over SMTP with TLS — or, in development without an SMTP server, written as
//! `.eml` files to `<data dir>/outbox` so nothing is lost and nothing (tokens!) reaches a log.

use std::path::PathBuf;

use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use passme_policy::Lang;
use secrecy::{ExposeSecret, SecretString};

use crate::CoreError;

/// A message we send, with what it needs to say.
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
}

impl Template {
    fn subject(&self, lang: Lang) -> &'static str {
        match self {
            Template::VerifyAddress { .. } => {
                lang.pick("Bekræft din e-mailadresse hos PassMe AI", "Confirm your e-mail address at PassMe AI")
            }
            Template::AlreadyRegistered { .. } => {
                lang.pick("Du har allerede en konto hos PassMe AI", "You already have an account at PassMe AI")
            }
            Template::PasswordReset { .. } => lang.pick("Vælg en ny adgangskode hos PassMe AI", "Choose a new password at PassMe AI"),
            Template::RememberTheft { .. } => lang.pick("Vi har logget dig ud overalt", "We signed you out everywhere"),
            Template::ConfirmNewAddress { .. } => {
                lang.pick("Bekræft din nye e-mailadresse hos PassMe AI", "Confirm your new e-mail address at PassMe AI")
            }
            Template::AddressChanged { .. } => {
                lang.pick("Din e-mailadresse hos PassMe AI er ændret", "Your e-mail address at PassMe AI has changed")
            }
        }
    }

    fn body(&self, lang: Lang) -> String {
        match self {
            Template::VerifyAddress { link } => format!(
                "{}\n\n{link}\n\n{}\n",
                lang.pick("Tak fordi du oprettede en konto. Åbn linket for at bekræfte din e-mailadresse:", "Thank you for creating an account. Open the link to confirm your e-mail address:"),
                lang.pick("Linket virker i 24 timer. Har du ikke oprettet en konto, kan du se bort fra denne e-mail.", "The link works for 24 hours. If you did not create an account, you can ignore this e-mail."),
            ),
            Template::AlreadyRegistered { login_link } => format!(
                "{}\n\n{login_link}\n\n{}\n",
                lang.pick("Nogen forsøgte at oprette en konto med denne adresse, men du har allerede en. Log ind her:", "Someone tried to create an account with this address, but you already have one. Sign in here:"),
                lang.pick("Var det ikke dig, skal du ikke gøre noget; din konto er uændret.", "If it was not you, do nothing; your account is unchanged."),
            ),
            Template::RememberTheft { reset_link } => format!(
                "{}\n\n{reset_link}\n",
                lang.pick(
                    "En gammel kopi af din \"husk mig\"-cookie blev brugt, så nogen kan have kopieret den. For en sikkerheds skyld har vi logget dig ud på alle enheder og afsluttet alle huskede log-ins, også dem der blev startet med kopien. Log ind igen med din adgangskode. Var det ikke dig, så vælg en ny adgangskode:",
                    "An old copy of your \"remember me\" cookie was used, so someone may have copied it. To be safe we have signed you out on every device and ended every remembered sign-in, including any started with the copy. Sign in again with your password. If it was not you, choose a new password:",
                ),
            ),
            Template::ConfirmNewAddress { link } => format!(
                "{}\n\n{link}\n\n{}\n",
                lang.pick("Åbn linket for at bruge denne adresse til din konto hos PassMe AI:", "Open the link to use this address for your PassMe AI account:"),
                lang.pick("Linket virker i 24 timer. Har du ikke bedt om det, kan du se bort fra denne e-mail.", "The link works for 24 hours. If you did not ask for it, ignore this e-mail."),
            ),
            Template::AddressChanged { new_address } => format!(
                "{} {new_address}.\n\n{}\n",
                lang.pick("Din konto bruger nu adressen", "Your account now uses the address"),
                lang.pick("Var det ikke dig, så skriv straks til os ved at svare på denne e-mail.", "If it was not you, write to us at once by replying to this e-mail."),
            ),
            Template::PasswordReset { link } => format!(
                "{}\n\n{link}\n\n{}\n",
                lang.pick("Åbn linket for at vælge en ny adgangskode:", "Open the link to choose a new password:"),
                lang.pick("Linket virker én gang og i en time. Har du ikke bedt om det, kan du se bort fra denne e-mail; din adgangskode er uændret.", "The link works once and for one hour. If you did not ask for it, ignore this e-mail; your password is unchanged."),
            ),
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

fn invalid(code: &'static str, message: String) -> CoreError {
    CoreError::Invalid { code, message }
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
            return Err(invalid("mail_tls_required", format!("mail.smtp_url must use TLS (smtps:// or ?tls=required) for {host}")));
        }
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| invalid("mail_url_invalid", format!("mail.smtp_url: {e}")))?
            .build();
        Ok(Mailer { transport: Transport::Smtp(transport), from: parse_from(from)? })
    }

    /// Development: messages become `.eml` files in `dir`.
    pub fn files(dir: PathBuf, from: &str) -> Result<Mailer, CoreError> {
        std::fs::create_dir_all(&dir).map_err(|e| invalid("mail_outbox_unwritable", format!("{}: {e}", dir.display())))?;
        Ok(Mailer { transport: Transport::Files(AsyncFileTransport::new(&dir), dir), from: parse_from(from)? })
    }

    pub async fn send(&self, to: &str, lang: Lang, template: &Template) -> Result<(), CoreError> {
        // The address was validated at sign-up; parsing again refuses anything that could inject
        // headers (CR, LF, commas making a list).
        let to: Mailbox = to.parse().map_err(|e| invalid("email_invalid", format!("cannot address mail: {e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(template.subject(lang))
            .header(ContentType::TEXT_PLAIN)
            .body(template.body(lang))
            .map_err(|e| invalid("mail_build_failed", e.to_string()))?;
        let result = match &self.transport {
            Transport::Smtp(t) => t.send(message).await.map(|_| ()).map_err(|e| e.to_string()),
            Transport::Files(t, _) => t.send(message).await.map(|_| ()).map_err(|e| e.to_string()),
        };
        result.map_err(|e| {
            tracing::warn!(error = %e, "mail not sent");
            CoreError::Unavailable { code: "mail_send_failed", message: "the e-mail could not be sent; try again shortly".into() }
        })
    }
}

fn parse_from(from: &str) -> Result<Mailbox, CoreError> {
    from.parse().map_err(|e| invalid("mail_from_invalid", format!("mail.from {from:?}: {e}")))
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
