//! Command-line interface: configuration, store, policy and web wired together.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use passme_core::audit::AuditLog;
use passme_core::clock;
use passme_core::config::{Config, Environment, LogFormat};
use passme_policy::render::{self, Format, Options};
use passme_policy::{Lang, Policy};
use passme_store::Store;
use passme_web::Application;
use passme_web::app::{load_policy, store_options};

#[derive(Debug, Parser)]
#[command(name = "passme", version, about = "PassMe: the platform that makes PassMe AI's privacy policy true, enforced and tested.")]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct GlobalArgs {
    /// TOML configuration file (default: ./passme.toml when present).
    #[arg(long, global = true, env = "PASSME_CONFIG")]
    config: Option<PathBuf>,
    /// Policy declaration file or folder to use instead of the built-in declarations.
    #[arg(long, global = true)]
    policy: Option<PathBuf>,
    /// Folder for the embedded SQLite database and development keys.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormatArg>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the web server and background workers (SQLite in ./passme-data unless PASSME_DATABASE_URL is set).
    Serve {
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Refuse to start without explicitly provided secrets (same as PASSME_ENV=production).
        #[arg(long)]
        production: bool,
    },
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Render, validate and inspect the privacy policy declarations.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Inspect the tamper-evident audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Staff accounts.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The IP-to-ASN table that resolves internet service providers.
    #[command(subcommand)]
    Geo(GeoCommand),
    /// Fraud scanning's data files.
    #[command(subcommand)]
    Fraud(FraudCommand),
    /// Service tracking maintenance.
    #[command(subcommand)]
    Analytics(AnalyticsCommand),
    /// Subscriptions at the payment provider.
    #[command(subcommand)]
    Billing(BillingCommand),
    /// The retention engine: apply the policy's retention rules and read the reports of its runs.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Legal holds: keep a person's data, or a data category, past retention until a date.
    #[command(subcommand)]
    Hold(HoldCommand),
    /// Archives of personal data, encrypted with a key per person (in <data dir>/archives).
    #[command(subcommand)]
    Archive(ArchiveCommand),
    /// The token vault's keys (linked accounts' tokens are sealed with them).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The fleet on this database: live instances, job queues, running and dead-lettered jobs,
    /// and the last minute pass.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Add a key that encrypts from now on, then re-encrypt every sealed token with it in
    /// batches, showing progress on stderr. Safe to stop anywhere: `passme keys rewrap` finishes.
    Rotate {
        #[arg(long, default_value_t = 500)]
        batch: i64,
    },
    /// Re-encrypt every token still sealed under an older key (after an interrupted rotation).
    Rewrap {
        #[arg(long, default_value_t = 500)]
        batch: i64,
    },
    /// The keys, the active one, and how many token rows each seals.
    List,
}

#[derive(Debug, Subcommand)]
enum ArchiveCommand {
    /// Write every person's data to a new archive; it expires after the declared clean-up period.
    Create,
    /// The archives not yet cleaned.
    List,
    /// Remove the expired archives, saying how many of their records were already unreadable.
    Clean,
    /// The legal-hold export: one held person's record from an archive, as JSON on stdout.
    /// Refused, and audited, unless HOLD is a hold in force on a person.
    Open {
        archive: String,
        #[arg(long)]
        hold: String,
    },
}

#[derive(Debug, Subcommand)]
enum RetentionCommand {
    /// Apply every rule now (the hourly job does the same), showing progress on stderr and the
    /// report on stdout. Safe to stop anywhere and run again.
    Run {
        /// Count what is due without changing anything.
        #[arg(long)]
        dry_run: bool,
        /// Only the rules of this data category (account, payment, tracking, …).
        #[arg(long)]
        category: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The reports of the latest runs, newest first.
    Report {
        #[arg(long, default_value_t = 5)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum HoldCommand {
    /// Place a hold on a person (--email) or a data category (--category).
    Place {
        #[arg(long, conflicts_with = "category", required_unless_present = "category")]
        email: Option<String>,
        #[arg(long)]
        category: Option<String>,
        /// Why: the case, order or request it answers.
        #[arg(long)]
        reason: String,
        /// The last day it holds, YYYY-MM-DD.
        #[arg(long)]
        until: String,
    },
    /// Lift a hold before its date.
    Lift { id: String },
    /// The holds in force.
    List,
}

#[derive(Debug, Subcommand)]
enum BillingCommand {
    /// Compare every subscription with the provider, repair drift (missed webhooks), check the
    /// catalogue's prices, and print the report. Exits 1 when the catalogue has problems.
    Reconcile {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum GeoCommand {
    /// Convert the `@ip-location-db/asn` npm package (RouteViews and DB-IP, CC BY 4.0) into the
    /// compact table `serve` loads: `npm pack @ip-location-db/asn`, unpack, point --from at it.
    Import {
        /// The unpacked package folder (holding asn-ipv4-num.csv and asn-ipv6-num.csv).
        #[arg(long)]
        from: std::path::PathBuf,
        /// Where to write the table (default: <data dir>/asn.pmasn, where serve looks).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum FraudCommand {
    /// Convert the npm package `disposable-email-domains` (index.json and wildcard.json) into the
    /// sorted list `serve` loads for the `email.disposable` signal.
    ImportDomains {
        /// The unpacked package folder.
        #[arg(long)]
        from: std::path::PathBuf,
        /// Where to write the list (default: <data dir>/disposable-domains.txt, where serve looks).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum AnalyticsCommand {
    /// Recompute a site's visits and daily rollups from the stored page views.
    Rebuild {
        #[arg(long, default_value = "passme")]
        site: String,
        /// First day, YYYY-MM-DD.
        #[arg(long)]
        from: String,
        /// Last day, YYYY-MM-DD.
        #[arg(long)]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Make an account an admin (creating it if needed) and print a one-hour link to set its password.
    Create {
        #[arg(long)]
        email: String,
        /// The role to grant: admin, support, analyst or privacy_officer.
        #[arg(long, default_value = "admin")]
        role: String,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Render the published privacy policy (the same text GET /privacy serves).
    Render(RenderArgs),
    /// Validate the declarations; with --database also check the live schema against them.
    Check {
        /// Also compare the database schema with the declared data map.
        #[arg(long)]
        database: bool,
        /// Fail while the policy publishes a promise the code does not keep yet (as production
        /// refuses to start with one).
        #[arg(long)]
        strict: bool,
    },
    /// Render the GDPR article 30 record of processing activities.
    Record(RenderArgs),
    /// List every promise, its capability, and the tests that prove it.
    Promises,
}

#[derive(Debug, Args)]
struct RenderArgs {
    #[arg(long, value_enum, default_value = "da")]
    lang: LangArg,
    #[arg(long, value_enum, default_value = "md")]
    format: FormatArg,
    /// Show the promise id behind each sentence.
    #[arg(long)]
    promises: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LangArg {
    Da,
    En,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    Md,
    Html,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Walk the hash chain and report every altered, removed or reordered entry.
    Verify {
        /// A head recorded earlier (`SEQ:HASH` from `passme audit head`), to detect removal from the end.
        #[arg(long)]
        head: Option<String>,
    },
    /// Print the newest entry's sequence number and hash, to record somewhere else.
    Head,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match load_config(&cli) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("passme: {message}");
            return ExitCode::from(2);
        }
    };
    crate::logging::init(config.log_format, &config.log_filter);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("passme: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("passme: {message}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(cli: &Cli) -> Result<Config, String> {
    let env = |name: &str| std::env::var(name).ok();
    let mut config = Config::load(cli.global.config.as_deref(), &env).map_err(|e| e.to_string())?;
    if let Some(dir) = &cli.global.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(policy) = &cli.global.policy {
        config.policy = Some(policy.clone());
    }
    if let Some(format) = cli.global.log_format {
        config.log_format = match format {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        };
    }
    if let Command::Serve { listen, production } = &cli.command {
        if let Some(listen) = listen {
            config.listen = *listen;
        }
        if *production {
            config.environment = Environment::Production;
        }
    }
    Ok(config)
}

async fn run(command: Command, config: Config) -> Result<ExitCode, String> {
    for name in Config::unknown_env_vars(std::env::vars().map(|(k, _)| k)) {
        tracing::warn!(variable = %name, "unknown PASSME_ variable ignored (see the README's configuration reference)");
    }
    match command {
        Command::Serve { .. } => serve(config).await,
        Command::Migrate => {
            let store = Store::connect(&store_options(&config)).await.map_err(|e| e.to_string())?;
            let applied = store.migrate().await.map_err(|e| e.to_string())?;
            println!("{} database: {} migration(s) applied", store.engine().name(), applied.len());
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy(command) => policy(command, &config).await,
        Command::Audit(command) => audit(command, &config).await,
        Command::Admin(AdminCommand::Create { email, role }) => admin_create(&config, &email, &role).await,
        Command::Geo(GeoCommand::Import { from, out }) => geo_import(&config, &from, out),
        Command::Fraud(FraudCommand::ImportDomains { from, out }) => {
            let out = out.unwrap_or_else(|| config.data_dir.join(passme_fraud::signals::FILE_NAME));
            let count = passme_fraud::DisposableDomains::import(&from, &out)?;
            println!("{}: {count} disposable-mail domains", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Analytics(AnalyticsCommand::Rebuild { site, from, to }) => analytics_rebuild(&config, &site, &from, &to).await,
        Command::Billing(BillingCommand::Reconcile { json }) => billing_reconcile(&config, json).await,
        Command::Retention(command) => retention(command, &config).await,
        Command::Hold(command) => hold(command, &config).await,
        Command::Archive(command) => archive(command, &config).await,
        Command::Keys(command) => keys(command, &config).await,
        Command::Status { json } => status(&config, json).await,
    }
}

async fn serve(config: Config) -> Result<ExitCode, String> {
    let app = Application::build(config).await.map_err(|e| e.to_string())?;
    let addr = app.local_addr();
    tracing::info!(%addr, "listening");
    println!("PassMe is listening on http://{addr}/");
    app.run_until(shutdown_signal()).await.map_err(|e| e.to_string())?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}

fn lang_of(arg: LangArg) -> Lang {
    match arg {
        LangArg::Da => Lang::Da,
        LangArg::En => Lang::En,
    }
}

fn write_doc(policy: &Policy, doc: &render::Doc, args: &RenderArgs) {
    let format = match args.format {
        FormatArg::Md => Format::Markdown,
        FormatArg::Html => Format::Html,
    };
    let pending: Vec<String> = passme_core::pending_promises(policy).into_iter().map(|(p, _)| p.id).collect();
    print!("{}", render::write(doc, format, Options { show_promises: args.promises, standalone: true, pending: &pending }));
}

async fn policy(command: PolicyCommand, config: &Config) -> Result<ExitCode, String> {
    let policy = load_policy(config).map_err(|e| e.to_string())?;
    match command {
        PolicyCommand::Render(args) => write_doc(&policy, &render::policy(&policy, lang_of(args.lang)), &args),
        PolicyCommand::Record(args) => write_doc(&policy, &render::record(&policy, lang_of(args.lang)), &args),
        PolicyCommand::Check { database, strict } => return check(&policy, config, database, strict).await,
        PolicyCommand::Promises => return Ok(promises(&policy)),
    }
    Ok(ExitCode::SUCCESS)
}

async fn check(policy: &Policy, config: &Config, database: bool, strict: bool) -> Result<ExitCode, String> {
    println!(
        "policy {}: {} purposes, {} categories, {} fields with retention rules, {} processors, {} cookies, {} promises — valid",
        policy.meta.version,
        policy.purposes.len(),
        policy.categories.len(),
        policy.retention.len(),
        policy.processors.len(),
        policy.cookies.len(),
        policy.promises().len()
    );
    let pending = passme_core::pending_promises(policy);
    if strict && !pending.is_empty() {
        for (promise, why) in &pending {
            println!("pending: {} ({why})", promise.id);
        }
        println!("{} published promise(s) are not kept by the code yet: build them, or remove their declarations", pending.len());
        return Ok(ExitCode::FAILURE);
    }
    if !database {
        return Ok(ExitCode::SUCCESS);
    }
    let store = Store::connect(&store_options(config)).await.map_err(|e| e.to_string())?;
    let schema = store.schema().await.map_err(|e| e.to_string())?;
    let problems = passme_core::datamap::check(policy, &schema, &passme_core::is_implemented);
    if problems.is_empty() {
        println!("{} schema: every table and column is accounted for", store.engine().name());
        return Ok(ExitCode::SUCCESS);
    }
    for p in &problems {
        println!("data map: {p}");
    }
    Ok(ExitCode::FAILURE)
}

fn promises(policy: &Policy) -> ExitCode {
    let mut unproved = 0;
    for promise in policy.promises() {
        let tests = crate::proofs::tests_for(&promise.id);
        let status = match (passme_core::pending_reason(policy, &promise), tests.is_empty()) {
            (None, false) => format!("proved by {} test(s)", tests.len()),
            (None, true) => {
                unproved += 1;
                "NOT PROVED".to_string()
            }
            (Some(why), _) => format!("pending: {why}"),
        };
        println!("{}  [{}]  {status}", promise.id, promise.capability.id());
        for test in tests {
            println!("    {test}");
        }
    }
    if unproved > 0 {
        println!("{unproved} promise(s) of implemented capabilities have no test");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

async fn audit(command: AuditCommand, config: &Config) -> Result<ExitCode, String> {
    let store = Store::connect(&store_options(config)).await.map_err(|e| e.to_string())?;
    let log = AuditLog::new(store.clone(), clock::system());
    match command {
        AuditCommand::Head => {
            match store.chain_head(passme_store::Chain::Audit).await.map_err(|e| e.to_string())? {
                Some(head) => println!("{}:{}", head.seq, head.hash),
                None => println!("the audit log is empty"),
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify { head } => {
            let expected = match head.as_deref().map(|h| h.split_once(':')) {
                None => None,
                Some(Some((seq, hash))) => {
                    Some((seq.parse::<i64>().map_err(|_| format!("--head: {seq:?} is not a sequence number"))?, hash.to_string()))
                }
                Some(None) => return Err("--head must be SEQ:HASH as printed by `passme audit head`".into()),
            };
            let report = log.verify(expected.as_ref().map(|(s, h)| (*s, h.as_str()))).await.map_err(|e| e.to_string())?;
            for problem in &report.problems {
                println!("TAMPERED: {problem}");
            }
            if report.is_intact() {
                let head = report.head.map_or_else(|| "empty".to_string(), |(s, h)| format!("{s}:{h}"));
                println!("audit log intact: {} entries verified, head {head}", report.entries);
                Ok(ExitCode::SUCCESS)
            } else {
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

async fn admin_create(config: &Config, email: &str, role: &str) -> Result<ExitCode, String> {
    use passme_core::identity::accounts::{Accounts, RESET, RESET_TTL_MS, SignUp};
    use passme_core::identity::staff::{Role, Staff};
    let role = Role::parse(role).ok_or_else(|| format!("unknown role {role:?}: use admin, support, analyst or privacy_officer"))?;
    let store = Store::connect(&store_options(config)).await.map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    let clock = clock::system();
    let accounts = Accounts::new(store.clone(), clock.clone());
    let key = passme_core::identity::email::key(email);
    let account_id = match store.account_by_email_key(&key).await.map_err(|e| e.to_string())? {
        Some(account) => account.id,
        None => {
            // A random password nobody knows; the operator hands over the reset link instead.
            let unknown = secrecy::SecretString::from(passme_core::identity::new_token());
            match accounts.sign_up(email, unknown).await.map_err(|e| e.to_string())? {
                SignUp::Created { account_id } => account_id,
                SignUp::AlreadyRegistered => return Err("the account appeared while creating it; run the command again".into()),
            }
        }
    };
    store.set_email_verified(&account_id, clock.now_ms()).await.map_err(|e| e.to_string())?;
    Staff::new(store.clone(), clock.clone()).grant(&account_id, role, "operator").await.map_err(|e| e.to_string())?;
    let token = accounts.issue_token(&account_id, RESET, RESET_TTL_MS).await.map_err(|e| e.to_string())?;
    let (base, source) = link_base(config, &store).await?;
    println!("{email} holds the role {}.", role.id());
    println!(
        "Set its password within an hour: {}/reset?token={}",
        base.trim_end_matches('/'),
        secrecy::ExposeSecret::expose_secret(&token)
    );
    println!("(The link's address is {source}.)");
    Ok(ExitCode::SUCCESS)
}

/// Where the links an operator command prints should point, and why there: the configured public
/// URL; else the address a running server on this database registered; else the listen address
/// of the configuration.
async fn link_base(config: &Config, store: &Store) -> Result<(String, String), String> {
    if let Some(url) = &config.public_url {
        return Ok((url.clone(), "the configured public URL (public_url, PASSME_PUBLIC_URL)".into()));
    }
    let running = store.live_instances(clock::system().now_ms() - passme_web::app::missed_ms()).await.map_err(|e| e.to_string())?;
    if let Some(server) = running.first() {
        return Ok((server.base_url.clone(), "that of the server running on this database; set PASSME_PUBLIC_URL to choose it".into()));
    }
    Ok((
        format!("http://{}", config.listen),
        format!("the listen address {} (no server is running on this database, and no public URL is set)", config.listen),
    ))
}

fn geo_import(config: &Config, from: &std::path::Path, out: Option<std::path::PathBuf>) -> Result<ExitCode, String> {
    use passme_analytics::asn::{AsnTable, FILE_NAME};
    let started = std::time::Instant::now();
    let table = AsnTable::import(from).map_err(|e| e.to_string())?;
    let out = out.unwrap_or_else(|| config.data_dir.join(FILE_NAME));
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    table.write(&out).map_err(|e| e.to_string())?;
    let (v4, v6) = table.len();
    let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    println!(
        "{}: {v4} IPv4 and {v6} IPv6 ranges from {} ({:.1} MB; {} overlapping ranges cut) in {:.1} s",
        out.display(),
        table.source,
        size as f64 / 1e6,
        table.overlaps,
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

async fn analytics_rebuild(config: &Config, site: &str, from: &str, to: &str) -> Result<ExitCode, String> {
    use passme_analytics::report::day_of_date;
    use passme_analytics::rollup::Rollups;
    let day = |d: &str| day_of_date(d).ok_or_else(|| format!("{d:?} is not a date (YYYY-MM-DD)"));
    let (from_day, to_day) = (day(from)?, day(to)?);
    // Older page views have random visitor ids and hourly times: regrouping them into visits
    // would invent visits, so the rollups computed back then stay.
    let policy = load_policy(config).map_err(|e| e.to_string())?;
    if let Some(rule) = policy.retention.iter().find(|r| r.field == "tracking.view_visitor") {
        let horizon = clock::period_before(clock::system().now_ms(), &rule.period).div_euclid(86_400_000) + 1;
        if from_day < horizon {
            return Err(format!(
                "page views before {} are pseudonymised ({}): they can no longer be regrouped into visits; rebuild from {} on",
                passme_analytics::report::date_of_day(horizon),
                rule.id,
                passme_analytics::report::date_of_day(horizon)
            ));
        }
    }
    let store = Store::connect(&store_options(config)).await.map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    let visits = Rollups::new(store, clock::system()).rebuild(site, from_day, to_day).await.map_err(|e| e.to_string())?;
    println!("{site}: {visits} visits over {} day(s) rebuilt in {:.1} s", to_day - from_day + 1, started.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}

async fn billing_reconcile(config: &Config, json: bool) -> Result<ExitCode, String> {
    let store = Store::connect(&store_options(config)).await.map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    let base_url = config.public_url.clone().unwrap_or_else(|| format!("http://{}", config.listen));
    let billing = passme_billing::Billing::from_config(&config.billing, store, clock::system(), &base_url)
        .map_err(|e| e.to_string())?
        .ok_or("billing is off: set PASSME_BILLING__SECRET_KEY (and the webhook secrets)")?;
    let report = billing.reconcile().await.map_err(|e| format!("{} ({})", e, e.code()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
    } else {
        println!(
            "checked {} subscription(s), repaired {}, {} at the provider belong to no account of ours",
            report.checked,
            report.repaired.len(),
            report.foreign
        );
        for repair in &report.repaired {
            println!("  repaired {}: {} -> {}", repair.subscription, repair.before.as_deref().unwrap_or("(missing)"), repair.after);
        }
        for problem in &report.catalogue_problems {
            println!("  catalogue: {problem}");
        }
    }
    Ok(if report.catalogue_problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

async fn migrated_store(config: &Config) -> Result<Store, String> {
    let store = Store::connect(&store_options(config)).await.map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    Ok(store)
}

async fn status(config: &Config, json: bool) -> Result<ExitCode, String> {
    let store = migrated_store(config).await?;
    let now = clock::system().now_ms();
    let fleet = passme_core::fleet::FleetStatus::read(&store, now - passme_web::app::missed_ms(), passme_analytics::rollup::PASS_LEASE)
        .await
        .map_err(|e| e.to_string())?;
    if json {
        println!("{}", serde_json::to_string_pretty(&fleet.to_json()).map_err(|e| e.to_string())?);
        return Ok(ExitCode::SUCCESS);
    }
    let ago = |ms: i64| format!("{} s ago", (now - ms).max(0) / 1000);
    println!("instances ({} live):", fleet.instances.len());
    for i in &fleet.instances {
        println!("  {}  v{}  started {}  heartbeat {}  {}", i.id, i.version, time_of_ms(i.started_at), ago(i.heartbeat_at), i.base_url);
    }
    println!("queues (queued / running / dead):");
    for d in &fleet.depths {
        println!("  {:<28} {:>8} {:>8} {:>6}", d.kind, d.queued, d.running, d.dead);
    }
    println!("running jobs:");
    for j in &fleet.running {
        let lease = j.locked_until.map_or_else(String::new, |until| format!("lease ends in {} s", (until - now) / 1000));
        println!("  {}  {}  attempt {}  held by {}  {lease}", j.id, j.kind, j.attempts, j.locked_by.as_deref().unwrap_or("-"));
    }
    println!("dead letters (newest first):");
    for j in &fleet.dead {
        println!(
            "  {}  {}  {} attempts  {}  {}",
            j.id,
            j.kind,
            j.attempts,
            time_of_ms(j.updated_at),
            j.last_error.as_deref().unwrap_or("")
        );
    }
    match &fleet.minute_pass {
        Some(pass) => {
            let last =
                pass.finished_at.map_or_else(|| "never finished".into(), |at| format!("last finished {} ({})", time_of_ms(at), ago(at)));
            let took = pass.took_ms.map_or_else(String::new, |ms| format!(", took {ms} ms"));
            let now_running = pass.holder.as_deref().map_or_else(String::new, |h| format!("; running now ({h})"));
            println!("minute pass: {last}{took}, {} runs{now_running}", pass.runs);
        }
        None => println!("minute pass: not run yet"),
    }
    Ok(ExitCode::SUCCESS)
}

fn time_of_ms(ms: i64) -> String {
    let seconds = ms.div_euclid(1000) % 86_400;
    format!("{} {:02}:{:02}:{:02}Z", date_of_ms(ms), seconds / 3600, seconds / 60 % 60, seconds % 60)
}

fn date_of_ms(ms: i64) -> String {
    passme_analytics::report::date_of_day(ms.div_euclid(86_400_000))
}

async fn retention(command: RetentionCommand, config: &Config) -> Result<ExitCode, String> {
    use passme_core::housekeeping::{Housekeeping, RunOptions};
    use std::io::IsTerminal;
    let policy = load_policy(config).map_err(|e| e.to_string())?;
    let store = migrated_store(config).await?;
    let housekeeping = Housekeeping::new(store, clock::system(), &policy).map_err(|e| e.to_string())?;
    let reports = match command {
        RetentionCommand::Run { dry_run, category, json } => {
            if let Some(c) = category.as_deref().filter(|c| !policy.categories.iter().any(|d| d.id.get_ref() == c)) {
                return Err(format!("unknown data category {c:?}"));
            }
            let options = RunOptions { dry_run, category, source: "cli".into() };
            // On a terminal the line is redrawn in place; in a log, each rule gets one line.
            let terminal = std::io::stderr().is_terminal();
            let progress = |rule: &str, changed: u64, due: i64| {
                show_progress(
                    terminal,
                    &format!("{} {rule}: {changed}/{due}", progress_bar(changed, due)),
                    dry_run || changed as i64 >= due,
                );
            };
            let report = housekeeping.run_with(&options, &progress).await.map_err(|e| e.to_string())?;
            if terminal {
                eprintln!();
            }
            (vec![report], json)
        }
        RetentionCommand::Report { limit, json } => (housekeeping.reports(limit.clamp(1, 100)).await.map_err(|e| e.to_string())?, json),
    };
    let (reports, json) = reports;
    if json {
        println!("{}", serde_json::to_string_pretty(&reports).map_err(|e| e.to_string())?);
        return Ok(ExitCode::SUCCESS);
    }
    if reports.is_empty() {
        println!("no retention run yet");
    }
    for report in &reports {
        let state = match report.finished_at {
            Some(_) if report.dry_run => "dry run",
            Some(_) => "finished",
            None => "interrupted or running",
        };
        println!("run {} ({}, {state}) started {}", report.id, report.source, date_of_ms(report.started_at));
        for rule in &report.rules {
            let outcome = match &rule.skipped {
                Some(why) => format!("skipped: {why}"),
                None => format!("{} due, {} changed", rule.examined, rule.changed),
            };
            println!("  {:<42} before {}  {outcome}", rule.rule, date_of_ms(rule.cutoff));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One progress line on stderr: redrawn in place on a terminal; in a log, written only when
/// `log` says the line is worth keeping.
fn show_progress(terminal: bool, line: &str, log: bool) {
    use std::io::Write;
    if terminal {
        eprint!("\r\x1b[2K{line}");
        let _ = std::io::stderr().flush();
    } else if log {
        eprintln!("{line}");
    }
}

/// `[#####-----]` for `done` of `due`.
fn progress_bar(done: u64, due: i64) -> String {
    const WIDTH: usize = 20;
    let filled = if due <= 0 { WIDTH } else { ((done as f64 / due as f64) * WIDTH as f64).round().min(WIDTH as f64) as usize };
    format!("[{}{}]", "#".repeat(filled), "-".repeat(WIDTH - filled))
}

async fn hold(command: HoldCommand, config: &Config) -> Result<ExitCode, String> {
    use passme_core::rights::holds::{HoldScope, LegalHolds};
    let policy = load_policy(config).map_err(|e| e.to_string())?;
    let store = migrated_store(config).await?;
    let holds = LegalHolds::new(store.clone(), clock::system());
    match command {
        HoldCommand::Place { email, category, reason, until } => {
            let day = passme_analytics::report::day_of_date(&until).ok_or_else(|| format!("{until:?} is not a date (YYYY-MM-DD)"))?;
            // The hold covers the whole of its last day.
            let until_ms = (day + 1) * 86_400_000 - 1;
            let scope = match (email, category) {
                (Some(email), _) => {
                    let key = passme_core::identity::email::key(&email);
                    let account =
                        store.account_by_email_key(&key).await.map_err(|e| e.to_string())?.ok_or("no account has that address")?;
                    HoldScope::Person(account.id)
                }
                (None, Some(category)) => HoldScope::Category(category),
                (None, None) => return Err("name --email or --category".into()),
            };
            let id = holds.place(&policy, scope, &reason, until_ms, "operator").await.map_err(|e| format!("{e} ({})", e.code()))?;
            println!("{id} placed until the end of {until}");
        }
        HoldCommand::Lift { id } => {
            holds.lift(&id, "operator").await.map_err(|e| format!("{e} ({})", e.code()))?;
            println!("{id} lifted");
        }
        HoldCommand::List => {
            let in_force = holds.in_force().await.map_err(|e| e.to_string())?;
            if in_force.is_empty() {
                println!("no hold in force");
            }
            for hold in in_force {
                let scope = match (&hold.account_id, &hold.category) {
                    (Some(account), _) => format!("person {}", account.as_str()),
                    (None, Some(category)) => format!("category {category}"),
                    (None, None) => "nothing".into(),
                };
                println!("{}  {scope}  until {}  placed by {}: {}", hold.id, date_of_ms(hold.until_at), hold.placed_by, hold.reason);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn keys(command: KeysCommand, config: &Config) -> Result<ExitCode, String> {
    use passme_linking::vault::Vault;
    use std::io::IsTerminal;
    let store = migrated_store(config).await?;
    let secrets = passme_core::config::Secrets::resolve(config).map_err(|e| e.to_string())?;
    let vault = Vault::new(store.clone(), clock::system(), secrets.master_key());
    let fail = |e: passme_linking::vault::VaultError| format!("{e} ({})", e.code());
    let batch = match command {
        KeysCommand::List => {
            let active = vault.active().await.map_err(fail)?;
            let counts = store.token_rows_by_key().await.map_err(|e| e.to_string())?;
            for key in store.vault_keys().await.map_err(|e| e.to_string())? {
                let rows = counts.iter().find(|(k, _)| *k == key.id).map_or(0, |(_, n)| *n);
                let marker = if key.id == active.id { "  (active)" } else { "" };
                println!("{}  made {}  seals {rows} token row(s){marker}", key.id, date_of_ms(key.created_at));
            }
            return Ok(ExitCode::SUCCESS);
        }
        KeysCommand::Rotate { batch } => {
            vault.active().await.map_err(fail)?;
            let id = vault.add_rotation_key().await.map_err(fail)?;
            eprintln!("{id} added; it encrypts from now on");
            batch
        }
        KeysCommand::Rewrap { batch } => batch,
    };
    let terminal = std::io::stderr().is_terminal();
    let mut last_line = 0;
    let done = vault
        .rewrap(batch.clamp(1, 10_000), |done, total| {
            let log = done == total || done >= last_line + 10_000;
            if log {
                last_line = done;
            }
            show_progress(terminal, &format!("{} {done}/{total} token rows", progress_bar(done, total as i64)), log);
        })
        .await
        .map_err(fail)?;
    if terminal {
        eprintln!();
    }
    println!(
        "re-encrypted {} token row(s) under {} ({} rewritten meanwhile by a refresh)",
        done.rows,
        vault.active().await.map_err(fail)?.id,
        done.raced
    );
    Ok(ExitCode::SUCCESS)
}

async fn archive(command: ArchiveCommand, config: &Config) -> Result<ExitCode, String> {
    use passme_core::rights::archive::Archives;
    let policy = load_policy(config).map_err(|e| e.to_string())?;
    let store = migrated_store(config).await?;
    let secrets = passme_core::config::Secrets::resolve(config).map_err(|e| e.to_string())?;
    let archives = Archives::new(store, clock::system(), &policy, secrets.master_key(), config.data_dir.join("archives"))
        .map_err(|e| e.to_string())?;
    let fail = |e: passme_core::CoreError| format!("{e} ({})", e.code());
    match command {
        ArchiveCommand::Create => {
            let created = archives.create("operator").await.map_err(fail)?;
            println!(
                "{}: {} person(s), {} bytes, in {}; expires {}",
                created.id,
                created.persons,
                created.bytes,
                created.path.display(),
                date_of_ms(created.expires_at)
            );
        }
        ArchiveCommand::List => {
            let list = archives.list().await.map_err(fail)?;
            if list.is_empty() {
                println!("no archive");
            }
            for a in list {
                println!(
                    "{}  made {}  expires {}  {} person(s)  {} bytes",
                    a.id,
                    date_of_ms(a.created_at),
                    date_of_ms(a.expires_at),
                    a.persons,
                    a.bytes
                );
            }
        }
        ArchiveCommand::Clean => {
            let cleaned = archives.clean("operator").await.map_err(fail)?;
            if cleaned.is_empty() {
                println!("no archive has expired");
            }
            for c in cleaned {
                println!("{} removed: {} record(s) already isolated, {} still readable", c.id, c.isolated, c.readable);
            }
        }
        ArchiveCommand::Open { archive, hold } => match archives.open_for_hold(&archive, &hold, "operator").await.map_err(fail)? {
            Some(json) => println!("{json}"),
            None => {
                eprintln!("the archive holds no readable record of the held person (their key is destroyed, or they were not in it)");
                return Ok(ExitCode::from(1));
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}
