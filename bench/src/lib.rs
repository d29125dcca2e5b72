//! Shared pieces of the benchmarks: a minimal HTTP/1.1 client over loopback and percentiles.

use std::time::Duration;

/// The allocator the `passme` binary uses, so the servers the benches start allocate as it does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends one request on a fresh connection and returns the status and the whole response text.
pub async fn request(addr: &str, raw: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(raw.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((status, text))
}

/// The `name=value` of a cookie a response sets.
pub fn cookie_of(response: &str, name: &str) -> Option<String> {
    response
        .lines()
        .filter_map(|l| l.strip_prefix("set-cookie: "))
        .find(|c| c.starts_with(&format!("{name}=")))
        .and_then(|c| c.split(';').next())
        .map(str::to_string)
}

/// The value at quantile `q` (0..=1) of sorted durations, in milliseconds.
pub fn percentile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[rank.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// One persistent HTTP/1.1 connection: requests are written one after another and each
/// response is read whole (by Content-Length), as a browser's keep-alive connection does.
pub struct KeepAlive {
    stream: tokio::io::BufReader<TcpStream>,
}

impl KeepAlive {
    pub async fn connect(addr: &str) -> std::io::Result<KeepAlive> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(KeepAlive { stream: tokio::io::BufReader::new(stream) })
    }

    /// Sends a raw request (which must not say `Connection: close`) and returns the status.
    pub async fn send(&mut self, raw: &[u8]) -> std::io::Result<u16> {
        use tokio::io::AsyncBufReadExt;
        self.stream.get_mut().write_all(raw).await?;
        let mut status = 0;
        let mut length = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            if self.stream.read_line(&mut line).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            if status == 0 {
                status = trimmed.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
            } else if let Some((name, value)) = trimmed.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await?;
        Ok(status)
    }
}

/// The peak resident memory of a process (`VmHWM`), in MiB; Linux only.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib / 1024.0)
}

/// The value of `--name N` on the command line, or `default`.
pub fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The database a bench works in, migrated: PostgreSQL at `--postgres URL`, else SQLite in a
/// temporary folder (kept while the returned folder lives).
pub async fn bench_store() -> Result<(passme_store::Store, tempfile::TempDir), Box<dyn std::error::Error>> {
    let postgres: String = arg("--postgres", String::new());
    let temp = tempfile::tempdir()?;
    let options = passme_store::StoreOptions {
        database_url: (!postgres.is_empty()).then(|| secrecy::SecretString::from(postgres)),
        data_dir: temp.path().to_path_buf(),
        max_connections: 4,
    };
    let store = passme_store::Store::connect(&options).await?;
    store.migrate().await?;
    Ok((store, temp))
}
