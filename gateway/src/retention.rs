//! Retention: the caller's personal data of tickets that ended (closed, withdrawn, merged) more
//! than `privacy.retention` ago is blanked (with any legal-aid applicant's), and so is the
//! caller's data in the offers of transfers requested that long ago and ended, on one instance at a time (a lease), a batch per
//! run, each purge written to the audit log.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cluster::Leases;
use crate::store::{NewAudit, Store, StoreError};

/// Tickets purged per store transaction.
const BATCH: u32 = 500;

pub struct Retention {
    pub store: Arc<dyn Store>,
    pub keep: Duration,
    pub every: Duration,
}

impl Retention {
    /// One run: purges ended tickets, then ended transfers' offers, in batches until nothing
    /// is left; returns how many of each.
    pub async fn run(&self) -> Result<(usize, usize), StoreError> {
        let cutoff = Utc::now()
            .checked_sub_signed(crate::time::span(self.keep))
            .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC);
        let tickets = self
            .batches("tickets", || self.store.purge_personal_data(cutoff, BATCH))
            .await?;
        let transfers = self
            .batches("transfers", || self.store.purge_transfers(cutoff, BATCH))
            .await?;
        Ok((tickets, transfers))
    }

    /// Purges batch after batch of `what`, each batch in the audit log.
    async fn batches<F, Fut>(&self, what: &str, mut purge: F) -> Result<usize, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<uuid::Uuid>, StoreError>>,
    {
        let mut total = 0;
        loop {
            let ids = purge().await?;
            if ids.is_empty() {
                return Ok(total);
            }
            total += ids.len();
            self.store
                .record_audit(NewAudit {
                    actor: "system:retention".into(),
                    role: "system".into(),
                    action: "personal_data.purge".into(),
                    target: None,
                    reason: Some(format!(
                        "保存期限届满 retention of {} passed",
                        humantime::format_duration(self.keep)
                    )),
                    detail: serde_json::json!({ "count": ids.len(), what: ids }),
                })
                .await?;
            tracing::info!(count = ids.len(), what, "personal data purged");
            metrics::counter!("hotline_personal_data_purged_total", "what" => what.to_owned())
                .increment(ids.len() as u64);
            if ids.len() < BATCH as usize {
                return Ok(total);
            }
        }
    }

    pub fn spawn(self, tracker: &TaskTracker, shutdown: CancellationToken, leases: Leases) {
        tracker.spawn(async move {
            loop {
                if leases.hold("retention", self.every).await
                    && let Err(e) = self.run().await
                {
                    tracing::warn!(error = %e, "retention run failed; trying again later");
                }
                tokio::select! {
                    () = tokio::time::sleep(self.every) => {},
                    () = shutdown.cancelled() => return,
                }
            }
        });
    }
}
