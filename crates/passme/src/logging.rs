//! Structured logs: human-readable text by default, JSON with `--log-format json`. Secrets never
//! reach the log: they are typed (`SecretString`) and have no `Display`; request logs carry the
//! route pattern, never raw paths or query strings.

use passme_core::config::LogFormat;
use tracing_subscriber::EnvFilter;

pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
