//! A maintenance notice to `--people` users through the outbox: e-mail to a real aiosmtpd (which
//! records each message's `Message-ID`) and Web Push to `--devices` browsers at a real
//! `web-push-testing`. Two announcements: the first measures messages per second with one
//! worker process; during the second the worker is killed with SIGKILL once `--crash-at`
//! messages are out and a fresh worker finishes the job after the dead one's leases run out.
//! The receivers then count every message id: none may be missing, and the duplicates are at most
//! the messages in flight at the kill. Prints rates, the counts and the workers' peak memory.
//!
//!     cargo run --release -p passme-bench --bin notices -- --people 100000 [--devices 1000] [--crash-at 20000] [--postgres URL]
//!
//! Needs the test peers (`scripts/test` installs them into `.tools/`). With `--postgres`, give
//! it a database of its own: it empties the tables it uses.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use passme_bench::arg;
use passme_core::clock::{self, SharedClock};
use passme_core::config::MessagingConfig;
use passme_core::jobs::{Handlers, JobQueue, Worker};
use passme_core::mail::Mailer;
use passme_messaging::campaigns::{Kind, NewCampaign};
use passme_messaging::outbox::QUEUE;
use passme_messaging::{Channel, Messaging, Topic};
use passme_store::{AccountId, Segment, Store, StoreOptions};
use secrecy::SecretString;

const KEY: [u8; 32] = [3; 32];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn connect(data: &str, postgres: &str) -> Result<Store, Box<dyn std::error::Error>> {
    let options = StoreOptions {
        database_url: (!postgres.is_empty()).then(|| SecretString::from(postgres.to_string())),
        data_dir: PathBuf::from(data),
        max_connections: 8,
    };
    Ok(Store::connect(&options).await?)
}

fn messaging(
    store: &Store,
    clock: &SharedClock,
    smtp_port: u16,
    push_allowed: &str,
) -> Result<(Messaging, JobQueue), Box<dyn std::error::Error>> {
    let mailer = Arc::new(Mailer::smtp(&SecretString::from(format!("smtp://127.0.0.1:{smtp_port}")), "PassMe AI <no-reply@passme.ai>")?);
    let config = MessagingConfig { allowed_private_endpoints: vec![push_allowed.to_string()], ..Default::default() };
    let queue = JobQueue::new(store.clone(), clock.clone(), 8);
    let m = Messaging::new(&config, store.clone(), clock.clone(), queue.clone(), mailer, &KEY, "https://passme.test", false)?;
    Ok((m, queue))
}

/// The worker process: sends until nothing is left in the messages queue, then prints its peak
/// memory.
async fn worker() -> Result<(), Box<dyn std::error::Error>> {
    let store = connect(&arg("--data", String::new()), &arg("--postgres", String::new())).await?;
    let clock = clock::system();
    let (messaging, _) = messaging(&store, &clock, arg("--smtp", 0), &arg("--push-allow", String::new()))?;
    let mut handlers = Handlers::default();
    messaging.register(&mut handlers);
    let worker = Worker {
        queue: QUEUE.into(),
        batch: 64,
        concurrent: true,
        lease_ms: arg("--lease-ms", 5_000),
        ..Worker::new(store.clone(), clock, handlers)
    };
    loop {
        let pass = worker.run_once().await?;
        if pass.claimed() == 0 {
            let left =
                store.scalar_i64(&format!("SELECT COUNT(*) FROM jobs WHERE queue = '{QUEUE}' AND status IN ('queued', 'running')")).await?;
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    println!("worker peak memory: {:.0} MiB", passme_bench::peak_rss_mib(std::process::id()).unwrap_or(0.0));
    Ok(())
}

fn spawn_worker(data: &str, postgres: &str, smtp: u16, push_allow: &str) -> Child {
    Command::new(std::env::current_exe().expect("this program"))
        .args([
            "--worker",
            "--data",
            data,
            "--postgres",
            postgres,
            "--smtp",
            &smtp.to_string(),
            "--push-allow",
            push_allow,
            "--lease-ms",
            "5000",
        ])
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("a worker process")
}

async fn sent(store: &Store, campaign: &str) -> i64 {
    store
        .scalar_i64(&format!("SELECT COUNT(*) FROM message_log WHERE campaign_id = '{campaign}' AND status <> 'queued'"))
        .await
        .unwrap_or(0)
}

async fn insert_people(store: &Store, people: usize) -> Result<(), Box<dyn std::error::Error>> {
    let now = clock::system().now_ms();
    for chunk in (0..people).collect::<Vec<_>>().chunks(1000) {
        let values: Vec<String> = chunk
            .iter()
            .map(|i| {
                format!(
                    "('acc_{i:08}', 'user{i}@example.com', 'user{i}@example.com', {now}, 'x', 'active', {now}, {now}, {})",
                    if i % 5 == 0 { "'en'" } else { "NULL" }
                )
            })
            .collect();
        store
            .execute_script(&format!(
                "INSERT INTO accounts (id, email, email_key, email_verified_at, password_hash, status, created_at, updated_at, pref_lang) VALUES {}",
                values.join(", ")
            ))
            .await?;
    }
    Ok(())
}

fn notice() -> NewCampaign {
    NewCampaign {
        kind: Kind::Maintenance,
        segment: Segment::default(),
        channels: vec![Channel::Email, Channel::Push],
        subject_da: "Planlagt vedligeholdelse søndag".into(),
        subject_en: "Planned maintenance on Sunday".into(),
        body_da: "Tjenesten er utilgængelig søndag kl. 02–04. Vi beklager ulejligheden.".into(),
        body_en: "The service is unavailable on Sunday 02:00–04:00. We apologise for the inconvenience.".into(),
    }
}

/// Message ids the SMTP receiver recorded: (lines, distinct).
fn received_mail(path: &Path) -> (usize, HashSet<String>) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    (lines.len(), lines.iter().map(|l| l.trim_matches(['<', '>']).trim_end_matches("@passme").to_string()).collect())
}

async fn received_push(http: &reqwest::Client, port: u16, hashes: &[String]) -> (usize, HashSet<String>) {
    let mut total = 0;
    let mut ids = HashSet::new();
    for hash in hashes {
        let body: serde_json::Value = http
            .post(format!("http://127.0.0.1:{port}/get-notifications"))
            .json(&serde_json::json!({ "clientHash": hash }))
            .send()
            .await
            .expect("push peer")
            .json()
            .await
            .unwrap_or_default();
        for m in body["data"]["messages"].as_array().cloned().unwrap_or_default() {
            total += 1;
            if let Some(id) = m
                .as_str()
                .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
                .and_then(|v| v["id"].as_str().map(str::to_string))
            {
                ids.insert(id);
            }
        }
    }
    (total, ids)
}

async fn logged_sent(store: &Store, campaign: &str, channel: &str) -> Result<HashSet<String>, Box<dyn std::error::Error>> {
    let mut ids = HashSet::new();
    let mut after = String::new();
    loop {
        let rows = store.messages_page(campaign, channel, &after, 10_000).await?;
        let Some(last) = rows.last() else { break };
        after = last.clone();
        ids.extend(rows);
    }
    Ok(ids)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|a| a == "--worker") {
        return worker().await;
    }
    let people: usize = arg("--people", 100_000);
    let devices: usize = arg("--devices", 1_000).min(people);
    let crash_at: i64 = arg("--crash-at", (people / 5) as i64);
    let postgres: String = arg("--postgres", String::new());
    let folder = tempfile::tempdir()?;
    let data = folder.path().to_string_lossy().to_string();
    let store = connect(&data, &postgres).await?;
    store.migrate().await?;
    for table in ["message_log", "message_prefs", "push_subscriptions", "campaigns", "jobs", "sessions", "accounts"] {
        store.execute_script(&format!("DELETE FROM {table}")).await?;
    }
    let clock = clock::system();

    // The receivers.
    let smtp = free_port();
    let ids_file = folder.path().join("message-ids.txt");
    let _smtp = Killed(
        Command::new(root().join(".tools/py/bin/python"))
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{smtp}"), "-c", "sink.MessageIds"])
            .arg(&ids_file)
            .env("PYTHONPATH", root().join("crates/testkit/python"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    wait_for_port(smtp, "aiosmtpd");
    let push_port = free_port();
    let push_cwd = tempfile::tempdir()?;
    let _push = Killed(
        Command::new("node")
            .arg(root().join(".tools/push/node_modules/web-push-testing/src/bin/server.js"))
            .arg(push_port.to_string())
            .current_dir(push_cwd.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    wait_for_port(push_port, "web-push-testing");
    let push_allow = format!("localhost:{push_port}");

    println!("notices bench on {}: {people} people, {devices} with push on one device", store.engine().name());
    let started = Instant::now();
    insert_people(&store, people).await?;
    println!("stored {people} accounts in {:.1} s", started.elapsed().as_secs_f64());
    let (messaging, _queue) = messaging(&store, &clock, smtp, &push_allow)?;
    let http = reqwest::Client::new();
    let key = messaging.push.public_key().await?;
    let mut hashes = Vec::new();
    for i in 0..devices {
        let body: serde_json::Value = http
            .post(format!("http://127.0.0.1:{push_port}/subscribe"))
            .json(&serde_json::json!({ "userVisibleOnly": "true", "applicationServerKey": key }))
            .send()
            .await?
            .json()
            .await?;
        let data = &body["data"];
        let sub: passme_messaging::push::Subscription =
            serde_json::from_value(serde_json::json!({ "endpoint": data["endpoint"], "keys": data["keys"] }))?;
        let account = AccountId::new(format!("acc_{i:08}"));
        messaging.push.subscribe(&account, &sub, "bench").await?;
        messaging.prefs.set(&account, &format!("user{i}@example.com"), Topic::Service, Channel::Push, true).await?;
        hashes.push(data["clientHash"].as_str().unwrap_or_default().to_string());
    }

    // 0. The limit: the same mailer sending straight to the sink, 64 at a time, nothing else.
    let probe = 5_000.min(people);
    let mailer = Arc::new(Mailer::smtp(&SecretString::from(format!("smtp://127.0.0.1:{smtp}")), "PassMe AI <no-reply@passme.ai>")?);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..probe {
        let mailer = mailer.clone();
        tasks.spawn(async move {
            let mut mail = passme_core::mail::OutgoingMail::new("probe@example.com", "Probe", "A probe.".into());
            mail.message_id = Some(format!("probe-{i}"));
            mailer.send_mail(&mail).await
        });
        while tasks.len() >= 64 {
            tasks.join_next().await;
        }
    }
    while tasks.join_next().await.is_some() {}
    let limit = probe as f64 / started.elapsed().as_secs_f64();
    println!("the SMTP sink's limit with this mailer: {limit:.0} messages/s ({probe} straight sends, 64 at a time)");

    // 1. Throughput: one worker process, start to finish.
    let first = messaging.campaigns.create("staff:bench", notice()).await?;
    let started = Instant::now();
    let mut child = spawn_worker(&data, &postgres, smtp, &push_allow);
    child.wait()?;
    let seconds = started.elapsed().as_secs_f64();
    let total = sent(&store, &first).await;
    let mail_ids = logged_sent(&store, &first, "email").await?;
    let push_ids = logged_sent(&store, &first, "push").await?;
    println!(
        "announcement 1: {total} messages ({} e-mail, {} push) fanned out and sent in {seconds:.1} s = {:.0} messages/s ({:.2} of the sink's limit)",
        mail_ids.len(),
        push_ids.len(),
        total as f64 / seconds,
        total as f64 / seconds / limit
    );

    // 2. A crash mid-send.
    let second = messaging.campaigns.create("staff:bench", notice()).await?;
    let started = Instant::now();
    let child = spawn_worker(&data, &postgres, smtp, &push_allow);
    let pid = child.id();
    let mut child = Killed(child);
    let mut peak = 0.0_f64;
    while sent(&store, &second).await < crash_at {
        peak = peak.max(passme_bench::peak_rss_mib(pid).unwrap_or(0.0));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.0.kill()?;
    child.0.wait()?;
    let at_kill = sent(&store, &second).await;
    let in_flight = store.scalar_i64(&format!("SELECT COUNT(*) FROM jobs WHERE queue = '{QUEUE}' AND status = 'running'")).await?;
    println!(
        "killed the worker (SIGKILL) with {at_kill} messages logged as done, {in_flight} jobs in flight; its peak memory {peak:.0} MiB"
    );
    let mut rescuer = spawn_worker(&data, &postgres, smtp, &push_allow);
    rescuer.wait()?;
    println!("a new worker finished after the leases ran out: {:.1} s in all", started.elapsed().as_secs_f64());

    let expected_mail = logged_sent(&store, &second, "email").await?;
    let expected_push = logged_sent(&store, &second, "push").await?;
    let (lines, mut received) = received_mail(&ids_file);
    let probes = received.iter().filter(|id| id.starts_with("probe-")).count();
    received.retain(|id| !id.starts_with("probe-"));
    let lines = lines - probes;
    let first_and_second: HashSet<String> = mail_ids.union(&expected_mail).cloned().collect();
    let missing_mail = first_and_second.difference(&received).count();
    let (push_total, push_received) = received_push(&http, push_port, &hashes).await;
    let all_push: HashSet<String> = push_ids.union(&expected_push).cloned().collect();
    let missing_push = all_push.difference(&push_received).count();
    println!(
        "at the receivers: e-mail {lines} received, {} distinct ids, {missing_mail} missing, {} duplicates; push {push_total} received, {} distinct, {missing_push} missing, {} duplicates",
        received.len(),
        lines - received.len(),
        push_received.len(),
        push_total - push_received.len()
    );
    let queued = store.scalar_i64("SELECT COUNT(*) FROM message_log WHERE status = 'queued'").await?;
    println!("messages still queued: {queued}");
    Ok(())
}
