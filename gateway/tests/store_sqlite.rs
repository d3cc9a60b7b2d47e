//! The store suite on the embedded SQLite store, plus what only a file on disk can show.

mod store_suite;

use std::sync::Arc;

use hotline_gateway::store::{DeliveryQuery, SqliteStore, Store};
use store_suite::*;

async fn fresh() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("gw.db")).await.unwrap();
    (Arc::new(store), dir)
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let (store, _dir) = fresh().await;
            store_suite::$name(store).await;
        }
    )*};
}

suite!(
    accept_is_idempotent,
    concurrent_accepts_all_commit,
    one_ticket_goes_in_order_many_go_in_parallel,
    expired_leases_come_back_and_stale_holders_lose,
    retries_wait_for_their_time_and_dead_letters_wait_for_ops,
    late_acks_complete_deliveries_and_win_races,
    events_on_unknown_tickets_are_refused_and_statuses_move,
    transfers_change_only_from_the_version_they_were_read_at,
    a_partner_offering_the_same_transfer_twice_gets_the_first,
    transfers_with_work_to_do_are_found,
    released_retries_fall_due_at_once,
    deliveries_are_found_by_any_number_type_and_time,
    the_audit_log_is_a_hash_chain,
    pauses_are_kept_until_resumed,
    clocks_alerts_refusals_and_cursors_round_trip,
    a_job_lease_has_one_holder_until_it_runs_out,
    a_claim_is_found_by_its_token_while_it_holds,
    a_nonce_is_taken_once_until_it_expires,
    ended_tickets_lose_personal_data_once_retention_passes,
);

#[tokio::test]
async fn audit_entries_cannot_be_changed_in_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.db");
    let store = SqliteStore::open(&path).await.unwrap();
    store
        .record_audit(hotline_gateway::store::NewAudit {
            actor: "wang".into(),
            role: "admin".into(),
            action: "ticket.unmask".into(),
            target: None,
            reason: Some("回访 follow-up".into()),
            detail: serde_json::json!({}),
        })
        .await
        .unwrap();
    drop(store);
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}",
        path.display()
    ))
    .await
    .unwrap();
    for sql in ["UPDATE audit_log SET actor = 'li'", "DELETE FROM audit_log"] {
        let err = sqlx::query(sql).execute(&mut conn).await.unwrap_err();
        assert!(err.to_string().contains("audit entries cannot be"), "{err}");
    }
}

#[tokio::test]
async fn what_was_committed_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.db");
    {
        let store = SqliteStore::open(&path).await.unwrap();
        for i in 0..20 {
            store
                .accept_ticket(new_ticket(&format!("D-{i}"), &[P]))
                .await
                .unwrap();
        }
    }
    let store = SqliteStore::open(&path).await.unwrap();
    let q = DeliveryQuery {
        limit: Some(100),
        ..Default::default()
    };
    assert_eq!(store.deliveries(&q).await.unwrap().len(), 20);
    assert!(
        store
            .accept_ticket(new_ticket("D-3", &[P]))
            .await
            .unwrap()
            .is_duplicate()
    );
}
