//! The push service for tests: npm `web-push-testing` (installed by `scripts/test` into
//! `.tools/push`), started per test on a free port. It checks the VAPID signature, decrypts what
//! it receives (aes128gcm) and keeps it, and can expire a subscription so the next push gets 410.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn tools() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/push")
}

pub struct PushPeer {
    pub port: u16,
    child: Child,
    _cwd: tempfile::TempDir,
    http: reqwest::Client,
}

impl Drop for PushPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A subscription as a browser would hand it to the page.
#[derive(Debug, Clone)]
pub struct PeerSubscription {
    /// `{"endpoint", "keys": {"p256dh", "auth"}}`, as `PushSubscription.toJSON()`.
    pub json: Value,
    pub client_hash: String,
}

impl PushPeer {
    pub async fn start() -> PushPeer {
        let server = tools().join("node_modules/web-push-testing/src/bin/server.js");
        assert!(server.exists(), "web-push-testing is not installed: run scripts/test (or scripts/push-peer)");
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port");
        // It writes nothing when run this way, but keep its working directory private anyway.
        let cwd = tempfile::tempdir().expect("cwd");
        let child = Command::new("node")
            .arg(&server)
            .arg(port.to_string())
            .current_dir(cwd.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start web-push-testing (node)");
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "web-push-testing did not start on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        PushPeer { port, child, _cwd: cwd, http: reqwest::Client::new() }
    }

    /// What to allow in `messaging.allowed_private_endpoints`: the peer's endpoints name
    /// `localhost`.
    pub fn allowed(&self) -> String {
        format!("localhost:{}", self.port)
    }

    async fn call(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self.http.post(format!("http://127.0.0.1:{}{path}", self.port)).json(&body).send().await.expect("push peer");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A new browser subscription for the server's VAPID public key.
    pub async fn subscribe(&self, vapid_public: &str) -> PeerSubscription {
        // The peer wants the string "true", not a boolean.
        let (status, body) = self.call("/subscribe", json!({ "userVisibleOnly": "true", "applicationServerKey": vapid_public })).await;
        assert_eq!(status, 200, "subscribe: {body}");
        let data = &body["data"];
        PeerSubscription {
            json: json!({ "endpoint": data["endpoint"], "keys": { "p256dh": data["keys"]["p256dh"], "auth": data["keys"]["auth"] } }),
            client_hash: data["clientHash"].as_str().expect("clientHash").to_string(),
        }
    }

    /// The decrypted messages a subscription received, oldest first.
    pub async fn messages(&self, client_hash: &str) -> Vec<String> {
        let (status, body) = self.call("/get-notifications", json!({ "clientHash": client_hash })).await;
        if status != 200 {
            return Vec::new();
        }
        body["data"]["messages"].as_array().map(|a| a.iter().filter_map(|m| m.as_str().map(str::to_string)).collect()).unwrap_or_default()
    }

    /// The browser drops the subscription: the next push gets 410.
    pub async fn expire(&self, client_hash: &str) {
        let (status, body) = self.call(&format!("/expire-subscription/{client_hash}"), json!({})).await;
        assert!(status < 300, "expire: {status} {body}");
    }
}
