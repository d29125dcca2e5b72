//! A TCP front for a peer (PostgreSQL in the fleet test) that can cut every connection and refuse
//! new ones for a while, as a network partition or a database outage would, then let traffic
//! through again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct TcpFront {
    addr: SocketAddr,
    down: Arc<AtomicBool>,
    /// Bumped at each cut: every open connection ends.
    cuts: watch::Sender<u64>,
}

impl TcpFront {
    pub async fn start(upstream: SocketAddr) -> TcpFront {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the front");
        let addr = listener.local_addr().expect("addr");
        let down = Arc::new(AtomicBool::new(false));
        let (cuts, _) = watch::channel(0);
        let (accept_down, accept_cuts) = (down.clone(), cuts.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if accept_down.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut cut = accept_cuts.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else { return };
                    let mut client = client;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        TcpFront { addr, down, cuts }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Ends every open connection and refuses new ones until [`TcpFront::restore`].
    pub fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    pub fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}
