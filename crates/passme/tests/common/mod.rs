//! What the binary's tests share: running `passme` in a folder of its own, starting a server and
//! stopping it.
// Each test binary uses its own part of these.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
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
