//! Structured logs: human-readable text by default, JSON with `--log-format json`. Secrets never
//! reach the log: they are typed (`SecretString`) and have no `Display`; request logs carry the
//! route pattern, never raw paths or query strings. As a last line of defence every line passes
//! through [`passme_core::redact::redact_line`], so a card number, an e-mail address, a full IP
//! address or a token that slipped into an error message is masked before it is written.

use std::io::{IsTerminal, Write};

use passme_core::config::LogFormat;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

pub fn init(format: LogFormat, filter: &str) {
    // Every SQL statement at debug (the workers poll twice a second) buries the request lines
    // that `PASSME_LOG=debug` is for; name `sqlx` in the filter to see them.
    let filter = if filter.contains("sqlx") { filter.to_string() } else { format!("{filter},sqlx=info") };
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal: escape codes in a log file or journal break every
    // search for `key=value`.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(colour).with_writer(RedactingStderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Standard error, with personal data and secrets masked. The formatter writes each event whole, so a
/// number is never split across two writes.
struct RedactingStderr;

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = Redacting<std::io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        Redacting(std::io::stderr())
    }
}

/// A writer that masks personal data and secrets before passing text on.
struct Redacting<W: Write>(W);

impl<W: Write> Write for Redacting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(passme_core::redact::redact_line(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_numbers_and_addresses_are_masked_before_a_log_line_is_written() {
        let mut out = Redacting(Vec::new());
        writeln!(out, "provider said: card 4242 4242 4242 4242 declined for kim@example.com, order 12345").expect("write");
        let written = String::from_utf8(out.0).expect("utf-8");
        assert_eq!(
            written,
            format!("provider said: card {} declined for {}, order 12345\n", passme_core::cards::MASK, passme_core::redact::EMAIL_MASK)
        );
    }
}
