//! Configuration: built-in defaults, then one TOML file, then `PASSME_*` environment variables,
//! then command-line flags (applied by the binary). Secrets are never read from the file by
//! default: they come from the environment, from `*_FILE` paths, or (development only) from a
//! generated key file in the data folder.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}:{line}: {message}")]
    File { path: String, line: usize, message: String },
    #[error("cannot read {path}: {cause}")]
    Read { path: String, cause: String },
    #[error("{name}: {message}")]
    Env { name: String, message: String },
    #[error("refusing to start in production without {}", .missing.join(", "))]
    MissingSecrets { missing: Vec<String> },
    #[error("secrets.master_key: {0}")]
    BadKey(String),
}

impl ConfigError {
    pub fn code(&self) -> &'static str {
        match self {
            ConfigError::File { .. } | ConfigError::Read { .. } => "config_file_invalid",
            ConfigError::Env { .. } => "config_env_invalid",
            ConfigError::MissingSecrets { .. } => "config_secrets_missing",
            ConfigError::BadKey(_) => "config_key_invalid",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    #[default]
    Development,
    Production,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: Option<SecretString>,
    /// The address people use, e.g. `https://passme.ai`. An https URL turns on HSTS.
    pub public_url: Option<String>,
    pub environment: Environment,
    /// Another policy declaration file or folder instead of the built-in one.
    pub policy: Option<PathBuf>,
    pub log_format: LogFormat,
    pub log_filter: String,
    pub http: HttpConfig,
    pub jobs: JobsConfig,
    pub secrets: SecretsConfig,
    pub mail: MailConfig,
    pub analytics: AnalyticsConfig,
    pub billing: BillingConfig,
    pub metrics: MetricsConfig,
    pub linking: LinkingConfig,
    pub messaging: MessagingConfig,
    pub fraud: FraudConfig,
}

/// Direct communication: Web Push, partner audiences, delivery reports from the mail relay.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MessagingConfig {
    /// Whom a push service may contact about our messages (the VAPID `sub`): `mailto:` or https.
    pub push_contact: String,
    /// `host:port` pairs allowed although loopback or private: a push emulator or a partner's
    /// receiver in tests. Refused in production, where every endpoint must be a public HTTPS host.
    pub allowed_private_endpoints: Vec<String>,
    /// Declared marketing partners that receive audiences of hashed addresses.
    pub partners: Vec<PartnerConfig>,
    /// The token the mail relay presents when it posts delivery reports (bounces, complaints),
    /// read from this file; without it the endpoint is closed.
    pub dsn_token_file: Option<PathBuf>,
}

impl Default for MessagingConfig {
    fn default() -> Self {
        MessagingConfig {
            push_contact: "mailto:privacy@passme.ai".into(),
            allowed_private_endpoints: Vec::new(),
            partners: Vec::new(),
            dsn_token_file: None,
        }
    }
}

/// A marketing partner (the policy's `marketing_partners` processor).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerConfig {
    /// A short id, used in the export records.
    pub id: String,
    pub name: String,
    /// Where audiences and deletion requests are posted (HTTPS).
    pub endpoint: String,
    /// The file holding the key deliveries are signed with (HMAC-SHA-256).
    pub secret_file: PathBuf,
}

/// Who may read `/metrics`: whoever presents the token. Without one the endpoint is open in
/// development (a local server) and closed in production.
#[derive(Debug, Clone, Default)]
pub struct MetricsConfig {
    pub token: Option<SecretString>,
}

/// Subscriptions at the payment provider (Stripe's API). Billing is off until a secret key is
/// set; then at least one webhook signing secret is required too.
#[derive(Debug, Clone)]
pub struct BillingConfig {
    /// `sk_live_…` or `sk_test_…`; the prefix also says which events (live or test) to accept.
    pub secret_key: Option<SecretString>,
    /// Webhook signing secrets (`whsec_…`). Several are valid at once while one is rolled.
    pub webhook_secrets: Vec<SecretString>,
    /// The provider's API address: Stripe's, or a local emulator in tests.
    pub api_base: String,
    /// How long one provider request may take before it is retried.
    pub request_timeout_ms: u64,
    pub plans: Vec<PlanConfig>,
}

impl Default for BillingConfig {
    fn default() -> Self {
        BillingConfig {
            secret_key: None,
            webhook_secrets: Vec::new(),
            api_base: "https://api.stripe.com".into(),
            request_timeout_ms: 10_000,
            plans: Vec::new(),
        }
    }
}

/// Identity providers people may link and sign in with.
#[derive(Debug, Clone, Default)]
pub struct LinkingConfig {
    pub providers: Vec<ProviderConfig>,
}

/// One identity provider: OpenID Connect by `issuer` (endpoints and keys come from discovery),
/// or plain OAuth 2.0 by explicit endpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// A short id used in addresses (`/link/{id}/start`) and in the data PassMe keeps.
    pub id: String,
    /// The name people see ("Sign in with …").
    pub name: String,
    /// OpenID Connect: the issuer URL; discovery finds the rest.
    pub issuer: Option<String>,
    /// Plain OAuth 2.0: the endpoints, and the userinfo field that identifies the person.
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub userinfo_endpoint: Option<String>,
    pub revocation_endpoint: Option<String>,
    pub subject_field: Option<String>,
    pub client_id: String,
    /// Only a path: the client secret is a secret.
    pub client_secret_file: Option<PathBuf>,
    #[serde(skip)]
    pub client_secret: Option<SecretString>,
    /// The scopes asked for; each must be declared in the policy's processor for this provider.
    pub scopes: Vec<String>,
    /// The public profile fields kept (under personalisation consent); each must be declared in
    /// the policy.
    #[serde(default)]
    pub profile_fields: Vec<String>,
    /// How long one request to the provider may take.
    #[serde(default = "default_provider_timeout_ms")]
    pub request_timeout_ms: u64,
}

fn default_provider_timeout_ms() -> u64 {
    10_000
}

/// One plan of the catalogue, as the configuration file declares it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PlanConfig {
    /// Our id, e.g. `pro-monthly`: what pages and the API name.
    pub id: String,
    pub name: PlanName,
    /// The provider's price (or legacy plan) id, e.g. `price_1Q…`.
    pub price: String,
    /// `day`, `week`, `month` or `year`, as the provider bills it.
    pub interval: String,
    /// What the product may ask about (`GET /api/v1/entitlements`), e.g. `chat`, `priority`.
    #[serde(default)]
    pub entitlements: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PlanName {
    pub da: String,
    pub en: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileBilling {
    api_base: Option<String>,
    request_timeout_ms: Option<u64>,
    /// Only paths: secret values do not belong in the configuration file.
    secret_key_file: Option<PathBuf>,
    webhook_secrets_file: Option<PathBuf>,
    #[serde(default)]
    plans: Vec<PlanConfig>,
}

/// Fraud scanning.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FraudConfig {
    /// The disposable-mail domains `passme fraud import-domains` writes (default
    /// `<data dir>/disposable-domains.txt`).
    pub disposable_domains: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalyticsConfig {
    /// Sites whose pages may send events, besides PassMe's own (`passme`, on the public URL's
    /// host, or localhost in development).
    pub sites: Vec<SiteConfig>,
    /// The ISP table `passme geo import` writes (default `<data dir>/asn.pmasn`).
    pub asn_table: Option<PathBuf>,
    /// Events waiting for their group commit; beyond this the endpoint answers 503 with
    /// Retry-After instead of growing memory.
    pub queue_events: usize,
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        AnalyticsConfig { sites: Vec::new(), asn_table: None, queue_events: 20_000 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    pub id: String,
    pub hosts: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct MailConfig {
    /// `smtps://user:pass@host:465` or `smtp://host:587?tls=required`; unset in development
    /// writes messages to `<data dir>/outbox` instead.
    pub smtp_url: Option<SecretString>,
    pub from: String,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig { smtp_url: None, from: "PassMe AI <no-reply@passme.ai>".into() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest accepted request body.
    pub body_limit: usize,
    /// A request taking longer is answered with 408.
    pub request_timeout_secs: u64,
    /// Peers whose `X-Forwarded-For` is believed (a load balancer in front). Anyone else's is
    /// ignored, so a client cannot choose the address it is throttled under.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// A request's headers must arrive whole within this time of its first byte.
    pub header_timeout_secs: u64,
    /// A kept-alive connection with no request is closed after this long. Keep it above the idle
    /// timeout of a load balancer in front (commonly 60 s), so the balancer closes first.
    pub idle_timeout_secs: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            body_limit: 1024 * 1024,
            request_timeout_secs: 30,
            trusted_proxies: Vec::new(),
            header_timeout_secs: 10,
            idle_timeout_secs: 75,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// Worker tasks in this process; 0 runs no worker (another process does).
    pub workers: usize,
    pub poll_interval_ms: u64,
    pub lease_secs: u64,
    pub max_attempts: i64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig { workers: 1, poll_interval_ms: 500, lease_secs: 300, max_attempts: 8 }
    }
}

impl JobsConfig {
    pub fn lease_ms(&self) -> i64 {
        i64::try_from(self.lease_secs).unwrap_or(300).saturating_mul(1000)
    }
}

#[derive(Debug, Clone, Default)]
pub struct SecretsConfig {
    pub master_key: Option<SecretString>,
}

/// The file's shape. Unknown keys are errors with a line number (a typo must not be ignored).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    public_url: Option<String>,
    environment: Option<Environment>,
    policy: Option<PathBuf>,
    log_format: Option<LogFormat>,
    log_filter: Option<String>,
    #[serde(default)]
    http: Option<HttpConfig>,
    #[serde(default)]
    jobs: Option<JobsConfig>,
    secrets: Option<FileSecrets>,
    mail: Option<FileMail>,
    #[serde(default)]
    analytics: Option<AnalyticsConfig>,
    billing: Option<FileBilling>,
    metrics: Option<FileMetrics>,
    linking: Option<FileLinking>,
    #[serde(default)]
    messaging: Option<MessagingConfig>,
    fraud: Option<FraudConfig>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileLinking {
    #[serde(default)]
    providers: Vec<ProviderConfig>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileMetrics {
    /// Only a path: the token is a secret.
    token_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileMail {
    from: Option<String>,
    /// Only a path: the URL may hold the relay's password.
    smtp_url_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileSecrets {
    /// Only a path: secret values do not belong in the configuration file.
    master_key_file: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("passme-data"),
            database_url: None,
            public_url: None,
            environment: Environment::Development,
            policy: None,
            log_format: LogFormat::Text,
            log_filter: "info".into(),
            http: HttpConfig::default(),
            jobs: JobsConfig::default(),
            secrets: SecretsConfig::default(),
            mail: MailConfig::default(),
            analytics: AnalyticsConfig::default(),
            billing: BillingConfig::default(),
            metrics: MetricsConfig::default(),
            linking: LinkingConfig::default(),
            messaging: MessagingConfig::default(),
            fraud: FraudConfig::default(),
        }
    }
}

/// The variables that are not a key of a file section: top-level settings and secret values
/// (which the file never holds). Every `[section] key` has its variable too: see
/// [`Config::env_var_names`].
pub const ENV_VARS: &[(&str, &str)] = &[
    ("PASSME_CONFIG", "path of the TOML configuration file (default: ./passme.toml when present)"),
    ("PASSME_LISTEN", "address to listen on (default 127.0.0.1:8080)"),
    ("PASSME_DATA_DIR", "folder for the SQLite database and development keys (default ./passme-data)"),
    ("PASSME_DATABASE_URL", "postgres://… to use PostgreSQL; unset for embedded SQLite"),
    ("PASSME_DATABASE_URL_FILE", "file containing the database URL"),
    ("PASSME_PUBLIC_URL", "the public address, e.g. https://passme.ai (https turns on HSTS)"),
    ("PASSME_ENV", "development (default) or production"),
    ("PASSME_POLICY", "policy declaration file or folder instead of the built-in one"),
    ("PASSME_LOG_FORMAT", "text (default) or json"),
    ("PASSME_LOG", "log filter, e.g. info or passme_web=debug"),
    ("PASSME_METRICS__TOKEN", "bearer token that /metrics requires (unset: open in development, closed in production)"),
    ("PASSME_SECRETS__MASTER_KEY", "32 random bytes, base64: the key secrets at rest are derived from"),
    ("PASSME_MAIL__SMTP_URL", "SMTP relay, e.g. smtps://user:pass@host:465 (unset in development: mail goes to <data dir>/outbox)"),
    ("PASSME_BILLING__SECRET_KEY", "the payment provider's secret API key (sk_live_… or sk_test_…); unset turns billing off"),
    ("PASSME_BILLING__WEBHOOK_SECRETS", "comma-separated webhook signing secrets (whsec_…); two while one is rolled"),
];

/// Secret values: from the variable, or from the file its `_FILE` twin names.
const SECRET_VARS: [&str; 6] = [
    "PASSME_DATABASE_URL",
    "PASSME_METRICS__TOKEN",
    "PASSME_SECRETS__MASTER_KEY",
    "PASSME_MAIL__SMTP_URL",
    "PASSME_BILLING__SECRET_KEY",
    "PASSME_BILLING__WEBHOOK_SECRETS",
];

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

impl Config {
    /// Defaults, then `file` (if given, or `./passme.toml` when it exists), then the environment.
    pub fn load(file: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        let default_file = Path::new("passme.toml");
        let file = file.or_else(|| default_file.exists().then_some(default_file));
        let mut table = toml::Table::new();
        if let Some(path) = file {
            let text =
                std::fs::read_to_string(path).map_err(|e| ConfigError::Read { path: path.display().to_string(), cause: e.to_string() })?;
            let file_error = |e: toml::de::Error| ConfigError::File {
                path: path.display().to_string(),
                line: e.span().map_or(1, |s| line_of(&text, s.start)),
                message: e.message().trim().to_string(),
            };
            // Checked whole first, so that a mistake in the file is reported with its line.
            toml::from_str::<FileConfig>(&text).map_err(file_error)?;
            table = toml::from_str(&text).map_err(file_error)?;
        }
        // A secret given twice is refused before either is read.
        for name in SECRET_VARS {
            if env(name).is_some() && env(&format!("{name}_FILE")).is_some() {
                return Err(ConfigError::Env { name: name.into(), message: format!("set either {name} or {name}_FILE, not both") });
            }
        }
        overlay_section_vars(&mut table, env)?;
        let parsed: FileConfig =
            table.try_into().map_err(|e: toml::de::Error| ConfigError::Env { name: "PASSME_*".into(), message: e.to_string() })?;
        config.apply_file(parsed)?;
        config.apply_env(env)?;
        Ok(config)
    }

    fn apply_file(&mut self, f: FileConfig) -> Result<(), ConfigError> {
        if let Some(v) = f.listen {
            self.listen = v;
        }
        if let Some(v) = f.data_dir {
            self.data_dir = v;
        }
        if let Some(v) = f.database_url {
            self.database_url = Some(SecretString::from(v));
        }
        if let Some(v) = f.public_url {
            self.public_url = Some(v);
        }
        if let Some(v) = f.environment {
            self.environment = v;
        }
        if let Some(v) = f.policy {
            self.policy = Some(v);
        }
        if let Some(v) = f.log_format {
            self.log_format = v;
        }
        if let Some(v) = f.log_filter {
            self.log_filter = v;
        }
        if let Some(v) = f.http {
            self.http = v;
        }
        if let Some(v) = f.jobs {
            self.jobs = v;
        }
        if let Some(v) = f.messaging {
            self.messaging = v;
        }
        if let Some(v) = f.fraud {
            self.fraud = v;
        }
        if let Some(v) = f.analytics {
            self.analytics = v;
        }
        if let Some(mail) = f.mail {
            if let Some(from) = mail.from {
                self.mail.from = from;
            }
            if let Some(path) = mail.smtp_url_file {
                self.mail.smtp_url = Some(read_secret_file(&path, "mail.smtp_url_file")?);
            }
        }
        if let Some(billing) = f.billing {
            if let Some(base) = billing.api_base {
                self.billing.api_base = base;
            }
            if let Some(ms) = billing.request_timeout_ms {
                self.billing.request_timeout_ms = ms;
            }
            if let Some(path) = billing.secret_key_file {
                self.billing.secret_key = Some(read_secret_file(&path, "billing.secret_key_file")?);
            }
            if let Some(path) = billing.webhook_secrets_file {
                self.billing.webhook_secrets = split_secrets(read_secret_file(&path, "billing.webhook_secrets_file")?.expose_secret());
            }
            self.billing.plans = billing.plans;
        }
        if let Some(linking) = f.linking {
            for mut provider in linking.providers {
                if let Some(path) = &provider.client_secret_file {
                    provider.client_secret = Some(read_secret_file(path, "linking.providers.client_secret_file")?);
                }
                self.linking.providers.push(provider);
            }
        }
        if let Some(path) = f.metrics.and_then(|m| m.token_file) {
            self.metrics.token = Some(read_secret_file(&path, "metrics.token_file")?);
        }
        if let Some(path) = f.secrets.and_then(|s| s.master_key_file) {
            self.secrets.master_key = Some(read_secret_file(&path, "secrets.master_key_file")?);
        }
        Ok(())
    }

    fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(name: &'static str, value: &str) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            value.trim().parse().map_err(|e: T::Err| ConfigError::Env { name: name.into(), message: format!("{e} (got {value:?})") })
        }
        if let Some(v) = env("PASSME_LISTEN") {
            self.listen = parse("PASSME_LISTEN", &v)?;
        }
        if let Some(v) = env("PASSME_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = secret_from_env(env, "PASSME_DATABASE_URL")? {
            self.database_url = Some(v);
        }
        if let Some(v) = env("PASSME_PUBLIC_URL") {
            self.public_url = Some(v);
        }
        if let Some(v) = env("PASSME_ENV") {
            self.environment = match v.as_str() {
                "production" => Environment::Production,
                "development" => Environment::Development,
                _ => {
                    return Err(ConfigError::Env {
                        name: "PASSME_ENV".into(),
                        message: format!("expected development or production, got {v:?}"),
                    });
                }
            };
        }
        if let Some(v) = env("PASSME_POLICY") {
            self.policy = Some(PathBuf::from(v));
        }
        if let Some(v) = env("PASSME_LOG_FORMAT") {
            self.log_format = match v.as_str() {
                "json" => LogFormat::Json,
                "text" => LogFormat::Text,
                _ => {
                    return Err(ConfigError::Env {
                        name: "PASSME_LOG_FORMAT".into(),
                        message: format!("expected text or json, got {v:?}"),
                    });
                }
            };
        }
        if let Some(v) = env("PASSME_LOG") {
            self.log_filter = v;
        }
        // A section's secret values. Their `_FILE` twins are the sections' `*_file` keys, read
        // with the file (whose variables were put into it in `load`).
        let secret = |name: &str| env(name).map(SecretString::from);
        if let Some(v) = secret("PASSME_METRICS__TOKEN") {
            self.metrics.token = Some(v);
        }
        if let Some(v) = secret("PASSME_SECRETS__MASTER_KEY") {
            self.secrets.master_key = Some(v);
        }
        if let Some(v) = secret("PASSME_MAIL__SMTP_URL") {
            self.mail.smtp_url = Some(v);
        }
        if let Some(v) = secret("PASSME_BILLING__SECRET_KEY") {
            self.billing.secret_key = Some(v);
        }
        if let Some(v) = secret("PASSME_BILLING__WEBHOOK_SECRETS") {
            self.billing.webhook_secrets = split_secrets(v.expose_secret());
        }
        Ok(())
    }

    pub fn is_production(&self) -> bool {
        self.environment == Environment::Production
    }

    /// HSTS is sent only when TLS is in front of us, which the public URL states.
    pub fn behind_tls(&self) -> bool {
        self.public_url.as_deref().is_some_and(|u| u.starts_with("https://"))
    }

    /// PASSME_* variables that are set but not known: most likely typos.
    pub fn unknown_env_vars(vars: impl Iterator<Item = String>) -> Vec<String> {
        let known = Config::env_var_names();
        vars.filter(|name| name.starts_with("PASSME_") && !name.starts_with("PASSME_TEST_") && !known.contains(name)).collect()
    }

    /// Every variable PassMe reads: those of [`ENV_VARS`] and one per key of every section of the
    /// file (`[jobs] lease_secs` is `PASSME_JOBS__LEASE_SECS`), derived from the file's own
    /// definition so the two cannot drift apart.
    pub fn env_var_names() -> Vec<String> {
        let mut names: Vec<String> = ENV_VARS.iter().map(|(name, _)| (*name).to_string()).collect();
        for (section, keys) in sections() {
            names.extend(keys.iter().map(|key| section_var(section, key)));
        }
        names.sort();
        names.dedup();
        names
    }
}

/// The file's sections and their keys, read from their `Deserialize` definitions.
fn sections() -> [(&'static str, &'static [&'static str]); 10] {
    [
        ("http", fields::of::<HttpConfig>()),
        ("jobs", fields::of::<JobsConfig>()),
        ("secrets", fields::of::<FileSecrets>()),
        ("mail", fields::of::<FileMail>()),
        ("analytics", fields::of::<AnalyticsConfig>()),
        ("billing", fields::of::<FileBilling>()),
        ("metrics", fields::of::<FileMetrics>()),
        ("linking", fields::of::<FileLinking>()),
        ("messaging", fields::of::<MessagingConfig>()),
        ("fraud", fields::of::<FraudConfig>()),
    ]
}

fn section_var(section: &str, key: &str) -> String {
    format!("PASSME_{}__{}", section.to_ascii_uppercase(), key.to_ascii_uppercase())
}

/// Puts every `PASSME_SECTION__KEY` variable into the file's table as `[section] key`, read as
/// the key's type wants it: a TOML value (`30`, `true`, `["a"]`), else text, else a
/// comma-separated list (`PASSME_HTTP__TRUSTED_PROXIES=10.0.0.1,10.0.0.2`).
fn overlay_section_vars(table: &mut toml::Table, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
    for (section, keys) in sections() {
        for key in keys {
            let name = section_var(section, key);
            let Some(value) = env(&name) else { continue };
            let mut readings = Vec::new();
            if let Ok(mut literal) = toml::from_str::<toml::Table>(&format!("v = {value}"))
                && let Some(v) = literal.remove("v")
            {
                readings.push(v);
            }
            readings.push(toml::Value::String(value.clone()));
            readings.push(toml::Value::Array(
                value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| toml::Value::String(s.to_string())).collect(),
            ));
            let mut last_error = String::new();
            let fits = readings.into_iter().find(|reading| {
                let mut candidate = table.clone();
                set_key(&mut candidate, section, key, reading.clone());
                match candidate.try_into::<FileConfig>() {
                    Ok(_) => true,
                    Err(e) => {
                        last_error = e.message().trim().to_string();
                        false
                    }
                }
            });
            let Some(reading) = fits else { return Err(ConfigError::Env { name, message: format!("{last_error} (got {value:?})") }) };
            set_key(table, section, key, reading);
        }
    }
    Ok(())
}

/// Sets `[section] key` in the file's table. (A section the file wrote as something other than a
/// table is left alone: the file is refused for it anyway.)
fn set_key(table: &mut toml::Table, section: &str, key: &str, value: toml::Value) {
    if let Some(keys) = table.entry(section.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new())).as_table_mut() {
        keys.insert(key.to_string(), value);
    }
}

/// The field names a `Deserialize` struct asks for: serde hands them to the deserializer, which
/// here records them and stops.
mod fields {
    use serde::de::{self, Deserialize, Visitor};

    #[derive(Debug)]
    struct Found(&'static [&'static str]);

    impl std::fmt::Display for Found {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("fields found")
        }
    }

    impl std::error::Error for Found {}

    impl de::Error for Found {
        fn custom<T: std::fmt::Display>(_: T) -> Found {
            Found(&[])
        }
    }

    struct Asker;

    impl<'de> de::Deserializer<'de> for Asker {
        type Error = Found;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Found> {
            Err(Found(&[]))
        }

        fn deserialize_struct<V: Visitor<'de>>(self, _: &'static str, fields: &'static [&'static str], _: V) -> Result<V::Value, Found> {
            Err(Found(fields))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit unit_struct
            newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }

    pub(super) fn of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
        match T::deserialize(Asker) {
            Err(Found(fields)) => fields,
            Ok(_) => &[],
        }
    }
}

fn read_secret_file(path: &Path, what: &'static str) -> Result<SecretString, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::Read { path: format!("{} ({what})", path.display()), cause: e.to_string() })?;
    Ok(SecretString::from(text.trim().to_string()))
}

/// Secrets separated by commas or line breaks.
fn split_secrets(text: &str) -> Vec<SecretString> {
    text.split([',', '\n']).map(str::trim).filter(|s| !s.is_empty()).map(|s| SecretString::from(s.to_string())).collect()
}

/// `NAME` or `NAME_FILE`; both set is an error, since which one wins would be a guess.
/// A secret from its variable, or from the file its `_FILE` twin names (both at once were
/// refused in `load`).
fn secret_from_env(env: &dyn Fn(&str) -> Option<String>, name: &'static str) -> Result<Option<SecretString>, ConfigError> {
    match env(name) {
        Some(v) => Ok(Some(SecretString::from(v))),
        None => env(&format!("{name}_FILE")).map(|path| read_secret_file(Path::new(&path), name)).transpose(),
    }
}

/// Keys the service holds in memory. Nothing here appears in `Debug` output.
pub struct Secrets {
    master_key: SecretBox<[u8; 32]>,
    /// True when the key came from a generated development key file.
    pub development_key: bool,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets").field("master_key", &"[redacted]").field("development_key", &self.development_key).finish()
    }
}

impl Secrets {
    /// Secrets from a key the caller already holds (tests, tools).
    pub fn from_key(key: [u8; 32]) -> Secrets {
        Secrets { master_key: SecretBox::new(Box::new(key)), development_key: false }
    }

    pub fn master_key(&self) -> &[u8; 32] {
        self.master_key.expose_secret()
    }

    /// Resolves the secrets: explicit ones always win; in development a key file is created in
    /// the data folder when none is given; in production a missing secret stops the start.
    /// The secrets production needs that the configuration lacks, each with how to provide it.
    pub fn missing_in_production(config: &Config) -> Vec<String> {
        let mut missing = Vec::new();
        if config.secrets.master_key.is_none() {
            missing.push(
                "secrets.master_key (set PASSME_SECRETS__MASTER_KEY or PASSME_SECRETS__MASTER_KEY_FILE to 32 random bytes, base64)".into(),
            );
        }
        if config.mail.smtp_url.is_none() {
            missing.push("mail.smtp_url (set PASSME_MAIL__SMTP_URL or PASSME_MAIL__SMTP_URL_FILE)".into());
        }
        missing
    }

    pub fn resolve(config: &Config) -> Result<Secrets, ConfigError> {
        if config.is_production() {
            let missing = Secrets::missing_in_production(config);
            if !missing.is_empty() {
                return Err(ConfigError::MissingSecrets { missing });
            }
        }
        if let Some(key) = &config.secrets.master_key {
            return Ok(Secrets { master_key: decode_key(key.expose_secret())?, development_key: false });
        }
        if config.is_production() {
            return Err(ConfigError::MissingSecrets {
                missing: vec![
                    "secrets.master_key (set PASSME_SECRETS__MASTER_KEY or PASSME_SECRETS__MASTER_KEY_FILE to 32 random bytes, base64)"
                        .into(),
                ],
            });
        }
        let path = config.data_dir.join("dev-secrets.key");
        let key = match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().to_string(),
            Err(_) => {
                let mut bytes = [0u8; 32];
                rand::fill(&mut bytes);
                let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
                write_private_file(&path, &encoded)
                    .map_err(|e| ConfigError::Read { path: path.display().to_string(), cause: e.to_string() })?;
                encoded
            }
        };
        Ok(Secrets { master_key: decode_key(&key)?, development_key: true })
    }
}

fn decode_key(text: &str) -> Result<SecretBox<[u8; 32]>, ConfigError> {
    let text = text.trim();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
        .map_err(|_| ConfigError::BadKey("not valid base64".into()))?;
    let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| ConfigError::BadKey(format!("must be 32 bytes, got {}", b.len())))?;
    Ok(SecretBox::new(Box::new(key)))
}

fn write_private_file(path: &Path, content: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(path)?, content.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_string())
    }

    #[test]
    fn environment_overrides_the_file_and_the_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("passme.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\ndata_dir = \"/tmp/from-file\"\n[http]\nbody_limit = 2048\n").expect("write");
        let config =
            Config::load(Some(&file), &env_of(&[("PASSME_LISTEN", "127.0.0.1:9100"), ("PASSME_JOBS__WORKERS", "3")])).expect("load");
        assert_eq!(config.listen.port(), 9100);
        assert_eq!(config.data_dir, PathBuf::from("/tmp/from-file"));
        assert_eq!(config.http.body_limit, 2048);
        assert_eq!(config.jobs.workers, 3);
    }

    #[test]
    fn every_key_of_every_section_has_its_variable() {
        let names = Config::env_var_names();
        for expected in [
            "PASSME_JOBS__LEASE_SECS",
            "PASSME_JOBS__POLL_INTERVAL_MS",
            "PASSME_HTTP__REQUEST_TIMEOUT_SECS",
            "PASSME_BILLING__REQUEST_TIMEOUT_MS",
        ] {
            assert!(names.iter().any(|n| n == expected), "{expected} in {names:?}");
        }
        assert!(
            Config::unknown_env_vars(["PASSME_JOBS__LEASE_SECS".to_string(), "PASSME_JOBS__LEASE_SEC".to_string()].into_iter())
                == ["PASSME_JOBS__LEASE_SEC"]
        );
        let config = Config::load(
            None,
            &env_of(&[
                ("PASSME_JOBS__LEASE_SECS", "42"),
                ("PASSME_HTTP__TRUSTED_PROXIES", "10.0.0.1, 10.0.0.2"),
                ("PASSME_MAIL__FROM", "1234"),
                ("PASSME_ANALYTICS__ASN_TABLE", "/tmp/asn.pmasn"),
                ("PASSME_BILLING__REQUEST_TIMEOUT_MS", "2500"),
            ]),
        )
        .expect("load");
        assert_eq!(config.jobs.lease_secs, 42);
        assert_eq!(config.http.trusted_proxies.len(), 2);
        assert_eq!(config.mail.from, "1234", "text that looks like a number stays text where text is wanted");
        assert_eq!(config.analytics.asn_table.as_deref(), Some(Path::new("/tmp/asn.pmasn")));
        assert_eq!(config.billing.request_timeout_ms, 2500);
        let err = Config::load(None, &env_of(&[("PASSME_JOBS__LEASE_SECS", "soon")])).expect_err("not a number");
        assert!(err.to_string().starts_with("PASSME_JOBS__LEASE_SECS: "), "{err}");
    }

    /// The README's example file and variable table: every key has its variable, and every
    /// variable the table names is one PassMe reads.
    #[test]
    fn every_documented_key_and_variable_is_read() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).expect("README");
        let section = &readme[readme.find("## Configuration").expect("configuration section")..];
        let example = section.split("```toml").nth(1).and_then(|rest| rest.split("```").next()).expect("the example file");
        let table: toml::Table = toml::from_str(example).expect("the README's example parses");
        let names = Config::env_var_names();
        let top_level = |key: &str| match key {
            "environment" => "PASSME_ENV".to_string(),
            "log_filter" => "PASSME_LOG".to_string(),
            other => format!("PASSME_{}", other.to_ascii_uppercase()),
        };
        let mut checked = 0;
        for (key, value) in &table {
            let wanted: Vec<String> = match value {
                toml::Value::Table(keys) => keys.keys().map(|k| section_var(key, k)).collect(),
                _ => vec![top_level(key)],
            };
            for name in wanted {
                assert!(names.contains(&name), "the README documents a key without a variable: {name}");
                checked += 1;
            }
        }
        assert!(checked > 20, "{checked} keys");
        for line in section.lines().filter(|l| l.starts_with("| `PASSME_")) {
            let name = line.split('`').nth(1).expect("a variable");
            assert!(names.iter().any(|n| n == name), "the README names a variable PassMe does not read: {name}");
            if line.contains("/ `_FILE`") {
                let file = format!("{name}_FILE");
                assert!(names.contains(&file) || ENV_VARS.iter().any(|(n, _)| *n == file), "{file}");
            }
        }
    }

    #[test]
    fn a_typo_in_the_file_is_reported_with_its_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("passme.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\n\n[http]\nbody_limt = 5\n").expect("write");
        let err = Config::load(Some(&file), &env_of(&[])).expect_err("typo");
        assert!(matches!(&err, ConfigError::File { line: 4, message, .. } if message.contains("body_limt")), "{err}");
    }

    #[test]
    fn production_names_the_missing_secret_and_development_creates_a_key_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config { data_dir: dir.path().to_path_buf(), environment: Environment::Production, ..Config::default() };
        let err = Secrets::resolve(&config).expect_err("production without key");
        assert!(err.to_string().contains("PASSME_SECRETS__MASTER_KEY"), "{err}");
        config.environment = Environment::Development;
        let first = Secrets::resolve(&config).expect("dev key");
        let second = Secrets::resolve(&config).expect("dev key again");
        assert!(first.development_key);
        assert_eq!(first.master_key(), second.master_key(), "the development key file is reused");
        assert!(!format!("{first:?}").contains(&format!("{:?}", first.master_key())));
    }

    #[test]
    fn billing_comes_from_the_file_and_its_secrets_from_files_or_the_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secrets = dir.path().join("webhook-secrets");
        std::fs::write(&secrets, "whsec_old\nwhsec_new\n").expect("write");
        let file = dir.path().join("passme.toml");
        let text = format!(
            "[billing]\napi_base = \"http://127.0.0.1:8420\"\nwebhook_secrets_file = \"{}\"\n[[billing.plans]]\nid = \"pro\"\n\
             name = {{ da = \"Pro\", en = \"Pro\" }}\nprice = \"price_1\"\ninterval = \"month\"\nentitlements = [\"chat\"]\n",
            secrets.display()
        );
        std::fs::write(&file, text).expect("write");
        let config = Config::load(Some(&file), &env_of(&[("PASSME_BILLING__SECRET_KEY", "sk_test_x")])).expect("load");
        assert_eq!(config.billing.api_base, "http://127.0.0.1:8420");
        assert_eq!(config.billing.secret_key.as_ref().map(|k| k.expose_secret().to_string()).as_deref(), Some("sk_test_x"));
        let webhook: Vec<&str> = config.billing.webhook_secrets.iter().map(|s| s.expose_secret()).collect();
        assert_eq!(webhook, ["whsec_old", "whsec_new"]);
        assert_eq!(config.billing.plans[0].entitlements, ["chat"]);
        let from_env = Config::load(None, &env_of(&[("PASSME_BILLING__WEBHOOK_SECRETS", "whsec_a, whsec_b")])).expect("load");
        assert_eq!(from_env.billing.webhook_secrets.len(), 2);
        assert!(from_env.billing.secret_key.is_none(), "billing stays off without a key");
        std::fs::write(&file, "[billing]\nsecret_key = \"sk_live_in_the_file\"\n").expect("write");
        assert!(Config::load(Some(&file), &env_of(&[])).is_err(), "secret values are refused in the file");
    }

    #[test]
    fn the_metrics_token_and_connection_timeouts_come_from_file_or_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let token = dir.path().join("metrics-token");
        std::fs::write(&token, "scrape-me\n").expect("write");
        let file = dir.path().join("passme.toml");
        std::fs::write(&file, format!("[http]\nheader_timeout_secs = 5\n\n[metrics]\ntoken_file = \"{}\"\n", token.display()))
            .expect("write");
        let config = Config::load(Some(&file), &env_of(&[("PASSME_HTTP__IDLE_TIMEOUT_SECS", "90")])).expect("load");
        assert_eq!(config.metrics.token.as_ref().map(|t| t.expose_secret().to_string()).as_deref(), Some("scrape-me"));
        assert_eq!((config.http.header_timeout_secs, config.http.idle_timeout_secs), (5, 90));
        let from_env = Config::load(None, &env_of(&[("PASSME_METRICS__TOKEN", "t0k3n")])).expect("load");
        assert_eq!(from_env.metrics.token.as_ref().map(|t| t.expose_secret().to_string()).as_deref(), Some("t0k3n"));
        assert_eq!((from_env.http.header_timeout_secs, from_env.http.idle_timeout_secs), (10, 75), "the defaults");
        std::fs::write(&file, "[metrics]\ntoken = \"in-the-file\"\n").expect("write");
        assert!(Config::load(Some(&file), &env_of(&[])).is_err(), "the token itself is refused in the file");
    }

    #[test]
    fn malformed_keys_and_ambiguous_secrets_are_refused() {
        let config = Config { secrets: SecretsConfig { master_key: Some(SecretString::from("c2hvcnQ=")) }, ..Config::default() };
        assert!(matches!(Secrets::resolve(&config), Err(ConfigError::BadKey(_))));
        let err = Config::load(None, &env_of(&[("PASSME_SECRETS__MASTER_KEY", "x"), ("PASSME_SECRETS__MASTER_KEY_FILE", "/x")]))
            .expect_err("both");
        assert!(err.to_string().contains("not both"));
    }
}
