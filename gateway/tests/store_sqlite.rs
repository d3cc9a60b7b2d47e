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

store_suite::every_check!(suite);

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

#[tokio::test]
async fn legal_aid_applicants_are_sealed_in_the_file() {
    use hotline_gateway::seal::{CipherKind, EncryptionConfig, KeyConfig, Sealer};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.db");
    let config = EncryptionConfig {
        active: "k1".into(),
        keys: [(
            "k1".to_owned(),
            KeyConfig {
                cipher: CipherKind::Aes256Gcm,
                key: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 32]),
            },
        )]
        .into_iter()
        .collect(),
    };
    let seal = hotline_gateway::store::Seal::new(Sealer::from_config(&config).unwrap());
    let store = SqliteStore::open(&path).await.unwrap().sealed(seal);
    let t = new_ticket("LA-SEAL", &[]);
    let id = t.ticket.id;
    store.accept_ticket(t).await.unwrap();
    store.record_event(legal_aid(id)).await.unwrap();
    let back = store.events(id).await.unwrap();
    let example = hotline_model::legal_aid::Application::example();
    assert!(
        back.iter().any(|e| matches!(&e.body,
            hotline_model::EventBody::LegalAid { application } if **application == example)),
        "read back opened"
    );
    drop(store);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let a = &example.applicant;
    for secret in [&a.id_number, &a.phone, &a.name, &a.address] {
        let found = std::fs::read_dir(dir.path()).unwrap().any(|e| {
            let bytes = std::fs::read(e.unwrap().path()).unwrap();
            bytes.windows(secret.len()).any(|w| w == secret.as_bytes())
        });
        assert!(!found, "{secret} is readable in the database files");
    }
}
