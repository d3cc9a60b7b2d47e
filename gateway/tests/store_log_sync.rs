//! The SQLite store answers a write only after the log holding it was synced to disk (the
//! writer commits without syncing; a thread beside it syncs). This file's process has the
//! gateway's metrics recorder, so the syncs can be counted.

#[path = "common/tickets.rs"]
mod tickets;

use hotline_gateway::store::{SqliteStore, Store};

/// Syncs of the SQLite log ended so far, from the metrics the gateway serves on `/metrics`.
fn syncs(metrics: &metrics_exporter_prometheus::PrometheusHandle) -> u64 {
    metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix("hotline_store_sync_seconds_count "))
        .map_or(0, |n| n.trim().parse().expect("a count"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answered_write_waited_for_a_sync_of_the_log() {
    let metrics = hotline_gateway::telemetry::prometheus();
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("gw.db")).await.unwrap();
    for i in 0..20 {
        let before = syncs(&metrics);
        let accepted = store
            .accept_ticket(tickets::new_ticket(&format!("SYNC-{i}"), &["p1"]))
            .await
            .unwrap();
        assert!(matches!(
            accepted,
            hotline_gateway::store::Accepted::Created { .. }
        ));
        // A sync ended between the write's submission and its answer.
        assert!(
            syncs(&metrics) > before,
            "write {i} was answered before any sync of the log began and ended after it"
        );
    }
    // Many writers at once share syncs, and every one is answered.
    let before = syncs(&metrics);
    let store = std::sync::Arc::new(store);
    let writes = (0..200).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .accept_ticket(tickets::new_ticket(&format!("MANY-{i}"), &["p1"]))
                .await
        })
    });
    for w in futures::future::join_all(writes).await {
        w.unwrap().unwrap();
    }
    let shared = syncs(&metrics) - before;
    assert!(
        (1..200).contains(&shared),
        "200 concurrent writes took {shared} syncs"
    );
}
