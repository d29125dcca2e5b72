//! The token vault at scale: seal and open rates in memory, then `--rows` token rows (three
//! sealed tokens each, as a link stores them) rotated to a new key by the same rewrap that
//! `passme keys rotate` runs, in batches of `--batch`. Prints operations per second, rows per
//! second of the rewrap and the process's peak memory (`VmHWM`). SQLite in a temporary folder, or
//! PostgreSQL with `--postgres URL` (its `linked_tokens` and `vault_keys` rows are deleted first).
//!
//!     cargo run --release -p passme-bench --bin vault -- --rows 100000 [--batch 500] [--postgres URL]

use std::time::Instant;

use passme_bench::arg;
use passme_core::clock;
use passme_linking::vault::Vault;
use passme_store::{AccountId, TokenRow};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rows: usize = arg("--rows", 100_000);
    let batch: i64 = arg("--batch", 500);
    let (store, _folder) = passme_bench::bench_store().await?;
    store.execute_script("DELETE FROM linked_tokens").await?;
    store.execute_script("DELETE FROM vault_keys").await?;
    let vault = Vault::new(store.clone(), clock::system(), &[3; 32]);
    let key = vault.active().await?;
    println!("vault bench on {}: {rows} token rows, batches of {batch}", store.engine().name());

    // A refresh token of a typical size (opaque, 43 to a few hundred characters).
    let token = "x".repeat(200);
    let account = AccountId::new("acc_bench");
    let started = Instant::now();
    let n = 100_000;
    let mut last = String::new();
    for i in 0..n {
        last = vault.seal(&key, Vault::token_place(&i.to_string(), &account, "example", "refresh_token"), &token);
    }
    let seal_rate = n as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for _ in 0..n {
        vault.open(Vault::token_place(&(n - 1).to_string(), &account, "example", "refresh_token"), &last).await?;
    }
    let open_rate = n as f64 / started.elapsed().as_secs_f64();
    println!("seal {seal_rate:.0}/s, open {open_rate:.0}/s (200-character token, AES-256-GCM)");

    let started = Instant::now();
    for i in 0..rows {
        let link = format!("lnk_{i:08}");
        let account = AccountId::new(format!("acc_{i:08}"));
        let seal = |column| Some(vault.seal(&key, Vault::token_place(&link, &account, "example", column), &token));
        let row = TokenRow {
            link_id: link.clone(),
            account_id: account.clone(),
            provider: "example".into(),
            key_id: key.id.clone(),
            id_token: seal("id_token"),
            access_token: seal("access_token"),
            refresh_token: seal("refresh_token"),
            access_expires_at: None,
            updated_at: 1,
        };
        store.put_tokens(&row).await?;
    }
    println!("stored {rows} rows in {:.1} s", started.elapsed().as_secs_f64());

    let new_key = vault.add_rotation_key().await?;
    let started = Instant::now();
    let done = vault.rewrap(batch, |_, _| {}).await?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "rotated to {new_key}: {} rows ({} blobs) re-encrypted in {seconds:.1} s = {:.0} rows/s; {} raced",
        done.rows,
        done.rows * 3,
        done.rows as f64 / seconds,
        done.raced
    );
    let idle = Instant::now();
    vault.rewrap(batch, |_, _| {}).await?;
    println!("a second rewrap with nothing to do: {:.3} s", idle.elapsed().as_secs_f64());
    println!("peak memory: {:.0} MiB", passme_bench::peak_rss_mib(std::process::id()).unwrap_or(0.0));
    Ok(())
}
