//! A retention sweep at scale: `--accounts` accounts (default 1 million; one in ten closed more
//! than 30 days ago, each with one session, half of them long ended) and `--events` page views
//! (default 10 million over 14 months, so about a seventh are past their 13 months and every
//! view older than 48 hours still carries its full address). Generated inside the database,
//! then one `Housekeeping::run_with` as the hourly job runs it, timed per rule; then a second,
//! idle sweep (what the hourly job costs when nothing is due); then the erasure of one person
//! with a year of history (365 sessions, 12 invoices, a subscription, consent records, tokens).
//! Prints rows per second, the process's peak memory (`VmHWM`) and the erasure's time.
//! SQLite in a temporary folder, or PostgreSQL with `--postgres URL` (the database is emptied
//! of these tables' rows first).
//!
//!     cargo run --release -p passme-bench --bin retention -- --accounts 1000000 --events 10000000

use std::sync::Arc;
use std::time::Instant;

use passme_bench::arg;
use passme_core::clock::{self, SharedClock};
use passme_core::housekeeping::{Housekeeping, RunOptions};
use passme_core::jobs::{Handlers, JobQueue, Worker};
use passme_core::rights::erasure::Erasures;
use passme_store::{Engine, InvoiceRow, Store};

const DAY_MS: i64 = 86_400_000;

/// `WITH n(i)` counting 1..=count, in the engine's dialect.
fn series(engine: Engine, count: usize) -> String {
    match engine {
        Engine::Sqlite => format!("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count})"),
        Engine::Postgres => format!("WITH n(i) AS (SELECT generate_series(1::bigint, {count}))"),
    }
}

fn peak_mib() -> f64 {
    passme_bench::peak_rss_mib(std::process::id()).unwrap_or(0.0)
}

async fn load(store: &Store, accounts: usize, events: usize, now: i64) -> Result<(), Box<dyn std::error::Error>> {
    let engine = store.engine();
    let started = Instant::now();
    for table in ["sessions", "accounts", "analytics_events"] {
        store.execute_script(&format!("DELETE FROM {table}")).await?;
    }
    store
        .execute_script(&format!(
            "{} INSERT INTO accounts (id, email, email_key, email_verified_at, password_hash, status, created_at, updated_at, closed_at) \
             SELECT 'acc_' || i, 'user' || i || '@example.com', 'user' || i || '@example.com', {now}, '$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA', \
             CASE WHEN i % 10 = 0 THEN 'closed' ELSE 'active' END, {old}, {now}, CASE WHEN i % 10 = 0 THEN {closed} ELSE NULL END FROM n",
            series(engine, accounts),
            old = now - 400 * DAY_MS,
            closed = now - 60 * DAY_MS,
        ))
        .await?;
    store
        .execute_script(&format!(
            "{} INSERT INTO sessions (id, account_id, created_at, last_seen_at, expires_at, user_agent, ip_prefix, revoked_at) \
             SELECT 'ses_' || i, 'acc_' || i, {old}, {old}, CASE WHEN i % 2 = 0 THEN {ended} ELSE {future} END, 'Firefox on Linux', '192.0.2.0/24', NULL FROM n",
            series(engine, accounts),
            old = now - 100 * DAY_MS,
            ended = now - 90 * DAY_MS,
            future = now + 30 * DAY_MS,
        ))
        .await?;
    println!("accounts and sessions: {accounts} each in {:.1} s", started.elapsed().as_secs_f64());
    let started = Instant::now();
    let span = 425 * DAY_MS;
    // In chunks, so that SQLite's recursive series stays small.
    let chunk = 1_000_000.min(events);
    let mut done = 0;
    while done < events {
        let count = chunk.min(events - done);
        store
            .execute_script(&format!(
                "{} INSERT INTO analytics_events (site, visitor, ts, received_at, path, source, utm_source, utm_medium, utm_campaign, \
                 browser, browser_version, os, os_version, isp, ip, ip_prefix) \
                 SELECT 'passme', (i + {done}) % 400000, {now} - ((i + {done}) * 1000003 % {span}), {now}, '/page/' || (i % 200), 'example.org', '', '', '', \
                 'Firefox', '128.0', 'Linux', '', 'AS3292 TDC', '192.0.2.' || (i % 250), '192.0.2.0/24' FROM n",
                series(engine, count),
            ))
            .await?;
        done += count;
    }
    println!("page views: {events} in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let accounts: usize = arg("--accounts", 1_000_000);
    let events: usize = arg("--events", 10_000_000);
    let (store, _folder) = passme_bench::bench_store().await?;
    let clock: SharedClock = clock::system();
    let now = clock.now_ms();
    println!("retention bench on {}: {accounts} accounts, {events} page views", store.engine().name());
    load(&store, accounts, events, now).await?;
    println!("peak memory after loading: {:.0} MiB", peak_mib());

    let policy = passme_policy::builtin();
    let housekeeping = Housekeeping::new(store.clone(), clock.clone(), policy)?;
    let options = RunOptions { source: "bench".into(), ..RunOptions::default() };
    let started = Instant::now();
    let report = housekeeping.run_with(&options, &|_, _, _| {}).await?;
    let took = started.elapsed().as_secs_f64();
    let examined: i64 = report.rules.iter().map(|r| r.examined).sum();
    let changed: u64 = report.rules.iter().map(|r| r.changed).sum();
    for rule in report.rules.iter().filter(|r| r.examined > 0) {
        println!("  {:<40} {:>9} due {:>9} changed", rule.rule, rule.examined, rule.changed);
    }
    println!("sweep: {changed} rows changed of {examined} due in {took:.1} s ({:.0} rows/s)", changed as f64 / took);
    println!("peak memory after the sweep: {:.0} MiB", peak_mib());
    let started = Instant::now();
    let idle = housekeeping.run_with(&options, &|_, _, _| {}).await?;
    let again: u64 = idle.rules.iter().map(|r| r.changed).sum();
    for rule in idle.rules.iter().filter(|r| r.changed > 0) {
        println!("  {:<40} {:>9} changed (came due since the first sweep)", rule.rule, rule.changed);
    }
    println!("idle sweep (nothing due): {again} rows changed in {:.2} s", started.elapsed().as_secs_f64());

    // One person with a year of history.
    let person = passme_store::AccountId::new("acc_bench_person");
    store
        .execute_script(&format!(
            "INSERT INTO accounts (id, email, email_key, password_hash, status, created_at, updated_at) VALUES \
             ('acc_bench_person', 'person@example.com', 'person@example.com', 'x', 'active', {t}, {t})",
            t = now - 365 * DAY_MS
        ))
        .await?;
    store
        .execute_script(&format!(
            "{} INSERT INTO sessions (id, account_id, created_at, last_seen_at, expires_at, user_agent, ip_prefix) \
             SELECT 'ses_person_' || i, 'acc_bench_person', {now} - i * {DAY_MS}, {now} - i * {DAY_MS}, {now} + {DAY_MS}, 'Firefox on Linux', '192.0.2.0/24' FROM n",
            series(store.engine(), 365)
        ))
        .await?;
    store.insert_billing_customer(&person, "cus_person", now).await?;
    for month in 0..12 {
        let invoice = InvoiceRow {
            invoice_id: format!("in_person_{month}"),
            account_id: Some(person.clone()),
            subscription_id: None,
            number: Some(format!("INV-{month}")),
            amount: 9900,
            currency: "dkk".into(),
            issued_at: now - month * 30 * DAY_MS,
            status: "paid".into(),
            payment_failed: false,
            state_at: 1,
        };
        store.put_billing_invoice(&invoice).await?;
    }
    let queue = JobQueue::new(store.clone(), clock.clone(), 3);
    let erasures = Erasures::new(store.clone(), clock.clone(), Arc::new(policy.clone()));
    let mut handlers = Handlers::default();
    erasures.clone().register(&mut handlers);
    let worker = Worker::new(store.clone(), clock.clone(), handlers);
    let started = Instant::now();
    let receipt = erasures.request(&person, &queue).await?;
    while worker.run_once().await?.claimed() > 0 {}
    let took = started.elapsed().as_secs_f64();
    let receipt = erasures.receipt(&receipt).await?.ok_or("no receipt")?;
    let removed: u64 = receipt.removed.values().sum();
    let erased = receipt.completed_at.unwrap_or_default() - receipt.requested_at;
    println!(
        "erasure of one person with a year of history: {removed} rows removed in {erased} ms, then verified ({}) by the search of every personal column; {took:.2} s in all",
        receipt.verified_at.is_some()
    );
    println!("peak memory: {:.0} MiB", peak_mib());
    Ok(())
}
