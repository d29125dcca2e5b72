//! A partner's receiver for tests: an HTTP server on loopback that records every request
//! (headers and body) and answers with a status the test chooses.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Default)]
struct Shared {
    received: Vec<Received>,
    answer: Option<StatusCode>,
    retry_after: Option<u64>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(State(shared): State<Arc<Mutex<Shared>>>, headers: HeaderMap, body: Bytes) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut shared = shared.lock().expect("receiver");
    shared.received.push(Received { headers, body });
    let status = shared.answer.unwrap_or(StatusCode::OK);
    match shared.retry_after {
        Some(secs) => (status, [("retry-after", secs.to_string())]).into_response(),
        None => status.into_response(),
    }
}

impl Receiver {
    pub async fn start() -> Receiver {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new().route("/audiences", post(record)).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, shared, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/audiences", self.addr)
    }

    /// What to allow in `messaging.allowed_private_endpoints`.
    pub fn allowed(&self) -> String {
        self.addr.to_string()
    }

    /// Answer every request from now on with `status`.
    pub fn answer(&self, status: StatusCode) {
        self.shared.lock().expect("receiver").answer = Some(status);
    }

    /// Answer with `status` and `Retry-After: secs` from now on.
    pub fn answer_later(&self, status: StatusCode, secs: u64) {
        let mut shared = self.shared.lock().expect("receiver");
        shared.answer = Some(status);
        shared.retry_after = Some(secs);
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().expect("receiver").received.clone()
    }
}
