//! The store sets SQLite's process-wide options before the process's first connection (this
//! file's one test is its process's first SQLite user).

use hotline_gateway::store::SqliteStore;

#[tokio::test]
async fn sqlite_is_set_up_before_its_first_connection() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("gw.db")).await.unwrap();
    // SAFETY: a plain read of SQLite's statistics.
    let counted = unsafe { rusqlite::ffi::sqlite3_memory_used() };
    // With the statistics on (SQLite's default) an open store's connections count their memory.
    assert_eq!(counted, 0, "SQLite's memory statistics are off");
    drop(store);
}
