//! The store suite on PostgreSQL (the machine's server; `DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`). Each check gets a schema of its own, dropped
//! afterwards. Fails, never skips, when the server is down.

mod store_suite;

use std::sync::Arc;

use hotline_gateway::store::{PgStore, Store};
use sqlx::postgres::PgConnectOptions;
use store_suite::*;

pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh, empty store in a new schema; the guard drops the schema.
pub struct Fresh {
    pub store: Arc<dyn Store>,
    schema: String,
}

impl Drop for Fresh {
    fn drop(&mut self) {
        let schema = self.schema.clone();
        // A blocking connection on its own thread: Drop cannot await.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                use sqlx::Connection;
                if let Ok(mut c) = sqlx::PgConnection::connect(&database_url()).await {
                    let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                        .execute(&mut c)
                        .await;
                }
            });
        })
        .join();
    }
}

pub async fn fresh() -> Fresh {
    use sqlx::Connection;
    let url = database_url();
    let mut admin = sqlx::PgConnection::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url} is required for this test: {e}"));
    let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut admin)
        .await
        .expect("create schema");
    let options: PgConnectOptions = url.parse().expect("DATABASE_URL parses");
    let store = PgStore::open_with(options.options([("search_path", schema.as_str())]))
        .await
        .expect("PgStore opens");
    Fresh {
        store: Arc::new(store),
        schema,
    }
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let fresh = fresh().await;
            store_suite::$name(Arc::clone(&fresh.store)).await;
        }
    )*};
}

store_suite::every_check!(suite);

#[tokio::test]
async fn audit_entries_cannot_be_changed_in_the_database() {
    let fresh = fresh().await;
    fresh
        .store
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
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&database_url()).await.unwrap();
    for sql in ["UPDATE audit_log SET actor = 'li'", "DELETE FROM audit_log"] {
        let r = sqlx::raw_sql(&format!("SET search_path = {}; {sql}", fresh.schema))
            .execute(&mut conn)
            .await;
        let e = r.expect_err(sql);
        assert!(e.to_string().contains("audit entries cannot be"), "{e}");
    }
}

/// Two gateway instances on one database claim from the same outbox at once: every delivery is
/// claimed exactly once (`FOR UPDATE SKIP LOCKED`), and concurrent audit entries stay one chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_never_claim_the_same_delivery() {
    let fresh = fresh().await;
    let options: PgConnectOptions = database_url().parse().unwrap();
    let second: Arc<dyn Store> = Arc::new(
        PgStore::open_with(options.options([("search_path", fresh.schema.as_str())]))
            .await
            .unwrap(),
    );
    for i in 0..300 {
        fresh
            .store
            .accept_ticket(new_ticket(&format!("M-{i}"), &[P]))
            .await
            .unwrap();
    }
    let mut workers = Vec::new();
    for store in [
        Arc::clone(&fresh.store),
        Arc::clone(&second),
        Arc::clone(&fresh.store),
        Arc::clone(&second),
    ] {
        workers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store
                    .claim(P, chrono::Utc::now(), std::time::Duration::from_secs(60), 7)
                    .await
                    .unwrap();
                if batch.is_empty() {
                    break;
                }
                mine.extend(batch.into_iter().map(|c| c.delivery.id));
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let unique: std::collections::HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 300, "every delivery claimed");
    assert_eq!(unique.len(), 300, "none claimed twice");

    // More appends at once than the store's retries could sort out by luck.
    let mut writes = Vec::new();
    for i in 0..100 {
        let store = if i % 2 == 0 {
            Arc::clone(&fresh.store)
        } else {
            Arc::clone(&second)
        };
        writes.push(tokio::spawn(async move {
            store
                .record_audit(hotline_gateway::store::NewAudit {
                    actor: format!("op{i}"),
                    role: "operator".into(),
                    action: "delivery.retry".into(),
                    target: None,
                    reason: None,
                    detail: serde_json::json!({ "i": i }),
                })
                .await
                .unwrap()
        }));
    }
    for w in writes {
        w.await.unwrap();
    }
    let log = fresh
        .store
        .audit_log(&hotline_gateway::store::AuditQuery::default())
        .await
        .unwrap();
    assert_eq!(log.len(), 100);
    for pair in log.windows(2) {
        assert_eq!(pair[0].prev_hash, pair[1].hash, "one unbroken chain");
        assert_eq!(pair[0].seq, pair[1].seq + 1);
    }
}
