//! Group commit: requests hand their page views to one writer task, which stores whatever has
//! queued up in one transaction and then acknowledges every request in it. Durability costs one
//! commit per group instead of one per request. The queue is bounded in events: when it is full
//! a request is refused at once (503 with Retry-After) instead of growing memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use passme_core::clock::SharedClock;
use passme_store::{EventRow, Store};
use tokio::sync::{mpsc, oneshot};

/// The most page views one transaction takes.
const MAX_GROUP: usize = 4_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    #[error("the event queue is full; retry shortly")]
    Overloaded,
    #[error("the events could not be stored; retry shortly")]
    Unavailable,
}

struct Pending {
    rows: Vec<EventRow>,
    ack: oneshot::Sender<Result<(), IngestError>>,
}

/// A handle to the writer; cheap to clone.
#[derive(Clone)]
pub struct Ingestor {
    queue: mpsc::UnboundedSender<Pending>,
    queued: Arc<AtomicUsize>,
    capacity: usize,
}

impl std::fmt::Debug for Ingestor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingestor").field("queued", &self.queued.load(Ordering::Relaxed)).field("capacity", &self.capacity).finish()
    }
}

/// What the writer has done, for metrics.
#[derive(Debug, Default)]
pub struct IngestStats {
    pub commits: AtomicUsize,
    pub events: AtomicUsize,
}

impl Ingestor {
    /// Starts the writer task; it ends when the last handle is dropped.
    pub fn start(store: Store, clock: SharedClock, capacity: usize) -> (Ingestor, Arc<IngestStats>) {
        let (queue, receiver) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let stats = Arc::new(IngestStats::default());
        tokio::spawn(write_groups(store, clock, receiver, queued.clone(), stats.clone()));
        (Ingestor { queue, queued, capacity: capacity.max(1) }, stats)
    }

    /// Returns once the page views are durably stored.
    pub async fn submit(&self, rows: Vec<EventRow>) -> Result<(), IngestError> {
        if rows.is_empty() {
            return Ok(());
        }
        let n = rows.len();
        // Reserve room first; the reservation is what bounds memory, not the channel.
        if self.queued.fetch_add(n, Ordering::AcqRel) + n > self.capacity {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            return Err(IngestError::Overloaded);
        }
        let (ack, done) = oneshot::channel();
        if self.queue.send(Pending { rows, ack }).is_err() {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            return Err(IngestError::Unavailable);
        }
        done.await.unwrap_or(Err(IngestError::Unavailable))
    }

    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

async fn write_groups(
    store: Store,
    clock: SharedClock,
    mut receiver: mpsc::UnboundedReceiver<Pending>,
    queued: Arc<AtomicUsize>,
    stats: Arc<IngestStats>,
) {
    while let Some(first) = receiver.recv().await {
        let mut group = vec![first];
        let mut size = group[0].rows.len();
        while size < MAX_GROUP {
            match receiver.try_recv() {
                Ok(next) => {
                    size += next.rows.len();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        let received_at = clock.now_ms();
        let mut rows = Vec::with_capacity(size);
        let mut acks = Vec::with_capacity(group.len());
        for pending in group {
            rows.extend(pending.rows.into_iter().map(|row| EventRow { received_at, ..row }));
            acks.push(pending.ack);
        }
        let outcome = store.insert_events(&rows).await.map_err(|e| {
            tracing::error!(error = %e, events = rows.len(), "page views could not be stored");
            IngestError::Unavailable
        });
        queued.fetch_sub(size, Ordering::AcqRel);
        if outcome.is_ok() {
            stats.commits.fetch_add(1, Ordering::Relaxed);
            stats.events.fetch_add(size, Ordering::Relaxed);
        }
        for ack in acks {
            let _ = ack.send(outcome);
        }
    }
}
