//! Does a password-reset request take as long for an address with an account as for one
//! without? (If not, the answer's timing tells who has an account.)
//!
//! Starts the real application (release build, SQLite in a temporary folder, no background
//! workers), creates `--requests` verified accounts (default 100), then sends one reset request
//! for each and one for as many addresses without an account, alternating, one at a time, each
//! from its own network (through a trusted X-Forwarded-For, so the mail limits do not apply) over
//! a fresh connection. Prints the median, p90 and p99 of each and the difference of the medians.
//!
//!     cargo run --release -p passme-bench --bin reset -- --requests 100

use std::time::{Duration, Instant};

use passme_bench::{arg, cookie_of, percentile_ms, request};
use passme_core::config::Config;
use passme_core::identity::accounts::Accounts;
use passme_web::Application;
use secrecy::SecretString;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let requests: usize = arg("--requests", 100usize).max(1);
    let dir = tempfile::tempdir()?;
    let mut config =
        Config { data_dir: dir.path().to_path_buf(), listen: "127.0.0.1:0".parse()?, log_filter: "warn".into(), ..Config::default() };
    config.jobs.workers = 0;
    config.http.trusted_proxies = vec!["127.0.0.1".parse()?];
    let app = Application::build(config).await?;
    let addr = app.local_addr().to_string();
    let (store, clock) = (app.state().store.clone(), app.state().clock.clone());
    let accounts = Accounts::new(store.clone(), clock.clone());
    for i in 0..requests {
        accounts.sign_up(&format!("known{i}@example.com"), SecretString::from("korrekt hest batteri hæfteklamme".to_string())).await?;
    }
    let server = tokio::spawn(app.run_until(std::future::pending()));

    let (_, page) = request(&addr, &format!("GET /reset-request HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")).await?;
    let csrf_cookie = cookie_of(&page, "__Host-csrf").ok_or("no csrf cookie")?;
    let token = page.split("name=\"csrf\" value=\"").nth(1).and_then(|s| s.split('"').next()).ok_or("no csrf token")?.to_string();
    let raw = |email: &str, n: usize| {
        let body = format!("csrf={token}&email={}", email.replace('@', "%40"));
        format!(
            "POST /reset-request HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\nCookie: {csrf_cookie}\r\nX-Forwarded-For: 10.1.{}.{}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            n / 256,
            n % 256,
            body.len()
        )
    };
    // Warm-up: connections, statement caches, the first pages of each table.
    for i in 0..10 {
        request(&addr, &raw(&format!("warm{i}@example.com"), 60_000 + i)).await?;
    }
    let (mut known, mut unknown): (Vec<Duration>, Vec<Duration>) = (Vec::new(), Vec::new());
    let mut failures = 0;
    for i in 0..requests {
        for (email, times, n) in
            [(format!("known{i}@example.com"), &mut known, 2 * i), (format!("nobody{i}@example.com"), &mut unknown, 2 * i + 1)]
        {
            let started = Instant::now();
            match request(&addr, &raw(&email, n)).await {
                Ok((200, _)) => times.push(started.elapsed()),
                _ => failures += 1,
            }
        }
    }
    known.sort();
    unknown.sort();
    let line = |name: &str, times: &[Duration]| {
        println!(
            "{name:<28} {:>4} requests  median {:.3} ms, p90 {:.3} ms, p99 {:.3} ms",
            times.len(),
            percentile_ms(times, 0.5),
            percentile_ms(times, 0.9),
            percentile_ms(times, 0.99)
        );
    };
    println!("reset requests, one at a time over fresh connections ({failures} failed)");
    line("address with an account", &known);
    line("address without one", &unknown);
    println!("median difference (with - without): {:+.3} ms", percentile_ms(&known, 0.5) - percentile_ms(&unknown, 0.5));
    let queued = store.scalar_i64("SELECT COUNT(*) AS n FROM jobs WHERE kind = 'account.mail'").await?;
    println!("account-mail jobs queued: {queued} (one per request; the worker looks the address up)");
    server.abort();
    Ok(())
}
