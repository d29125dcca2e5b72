//! Work that one instance of the fleet does at a time: a named lease in the shared database,
//! renewed while the work runs, so a long run keeps it and a dead instance's lapses one lease
//! later. Unlike a job's own lease, it spans runs: the next minute's pass is a new job, and it
//! must not start while the last one still works.

use std::future::Future;
use std::time::Duration;

use passme_store::Store;

use crate::CoreError;
use crate::clock::SharedClock;

/// Who holds a lease and for how long at a time (renewed every third of it). A holder that dies
/// lets it lapse one `lease_ms` after its last renewal.
#[derive(Debug, Clone)]
pub struct Holder {
    /// Names the holder in the lease row: the worker running the job, so an operator sees which
    /// instance holds it.
    pub id: String,
    pub lease_ms: i64,
}

/// Runs `work` while holding the lease `name`; `None`, without running it, while another instance
/// holds it. Should the lease be lost all the same (this instance could not reach the database
/// for a whole lease and another took over), `work` is stopped at its next await and the run
/// fails: two holders never write at once for long.
pub async fn exclusively<T>(
    store: &Store,
    clock: &SharedClock,
    name: &str,
    holder: &Holder,
    work: impl Future<Output = Result<T, CoreError>>,
) -> Result<Option<T>, CoreError> {
    let Holder { id: holder, lease_ms } = holder;
    let lease_ms = (*lease_ms).max(3);
    let now = clock.now_ms();
    if !store.take_lease(name, holder, now, now + lease_ms).await? {
        return Ok(None);
    }
    tokio::pin!(work);
    let every = Duration::from_millis(u64::try_from(lease_ms / 3).unwrap_or(1));
    let result = loop {
        tokio::select! {
            done = &mut work => break done,
            () = tokio::time::sleep(every) => {
                match store.renew_lease(name, holder, clock.now_ms() + lease_ms).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(lease = name, %holder, "lease lost to another instance: work stopped");
                        return Err(CoreError::broken("lease", format!("{name}: lost to another instance")));
                    }
                    Err(e) => tracing::warn!(lease = name, error = %e, "could not renew a lease"),
                }
            }
        }
    };
    if !store.release_lease(name, holder, clock.now_ms()).await? {
        tracing::warn!(lease = name, %holder, "lease lost before the work ended");
    }
    result.map(Some)
}
