//! A real SMTP server for tests: `aiosmtpd` (PyPI), installed by `scripts/test` into
//! `.tools/py`, started per test on a free loopback port with a Maildir, and stopped on drop.
//! Messages are read back and decoded by Python's own `email` package, so tests see exactly
//! what a mail client would show. The sink refuses some recipients as a real relay would
//! (`crates/testkit/python/sink.py`): a local part starting `bounce` gets 550, `tempfail` 451.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct SmtpSink {
    pub port: u16,
    maildir: tempfile::TempDir,
    child: Child,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct ReceivedMail {
    pub from: String,
    pub to: String,
    pub subject: String,
    pub body: String,
    /// Every header as received, in order (names as sent).
    #[serde(default)]
    pub headers: Vec<(String, String)>,
}

impl ReceivedMail {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub fn tools_python() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/py/bin/python")
}

const READ_MAILDIR: &str = r#"
import email, email.policy, json, os, sys
from email.header import decode_header, make_header
# In the order they arrived: a Maildir's own order is arbitrary.
files = []
for sub in ('new', 'cur'):
    d = os.path.join(sys.argv[1], sub)
    if os.path.isdir(d):
        files += [os.path.join(d, f) for f in os.listdir(d)]
files.sort(key=lambda f: (os.stat(f).st_mtime_ns, f))
out = []
for path in files:
    with open(path, 'rb') as fh:
        msg = email.message_from_binary_file(fh)
    part = msg if not msg.is_multipart() else next(p for p in msg.walk() if p.get_content_type() == 'text/plain')
    body = part.get_payload(decode=True).decode(part.get_content_charset() or 'utf-8')
    subject = str(make_header(decode_header(msg['Subject'])))
    headers = [[k, str(v)] for k, v in msg.items()]
    out.append({'from': msg['From'], 'to': msg['To'], 'subject': subject, 'body': body, 'headers': headers})
print(json.dumps(out))
"#;

impl SmtpSink {
    /// Starts a sink; panics with what to run when the peer is not installed.
    pub fn start() -> SmtpSink {
        let python = tools_python();
        assert!(
            python.exists(),
            "aiosmtpd is not installed: run scripts/test (or: python3 -m venv .tools/py && .tools/py/bin/pip install aiosmtpd==1.4.6)"
        );
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port");
        let maildir = tempfile::tempdir().expect("maildir");
        let child = Command::new(&python)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "sink.BouncingMailbox"])
            .env("PYTHONPATH", Path::new(env!("CARGO_MANIFEST_DIR")).join("python"))
            .arg(maildir.path().join("mail"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not start on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        SmtpSink { port, maildir, child }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Hangs the relay (SIGSTOP): connections are accepted by the kernel and then nothing is
    /// said, as with a relay that stopped answering.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused relay go on (SIGCONT), with the connections that waited.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill").arg(signal).arg(self.child.id().to_string()).status().expect("kill");
        assert!(status.success(), "kill {signal} the relay");
    }

    /// Every message received so far, decoded.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        let dir = self.maildir.path().join("mail");
        if !dir.join("new").exists() {
            return Vec::new();
        }
        let output = Command::new(tools_python()).arg("-c").arg(READ_MAILDIR).arg(&dir).output().expect("read maildir");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice(&output.stdout).expect("maildir JSON")
    }

    /// Waits until `n` messages have arrived.
    pub fn wait_for(&self, n: usize) -> Vec<ReceivedMail> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let messages = self.messages();
            if messages.len() >= n || Instant::now() > deadline {
                return messages;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
