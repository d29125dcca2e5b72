//! The durable job queue on both engines: exactly-once claiming under concurrency, retry after a
//! worker dies, backoff, dead-lettering, and the platform's declared retention of finished jobs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use passme_core::clock::{ManualClock, SharedClock};
use passme_core::housekeeping::Housekeeping;
use passme_core::jobs::{Backoff, EnqueueOptions, Handlers, JobError, JobPayload, JobQueue, Worker};
use passme_policy::proves;
use passme_store::{JobStatus, Store};
use passme_testkit::for_each_engine;
use serde_json::json;

const T0: i64 = 1_790_000_000_000;

fn setup(store: &Store) -> (ManualClock, SharedClock, JobQueue) {
    let clock = ManualClock::at(T0);
    let shared: SharedClock = Arc::new(clock.clone());
    let queue = JobQueue::new(store.clone(), shared.clone(), 3);
    (clock, shared, queue)
}

#[tokio::test]
async fn two_workers_never_run_the_same_job() {
    for_each_engine(|store| async move {
        let (_, clock, queue) = setup(&store);
        for i in 0..120 {
            queue.enqueue("count", &json!({ "n": i }), EnqueueOptions::default()).await.expect("enqueue");
        }
        let runs: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
        let mut handlers = Handlers::default();
        let seen = runs.clone();
        handlers.register("count", move |job| {
            let seen = seen.clone();
            async move {
                tokio::task::yield_now().await;
                *seen.lock().expect("lock").entry(job.id).or_default() += 1;
                Ok(())
            }
        });
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let worker = Worker { batch: 5, ..Worker::new(store.clone(), clock.clone(), handlers.clone()) };
            tasks.push(tokio::spawn(async move {
                let mut total = 0;
                loop {
                    let pass = worker.run_once().await.expect("pass");
                    if pass.claimed() == 0 {
                        return total;
                    }
                    total += pass.succeeded;
                }
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.expect("worker task");
        }
        let runs = runs.lock().expect("lock").clone();
        assert_eq!(total, 120, "{:?}", store.engine());
        assert_eq!(runs.len(), 120);
        assert!(runs.values().all(|&n| n == 1), "a job ran twice on {:?}", store.engine());
        assert_eq!(store.job_counts().await.expect("counts").done, 120);
    })
    .await;
}

#[tokio::test]
async fn a_worker_killed_mid_job_leaves_the_job_to_be_retried() {
    for_each_engine(|store| async move {
        let (clock, shared, queue) = setup(&store);
        let (id, _) = queue.enqueue("slow", &json!({}), EnqueueOptions::default()).await.expect("enqueue");
        let mut hanging = Handlers::default();
        hanging.register("slow", |_job| std::future::pending::<Result<(), JobError>>());
        let doomed = Worker { lease_ms: 60_000, ..Worker::new(store.clone(), shared.clone(), hanging) };
        // The worker claims the job and is then killed while the handler runs.
        let task = tokio::spawn(async move { doomed.run_once().await });
        for _ in 0..200 {
            if store.job(&id).await.expect("read").is_some_and(|j| j.status == JobStatus::Running) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        task.abort();
        let _ = task.await;

        let mut working = Handlers::default();
        working.register("slow", |_job| async { Ok(()) });
        let rescuer = Worker::new(store.clone(), shared.clone(), working);
        assert_eq!(rescuer.run_once().await.expect("pass").claimed(), 0, "the lease still holds");
        clock.advance(60_001);
        assert_eq!(rescuer.run_once().await.expect("pass").succeeded, 1, "after the lease the job runs again");
        let job = store.job(&id).await.expect("read").expect("job");
        assert_eq!((job.status, job.attempts), (JobStatus::Done, 2));
    })
    .await;
}

#[tokio::test]
async fn failures_back_off_then_dead_letter_after_max_attempts() {
    for_each_engine(|store| async move {
        let (clock, shared, queue) = setup(&store);
        let (id, _) = queue.enqueue("flaky", &json!({}), EnqueueOptions::default()).await.expect("enqueue");
        let (unknown, _) = queue
            .enqueue("nobody-handles-this", &json!({}), EnqueueOptions { max_attempts: Some(1), ..Default::default() })
            .await
            .expect("enqueue");
        let mut handlers = Handlers::default();
        handlers.register("flaky", |_job| async { Err(JobError::failed(std::io::Error::other("provider said 503"))) });
        let worker =
            Worker { backoff: Backoff { base_ms: 1_000, max_ms: 60_000, jitter: false }, ..Worker::new(store.clone(), shared, handlers) };

        let first = worker.run_once().await.expect("pass");
        assert_eq!((first.retried, first.dead), (1, 1), "the unknown kind goes straight to dead letter with max_attempts 1");
        assert_eq!(store.job(&unknown).await.expect("read").map(|j| j.status), Some(JobStatus::Dead));
        assert_eq!(store.job(&id).await.expect("read").map(|j| j.run_at), Some(T0 + 1_000));
        clock.advance(999);
        assert_eq!(worker.run_once().await.expect("pass").claimed(), 0, "not before the backoff");
        clock.advance(1);
        assert_eq!(worker.run_once().await.expect("pass").retried, 1);
        assert_eq!(store.job(&id).await.expect("read").map(|j| j.run_at), Some(T0 + 1_000 + 2_000), "the delay doubles");
        clock.advance(2_000);
        assert_eq!(worker.run_once().await.expect("pass").dead, 1, "third failure of three: dead letter");
        let dead = store.job(&id).await.expect("read").expect("job");
        assert_eq!((dead.status, dead.attempts, dead.last_error.as_deref()), (JobStatus::Dead, 3, Some("provider said 503")));
        assert!(store.requeue_dead_job(&id, T0).await.expect("requeue"), "an operator can retry a dead job");
    })
    .await;
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Greeting {
    to: String,
}

impl JobPayload for Greeting {
    const KIND: &'static str = "greeting";
}

#[tokio::test]
async fn typed_jobs_arrive_parsed_and_an_unreadable_payload_is_dead_at_once() {
    for_each_engine(|store| async move {
        let (_, shared, queue) = setup(&store);
        let (good, _) = queue.push(&Greeting { to: "Ola".into() }, EnqueueOptions::default()).await.expect("push");
        let (bad, _) = queue.enqueue("greeting", &json!({ "to": 7 }), EnqueueOptions::default()).await.expect("enqueue");
        let greeted = Arc::new(Mutex::new(Vec::new()));
        let mut handlers = Handlers::default();
        let seen = greeted.clone();
        handlers.on(move |g: Greeting| {
            let seen = seen.clone();
            async move {
                seen.lock().expect("lock").push(g.to);
                Ok(())
            }
        });
        let pass = Worker::new(store.clone(), shared, handlers).run_once().await.expect("pass");
        assert_eq!((pass.succeeded, pass.retried, pass.dead), (1, 0, 1), "no retry can fix a payload");
        assert_eq!(*greeted.lock().expect("lock"), vec!["Ola".to_string()]);
        assert_eq!(store.job(&good).await.expect("read").map(|j| j.status), Some(JobStatus::Done));
        let dead = store.job(&bad).await.expect("read").expect("job");
        assert_eq!((dead.status, dead.attempts), (JobStatus::Dead, 1));
        assert!(dead.last_error.as_deref().is_some_and(|e| e.starts_with("unreadable payload")), "{:?}", dead.last_error);
    })
    .await;
}

#[tokio::test]
async fn a_panicking_handler_is_a_failed_attempt_not_a_dead_worker() {
    for_each_engine(|store| async move {
        let (_, shared, queue) = setup(&store);
        queue.enqueue("boom", &json!({}), EnqueueOptions::default()).await.expect("enqueue");
        let mut handlers = Handlers::default();
        handlers.register("boom", |_job| async { panic!("handler bug") });
        let worker = Worker::new(store.clone(), shared, handlers);
        assert_eq!(worker.run_once().await.expect("the worker survives").retried, 1);
    })
    .await;
}

#[tokio::test]
async fn enqueueing_with_the_same_id_is_idempotent() {
    for_each_engine(|store| async move {
        let (_, shared, queue) = setup(&store);
        let first = Housekeeping::schedule(&queue, T0).await.expect("schedule");
        let second = Housekeeping::schedule(&queue, T0 + 1_000).await.expect("schedule again");
        assert!(first && !second, "one housekeeping job per hour however many processes schedule it");
        let _ = shared;
        assert_eq!(store.job_counts().await.expect("counts").queued, 1);
    })
    .await;
}

#[tokio::test]
async fn finished_jobs_are_deleted_after_the_declared_period() {
    proves!("retention.operations.job_payload");
    for_each_engine(|store| async move {
        let (clock, shared, queue) = setup(&store);
        let policy = passme_policy::builtin();
        let period = policy.retention_rule("retention.operations.job_payload").expect("declared").period;
        let (old, _) = queue.enqueue("ok", &json!({ "email": "a@example.com" }), EnqueueOptions::default()).await.expect("enqueue");
        let (pending, _) =
            queue.enqueue("ok", &json!({}), EnqueueOptions { delay_ms: 365 * 86_400_000, ..Default::default() }).await.expect("enqueue");
        let mut handlers = Handlers::default();
        handlers.register("ok", |_job| async { Ok(()) });
        Worker::new(store.clone(), shared.clone(), handlers).run_once().await.expect("pass");
        let housekeeping = Housekeeping::new(store.clone(), shared.clone(), policy).expect("platform rules are executable");

        clock.advance(period.max_millis() / 2);
        housekeeping.run().await.expect("run");
        assert!(store.job(&old).await.expect("read").is_some(), "kept within the period");
        clock.advance(period.max_millis());
        housekeeping.run().await.expect("run");
        assert!(store.job(&old).await.expect("read").is_none(), "deleted after the period");
        assert!(store.job(&pending).await.expect("read").is_some(), "unfinished jobs are never purged");
    })
    .await;
}

/// A job that outlives its lease (billing reconciliation waiting on a slow provider): the lease
/// is renewed while the handler works, so the other worker polling all along never claims it.
#[tokio::test]
async fn a_handler_running_three_leases_long_runs_once_while_its_worker_lives() {
    for_each_engine(|store| async move {
        let clock = passme_core::clock::system();
        let queue = JobQueue::new(store.clone(), clock.clone(), 3);
        let (id, _) = queue.enqueue("long", &json!({}), EnqueueOptions::default()).await.expect("enqueue");
        let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut handlers = Handlers::default();
        let counted = runs.clone();
        handlers.register("long", move |_job| {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(3_000)).await;
                Ok(())
            }
        });
        // A lease of 1 s, renewed every third: margins a loaded CI machine keeps.
        let worker = |store: &Store| Worker { lease_ms: 1_000, ..Worker::new(store.clone(), clock.clone(), handlers.clone()) };
        let first = worker(&store);
        let holder = tokio::spawn(async move { first.run_once().await });
        while !store.job(&id).await.expect("read").is_some_and(|j| j.status == JobStatus::Running) {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let second = worker(&store);
        let mut claimed_by_second = 0;
        while !holder.is_finished() {
            claimed_by_second += second.run_once().await.expect("pass").claimed();
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let pass = holder.await.expect("task").expect("pass");
        assert_eq!((pass.succeeded, pass.lost), (1, 0), "the worker that ran it completes it on {:?}", store.engine());
        assert_eq!(claimed_by_second, 0, "nobody else claimed it while it ran");
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1, "the handler ran once");
        assert_eq!(store.job(&id).await.expect("read").expect("job").status, JobStatus::Done);
    })
    .await;
}

/// As after `kill -9`: the worker stops renewing and another takes the job over about one lease
/// after the last renewal, not one configured lease after the claim.
#[tokio::test]
async fn a_dead_workers_long_job_is_taken_over_one_lease_after_its_last_renewal() {
    for_each_engine(|store| async move {
        let clock = passme_core::clock::system();
        let queue = JobQueue::new(store.clone(), clock.clone(), 3);
        let (id, _) = queue.enqueue("long", &json!({}), EnqueueOptions::default()).await.expect("enqueue");
        let mut hanging = Handlers::default();
        hanging.register("long", |_job| std::future::pending::<Result<(), JobError>>());
        let doomed = Worker { lease_ms: 400, ..Worker::new(store.clone(), clock.clone(), hanging) };
        let task = tokio::spawn(async move { doomed.run_once().await });
        // Alive for three leases: renewed all along.
        tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
        let mut done = Handlers::default();
        done.register("long", |_job| async { Ok(()) });
        let rescuer = Worker { lease_ms: 400, ..Worker::new(store.clone(), clock.clone(), done) };
        assert_eq!(rescuer.run_once().await.expect("pass").claimed(), 0, "a live worker keeps its job on {:?}", store.engine());
        task.abort();
        let _ = task.await;
        let died = std::time::Instant::now();
        let mut taken_over = None;
        while died.elapsed() < std::time::Duration::from_secs(5) {
            if rescuer.run_once().await.expect("pass").succeeded == 1 {
                taken_over = Some(died.elapsed());
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let after = taken_over.expect("taken over after the worker died");
        assert!(after <= std::time::Duration::from_millis(900), "taken over {after:?} after the worker died");
        let job = store.job(&id).await.expect("read").expect("job");
        assert_eq!((job.status, job.attempts), (JobStatus::Done, 2));
    })
    .await;
}

/// A worker cut off from the database for longer than its lease loses the job to another: its
/// handler is stopped at its next await (no further effect) and its completion is refused.
#[tokio::test]
async fn a_worker_that_lost_its_lease_stops_its_handler_and_cannot_complete() {
    for_each_engine(|store| async move {
        let (clock, shared, queue) = setup(&store);
        let (id, _) = queue.enqueue("effects", &json!({}), EnqueueOptions::default()).await.expect("enqueue");
        let effects = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut handlers = Handlers::default();
        let counted = effects.clone();
        handlers.register("effects", move |_job| {
            let counted = counted.clone();
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(600)).await;
                // An effect after the lease was lost: must never happen.
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            }
        });
        let first = Worker { lease_ms: 150, ..Worker::new(store.clone(), shared.clone(), handlers.clone()) };
        let holder = tokio::spawn(async move { first.run_once().await });
        for _ in 0..200 {
            if store.job(&id).await.expect("read").is_some_and(|j| j.status == JobStatus::Running) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        // The lease runs out on the shared clock and another worker claims the job.
        clock.advance(1_000);
        let mut quick = Handlers::default();
        quick.register("effects", |_job| async { Ok(()) });
        let second = Worker { lease_ms: 60_000, ..Worker::new(store.clone(), shared.clone(), quick) };
        assert_eq!(second.run_once().await.expect("pass").succeeded, 1, "on {:?}", store.engine());
        let pass = holder.await.expect("task").expect("pass");
        assert_eq!((pass.succeeded, pass.lost), (0, 1), "the first worker's pass records the loss");
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        assert_eq!(effects.load(std::sync::atomic::Ordering::SeqCst), 0, "the stopped handler had no effect");
        let job = store.job(&id).await.expect("read").expect("job");
        assert_eq!((job.status, job.attempts), (JobStatus::Done, 2), "the second worker's completion stands");
    })
    .await;
}

/// What `passme status` and `/metrics` read: per kind, the jobs queued, running and dead, and the
/// running ones with their holder and lease end.
#[tokio::test]
async fn the_fleet_status_counts_jobs_per_kind_with_their_holders() {
    for_each_engine(|store| async move {
        let (_, _, queue) = setup(&store);
        for kind in ["mail", "mail", "mail", "report"] {
            queue.enqueue(kind, &json!({}), EnqueueOptions::default()).await.expect("enqueue");
        }
        queue.enqueue("broken", &json!({}), EnqueueOptions { max_attempts: Some(1), ..Default::default() }).await.expect("enqueue");
        let claimed = store.claim_jobs("default", "worker_status", 10, 60_000, T0).await.expect("claim");
        let broken = claimed.into_iter().find(|j| j.kind == "broken").expect("broken claimed");
        assert!(store.fail_job(&broken.id, "worker_status", "never readable", None, T0).await.expect("fail"));
        let status = passme_core::fleet::FleetStatus::read(&store, 0, "analytics.pass").await.expect("status");
        let depth = |kind: &str| status.depths.iter().find(|d| d.kind == kind).map(|d| (d.queued, d.running, d.dead));
        assert_eq!(depth("mail"), Some((0, 3, 0)), "on {:?}: {:?}", store.engine(), status.depths);
        assert_eq!(depth("report"), Some((0, 1, 0)));
        assert_eq!(depth("broken"), Some((0, 0, 1)));
        assert_eq!(status.running.len(), 4);
        assert!(status.running.iter().all(|j| j.locked_by.as_deref() == Some("worker_status") && j.locked_until == Some(T0 + 60_000)));
        assert_eq!(status.dead[0].last_error.as_deref(), Some("never readable"));
        assert!(status.minute_pass.is_none());
    })
    .await;
}
