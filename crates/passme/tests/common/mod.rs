//! What the binary's tests share: running `passme` in a folder of its own, starting a server and
//! stopping it.
// Each test binary uses its own part of these.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn passme(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_passme"));
    command.current_dir(dir).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).stdin(Stdio::null());
    command
}

/// Starts `passme serve` and waits for the "listening" line; returns the child and its address.
pub fn start(command: Command) -> (Child, String) {
    start_with(command, Stdio::piped())
}

/// As [`start`], with the server's log going to `stderr` (a file, for a long-running server
/// whose log would fill a pipe nobody reads).
pub fn start_with(mut command: Command, stderr: Stdio) -> (Child, String) {
    let mut child =
        command.arg("serve").arg("--listen").arg("127.0.0.1:0").stdout(Stdio::piped()).stderr(stderr).spawn().expect("spawn passme");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("read the listening line");
    let url = line.trim().strip_prefix("PassMe is listening on http://").unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
    (child, url.trim_end_matches('/').to_string())
}

pub fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "passme did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn output_of(child: Child) -> String {
    let out = child.wait_with_output().expect("output");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// One HTTP/1.1 request over a fresh connection: status, headers (lower-case names), body.
pub fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, Vec<(String, String)>, String) {
    let Ok(mut stream) = TcpStream::connect(addr) else { return (0, Vec::new(), String::new()) };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    if stream.write_all(request.as_bytes()).is_err() {
        return (0, Vec::new(), String::new());
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = head.lines().skip(1).filter_map(|l| l.split_once(": ")).map(|(n, v)| (n.to_ascii_lowercase(), v.to_string())).collect();
    (status, headers, body.to_string())
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// Posts one page view of `path` from `client` (through a trusted `X-Forwarded-For`) as a
/// browser's tracker would; the status of the answer (202: stored).
pub fn page_view(addr: &str, path: &str, client: &str) -> u16 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let body = format!(r#"{{"site":"passme","url":"http://127.0.0.1{path}","ts":{now}}}"#);
    let agent = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
    http(addr, "POST", "/api/v1/events", &[("Content-Type", "text/plain"), ("User-Agent", agent), ("X-Forwarded-For", client)], &body).0
}

/// The cookie `name` a response sets, as a `Cookie` header carries it (`name=value`).
pub fn set_cookie(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .filter(|(n, _)| n == "set-cookie")
        .find_map(|(_, v)| v.split(';').next().filter(|pair| pair.starts_with(&format!("{name}="))))
        .map(str::to_string)
}

/// A GET: status and body.
pub fn get(addr: &str, path: &str) -> (u16, String) {
    let (status, _, body) = http(addr, "GET", path, &[], "");
    (status, body)
}
