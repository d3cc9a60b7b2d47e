//! The store suite on the embedded SQLite store, plus what only a file on disk can show.

mod store_suite;

use std::sync::Arc;

use hotline_gateway::store::{DeliveryQuery, Nonce, SqliteStore, Store};
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

#[tokio::test]
async fn the_log_is_copied_back_into_the_database_beside_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let before = size(&path);
    for i in 0..300 {
        store
            .accept_ticket(new_ticket(&format!("W-{i}"), &[P]))
            .await
            .unwrap();
    }
    // The writer itself never checkpoints; the database file grows only when the log's pages
    // are copied back by the checkpointer, within a few of its rounds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while size(&path) < before + 64 * 1024 {
        assert!(
            std::time::Instant::now() < deadline,
            "the database file stayed at {} bytes (log {} bytes)",
            size(&path),
            size(&dir.path().join("gw.db-wal"))
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_starts_over_under_steady_writes_instead_of_growing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("gw.db")).await.unwrap());
    let wal = dir.path().join("gw.db-wal");
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for t in 0..32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            // Steady writes for a while: long enough for several checkpoints.
            while started.elapsed() < std::time::Duration::from_secs(4) {
                store
                    .accept_ticket(new_ticket(&format!("S-{t}-{i}"), &[P]))
                    .await
                    .unwrap();
                i += 1;
            }
            i
        }));
    }
    let mut written = 0;
    for t in tasks {
        written += t.await.unwrap();
    }
    let log = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    // 16 MB of frames before the writer is asked to let the log start over, plus what arrives
    // until it does (35 MB seen on the project's machine); a log that never starts over grows
    // with every ticket (488 MB in these four seconds there).
    assert!(
        log < 100 * 1024 * 1024,
        "the log grew to {} MB for {written} tickets",
        log / (1024 * 1024)
    );
}

/// A batch runs its scripts without savepoints; when one fails (a repeated key) the batch runs
/// again with one savepoint per script. Nonces are answered early, in the first pass: each is
/// answered once, and still committed by the second.
#[tokio::test]
async fn a_failing_script_undoes_only_itself_and_early_answers_still_commit() {
    let (store, _dir) = fresh().await;
    store.accept_ticket(new_ticket("E-1", &[P])).await.unwrap();
    let now = chrono::Utc::now();
    let keep = std::time::Duration::from_secs(600);
    // Spawned before the writer next runs, so they share its batches.
    let mut nonces = Vec::new();
    let mut repeats = Vec::new();
    for i in 0..20 {
        let s = Arc::clone(&store);
        nonces.push(tokio::spawn(async move {
            s.remember_nonce(&Nonce::new("12345", format!("n-{i}"), now, keep))
                .await
        }));
        let s = Arc::clone(&store);
        repeats.push(tokio::spawn(async move {
            s.accept_ticket(new_ticket("E-1", &[P])).await
        }));
    }
    for n in nonces {
        assert!(n.await.unwrap().unwrap(), "a new nonce is taken");
    }
    for r in repeats {
        assert!(r.await.unwrap().unwrap().is_duplicate());
    }
    for i in 0..20 {
        let again = store
            .remember_nonce(&Nonce::new("12345", format!("n-{i}"), now, keep))
            .await
            .unwrap();
        assert!(!again, "nonce n-{i} was committed");
    }
    let tickets = store
        .tickets(&hotline_gateway::store::TicketQuery::default())
        .await
        .unwrap();
    assert_eq!(tickets.len(), 1, "the repeats wrote nothing");
}

/// A database in `dir` as the releases before migration `version` left it: its file, options
/// and an open connection to it (foreign keys off, so that a test's rows need not be complete).
async fn database_before(
    dir: &std::path::Path,
    version: &str,
) -> (
    std::path::PathBuf,
    sqlx::sqlite::SqliteConnectOptions,
    sqlx::SqliteConnection,
) {
    use sqlx::Connection;
    let older = dir.join("migrations");
    std::fs::create_dir(&older).unwrap();
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    for entry in std::fs::read_dir(&shipped).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.as_str() < version {
            std::fs::copy(&path, older.join(&name)).unwrap();
        }
    }
    let db = dir.join("gw.db");
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&db)
        .create_if_missing(true)
        .foreign_keys(false);
    let mut conn = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
    sqlx::migrate::Migrator::new(older.as_path())
        .await
        .unwrap()
        .run(&mut conn)
        .await
        .unwrap();
    (db, opts, conn)
}

#[tokio::test]
async fn rows_written_before_the_keyed_tables_moved_into_their_keys_are_kept() {
    use sqlx::{Connection, Row};
    // A database as the release before migration 13 left it, with a row in each table that
    // moves (and the rows they refer to: the gateway always kept its foreign keys).
    let dir = tempfile::tempdir().unwrap();
    let (db, opts, mut conn) = database_before(dir.path(), "0013").await;
    sqlx::raw_sql(
        "INSERT INTO tickets (id, origin, status, kind, urgency, draft, created_at, updated_at)
             VALUES ('t1', '12345', 'open', 'complaint', 'normal', '{}', 1, 1);
         INSERT INTO events (id, ticket_id, kind, source, at, body)
             VALUES ('e1', 't1', 'dispatch', '12345', 1, '{}');
         INSERT INTO deliveries (id, ticket_id, event_id, partner, message_id, kind, status,
             due_at, created_at, updated_at)
             VALUES ('d1', 't1', 'e1', '12315', 'm1', 'dispatch', 'acknowledged', 1, 1, 1);
         INSERT INTO inbound_keys VALUES ('12345', 'MSG-1', 't1', 'e1');
         INSERT INTO ticket_numbers VALUES ('12345', 'SD-1', 't1');
         INSERT INTO attempts VALUES ('d1', 1, 10, 20, 'acknowledged', 200, '0', NULL, 'P-1');
         INSERT INTO seen_nonces VALUES ('12345', 'n1', 99);",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();

    drop(SqliteStore::open(&db).await.unwrap());
    let mut conn = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
    let rows = [
        (
            "inbound_keys",
            "SELECT source || key || ticket_id || event_id FROM inbound_keys",
        ),
        (
            "ticket_numbers",
            "SELECT system || number || ticket_id FROM ticket_numbers",
        ),
        (
            "attempts",
            "SELECT delivery_id || number || outcome || partner_ref FROM attempts",
        ),
        (
            "seen_nonces",
            "SELECT partner || nonce || expires_at FROM seen_nonces",
        ),
    ];
    let expected = [
        "12345MSG-1t1e1",
        "12345SD-1t1",
        "d11acknowledgedP-1",
        "12345n199",
    ];
    for ((table, query), want) in rows.into_iter().zip(expected) {
        let got: Vec<String> = sqlx::query_scalar(query)
            .fetch_all(&mut conn)
            .await
            .unwrap();
        assert_eq!(got, [want], "{table}");
        let sql: String = sqlx::query("SELECT sql FROM sqlite_master WHERE name = ?")
            .bind(table)
            .fetch_one(&mut conn)
            .await
            .unwrap()
            .get(0);
        assert!(sql.contains("WITHOUT ROWID"), "{table}: {sql}");
    }
    // The indexes dropped with the old tables are back (migration 16 later keeps a ticket's
    // numbers in the key, which needs no index by ticket).
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name IN \
         ('ticket_numbers', 'seen_nonces') AND sql IS NOT NULL ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(indexes, ["seen_nonces_expiry", "ticket_numbers_number"]);
}

#[tokio::test]
async fn clocks_and_deliveries_rebuilt_by_migration_15_keep_every_row_order_and_key() {
    use sqlx::{Connection, Row};
    // Rows as the releases before migration 15 wrote them: a ticket, three deliveries (one
    // attempted) and a clock.
    let dir = tempfile::tempdir().unwrap();
    let (db, opts, mut conn) = database_before(dir.path(), "0015").await;
    // Ids as the store writes them (UUIDs), made readable: `id(1)` is …-000000000001.
    let id = |n: u32| format!("0190a1b2-0000-7000-8000-{n:012}");
    let (t, e) = (id(1), id(2));
    let rows = [
        format!(
            "INSERT INTO tickets (id, origin, status, kind, urgency, draft, created_at, \
             updated_at) VALUES ('{t}', '12345', 'dispatched', 'complaint', 'normal', '{{}}', 1, 1)"
        ),
        format!(
            "INSERT INTO events (id, ticket_id, kind, source, at, body) \
             VALUES ('{e}', '{t}', 'dispatch', '12345', 1, '{{}}')"
        ),
        format!(
            "INSERT INTO deliveries (id, ticket_id, event_id, partner, message_id, kind, status, \
             due_at, created_at, updated_at) VALUES \
             ('{}', '{t}', '{e}', '12315', '{}', 'dispatch', 'acknowledged', 1, 1, 1), \
             ('{}', '{t}', '{e}', '12315', '{}', 'dispatch', 'pending', 1, 2, 2), \
             ('{}', '{t}', '{e}', '12333', '{}', 'dispatch', 'pending', 1, 3, 3)",
            id(11),
            id(21),
            id(12),
            id(22),
            id(13),
            id(23)
        ),
        format!(
            "INSERT INTO attempts (delivery_id, number, started_at, duration_ms, outcome, \
             partner_ref) VALUES ('{}', 1, 1, 5, 'acknowledged', '12315-1')",
            id(11)
        ),
        format!(
            "INSERT INTO sla_clocks (id, ticket_id, kind, party, urgent, started_at, due_at, \
             urge_at, provisional, state) \
             VALUES ('{}', '{t}', 'receipt', '12315', 0, 1, 9, 8, 0, 'running')",
            id(31)
        ),
    ];
    for sql in &rows {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();

    let store = SqliteStore::open(&db).await.unwrap();
    let deliveries = store
        .deliveries(&DeliveryQuery {
            limit: Some(10),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(deliveries.len(), 3);
    let ticket: uuid::Uuid = t.parse().unwrap();
    assert_eq!(store.attempts_for_ticket(ticket).await.unwrap().len(), 1);
    let clocks = store.clocks(ticket).await.unwrap();
    assert_eq!(clocks.len(), 1);
    drop(store);

    let mut conn = sqlx::SqliteConnection::connect_with(&opts.foreign_keys(true))
        .await
        .unwrap();
    let schema: String =
        sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE name = 'deliveries'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(!schema.contains("AUTOINCREMENT"), "{schema}");
    let schema: String =
        sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE name = 'sla_clocks'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(schema.contains("WITHOUT ROWID"), "{schema}");
    let seqs: Vec<(i64, String)> = sqlx::query("SELECT seq, id FROM deliveries ORDER BY seq")
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get("seq"), r.get("id")))
        .collect();
    assert_eq!(
        seqs,
        [(1, id(11)), (2, id(12)), (3, id(13))],
        "the outbox's order is kept"
    );
    let clock: (String, i64) = sqlx::query("SELECT state, due_at FROM sla_clocks WHERE id = ?")
        .bind(id(31))
        .fetch_one(&mut conn)
        .await
        .map(|r| (r.get("state"), r.get("due_at")))
        .unwrap();
    assert_eq!(clock, ("running".into(), 9));
    let broken: Vec<sqlx::sqlite::SqliteRow> = sqlx::query("PRAGMA foreign_key_check")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert!(broken.is_empty(), "no foreign key broken");
    // A new delivery comes after the old ones; attempts still need their delivery.
    sqlx::query(
        "INSERT INTO deliveries (id, ticket_id, event_id, partner, message_id, kind, status, \
         due_at, created_at, updated_at) \
         VALUES (?, ?, ?, '12315', ?, 'dispatch', 'pending', 1, 4, 4)",
    )
    .bind(id(14))
    .bind(&t)
    .bind(&e)
    .bind(id(24))
    .execute(&mut conn)
    .await
    .unwrap();
    let seq: i64 = sqlx::query_scalar("SELECT seq FROM deliveries WHERE id = ?")
        .bind(id(14))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(seq, 4);
    let orphan = sqlx::query(
        "INSERT INTO attempts (delivery_id, number, started_at, duration_ms, outcome) \
         VALUES ('none', 1, 1, 1, 'failed')",
    )
    .execute(&mut conn)
    .await;
    assert!(orphan.is_err(), "attempts still refer to deliveries");
}

#[tokio::test]
async fn numbers_and_clocks_written_before_migration_16_are_found_as_before() {
    use sqlx::Connection;
    // Rows as the releases before migration 16 wrote them: two tickets with numbers, and clocks
    // in each state the SLA scan tells apart.
    let dir = tempfile::tempdir().unwrap();
    let (db, opts, mut conn) = database_before(dir.path(), "0016").await;
    let id = |n: u32| format!("0190a1b2-0000-7000-8000-{n:012}");
    let (t1, t2) = (id(1), id(2));
    let clock = |n: u32, due: i64, urge: i64, urged: &str, overdue: &str, state: &str| {
        format!(
            "INSERT INTO sla_clocks (id, ticket_id, kind, party, urgent, started_at, due_at, \
             urge_at, provisional, state, urged_at, overdue_at) VALUES \
             ('{}', '{t1}', 'reply', '12315', 0, 1, {due}, {urge}, 0, '{state}', {urged}, {overdue})",
            id(n)
        )
    };
    let rows = [
        format!(
            "INSERT INTO tickets (id, origin, status, kind, urgency, draft, created_at, \
             updated_at) VALUES ('{t1}', '12345', 'dispatched', 'complaint', 'normal', '{{}}', 1, 1), \
             ('{t2}', '12345', 'dispatched', 'complaint', 'normal', '{{}}', 2, 2)"
        ),
        format!(
            "INSERT INTO ticket_numbers (system, number, ticket_id) VALUES \
             ('12348', 'SD-1', '{t1}'), ('12345', 'SD-1', '{t2}'), ('12315', 'P-1', '{t1}')"
        ),
        // Waking at its urge time (20), at its deadline once urged (30), never once overdue,
        // never once stopped; the last one's deadline (40) comes before its urge time (50).
        clock(31, 100, 20, "NULL", "NULL", "running"),
        clock(32, 30, 10, "10", "NULL", "running"),
        clock(33, 5, 4, "4", "6", "running"),
        clock(34, 5, 4, "NULL", "NULL", "met"),
        clock(35, 40, 50, "NULL", "NULL", "running"),
    ];
    for sql in &rows {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();

    let store = SqliteStore::open(&db).await.unwrap();
    let ticket = |s: &str| s.parse::<uuid::Uuid>().unwrap();
    assert_eq!(
        store.resolve_number("12348", "SD-1").await.unwrap(),
        Some(ticket(&t1))
    );
    assert_eq!(
        store.resolve_number("12345", "SD-1").await.unwrap(),
        Some(ticket(&t2))
    );
    assert_eq!(
        store.resolve_number("12315", "P-1").await.unwrap(),
        Some(ticket(&t1))
    );
    assert_eq!(store.resolve_number("12315", "SD-1").await.unwrap(), None);
    let at = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).unwrap();
    let waking = |now: i64| {
        let store = &store;
        async move {
            store
                .clocks_waking(at(now), 10)
                .await
                .unwrap()
                .into_iter()
                .map(|c| c.id.to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(waking(19).await, Vec::<String>::new());
    assert_eq!(waking(20).await, [id(31)]);
    assert_eq!(waking(30).await, [id(31), id(32)]);
    assert_eq!(
        waking(1000).await,
        [id(31), id(32), id(35)],
        "earliest wake first"
    );
    drop(store);

    // The same system's number stays with one ticket.
    let mut conn = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
    let again = sqlx::query(&format!(
        "INSERT INTO ticket_numbers (system, number, ticket_id) VALUES ('12348', 'SD-1', '{t2}')"
    ))
    .execute(&mut conn)
    .await;
    assert!(again.is_err(), "a system's number belongs to one ticket");
}
