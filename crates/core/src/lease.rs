//! Work that one instance of the fleet does at a time: a named lease in the shared database,
//! renewed while the work runs, so a long run keeps it and a dead instance's lapses one lease
//! later. Unlike a job's own lease, it spans runs: the next minute's pass is a new job, and it
//! must not start while the last one still works.

use std::future::Future;
use std::time::Duration;

use passme_store::{Store, StoreError};

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
    let lease_ms = *lease_ms;
    let now = clock.now_ms();
    if !store.take_lease(name, holder, now, now + lease_ms).await? {
        return Ok(None);
    }
    let renew = move || store.renew_lease(name, holder, clock.now_ms() + lease_ms);
    let Some(result) = renewing(work, lease_ms, name, renew).await else {
        tracing::warn!(lease = name, %holder, "lease lost to another instance: work stopped");
        return Err(CoreError::broken("lease", format!("{name}: lost to another instance")));
    };
    if !store.release_lease(name, holder, clock.now_ms()).await? {
        tracing::warn!(lease = name, %holder, "lease lost before the work ended");
    }
    result.map(Some)
}

/// Awaits `work` while calling `renew` every third of `lease_ms`: the heartbeat of a lease, a
/// job's or a named one. `None` once `renew` answers that the lease is another's; `work` is
/// then dropped, which stops it at its next await. A renewal the database did not answer is
/// logged and tried again at the next beat: until the lease runs out it is still ours.
pub async fn renewing<T, R>(work: impl Future<Output = T>, lease_ms: i64, what: &str, mut renew: impl FnMut() -> R) -> Option<T>
where
    R: Future<Output = Result<bool, StoreError>>,
{
    let every = Duration::from_millis(u64::try_from(lease_ms / 3).unwrap_or(1).max(1));
    tokio::pin!(work);
    loop {
        tokio::select! {
            done = &mut work => return Some(done),
            () = tokio::time::sleep(every) => match renew().await {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => tracing::warn!(lease = what, error = %e, "could not renew a lease"),
            },
        }
    }
}
