//! The task that runs transfer timers out, files pending fallback tickets and tells the home CTI.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Transfers;

pub struct Timers {
    pub transfers: Arc<Transfers>,
    pub every: Duration,
}

impl Timers {
    /// Runs every `every` while this instance holds the `transfer-timers` lease.
    pub fn spawn(
        self,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
        leases: crate::cluster::Leases,
    ) {
        tracker.spawn(async move {
            let mut tick = tokio::time::interval(self.every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = tick.tick() => {}
                }
                if !leases.hold("transfer-timers", self.every).await {
                    continue;
                }
                if let Err(e) = self.transfers.tick(Utc::now()).await {
                    tracing::warn!(error = %e, "transfer timers: store failed; trying again");
                }
            }
        });
    }
}
