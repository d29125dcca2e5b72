//! The durable job table. A job is claimed with a lease; a worker that dies mid-job simply lets
//! the lease run out and the job becomes claimable again. Decisions (backoff, when to give up)
//! belong to `passme_core::jobs`; this module only moves rows between states atomically.

use sqlx::Row;

use crate::{Store, StoreError, on_pool};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Queued,
    Running,
    Done,
    /// Gave up after `max_attempts`: the dead-letter state, kept for inspection and manual retry.
    Dead,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Dead => "dead",
        }
    }

    fn parse(s: &str) -> Result<JobStatus, StoreError> {
        match s {
            "queued" => Ok(JobStatus::Queued),
            "running" => Ok(JobStatus::Running),
            "done" => Ok(JobStatus::Done),
            "dead" => Ok(JobStatus::Dead),
            other => Err(StoreError::Database(sqlx::Error::Decode(format!("unknown job status {other:?}").into()))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: String,
    pub queue: String,
    pub kind: String,
    pub payload: String,
    pub max_attempts: i64,
    pub run_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: String,
    pub queue: String,
    pub kind: String,
    pub payload: String,
    pub status: JobStatus,
    /// Attempts started so far, including the current one for a claimed job.
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_at: i64,
    pub locked_by: Option<String>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobCounts {
    pub queued: i64,
    pub running: i64,
    pub done: i64,
    pub dead: i64,
}

/// One job kind's backlog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindDepth {
    pub kind: String,
    pub queued: i64,
    pub running: i64,
    pub dead: i64,
}

/// A job as operators see it: a running one with its holder and lease end, a dead one with the
/// error that ended it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSummary {
    pub id: String,
    pub kind: String,
    pub attempts: i64,
    pub locked_by: Option<String>,
    pub locked_until: Option<i64>,
    pub last_error: Option<String>,
    pub updated_at: i64,
}

/// The query that stores `$job` (a [`NewJob`]) as queued at `$now`, ready to execute on a pool
/// or inside a transaction of either engine.
macro_rules! insert_job {
    ($job:expr, $now:expr) => {{
        let job: &$crate::jobs::NewJob = $job;
        sqlx::query(
            "INSERT INTO jobs (id, queue, kind, payload, status, attempts, max_attempts, run_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'queued', 0, $5, $6, $7, $7)",
        )
        .bind(&job.id)
        .bind(&job.queue)
        .bind(&job.kind)
        .bind(&job.payload)
        .bind(job.max_attempts)
        .bind(job.run_at)
        .bind($now)
    }};
}
pub(crate) use insert_job;

const JOB_COLUMNS: &str = "id, queue, kind, payload, status, attempts, max_attempts, run_at, locked_by, last_error";

macro_rules! job_from_row {
    ($row:expr) => {{
        let row = $row;
        Job {
            id: row.try_get("id")?,
            queue: row.try_get("queue")?,
            kind: row.try_get("kind")?,
            payload: row.try_get("payload")?,
            status: JobStatus::parse(&row.try_get::<String, _>("status")?)?,
            attempts: row.try_get("attempts")?,
            max_attempts: row.try_get("max_attempts")?,
            run_at: row.try_get("run_at")?,
            locked_by: row.try_get("locked_by")?,
            last_error: row.try_get("last_error")?,
        }
    }};
}

impl Store {
    /// Stores a new job. Fails with `Conflict` if the id exists, which makes enqueueing with a
    /// deterministic id idempotent.
    pub async fn enqueue_job(&self, job: &NewJob, now: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            insert_job!(job, now)
            .execute(pool)
            .await
            .map_err(crate::error::conflict_or)?;
            Ok(())
        })
    }

    /// Claims up to `limit` due jobs of a queue for `worker` until `now + lease_ms`: queued jobs
    /// whose time has come, and running jobs whose lease ran out (their worker died). Jobs whose
    /// lease ran out on their last attempt are dead-lettered instead.
    pub async fn claim_jobs(&self, queue: &str, worker: &str, limit: i64, lease_ms: i64, now: i64) -> Result<Vec<Job>, StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE jobs SET status = 'dead', locked_by = NULL, locked_until = NULL, finished_at = $1, updated_at = $1, \
                 last_error = COALESCE(last_error, 'the worker stopped during the last attempt') \
                 WHERE queue = $2 AND status = 'running' AND locked_until < $1 AND attempts >= max_attempts",
            )
            .bind(now)
            .bind(queue)
            .execute(pool)
            .await?;
        });
        let lock = match self.engine() {
            crate::Engine::Postgres => "FOR UPDATE SKIP LOCKED",
            // SQLite runs one writer at a time, so the single UPDATE below is already atomic.
            crate::Engine::Sqlite => "",
        };
        let sql = format!(
            "UPDATE jobs SET status = 'running', locked_by = $1, locked_until = $2, attempts = attempts + 1, updated_at = $3 \
             WHERE id IN (SELECT id FROM jobs WHERE queue = $4 AND ((status = 'queued' AND run_at <= $3) OR (status = 'running' AND locked_until < $3)) \
             ORDER BY run_at, id LIMIT $5 {lock}) RETURNING {JOB_COLUMNS}"
        );
        on_pool!(self, pool => {
            // Built from constants only (the lock clause), never from input.
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(worker).bind(now + lease_ms).bind(now).bind(queue).bind(limit).fetch_all(pool).await?;
            let mut jobs = Vec::with_capacity(rows.len());
            for row in &rows {
                jobs.push(job_from_row!(row));
            }
            jobs.sort_by(|a, b| (a.run_at, &a.id).cmp(&(b.run_at, &b.id)));
            Ok(jobs)
        })
    }

    /// Marks a claimed job done. Returns false if `worker` no longer holds it (its lease ran out
    /// and another worker took over), so a late worker cannot overwrite the new owner's state.
    /// Marks a job done. With `forget`, its payload and last error are emptied too: a job that
    /// names a person (an erasure) leaves nothing about them behind.
    pub async fn complete_job(&self, id: &str, worker: &str, now: i64, forget: bool) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let done = sqlx::query(
                "UPDATE jobs SET status = 'done', locked_by = NULL, locked_until = NULL, finished_at = $1, updated_at = $1, \
                 payload = CASE WHEN $4 THEN '{}' ELSE payload END, last_error = CASE WHEN $4 THEN NULL ELSE last_error END \
                 WHERE id = $2 AND locked_by = $3 AND status = 'running'",
            )
            .bind(now)
            .bind(id)
            .bind(worker)
            .bind(forget)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Extends the lease of a job `worker` still runs (its heartbeat). False once the job is no
    /// longer its own: the lease ran out and another worker claimed it, or it was settled.
    pub async fn extend_job_lease(&self, id: &str, worker: &str, until: i64, now: i64) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let extended = sqlx::query("UPDATE jobs SET locked_until = $1, updated_at = $2 WHERE id = $3 AND locked_by = $4 AND status = 'running'")
                .bind(until)
                .bind(now)
                .bind(id)
                .bind(worker)
                .execute(pool)
                .await?;
            Ok(extended.rows_affected() == 1)
        })
    }

    /// Records a failed attempt: back to the queue at `retry_at`, or dead-lettered when `None`.
    pub async fn fail_job(&self, id: &str, worker: &str, error: &str, retry_at: Option<i64>, now: i64) -> Result<bool, StoreError> {
        let (status, finished_at) = match retry_at {
            Some(_) => (JobStatus::Queued, None),
            None => (JobStatus::Dead, Some(now)),
        };
        on_pool!(self, pool => {
            let updated = sqlx::query(
                "UPDATE jobs SET status = $1, run_at = COALESCE($2, run_at), last_error = $3, finished_at = $4, \
                 locked_by = NULL, locked_until = NULL, updated_at = $5 WHERE id = $6 AND locked_by = $7 AND status = 'running'",
            )
            .bind(status.as_str())
            .bind(retry_at)
            .bind(error)
            .bind(finished_at)
            .bind(now)
            .bind(id)
            .bind(worker)
            .execute(pool)
            .await?;
            Ok(updated.rows_affected() == 1)
        })
    }

    /// Puts a dead-lettered job back in the queue with a fresh set of attempts.
    pub async fn requeue_dead_job(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let updated = sqlx::query("UPDATE jobs SET status = 'queued', attempts = 0, run_at = $1, finished_at = NULL, updated_at = $1 WHERE id = $2 AND status = 'dead'")
                .bind(now)
                .bind(id)
                .execute(pool)
                .await?;
            Ok(updated.rows_affected() == 1)
        })
    }

    pub async fn job(&self, id: &str) -> Result<Option<Job>, StoreError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
        on_pool!(self, pool => {
            match sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(id).fetch_optional(pool).await? {
                Some(row) => Ok(Some(job_from_row!(&row))),
                None => Ok(None),
            }
        })
    }

    /// Jobs waiting, running and dead-lettered, per kind, for operators.
    pub async fn job_depths(&self) -> Result<Vec<KindDepth>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT kind, SUM(CASE WHEN status = 'queued' THEN 1 ELSE 0 END) AS queued, \
                 SUM(CASE WHEN status = 'running' THEN 1 ELSE 0 END) AS running, SUM(CASE WHEN status = 'dead' THEN 1 ELSE 0 END) AS dead \
                 FROM jobs WHERE status IN ('queued', 'running', 'dead') GROUP BY kind ORDER BY kind",
            )
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(KindDepth {
                    kind: row.try_get("kind")?,
                    queued: row.try_get::<Option<i64>, _>("queued")?.unwrap_or(0),
                    running: row.try_get::<Option<i64>, _>("running")?.unwrap_or(0),
                    dead: row.try_get::<Option<i64>, _>("dead")?.unwrap_or(0),
                });
            }
            Ok(out)
        })
    }

    /// Jobs of `status` (running ones with their holders and lease ends; dead ones with their
    /// last error), most recently changed first.
    pub async fn jobs_in(&self, status: JobStatus, limit: i64) -> Result<Vec<JobSummary>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT id, kind, attempts, locked_by, locked_until, last_error, updated_at FROM jobs WHERE status = $1 ORDER BY updated_at DESC, id LIMIT $2",
            )
            .bind(status.as_str())
            .bind(limit)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(JobSummary {
                    id: row.try_get("id")?,
                    kind: row.try_get("kind")?,
                    attempts: row.try_get("attempts")?,
                    locked_by: row.try_get("locked_by")?,
                    locked_until: row.try_get("locked_until")?,
                    last_error: row.try_get("last_error")?,
                    updated_at: row.try_get("updated_at")?,
                });
            }
            Ok(out)
        })
    }

    pub async fn job_counts(&self) -> Result<JobCounts, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status").fetch_all(pool).await?;
            let mut counts = JobCounts::default();
            for row in rows {
                let n: i64 = row.try_get("n")?;
                match JobStatus::parse(&row.try_get::<String, _>("status")?)? {
                    JobStatus::Queued => counts.queued = n,
                    JobStatus::Running => counts.running = n,
                    JobStatus::Done => counts.done = n,
                    JobStatus::Dead => counts.dead = n,
                }
            }
            Ok(counts)
        })
    }
}
