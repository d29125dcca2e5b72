//! Serving connections: HTTP/1.1 with keep-alive and graceful shutdown, like `axum::serve`, plus
//! the two connection timeouts it lacks, so slow or idle clients cannot hold sockets forever:
//!
//! - **header timeout**: a request's headers must arrive whole within this time of its first
//!   byte (a client trickling a header byte at a time is cut off);
//! - **idle timeout**: a kept-alive connection with no request in progress is closed after this
//!   long without traffic.
//!
//! Neither runs while a handler works on a request: the request timeout bounds that. Both are
//! enforced by the connection's reader ([`Watched`]), which fails the read when its deadline
//! passes; hyper then closes the connection.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tower::Service;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionTimeouts {
    pub header: Duration,
    pub idle: Duration,
}

impl ConnectionTimeouts {
    pub fn from_config(http: &passme_core::config::HttpConfig) -> ConnectionTimeouts {
        ConnectionTimeouts { header: Duration::from_secs(http.header_timeout_secs), idle: Duration::from_secs(http.idle_timeout_secs) }
    }
}

impl Default for ConnectionTimeouts {
    fn default() -> Self {
        ConnectionTimeouts::from_config(&passme_core::config::HttpConfig::default())
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then lets requests in flight finish
/// (idle connections close at once) and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    timeouts: ConnectionTimeouts,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a receiver; the sender sees them all gone once they end.
    let (alive_tx, alive_rx) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        tokio::spawn(serve_connection(stream, peer, router.clone(), timeouts, stop_rx.clone(), alive_rx.clone()));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(alive_rx);
    alive_tx.closed().await;
    Ok(())
}

/// Errors of one connection (the peer reset it) need nothing; others (out of file descriptors)
/// get a pause before the next accept, as `axum::serve` does.
async fn accept_failed(e: io::Error) {
    if !matches!(e.kind(), io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset) {
        tracing::error!(error = %e, "accepting a connection failed");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    timeouts: ConnectionTimeouts,
    mut stop: watch::Receiver<bool>,
    _alive: watch::Receiver<()>,
) {
    let activity = Arc::new(Mutex::new(Activity::new()));
    let io = TokioIo::new(Watched::new(stream, activity.clone(), timeouts));
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let busy = Busy::begin(&activity);
        let response = router.clone().call(request.map(Body::new));
        async move {
            let response = response.await;
            drop(busy);
            response
        }
    });
    let connection = hyper::server::conn::http1::Builder::new().serve_connection(io, service).with_upgrades();
    tokio::pin!(connection);
    loop {
        tokio::select! {
            _ = connection.as_mut() => break,
            _ = stop.changed() => connection.as_mut().graceful_shutdown(),
        }
    }
}

/// What a connection is doing, shared by its reader and its service.
#[derive(Debug)]
struct Activity {
    /// Requests whose handler is running.
    in_flight: usize,
    /// The last byte read or written.
    last: Instant,
    /// The first byte of a request whose head has not yet reached a handler.
    head_started: Option<Instant>,
}

impl Activity {
    fn new() -> Activity {
        Activity { in_flight: 0, last: Instant::now(), head_started: None }
    }

    /// When the connection must have made progress, or `None` while a handler runs.
    fn deadline(&self, timeouts: ConnectionTimeouts) -> Option<Instant> {
        if self.in_flight > 0 {
            return None;
        }
        Some(match self.head_started {
            Some(started) => started + timeouts.header,
            None => self.last + timeouts.idle,
        })
    }
}

fn lock(activity: &Mutex<Activity>) -> std::sync::MutexGuard<'_, Activity> {
    activity.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A request in a handler; its end restarts the idle clock.
struct Busy(Arc<Mutex<Activity>>);

impl Busy {
    fn begin(activity: &Arc<Mutex<Activity>>) -> Busy {
        let mut state = lock(activity);
        state.in_flight += 1;
        state.head_started = None;
        Busy(activity.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut state = lock(&self.0);
        state.in_flight -= 1;
        state.last = Instant::now();
    }
}

/// A connection's stream that fails its reads once the connection's deadline has passed.
struct Watched {
    stream: TcpStream,
    activity: Arc<Mutex<Activity>>,
    timeouts: ConnectionTimeouts,
    timer: Pin<Box<Sleep>>,
    armed: Option<Instant>,
}

impl Watched {
    fn new(stream: TcpStream, activity: Arc<Mutex<Activity>>, timeouts: ConnectionTimeouts) -> Watched {
        Watched { stream, activity, timeouts, timer: Box::pin(tokio::time::sleep(Duration::ZERO)), armed: None }
    }

    fn timed_out() -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, "the client was idle or too slow sending a request")
    }
}

impl AsyncRead for Watched {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let deadline = lock(&this.activity).deadline(this.timeouts);
        if let Some(deadline) = deadline {
            if this.armed != Some(deadline) {
                this.timer.as_mut().reset(deadline);
                this.armed = Some(deadline);
            }
            // Polling the timer also wakes this task when the deadline passes.
            if this.timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(Watched::timed_out()));
            }
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let mut state = lock(&this.activity);
            state.last = Instant::now();
            if state.in_flight == 0 && state.head_started.is_none() {
                state.head_started = Some(state.last);
            }
        }
        read
    }
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write(cx, data);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            let mut state = lock(&this.activity);
            state.last = Instant::now();
            // While a response is still going out, a pipelined request waiting behind it is not
            // the client's delay.
            if state.head_started.is_some() {
                state.head_started = Some(state.last);
            }
        }
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream as StdStream;
    use std::time::Instant as StdInstant;

    use axum::routing::get;

    use super::*;

    const SHORT: ConnectionTimeouts = ConnectionTimeouts { header: Duration::from_millis(600), idle: Duration::from_millis(1_200) };

    async fn start() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let router = Router::new().route("/", get(|| async { "ok" })).route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(2_500)).await;
                "slow but fine"
            }),
        );
        tokio::spawn(serve(listener, router, SHORT, std::future::pending()));
        addr
    }

    /// Reads until the server closes the connection (or `limit` passes); returns what was read
    /// and how long the connection stayed open.
    fn read_until_closed(stream: &mut StdStream, limit: Duration) -> (String, Duration) {
        let started = StdInstant::now();
        stream.set_read_timeout(Some(limit)).expect("timeout");
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
            if started.elapsed() > limit {
                break;
            }
        }
        (String::from_utf8_lossy(&all).into_owned(), started.elapsed())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_silent_connection_is_closed_after_the_idle_timeout() {
        let addr = start().await;
        tokio::task::spawn_blocking(move || {
            let mut silent = StdStream::connect(addr).expect("connect");
            let (_, open) = read_until_closed(&mut silent, Duration::from_secs(10));
            assert!(open >= Duration::from_millis(1_000) && open < Duration::from_secs(5), "closed after {open:?}");
        })
        .await
        .expect("test");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_kept_alive_connection_serves_requests_and_closes_once_idle() {
        let addr = start().await;
        tokio::task::spawn_blocking(move || {
            let mut stream = StdStream::connect(addr).expect("connect");
            for _ in 0..3 {
                stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
                std::thread::sleep(Duration::from_millis(700));
            }
            let (answers, open) = read_until_closed(&mut stream, Duration::from_secs(10));
            assert_eq!(answers.matches("HTTP/1.1 200").count(), 3, "three requests with pauses shorter than the idle timeout: {answers}");
            assert!(open < Duration::from_secs(5), "then closed when idle, after {open:?}");
        })
        .await
        .expect("test");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_trickling_its_headers_is_cut_off_after_the_header_timeout() {
        let addr = start().await;
        tokio::task::spawn_blocking(move || {
            let mut stream = StdStream::connect(addr).expect("connect");
            stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").expect("write");
            let started = StdInstant::now();
            // A header byte every 100 ms: always active, never done.
            while stream.write_all(b"X").is_ok() && started.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(100));
            }
            let open = started.elapsed();
            assert!(open < Duration::from_secs(4), "a trickle is cut off however active it is; open for {open:?}");
        })
        .await
        .expect("test");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_handler_that_outlasts_both_timeouts_still_answers() {
        let addr = start().await;
        tokio::task::spawn_blocking(move || {
            let mut stream = StdStream::connect(addr).expect("connect");
            stream.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("write");
            let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(10));
            assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("slow but fine"), "{answer}");
        })
        .await
        .expect("test");
    }
}
