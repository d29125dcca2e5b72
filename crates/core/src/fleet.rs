//! What operators see of the fleet (`passme status`, `/metrics`): the live instances, the job
//! queue per kind, running jobs with their holders and lease ends, dead letters, and the last
//! minute pass. Read from the shared database, so any instance (or the CLI) sees the same.

use passme_store::{InstanceRow, JobStatus, JobSummary, KindDepth, LeaseRow, Store};

use crate::CoreError;

/// How many running and dead-lettered jobs are listed.
const LISTED: i64 = 20;

#[derive(Debug, Clone)]
pub struct FleetStatus {
    pub instances: Vec<InstanceRow>,
    pub depths: Vec<KindDepth>,
    pub running: Vec<JobSummary>,
    pub dead: Vec<JobSummary>,
    /// The minute pass's lease: who runs it now, when the last one finished and how long it took.
    pub minute_pass: Option<LeaseRow>,
}

impl FleetStatus {
    /// The fleet as the database knows it; instances silent since `live_since` are left out.
    pub async fn read(store: &Store, live_since: i64, pass_lease: &str) -> Result<FleetStatus, CoreError> {
        Ok(FleetStatus {
            instances: store.live_instances(live_since).await?,
            depths: store.job_depths().await?,
            running: store.jobs_in(JobStatus::Running, LISTED).await?,
            dead: store.jobs_in(JobStatus::Dead, LISTED).await?,
            minute_pass: store.lease(pass_lease).await?,
        })
    }

    pub fn to_json(&self) -> serde_json::Value {
        let job = |j: &JobSummary| {
            serde_json::json!({ "id": j.id, "kind": j.kind, "attempts": j.attempts, "holder": j.locked_by,
                "lease_until_ms": j.locked_until, "last_error": j.last_error, "updated_at_ms": j.updated_at })
        };
        serde_json::json!({
            "instances": self.instances.iter().map(|i| serde_json::json!({ "id": i.id, "version": i.version, "base_url": i.base_url,
                "started_at_ms": i.started_at, "heartbeat_at_ms": i.heartbeat_at })).collect::<Vec<_>>(),
            "queues": self.depths.iter().map(|d| serde_json::json!({ "kind": d.kind, "queued": d.queued, "running": d.running, "dead": d.dead })).collect::<Vec<_>>(),
            "running": self.running.iter().map(job).collect::<Vec<_>>(),
            "dead": self.dead.iter().map(job).collect::<Vec<_>>(),
            "minute_pass": self.minute_pass.as_ref().map(|p| serde_json::json!({ "holder": p.holder, "held_until_ms": p.held_until,
                "started_at_ms": p.started_at, "finished_at_ms": p.finished_at, "took_ms": p.took_ms, "runs": p.runs })),
        })
    }
}
