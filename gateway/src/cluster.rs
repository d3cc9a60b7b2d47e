//! Several gateway instances on one store: scheduled jobs (SLA scans, transfer timers, polling
//! a partner) run on whichever instance holds the job's lease, so each runs once across the
//! cluster. A holder renews its lease every run; if it dies, another instance takes the job
//! over once the lease runs out.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::store::Store;

/// This instance's claim on scheduled jobs.
#[derive(Clone)]
pub struct Leases {
    store: Arc<dyn Store>,
    /// Names this instance: `<pid>-<random>`.
    pub holder: String,
}

impl Leases {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            holder: format!("{}-{}", std::process::id(), uuid::Uuid::now_v7().simple()),
        }
    }

    /// Whether this instance should run `job` now, whose runs are `every` apart: takes or
    /// renews the lease for three periods (at least 10 s). A store error means "not now".
    pub async fn hold(&self, job: &str, every: Duration) -> bool {
        let ttl = (every * 3).max(Duration::from_secs(10));
        match self
            .store
            .try_lease(job, &self.holder, Utc::now(), ttl)
            .await
        {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(job, error = %e, "could not take the job's lease; skipping this run");
                false
            }
        }
    }
}
