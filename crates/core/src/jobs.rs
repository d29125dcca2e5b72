//! The durable job queue: enqueue, claim with a lease, retry with exponential backoff,
//! dead-letter after `max_attempts`. A running job's lease is renewed while its handler works, so
//! a long job runs once; a worker that dies mid-job lets its lease run out and another worker runs
//! the job again, so delivery is at least once and handlers must be idempotent.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use passme_store::{Job, NewJob, Store};
use tokio::sync::watch;

use crate::CoreError;
use crate::clock::SharedClock;

pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send>>;
type Handler = Arc<dyn Fn(Job) -> HandlerFuture + Send + Sync>;

pub const DEFAULT_QUEUE: &str = "default";
/// Messages: they wait on mail relays and push services, so their own queue, whose worker runs a
/// batch at once and one hung relay holds up no other work.
pub const MESSAGES_QUEUE: &str = "messages";

/// Why a job did not finish.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The payload is not what its kind stores. No retry can fix that, so the job goes to the
    /// dead letters at once.
    #[error("unreadable payload: {0}")]
    Payload(String),
    /// A failure that may pass (a database, the mail relay, the payment provider): the next
    /// attempt comes after the backoff.
    #[error("{0}")]
    Failed(Box<dyn std::error::Error + Send + Sync>),
    /// A failure whose peer said when to come back (HTTP `Retry-After`): the next attempt comes
    /// no sooner than that, nor sooner than the backoff.
    #[error("{cause} (retry after {after_ms} ms)")]
    Later { after_ms: i64, cause: Box<dyn std::error::Error + Send + Sync> },
}

impl JobError {
    pub fn failed(error: impl std::error::Error + Send + Sync + 'static) -> JobError {
        JobError::Failed(Box::new(error))
    }

    /// Whether another attempt could succeed.
    pub fn retryable(&self) -> bool {
        matches!(self, JobError::Failed(_) | JobError::Later { .. })
    }

    /// The least wait before another attempt, when the failure named one.
    pub fn not_before_ms(&self) -> i64 {
        match self {
            JobError::Later { after_ms, .. } => *after_ms,
            _ => 0,
        }
    }
}

impl From<CoreError> for JobError {
    fn from(e: CoreError) -> JobError {
        JobError::failed(e)
    }
}

/// A job kind with a typed payload: queued with [`JobQueue::push`], handled with
/// [`Handlers::on`], which parses the payload before the handler sees it.
pub trait JobPayload: serde::Serialize + serde::de::DeserializeOwned + Send + 'static {
    const KIND: &'static str;
    /// Empty the payload once the job is done: it names a person who is to leave no trace.
    const FORGET_WHEN_DONE: bool = false;
}

/// Exponential backoff: `base * 2^(attempt-1)`, capped, with up to 25 % random jitter so retries of
/// many failed jobs do not arrive in lockstep.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base_ms: i64,
    pub max_ms: i64,
    pub jitter: bool,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { base_ms: 2_000, max_ms: 3_600_000, jitter: true }
    }
}

impl Backoff {
    pub fn delay_ms(&self, attempt: i64) -> i64 {
        let exponent = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        let delay = self.base_ms.saturating_mul(1_i64 << exponent).min(self.max_ms);
        if self.jitter { delay + rand::random_range(0..=delay / 4) } else { delay }
    }
}

/// Enqueues jobs.
#[derive(Debug, Clone)]
pub struct JobQueue {
    store: Store,
    clock: SharedClock,
    max_attempts: i64,
}

#[derive(Debug, Clone, Default)]
pub struct EnqueueOptions {
    /// A deterministic id makes enqueueing idempotent: the second enqueue is a no-op.
    pub id: Option<String>,
    pub queue: Option<String>,
    pub delay_ms: i64,
    pub max_attempts: Option<i64>,
}

impl JobQueue {
    pub fn new(store: Store, clock: SharedClock, max_attempts: i64) -> JobQueue {
        JobQueue { store, clock, max_attempts: max_attempts.max(1) }
    }

    /// Queues a typed job; returns its id and whether it was new.
    pub async fn push<P: JobPayload>(&self, payload: &P, options: EnqueueOptions) -> Result<(String, bool), CoreError> {
        let value = serde_json::to_value(payload).map_err(|e| CoreError::broken("job payload not serialisable", e))?;
        self.enqueue(P::KIND, &value, options).await
    }

    /// Stores a job; returns its id and whether it was new (false: that id was already queued).
    pub async fn enqueue(&self, kind: &str, payload: &serde_json::Value, options: EnqueueOptions) -> Result<(String, bool), CoreError> {
        let job = self.job_row(kind, payload, options);
        match self.store.enqueue_job(&job, self.clock.now_ms()).await {
            Ok(()) => Ok((job.id, true)),
            Err(passme_store::StoreError::Conflict) => Ok((job.id, false)),
            Err(e) => Err(e.into()),
        }
    }

    /// The row of a typed job, for storing in the same transaction as the change that causes it.
    pub fn prepare<P: JobPayload>(&self, payload: &P, options: EnqueueOptions) -> Result<NewJob, CoreError> {
        let value = serde_json::to_value(payload).map_err(|e| CoreError::broken("job payload not serialisable", e))?;
        Ok(self.job_row(P::KIND, &value, options))
    }

    fn job_row(&self, kind: &str, payload: &serde_json::Value, options: EnqueueOptions) -> NewJob {
        NewJob {
            id: options.id.unwrap_or_else(new_job_id),
            queue: options.queue.unwrap_or_else(|| DEFAULT_QUEUE.into()),
            kind: kind.into(),
            payload: payload.to_string(),
            max_attempts: options.max_attempts.unwrap_or(self.max_attempts).max(1),
            run_at: self.clock.now_ms() + options.delay_ms.max(0),
        }
    }
}

fn new_job_id() -> String {
    crate::crypto::random_id::<16>("job_")
}

/// Handlers by job kind.
#[derive(Clone, Default)]
pub struct Handlers {
    by_kind: HashMap<String, Handler>,
    /// Kinds whose payload is emptied when done (see [`JobPayload::FORGET_WHEN_DONE`]).
    forget: Vec<&'static str>,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_kind.keys()).finish()
    }
}

impl Handlers {
    pub fn register<F, Fut>(&mut self, kind: &str, handler: F)
    where
        F: Fn(Job) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        self.by_kind.insert(kind.to_string(), Arc::new(move |job| Box::pin(handler(job))));
    }

    /// Handles the jobs of a typed kind; an unreadable payload fails without a retry.
    pub fn on<P, F, Fut>(&mut self, handler: F)
    where
        P: JobPayload,
        F: Fn(P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        if P::FORGET_WHEN_DONE {
            self.forget.push(P::KIND);
        }
        self.register(P::KIND, move |job: Job| {
            let handler = handler.clone();
            async move {
                let payload: P = serde_json::from_str(&job.payload).map_err(|e| JobError::Payload(e.to_string()))?;
                handler(payload).await
            }
        });
    }
}

/// What one pass of a worker did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    pub succeeded: usize,
    pub retried: usize,
    pub dead: usize,
    /// Completion refused because another worker took the job over after this one's lease ran out.
    pub lost: usize,
}

/// How one job of a pass ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settled {
    Succeeded,
    Retried,
    Dead,
    Lost,
}

impl Pass {
    fn add(&mut self, settled: Settled) {
        match settled {
            Settled::Succeeded => self.succeeded += 1,
            Settled::Retried => self.retried += 1,
            Settled::Dead => self.dead += 1,
            Settled::Lost => self.lost += 1,
        }
    }

    pub fn claimed(&self) -> usize {
        self.succeeded + self.retried + self.dead + self.lost
    }
}

#[derive(Debug, Clone)]
pub struct Worker {
    pub id: String,
    pub store: Store,
    pub clock: SharedClock,
    pub handlers: Handlers,
    pub queue: String,
    pub lease_ms: i64,
    pub batch: i64,
    pub backoff: Backoff,
    /// Runs a batch's jobs at once rather than one after another: for jobs that wait on the
    /// network (sending messages), where one slow peer must not hold up the rest.
    pub concurrent: bool,
}

impl Worker {
    pub fn new(store: Store, clock: SharedClock, handlers: Handlers) -> Worker {
        Worker {
            id: crate::crypto::random_id::<6>("worker_"),
            store,
            clock,
            handlers,
            queue: DEFAULT_QUEUE.into(),
            lease_ms: 300_000,
            batch: 8,
            backoff: Backoff::default(),
            concurrent: false,
        }
    }

    /// The message queue's worker, as `passme serve` runs it: messages wait on relays and push
    /// services, so a batch runs at once and one slow peer holds up nothing else.
    pub fn messages(store: Store, clock: SharedClock, handlers: Handlers) -> Worker {
        Worker { queue: MESSAGES_QUEUE.into(), batch: 32, concurrent: true, ..Worker::new(store, clock, handlers) }
    }

    /// Claims one batch and runs it. A handler that panics counts as a failed attempt.
    pub async fn run_once(&self) -> Result<Pass, CoreError> {
        let jobs = self.store.claim_jobs(&self.queue, &self.id, self.batch, self.lease_ms, self.clock.now_ms()).await?;
        let mut pass = Pass::default();
        if !self.concurrent {
            // Each job finishes, and is recorded, before the next starts.
            for job in jobs {
                pass.add(self.run_job(job).await?);
            }
            return Ok(pass);
        }
        // Each job runs and records its outcome on its own, so one slow peer or one slow
        // completion holds up nothing else of the batch.
        let worker = Arc::new(self.clone());
        let mut tasks = tokio::task::JoinSet::new();
        for job in jobs {
            let worker = worker.clone();
            tasks.spawn(async move { worker.run_job(job).await });
        }
        let mut failure = None;
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(Ok(settled)) => pass.add(settled),
                Ok(Err(e)) => failure = failure.or(Some(e)),
                Err(join) => failure = failure.or(Some(CoreError::broken("job task", join))),
            }
        }
        failure.map_or(Ok(pass), Err)
    }

    /// Runs one claimed job and records how it went.
    async fn run_job(&self, job: Job) -> Result<Settled, CoreError> {
        let joined = match self.handlers.by_kind.get(&job.kind) {
            Some(handler) => match self.holding_lease(&job, tokio::spawn(handler(job.clone()))).await {
                Some(joined) => Some(joined),
                None => return Ok(Settled::Lost),
            },
            None => None,
        };
        // (error, whether another attempt could succeed, the least wait before it)
        let outcome: Result<(), (String, bool, i64)> = match joined {
            Some(Ok(result)) => result.map_err(|e| (e.to_string(), e.retryable(), e.not_before_ms())),
            Some(Err(join)) => Err((format!("handler panicked: {join}"), true, 0)),
            // Another version of the service may know the kind (a rolling deploy).
            None => Err((format!("no handler for job kind {:?}", job.kind), true, 0)),
        };
        let now = self.clock.now_ms();
        match outcome {
            Ok(()) => {
                let forget = self.handlers.forget.contains(&job.kind.as_str());
                if self.store.complete_job(&job.id, &self.id, now, forget).await? {
                    return Ok(Settled::Succeeded);
                }
                tracing::warn!(job = %job.id, kind = %job.kind, worker = %self.id, "completion refused: another worker holds the job now");
                Ok(Settled::Lost)
            }
            Err((error, retryable, not_before_ms)) => {
                let delay = self.backoff.delay_ms(job.attempts).max(not_before_ms);
                let retry_at = (retryable && job.attempts < job.max_attempts).then(|| now + delay);
                tracing::warn!(job = %job.id, kind = %job.kind, attempt = job.attempts, max_attempts = job.max_attempts, retry = retry_at.is_some(), %error, "job failed");
                Ok(if !self.store.fail_job(&job.id, &self.id, &error, retry_at, now).await? {
                    Settled::Lost
                } else if retry_at.is_some() {
                    Settled::Retried
                } else {
                    Settled::Dead
                })
            }
        }
    }

    /// Waits for a job's handler while renewing the job's lease every third of it, so a handler
    /// may run as long as it needs while its worker lives, and a dead worker's job is free one
    /// lease after its last renewal. Should the lease be lost all the same (this worker could not
    /// reach the database for a whole lease and another took the job over), the handler is
    /// stopped at its next await, since what it would still do is the new holder's to do: `None`.
    async fn holding_lease(
        &self,
        job: &Job,
        task: tokio::task::JoinHandle<Result<(), JobError>>,
    ) -> Option<Result<Result<(), JobError>, tokio::task::JoinError>> {
        // A worker that is gone (its task cancelled) takes its handler with it, as a crash would;
        // so does one that lost its lease, when this returns.
        let mut task = AbortOnDrop(task);
        let renew = move || {
            let now = self.clock.now_ms();
            self.store.extend_job_lease(&job.id, &self.id, now + self.lease_ms, now)
        };
        let joined = crate::lease::renewing(&mut task.0, self.lease_ms, &job.id, renew).await;
        if joined.is_none() {
            tracing::warn!(job = %job.id, kind = %job.kind, worker = %self.id, "lease lost to another worker: handler stopped");
        }
        joined
    }

    /// Runs until `shutdown` turns true, polling when idle. A pass in progress finishes first.
    pub async fn run(self, poll: Duration, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(worker = %self.id, queue = %self.queue, "worker started");
        while !*shutdown.borrow() {
            let idle = match self.run_once().await {
                Ok(pass) => pass.claimed() == 0,
                Err(e) => {
                    tracing::error!(worker = %self.id, error = %e, code = e.code(), "worker pass failed");
                    true
                }
            };
            if idle {
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
        tracing::info!(worker = %self.id, "worker stopped");
    }
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::Backoff;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let b = Backoff { base_ms: 1_000, max_ms: 10_000, jitter: false };
        assert_eq!([1, 2, 3, 4, 5, 40].map(|a| b.delay_ms(a)), [1_000, 2_000, 4_000, 8_000, 10_000, 10_000]);
        let jittered = Backoff { jitter: true, ..b };
        for _ in 0..100 {
            assert!((2_000..=2_500).contains(&jittered.delay_ms(2)));
        }
    }
}
