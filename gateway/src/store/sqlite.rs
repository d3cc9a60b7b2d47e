//! The embedded default: SQLite in WAL mode, every commit synced to disk before it is answered.
//!
//! All writes go through one writer task that owns the only write connection. It takes every
//! write waiting in its queue and runs them in one transaction, committed together (group
//! commit), and no `SQLITE_BUSY` between writers. The log is synced beside the writer
//! ([`LogSync`]): one fsync for every batch committed meanwhile, while the writer goes on with
//! the next. A caller's future resolves only after its batch's commit and sync, so whatever it
//! then acknowledges is on disk (the one exception, a replay nonce, says why). Reads use a
//! separate pool of read-only connections, which may see a batch up to one sync before its
//! writers are answered.
//!
//! sqlx hands every SQLite statement to the connection's own thread and back, so the writes on
//! the hot path (accepting a ticket, claiming deliveries, recording an attempt, a nonce) are
//! [`Script`]s: all their statements in one trip, undone together when one fails. Other writes
//! are code run in a savepoint of their own.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hotline_model::{Event, EventKind, Ticket, TicketStatus};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Row, SqlitePool};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::log_sync::LogSync;
use super::rows::*;
use super::script::{RawRow, Script, Value};
use super::*;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Writes committed together at most.
const MAX_BATCH: usize = 512;

/// How many rows the statement before it changed, as a script's last row (`changed`): what
/// `RETURNING` would tell, without the temporary table SQLite fills for `RETURNING`.
const CHANGED: &str = "SELECT changes() AS changed";

/// The SLA scan's query (`Store::clocks_waking`): the time, then the limit.
fn clocks_waking_sql() -> String {
    format!(
        "SELECT {CLOCK_COLUMNS} FROM sla_clocks \
         WHERE state = 'running' AND overdue_at IS NULL AND {WAKE} <= ? ORDER BY {WAKE} LIMIT ?"
    )
}

/// A running clock's next wake, in the words of the index `sla_clocks_wake` (migration 16), which
/// a query uses only when it says the same.
const WAKE: &str = "(CASE WHEN urged_at IS NULL THEN min(urge_at, due_at) ELSE due_at END)";

/// Whether the statement before [`CHANGED`] changed one row.
fn changed_one<R: Fields>(rows: Vec<R>) -> Result<bool> {
    match rows.last() {
        Some(row) => Ok(row.int("changed")? == 1),
        None => Err(StoreError::Corrupt("no count of changed rows".into())),
    }
}

/// A delivery still to be sent or answered (`status` the column as the query names it), in the
/// words of the partial index `deliveries_due` (migration 14), so that the index serves the
/// query: comparisons, not an `IN` list, which SQLite evaluates through a temporary table.
fn open_status(status: &str) -> String {
    format!(
        "({status} = 'pending' OR {status} = 'retrying' OR {status} = 'sending' \
         OR {status} = 'awaiting_ack')"
    )
}

/// Forgets the nonces expired by `n`'s time and inserts `n`: when it is still kept, a plain
/// insert fails (and so undoes the script); `or_ignore` leaves it instead.
fn push_nonce(script: &mut Script, n: &Nonce, or_ignore: bool) {
    let insert = if or_ignore {
        "INSERT OR IGNORE INTO seen_nonces (partner, nonce, expires_at) VALUES (?, ?, ?)"
    } else {
        "INSERT INTO seen_nonces (partner, nonce, expires_at) VALUES (?, ?, ?)"
    };
    script
        .push("DELETE FROM seen_nonces WHERE expires_at < ?")
        .bind(ms(n.now))
        .push(insert)
        .bind(n.partner.clone())
        .bind(n.value.clone())
        .bind(ms(n.until()));
}

/// Takes a nonce unless it is still remembered; the script's last row says whether it did
/// ([`changed_one`]).
fn push_take_nonce(script: &mut Script, n: &Nonce) {
    push_nonce(script, n, true);
    script.push(CHANGED);
}

/// [`push_take_nonce`] in a write job's own code: whether the nonce was taken.
async fn take_nonce(conn: &mut SqliteConnection, n: &Nonce) -> Result<bool> {
    let mut script = Script::default();
    push_take_nonce(&mut script, n);
    changed_one(script.run(conn).await?)
}

/// SQLite's process-wide settings, made once before its first connection (later they cannot
/// change; a process that used SQLite before keeps the defaults, so `main` calls this first):
/// no memory statistics, so that each of SQLite's allocations and frees does not take a global
/// mutex to count itself (a relayed ticket makes about 250 of them); and room for more small
/// allocations in each connection's own lookaside slots (statements and cursors), instead of
/// `malloc`. Measured with the store bench under callgrind: about 4 % fewer instructions per
/// relayed ticket together.
pub fn configure_sqlite() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use rusqlite::ffi;
        // SAFETY: called before this process opens any SQLite connection (the store opens
        // them all, after this); on an initialised library SQLite refuses with SQLITE_MISUSE
        // and changes nothing.
        let results = unsafe {
            [
                ffi::sqlite3_config(ffi::SQLITE_CONFIG_MEMSTATUS, 0 as std::ffi::c_int),
                ffi::sqlite3_config(
                    ffi::SQLITE_CONFIG_LOOKASIDE,
                    LOOKASIDE_SLOT as std::ffi::c_int,
                    LOOKASIDE_SLOTS as std::ffi::c_int,
                ),
            ]
        };
        if results.iter().any(|&r| r != ffi::SQLITE_OK) {
            tracing::debug!(?results, "SQLite was in use already: its defaults stay");
        }
    });
}

/// Bytes per lookaside slot and slots per connection (SQLite's defaults: 1,200 and 40); more
/// than 200 slots took no more allocations off `malloc` in the store bench.
const LOOKASIDE_SLOT: usize = 1200;
const LOOKASIDE_SLOTS: usize = 200;

/// A caller's tickets since a time, oldest first: bound to the caller's hash and the time (ms);
/// rows tagged, to be told apart among a script's.
const CALLER_TICKETS: &str = "SELECT 'caller' AS part, id FROM tickets \
     WHERE caller_hash = ? AND created_at >= ? ORDER BY created_at, id";

pub struct SqliteStore {
    writer: mpsc::Sender<Work>,
    read: SqlitePool,
    seal: Seal,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Self> {
        configure_sqlite();
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Database(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("cache_size", "-16000")
            // Savepoints' statement journals in memory, not in temporary files.
            .pragma("temp_store", "memory")
            .disable_statement_logging();
        // The writer does not copy the log back into the database itself (see `checkpoints`),
        // nor sync it in its commits: `LogSync` does, beside it.
        let mut conn = opts
            .clone()
            .synchronous(SqliteSynchronous::Normal)
            .pragma("wal_autocheckpoint", "0")
            // The log file shrinks back to this when it starts over.
            .pragma("journal_size_limit", "67108864")
            .connect()
            .await?;
        MIGRATOR
            .run(&mut conn)
            .await
            .map_err(|e| StoreError::Database(format!("migration failed: {e}")))?;
        let log = open_log(path)?;
        let checkpointer = opts.connect().await?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            // A file connection has no peer to lose: a ping before each read would be one more
            // hop to the connection's thread and back (sqlx pings again on release anyway).
            .test_before_acquire(false)
            .connect_with(opts.read_only(true))
            .await?;
        let (writer, rx) = mpsc::channel(8192);
        let long = Arc::new(AtomicBool::new(false));
        tokio::spawn(checkpoints(checkpointer, writer.downgrade(), long.clone()));
        tokio::spawn(writer_loop(conn, rx, long, log));
        Ok(Self {
            writer,
            read,
            seal: Seal::default(),
        })
    }

    /// Seals callers' personal data with these keys from now on.
    pub fn sealed(mut self, seal: Seal) -> Self {
        self.seal = seal;
        self
    }

    /// Runs `f` inside the next group commit, in a savepoint of its own (what it wrote is
    /// undone if it fails); resolves after the commit.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFut<'c, Result<T>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.writer
            .send(Work::Run(Box::new(Job { f, tx })))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `script` in the next group commit (on the writer's locked handle, no savepoint of
    /// the writer's: a script undoes itself) and makes the result of its rows with `then`, here
    /// in the caller's task, off the writer's path; resolves after the commit or, when `early`,
    /// as soon as it ran: only for writes that nobody outside is told about and whose loss in a
    /// crash is repaired by design (see the callers); the caller's next write lands in the same
    /// commit or a later one.
    async fn script<T>(
        &self,
        early: bool,
        script: Script,
        then: impl FnOnce(Vec<RawRow>) -> Result<T>,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.writer
            .send(Work::Script(ScriptJob {
                script,
                tx: Some(tx),
                early,
            }))
            .await
            .map_err(|_| StoreError::Closed)?;
        then(rx.await.map_err(|_| StoreError::Closed)??)
    }
}

/// What the writer is given to do.
enum Work {
    /// A job with its own code, run on the connection.
    Run(Box<dyn WriteJob>),
    /// A script.
    Script(ScriptJob),
}

impl Work {
    fn abort(self, err: StoreError) {
        match self {
            Work::Run(j) => j.abort(err),
            Work::Script(mut j) => j.answer(Err(err)),
        }
    }
}

struct ScriptJob {
    script: Script,
    /// The rows, once committed (or at once when `early`); taken once answered.
    tx: Option<oneshot::Sender<Result<Vec<RawRow>>>>,
    early: bool,
}

impl ScriptJob {
    /// Answers the caller now, if not answered yet.
    fn answer(&mut self, result: Result<Vec<RawRow>>) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(result);
        }
    }

    /// The caller's answer, to be given once the commit is known (none when already answered).
    fn after_commit(mut self, result: Result<Vec<RawRow>>) -> Option<Box<dyn Finish>> {
        let tx = self.tx.take()?;
        Some(Box::new(Done { result, tx }))
    }
}

type BoxFut<'c, T> = Pin<Box<dyn Future<Output = T> + Send + 'c>>;

trait WriteJob: Send {
    fn run<'c>(self: Box<Self>, conn: &'c mut SqliteConnection) -> BoxFut<'c, Box<dyn Finish>>;
    fn abort(self: Box<Self>, err: StoreError);
}

trait Finish: Send {
    fn failed(&self) -> bool;
    fn finish(self: Box<Self>, commit: Result<()>);
}

struct Job<F, T> {
    f: F,
    tx: oneshot::Sender<Result<T>>,
}

struct Done<T> {
    result: Result<T>,
    tx: oneshot::Sender<Result<T>>,
}

impl<F, T> WriteJob for Job<F, T>
where
    T: Send + 'static,
    F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFut<'c, Result<T>> + Send + 'static,
{
    fn run<'c>(self: Box<Self>, conn: &'c mut SqliteConnection) -> BoxFut<'c, Box<dyn Finish>> {
        let Job { f, tx } = *self;
        Box::pin(async move {
            let result = f(conn).await;
            Box::new(Done { result, tx }) as Box<dyn Finish>
        })
    }

    fn abort(self: Box<Self>, err: StoreError) {
        let _ = self.tx.send(Err(err));
    }
}

impl<T: Send> Finish for Done<T> {
    fn failed(&self) -> bool {
        self.result.is_err()
    }
    fn finish(self: Box<Self>, commit: Result<()>) {
        let _ = self.tx.send(commit.and(self.result));
    }
}

/// Runs statements without arguments (transaction control) in one hop to SQLite's thread.
async fn exec(conn: &mut SqliteConnection, sql: &'static str) -> Result<()> {
    sqlx::Executor::execute(conn, sql).await?;
    Ok(())
}

/// The writer connection's SQLite handle as rusqlite sees it, made once and kept for its
/// prepared statements. It must be used only while the handle is locked out from sqlx's thread
/// ([`SqliteConnection::lock_handle`]). It is dropped before the connection: under the lock when
/// the writer ends normally ([`Locked::close`]); when the writer task is dropped instead, sqlx's
/// thread is idle then (only the writer sends it work) and the connection follows at once.
struct Locked(Option<rusqlite::Connection>);

impl Locked {
    /// Locks the writer connection's handle out from sqlx's thread; the lock and the rusqlite
    /// connection on it, usable while the lock is held.
    async fn lock<'c, 'l>(
        &'l mut self,
        conn: &'c mut SqliteConnection,
    ) -> Result<(
        sqlx::sqlite::LockedSqliteHandle<'c>,
        &'l rusqlite::Connection,
    )> {
        let mut handle = conn.lock_handle().await?;
        let raw = match self.0.take() {
            Some(raw) => raw,
            None => {
                // SAFETY: the pointer is the writer connection's open handle, which outlives
                // this value (the writer loop drops it first); rusqlite does not close a handle
                // it was given, and it is used only while a lock keeps sqlx's thread off it.
                let raw =
                    unsafe { rusqlite::Connection::from_handle(handle.as_raw_handle().as_ptr()) }?;
                // The hot path's statements, each prepared once.
                raw.set_prepared_statement_cache_capacity(128);
                raw
            }
        };
        Ok((handle, self.0.insert(raw)))
    }

    /// Drops the rusqlite side (its prepared statements) under the lock.
    async fn close(mut self, conn: &mut SqliteConnection) {
        if self.0.is_some()
            && let Ok(_handle) = conn.lock_handle().await
        {
            self.0 = None;
        }
        // Without the lock (the connection's thread is gone) leaking is the safe choice.
        std::mem::forget(self.0.take());
    }
}

/// Runs consecutive script jobs on the locked handle, with no thread hop per statement; what
/// each gives goes to `done`, or straight back to its caller when early. An error that leaves
/// the transaction in doubt is returned (and the jobs not yet run are aborted with it).
async fn run_scripts(
    conn: &mut SqliteConnection,
    locked: &mut Locked,
    jobs: Vec<ScriptJob>,
    done: &mut Vec<Box<dyn Finish>>,
) -> Option<StoreError> {
    match locked.lock(conn).await {
        Ok((_handle, raw)) => blocking(|| run_jobs(raw, jobs, done)),
        Err(e) => Some(abort_all(jobs, e)),
    }
}

/// A whole batch of scripts: begun, run and committed on the locked handle in one go (the
/// usual batch under load: accepting, claiming and recording attempts are all scripts). The
/// commit's outcome, for the writer to settle the batch with.
///
/// The scripts run first without savepoints ([`Script::run_bare`]), the usual case where none
/// fails. Should one fail (a duplicate key, say), the transaction is rolled back whole and the
/// batch runs again from the same state in the same order, each script in its own savepoint,
/// so that only the failing ones are undone. Their outcomes are the same both times; an early
/// job answered in the first pass is run again without being answered twice.
async fn script_batch(
    conn: &mut SqliteConnection,
    locked: &mut Locked,
    mut jobs: Vec<ScriptJob>,
    done: &mut Vec<Box<dyn Finish>>,
) -> Result<()> {
    let (_handle, raw) = match locked.lock(conn).await {
        Ok(locked) => locked,
        Err(e) => return Err(abort_all(jobs, e)),
    };
    blocking(|| {
        let begin = |raw: &rusqlite::Connection| raw.execute_batch("BEGIN IMMEDIATE");
        if let Err(e) = begin(raw) {
            return Err(abort_all(jobs, e.into()));
        }
        match run_bare(raw, &mut jobs) {
            Ok(results) => done.extend(
                jobs.into_iter()
                    .zip(results)
                    .filter_map(|(job, rows)| job.after_commit(Ok(rows))),
            ),
            Err(e) => {
                tracing::debug!(error = %e, "a script failed; the batch runs again with savepoints");
                metrics::counter!("hotline_store_batch_reruns_total").increment(1);
                // Some errors end the transaction by themselves.
                if !raw.is_autocommit()
                    && let Err(e) = raw.execute_batch("ROLLBACK")
                {
                    return Err(abort_all(jobs, e.into()));
                }
                if let Err(e) = begin(raw) {
                    return Err(abort_all(jobs, e.into()));
                }
                if let Some(e) = run_jobs(raw, jobs, done) {
                    return Err(e);
                }
            }
        }
        let committing = std::time::Instant::now();
        committed(
            committing,
            raw.execute_batch("COMMIT").map_err(StoreError::from),
        )
    })
}

/// The first pass of [`script_batch`]: every script with no savepoint; early jobs are answered
/// as they run. The rows of each, or the first error (the transaction then holds partial
/// writes and must be rolled back).
fn run_bare(raw: &rusqlite::Connection, jobs: &mut [ScriptJob]) -> Result<Vec<Vec<RawRow>>> {
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs.iter_mut() {
        let rows = job.script.run_bare(raw)?;
        if job.early {
            job.answer(Ok(rows));
            results.push(Vec::new());
        } else {
            results.push(rows);
        }
    }
    Ok(results)
}

/// A commit's outcome, recording how long it took since `committing` (writing the log; its
/// sync is [`LogSync`]'s).
fn committed(committing: std::time::Instant, result: Result<()>) -> Result<()> {
    metrics::histogram!("hotline_store_commit_seconds").record(committing.elapsed().as_secs_f64());
    result
}

fn abort_all(jobs: Vec<ScriptJob>, e: StoreError) -> StoreError {
    jobs.into_iter()
        .for_each(|j| Work::Script(j).abort(e.clone()));
    e
}

/// Runs script jobs in order on `raw`; see [`run_scripts`].
fn run_jobs(
    raw: &rusqlite::Connection,
    jobs: Vec<ScriptJob>,
    done: &mut Vec<Box<dyn Finish>>,
) -> Option<StoreError> {
    let mut jobs = jobs.into_iter();
    for mut job in jobs.by_ref() {
        let result = job.script.run_locked(raw);
        let fatal = match &result {
            Err(e @ StoreError::InDoubt(_)) => Some(e.clone()),
            _ => None,
        };
        if job.early && fatal.is_none() {
            job.answer(result);
        } else if let Some(d) = job.after_commit(result) {
            done.push(d);
        }
        if let Some(e) = fatal {
            return Some(abort_all(jobs.collect(), e));
        }
    }
    None
}

/// Runs SQLite work that blocks on this task's thread: moved off the runtime's worker slot on a
/// multi-threaded runtime, inline on a single-threaded one (tests), where nothing else could
/// run meanwhile anyway.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// How often the log is copied back into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// Log frames (pages) past which the writer is asked to let the log start over.
const LONG_LOG_FRAMES: i64 = 4096;

/// Copies the write-ahead log back into the database file on a connection of its own, beside
/// the writer instead of inside its commits (SQLite's automatic checkpoint runs in the commit
/// that crosses the threshold, on the writer's path). Passive: it never waits for the writer
/// or readers; frames still in use are copied next time. Ends with the store.
///
/// The log starts over only when a write begins with every frame copied back, which under
/// steady writes this task alone rarely sees; so when the log has grown long it sets `long`,
/// and the writer copies the last frames itself between two batches (see [`writer_loop`]).
async fn checkpoints(
    mut conn: SqliteConnection,
    writer: mpsc::WeakSender<Work>,
    long: Arc<AtomicBool>,
) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if writer.upgrade().is_none() {
            return;
        }
        match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&mut conn)
            .await
        {
            Ok(row) => {
                if row.try_get::<i64, _>("log").unwrap_or(0) > LONG_LOG_FRAMES {
                    long.store(true, Ordering::Relaxed);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "a checkpoint of the SQLite log failed; trying again");
            }
        }
    }
}

/// A batch with jobs of their own code: each in a savepoint of its own on sqlx's connection,
/// the scripts among them on the locked handle. The commit's outcome, for the writer to settle
/// the batch with.
async fn mixed_batch(
    conn: &mut SqliteConnection,
    locked: &mut Locked,
    batch: Vec<Work>,
    done: &mut Vec<Box<dyn Finish>>,
) -> Result<()> {
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE").await {
        batch.into_iter().for_each(|j| j.abort(e.clone()));
        return Err(e);
    }
    let mut broken: Option<StoreError> = None;
    // Whether the savepoint `job` is open. The statement that releases one job's savepoint
    // travels with the one that opens the next job's; scripts need none (each undoes itself)
    // and may run inside the one still open (releasing it later keeps their writes).
    let mut open = false;
    let mut batch = batch.into_iter().peekable();
    while let Some(work) = batch.next() {
        if let Some(e) = &broken {
            work.abort(e.clone());
            continue;
        }
        let job = match work {
            Work::Script(first) => {
                let mut scripts = vec![first];
                while let Some(Work::Script(j)) = batch.next_if(|w| matches!(w, Work::Script(_))) {
                    scripts.push(j);
                }
                broken = run_scripts(conn, locked, scripts, done).await;
                continue;
            }
            Work::Run(job) => job,
        };
        let control = if open {
            "RELEASE job; SAVEPOINT job"
        } else {
            "SAVEPOINT job"
        };
        if let Err(e) = exec(conn, control).await {
            job.abort(e.clone());
            broken = Some(e);
            continue;
        }
        open = true;
        let d = job.run(conn).await;
        if d.failed()
            && let Err(e) = exec(conn, "ROLLBACK TO job").await
        {
            broken = Some(e);
        }
        done.push(d);
    }
    if let Some(e) = broken {
        return Err(e);
    }
    let sql = if open {
        "RELEASE job; COMMIT"
    } else {
        "COMMIT"
    };
    let committing = std::time::Instant::now();
    committed(committing, exec(conn, sql).await)
}

/// The log's syncing thread for the writer's answers ([`LogSync`]), started on the database's
/// `-wal` file, which the migrations' writes made; synced once here for them.
fn open_log(path: &Path) -> Result<LogSync<Vec<Box<dyn Finish>>>> {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    let cannot = |e: std::io::Error| {
        StoreError::Database(format!(
            "cannot open the SQLite log {name:?} to sync it: {e}"
        ))
    };
    let log = std::fs::File::open(&name).map_err(cannot)?;
    log.sync_data().map_err(cannot)?;
    LogSync::start(log, |batches: Vec<Vec<Box<dyn Finish>>>, outcome| {
        for d in batches.into_iter().flatten() {
            d.finish(outcome.clone());
        }
    })
    .map_err(cannot)
}

/// The batch as scripts alone (the usual batch under load), or, when it holds any other job,
/// the whole batch back in its order.
fn scripts_only(batch: Vec<Work>) -> std::result::Result<Vec<ScriptJob>, Vec<Work>> {
    let mut scripts = Vec::with_capacity(batch.len());
    let mut rest = batch.into_iter();
    while let Some(work) = rest.next() {
        match work {
            Work::Script(j) => scripts.push(j),
            Work::Run(job) => {
                return Err(scripts
                    .into_iter()
                    .map(Work::Script)
                    .chain(std::iter::once(Work::Run(job)))
                    .chain(rest)
                    .collect());
            }
        }
    }
    Ok(scripts)
}

async fn writer_loop(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<Work>,
    long: Arc<AtomicBool>,
    log: LogSync<Vec<Box<dyn Finish>>>,
) {
    let mut locked = Locked(None);
    let mut jobs: Vec<Work> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let batch = std::mem::take(&mut jobs);
        if log.failed() {
            // What the disk holds is unknown: no write may be answered from here on.
            let e = StoreError::Database("the SQLite log could not be synced; restart".into());
            batch.into_iter().for_each(|w| w.abort(e.clone()));
            break;
        }
        metrics::histogram!("hotline_store_commit_batch_size").record(batch.len() as f64);
        // Between batches the writer holds no snapshot: copying the few frames the checkpointer
        // has not yet copied lets the next batch's first write start the log over.
        if long.swap(false, Ordering::Relaxed)
            && let Err(e) = exec(&mut conn, "PRAGMA wal_checkpoint(PASSIVE)").await
        {
            tracing::warn!(error = %e, "the writer's checkpoint of the SQLite log failed");
        }
        let started = std::time::Instant::now();
        let mut done = Vec::with_capacity(batch.len());
        let commit = match scripts_only(batch) {
            Ok(scripts) => script_batch(&mut conn, &mut locked, scripts, &mut done).await,
            Err(batch) => mixed_batch(&mut conn, &mut locked, batch, &mut done).await,
        };
        // How long the writer spends on a batch (its commit alone: `committed`).
        metrics::histogram!("hotline_store_batch_seconds").record(started.elapsed().as_secs_f64());
        match commit {
            Ok(()) if !done.is_empty() => log.after_sync(done),
            Ok(()) => {}
            Err(e) => {
                tracing::error!(error = %e, "a group commit failed; its writes are rolled back");
                let _ = exec(&mut conn, "ROLLBACK").await;
                for d in done {
                    d.finish(Err(e.clone()));
                }
            }
        }
    }
    locked.close(&mut conn).await;
}

/// The filters of a [`DeliveryQuery`], bound as `?1`..`?7` by [`bind_delivery_filter`].
const DELIVERY_FILTER: &str = "(?1 IS NULL OR d.status = ?1) AND (?2 IS NULL OR d.partner = ?2) \
     AND (?3 IS NULL OR d.ticket_id = ?3) \
     AND (?4 IS NULL OR d.ticket_id = ?4 \
          OR d.ticket_id IN (SELECT ticket_id FROM ticket_numbers WHERE number = ?4)) \
     AND (?5 IS NULL OR d.kind = ?5) AND (?6 IS NULL OR d.created_at >= ?6) \
     AND (?7 IS NULL OR d.created_at < ?7)";

fn bind_delivery_filter<'q>(
    query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    q: &'q DeliveryQuery,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    query
        .bind(q.status.map(DeliveryStatus::as_str))
        .bind(&q.partner)
        .bind(q.ticket_id.map(|u| u.to_string()))
        .bind(q.number.as_deref().map(str::trim))
        .bind(q.message_type.map(|k| k.as_str()))
        .bind(q.since.map(ms))
        .bind(q.until.map(ms))
}

async fn numbers_of(
    conn: &mut SqliteConnection,
    ticket_id: Uuid,
) -> Result<BTreeMap<String, String>> {
    let rows = sqlx::query("SELECT system, number FROM ticket_numbers WHERE ticket_id = ?")
        .bind(ticket_id.to_string())
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("system")?, r.try_get("number")?)))
        .collect()
}

async fn ticket_with(conn: &mut SqliteConnection, id: Uuid, seal: &Seal) -> Result<Option<Ticket>> {
    let sql = format!("SELECT {TICKET_COLUMNS} FROM tickets t WHERE t.id = ?");
    let Some(row) = sqlx::query(&sql)
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let numbers = numbers_of(conn, id).await?;
    ticket_from_row(&row, numbers, seal).map(Some)
}

async fn delivery_with(conn: &mut SqliteConnection, id: Uuid) -> Result<Option<Delivery>> {
    let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries d WHERE d.id = ?");
    sqlx::query(&sql)
        .bind(id.to_string())
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(delivery_from_row)
        .transpose()
}

/// Adds to `script` the reads that complete the claims of the deliveries under `token` (and,
/// when given, with the id `only`): their tickets with every number, and their events. Each
/// row says which it is in its `part` column, as the claimed rows themselves say `delivery`.
fn read_claims(script: &mut Script, token: Uuid, only: Option<Uuid>) {
    let held = "SELECT x.{col} FROM deliveries x WHERE x.lease_token = ? \
                AND (? IS NULL OR x.id = ?)";
    let parts = [
        format!(
            "SELECT 'number' AS part, ticket_id, system, number FROM ticket_numbers \
             WHERE ticket_id IN ({})",
            held.replace("{col}", "ticket_id")
        ),
        format!(
            "SELECT 'ticket' AS part, {TICKET_COLUMNS} FROM tickets t WHERE t.id IN ({})",
            held.replace("{col}", "ticket_id")
        ),
        format!(
            "SELECT 'event' AS part, id, body FROM events WHERE id IN ({})",
            held.replace("{col}", "event_id")
        ),
    ];
    let only = only.map(|u| u.to_string());
    for sql in &parts {
        script
            .push(sql)
            .bind(token.to_string())
            .bind(only.clone())
            .bind(only.clone());
    }
}

/// Returns the earlier ticket and event when one of `keys` was already used by `source`.
async fn seen(
    conn: &mut SqliteConnection,
    source: &str,
    keys: &[String],
) -> Result<Option<(Uuid, Uuid)>> {
    if keys.is_empty() {
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT ticket_id, event_id FROM inbound_keys \
         WHERE source = ? AND key IN (SELECT value FROM json_each(?)) LIMIT 1",
    )
    .bind(source)
    .bind(serde_json::to_string(keys)?)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| Ok((get_uuid(&row, "ticket_id")?, get_uuid(&row, "event_id")?)))
        .transpose()
}

/// Adds an event with its idempotency keys, numbers and outbox rows to `script`; returns the
/// ids and message ids of the outbox rows, in the order of `targets`. The rows of partners the
/// `handoff` names are written already claimed under its lease.
fn insert_event(
    script: &mut Script,
    event: &Event,
    body: String,
    keys: &[String],
    numbers: &[(String, String)],
    targets: &[String],
    handoff: Option<&Handoff>,
) -> Vec<(Uuid, Uuid)> {
    let now = ms(Utc::now());
    let ticket_id = Value::from(event.ticket_id);
    let event_id = Value::from(event.id);
    script
        .push(
            "INSERT INTO events (id, ticket_id, kind, source, at, body) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(event_id.clone())
        .bind(ticket_id.clone())
        .bind(event.kind().as_str())
        .bind(event.source.clone())
        .bind(ms(event.at))
        .bind(body);
    for key in keys {
        script
            .push("INSERT INTO inbound_keys (source, key, ticket_id, event_id) VALUES (?, ?, ?, ?)")
            .bind(event.source.clone())
            .bind(key.clone())
            .bind(ticket_id.clone())
            .bind(event_id.clone());
    }
    for (system, number) in numbers {
        script
            .push(
                "INSERT OR IGNORE INTO ticket_numbers (system, number, ticket_id) VALUES (?, ?, ?)",
            )
            .bind(system.clone())
            .bind(number.clone())
            .bind(ticket_id.clone());
    }
    let mut ids = Vec::with_capacity(targets.len());
    for partner in targets {
        let (id, message_id) = (Uuid::now_v7(), Uuid::now_v7());
        let first = first_state(handoff, partner, now);
        script
            .push(
                "INSERT INTO deliveries (id, ticket_id, event_id, partner, message_id, kind, \
                 status, attempts, lease_token, due_at, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(id)
            .bind(ticket_id.clone())
            .bind(event_id.clone())
            .bind(partner.clone())
            .bind(message_id)
            .bind(event.kind().as_str())
            .bind(first.status)
            .bind(first.attempts)
            .bind(first.lease)
            .bind(first.due)
            .bind(now)
            .bind(now);
        ids.push((id, message_id));
    }
    ids
}

/// Adds clock changes to `script`.
fn apply_clock_ops(script: &mut Script, ticket_id: Uuid, ops: &[ClockOp]) {
    for op in ops {
        match op {
            ClockOp::Start(c) => {
                script
                    .push(&format!(
                        "INSERT INTO sla_clocks ({CLOCK_COLUMNS}) \
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', NULL, NULL, NULL)"
                    ))
                    .bind(c.id)
                    .bind(c.ticket_id)
                    .bind(c.kind.as_str())
                    .bind(c.party.clone())
                    .bind(c.urgent)
                    .bind(ms(c.started_at))
                    .bind(ms(c.due_at))
                    .bind(ms(c.urge_at))
                    .bind(c.provisional)
                    .bind(c.extended_days);
            }
            ClockOp::Close { kind, party, at } | ClockOp::Stop { kind, party, at } => {
                if matches!(op, ClockOp::Stop { .. }) {
                    script.push(
                        "UPDATE sla_clocks SET state = 'stopped', stopped_at = ? \
                         WHERE ticket_id = ? AND kind = ? AND (? IS NULL OR party = ?) \
                         AND state = 'running'",
                    );
                } else {
                    script
                        .push(
                            "UPDATE sla_clocks \
                             SET state = CASE WHEN ? <= due_at THEN 'met' ELSE 'missed' END, \
                             stopped_at = ? \
                             WHERE ticket_id = ? AND kind = ? AND (? IS NULL OR party = ?) \
                             AND state = 'running'",
                        )
                        .bind(ms(*at));
                }
                script
                    .bind(ms(*at))
                    .bind(ticket_id.to_string())
                    .bind(kind.as_str())
                    .bind(party.clone())
                    .bind(party.clone());
            }
            ClockOp::Reschedule {
                id,
                due_at,
                urge_at,
                provisional,
                extended_days,
            } => {
                script
                    .push(
                        "UPDATE sla_clocks SET due_at = ?, urge_at = ?, provisional = ?, \
                         extended_days = ?, \
                         urged_at = CASE WHEN ? > COALESCE(urged_at, 0) THEN NULL ELSE urged_at END, \
                         overdue_at = CASE WHEN ? > COALESCE(overdue_at, 0) THEN NULL ELSE overdue_at END \
                         WHERE id = ? AND state = 'running'",
                    )
                    .bind(ms(*due_at))
                    .bind(ms(*urge_at))
                    .bind(*provisional)
                    .bind(*extended_days)
                    .bind(ms(*urge_at))
                    .bind(ms(*due_at))
                    .bind(id.to_string());
            }
        }
    }
}

async fn insert_transfer_entry(conn: &mut SqliteConnection, e: &TransferEntry) -> Result<bool> {
    let r = sqlx::query(
        "INSERT OR IGNORE INTO transfer_entries (transfer_id, kind, at, recorded_at, source, \
         outcome, detail, key) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(e.transfer_id.to_string())
    .bind(&e.kind)
    .bind(ms(e.at))
    .bind(ms(e.recorded_at))
    .bind(&e.source)
    .bind(e.outcome.as_str())
    .bind(&e.detail)
    .bind(&e.key)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Adds the partner's own number for the delivery's ticket to `script`, kept under the
/// delivery's partner as the system; with `lease`, only while the delivery is being sent under
/// that lease.
fn remember_partner_ref(
    script: &mut Script,
    delivery_id: Uuid,
    partner_ref: &str,
    lease: Option<Uuid>,
) {
    let lease = lease.map(|l| l.to_string());
    script
        .push(
            "INSERT OR IGNORE INTO ticket_numbers (system, number, ticket_id) \
             SELECT partner, ?, ticket_id FROM deliveries \
             WHERE id = ? AND (? IS NULL OR (lease_token = ? AND status = 'sending'))",
        )
        .bind(partner_ref.to_owned())
        .bind(delivery_id.to_string())
        .bind(lease.clone())
        .bind(lease);
}

/// Retention's rewrite: each row `select` finds (its `id` and `doc`, given the cutoff and a
/// limit) gets `purge(doc)` written back by `update` (the new doc, now, the id); returns the ids.
async fn purge_rows(
    conn: &mut SqliteConnection,
    select: &str,
    update: &'static str,
    before: DateTime<Utc>,
    limit: u32,
    purge: impl Fn(&str) -> Result<String>,
) -> Result<Vec<Uuid>> {
    let rows = sqlx::query(select)
        .bind(ms(before))
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
    let now = ms(Utc::now());
    let mut ids = Vec::with_capacity(rows.len());
    for row in &rows {
        let id = get_uuid(row, "id")?;
        sqlx::query(update)
            .bind(purge(&row.text("doc")?)?)
            .bind(now)
            .bind(id.to_string())
            .execute(&mut *conn)
            .await?;
        ids.push(id);
    }
    Ok(ids)
}

#[async_trait]
impl Store for SqliteStore {
    async fn accept_ticket(&self, mut cmd: NewTicket) -> Result<Accepted> {
        let draft = self.seal.draft_out(&cmd.ticket.draft)?;
        let body = self.seal.event_out(&cmd.event)?;
        let t = &cmd.ticket;
        let mut script = Script::default();
        // The request's nonce first: taken before, it fails the script (its primary key) and
        // nothing is written; the fallback below tells a replay from a repeated key.
        if let Some(n) = &cmd.nonce {
            push_nonce(&mut script, n, false);
        }
        script
            .push(
                "INSERT INTO tickets (id, origin, external_id, status, kind, urgency, draft, \
                 created_at, updated_at, caller_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(t.id)
            .bind(t.origin.clone())
            .bind(t.external_id.clone())
            .bind(t.status.as_str())
            .bind(enum_str(&t.draft.kind))
            .bind(enum_str(&t.draft.urgency))
            .bind(draft)
            .bind(ms(t.created_at))
            .bind(ms(t.updated_at))
            .bind(cmd.caller_hash.clone());
        let written = insert_event(
            &mut script,
            &cmd.event,
            body,
            &cmd.keys,
            &cmd.numbers,
            &cmd.targets,
            cmd.handoff.as_ref(),
        );
        apply_clock_ops(&mut script, t.id, &cmd.clocks);
        if let (Some(hash), Some(since)) = (&cmd.caller_hash, cmd.repeat_since) {
            script
                .push(CALLER_TICKETS)
                .bind(hash.clone())
                .bind(ms(since));
        }
        let (ticket_id, event_id) = (t.id, cmd.event.id);
        // What a failed accept needs to tell a repeat from a replay; the claims take the rest.
        let (origin, keys, nonce) = (
            t.origin.clone(),
            std::mem::take(&mut cmd.keys),
            cmd.nonce.take(),
        );
        let claims = cmd.into_claims(&written);
        let deliveries = written.into_iter().map(|(id, _)| id).collect();
        // A key used before fails the script (inbound_keys' primary key) and undoes it; only
        // then is it looked up, so a new ticket is one script among its batch's.
        let created = move |rows: Vec<RawRow>| {
            Ok(Accepted::Created {
                ticket_id,
                event_id,
                deliveries,
                claims,
                caller_tickets: rows
                    .iter()
                    .filter(|r| r.text("part").is_ok_and(|p| p == "caller"))
                    .map(|r| get_uuid(r, "id"))
                    .collect::<Result<_>>()?,
            })
        };
        match self.script(false, script, created).await {
            Err(StoreError::Closed) => Err(StoreError::Closed),
            Err(e) => {
                let (ticket_id, event_id) = self
                    .write(move |conn| {
                        Box::pin(async move {
                            // The nonce is remembered also when the ticket is a repeat; when
                            // the accept failed otherwise, this write's failure undoes it, so
                            // that the partner may send the same request again.
                            if let Some(n) = nonce
                                && !take_nonce(conn, &n).await?
                            {
                                return Err(StoreError::Replayed(n.value));
                            }
                            seen(conn, &origin, &keys).await?.ok_or(e)
                        })
                    })
                    .await?;
                Ok(Accepted::Duplicate {
                    ticket_id,
                    event_id,
                })
            }
            ok => ok,
        }
    }

    async fn record_event(&self, cmd: NewEvent) -> Result<Accepted> {
        let body = self.seal.event_out(&cmd.event)?;
        self.write(move |conn| {
            Box::pin(async move {
                let e = &cmd.event;
                if let Some((ticket_id, event_id)) = seen(conn, &e.source, &cmd.keys).await? {
                    return Ok(Accepted::Duplicate {
                        ticket_id,
                        event_id,
                    });
                }
                let expected = cmd.expected_status.map(TicketStatus::as_str);
                let updated = sqlx::query(
                    "UPDATE tickets SET status = COALESCE(?, status), updated_at = ? \
                     WHERE id = ? AND (? IS NULL OR status = ?)",
                )
                .bind(cmd.status.map(TicketStatus::as_str))
                .bind(ms(Utc::now()))
                .bind(e.ticket_id.to_string())
                .bind(expected)
                .bind(expected)
                .execute(&mut *conn)
                .await?;
                if updated.rows_affected() == 0 {
                    let exists: Option<i64> =
                        sqlx::query_scalar("SELECT 1 FROM tickets WHERE id = ?")
                            .bind(e.ticket_id.to_string())
                            .fetch_optional(&mut *conn)
                            .await?;
                    return Err(match exists {
                        Some(_) => StoreError::StatusChanged,
                        None => StoreError::Conflict(format!("no ticket {}", e.ticket_id)),
                    });
                }
                let mut script = Script::default();
                let written = insert_event(
                    &mut script,
                    e,
                    body,
                    &cmd.keys,
                    &cmd.numbers,
                    &cmd.targets,
                    None,
                );
                apply_clock_ops(&mut script, e.ticket_id, &cmd.clocks);
                script.run(conn).await?;
                Ok(Accepted::Created {
                    ticket_id: e.ticket_id,
                    event_id: e.id,
                    deliveries: written.into_iter().map(|(id, _)| id).collect(),
                    caller_tickets: Vec::new(),
                    claims: Vec::new(),
                })
            })
        })
        .await
    }

    async fn seen(&self, source: &str, keys: &[String]) -> Result<Option<(Uuid, Uuid)>> {
        let mut conn = self.read.acquire().await?;
        seen(&mut conn, source, keys).await
    }

    async fn record_refusal(&self, r: RefusedEvent) -> Result<()> {
        self.write(move |conn| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO refused_events (id, ticket_id, source, kind, status, reason, at) \
                     VALUES (?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(Uuid::now_v7().to_string())
                .bind(r.ticket_id.to_string())
                .bind(&r.source)
                .bind(r.kind.as_str())
                .bind(r.status.as_str())
                .bind(&r.reason)
                .bind(ms(r.at))
                .execute(conn)
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn refusals(&self, ticket_id: Uuid) -> Result<Vec<RefusedEvent>> {
        let rows = sqlx::query(
            "SELECT source, kind, status, reason, at FROM refused_events WHERE ticket_id = ? \
             ORDER BY at, id",
        )
        .bind(ticket_id.to_string())
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                Ok(RefusedEvent {
                    ticket_id,
                    source: r.try_get("source")?,
                    kind: EventKind::from_str(&kind).map_err(StoreError::Corrupt)?,
                    status: get_enum(r, "status")?,
                    reason: r.try_get("reason")?,
                    at: from_ms(r.try_get("at")?)?,
                })
            })
            .collect()
    }

    async fn resolve_number(&self, system: &str, number: &str) -> Result<Option<Uuid>> {
        let row =
            sqlx::query("SELECT ticket_id FROM ticket_numbers WHERE system = ? AND number = ?")
                .bind(system)
                .bind(number)
                .fetch_optional(&self.read)
                .await?;
        row.map(|r| get_uuid(&r, "ticket_id")).transpose()
    }

    async fn ticket(&self, id: Uuid) -> Result<Option<Ticket>> {
        let mut conn = self.read.acquire().await?;
        ticket_with(&mut conn, id, &self.seal).await
    }

    async fn tickets(&self, q: &TicketQuery) -> Result<Vec<Ticket>> {
        let sql = format!(
            "SELECT {TICKET_COLUMNS} FROM tickets t \
             WHERE (?1 IS NULL OR t.origin = ?1) AND (?2 IS NULL OR t.status = ?2) \
               AND (?3 IS NULL OR t.id > ?3) \
             ORDER BY t.id LIMIT ?4"
        );
        let mut conn = self.read.acquire().await?;
        let rows = sqlx::query(&sql)
            .bind(&q.origin)
            .bind(q.status.map(TicketStatus::as_str))
            .bind(q.after.map(|u| u.to_string()))
            .bind(page_limit(q.limit))
            .fetch_all(&mut *conn)
            .await?;
        // Every listed ticket's numbers in one query.
        let ids: Vec<String> = rows
            .iter()
            .map(|r| r.try_get::<String, _>("id"))
            .collect::<std::result::Result<_, _>>()?;
        let mut numbers: std::collections::HashMap<String, BTreeMap<String, String>> =
            std::collections::HashMap::new();
        if !ids.is_empty() {
            let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "SELECT ticket_id, system, number FROM ticket_numbers WHERE ticket_id IN (",
            );
            let mut list = qb.separated(", ");
            for id in &ids {
                list.push_bind(id);
            }
            qb.push(")");
            for r in qb.build().fetch_all(&mut *conn).await? {
                numbers
                    .entry(r.try_get("ticket_id")?)
                    .or_default()
                    .insert(r.try_get("system")?, r.try_get("number")?);
            }
        }
        rows.iter()
            .zip(&ids)
            .map(|(row, id)| {
                ticket_from_row(row, numbers.remove(id).unwrap_or_default(), &self.seal)
            })
            .collect()
    }

    async fn events(&self, ticket_id: Uuid) -> Result<Vec<Event>> {
        let rows = sqlx::query("SELECT body FROM events WHERE ticket_id = ? ORDER BY at, id")
            .bind(ticket_id.to_string())
            .fetch_all(&self.read)
            .await?;
        rows.iter()
            .map(|r| self.seal.event_in(r.try_get("body")?))
            .collect()
    }

    async fn delivery(&self, id: Uuid) -> Result<Option<Delivery>> {
        let mut conn = self.read.acquire().await?;
        delivery_with(&mut conn, id).await
    }

    async fn deliveries(&self, q: &DeliveryQuery) -> Result<Vec<Delivery>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries d \
             WHERE {DELIVERY_FILTER} AND (?8 IS NULL OR d.id > ?8) \
             ORDER BY d.id LIMIT ?9"
        );
        let rows = bind_delivery_filter(sqlx::query(&sql), q)
            .bind(q.after.map(|u| u.to_string()))
            .bind(page_limit(q.limit))
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    async fn count_deliveries(&self, q: &DeliveryQuery) -> Result<u64> {
        let sql = format!("SELECT COUNT(*) AS n FROM deliveries d WHERE {DELIVERY_FILTER}");
        let row = bind_delivery_filter(sqlx::query(&sql), q)
            .fetch_one(&self.read)
            .await?;
        Ok(row.try_get::<i64, _>("n")? as u64)
    }

    async fn attempts_for_ticket(&self, ticket_id: Uuid) -> Result<Vec<AttemptRecord>> {
        let rows = sqlx::query(
            "SELECT a.* FROM attempts a JOIN deliveries d ON d.id = a.delivery_id \
             WHERE d.ticket_id = ? ORDER BY a.started_at, a.number",
        )
        .bind(ticket_id.to_string())
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AttemptRecord {
                    delivery_id: get_uuid(r, "delivery_id")?,
                    number: r.try_get::<i64, _>("number")? as u32,
                    started_at: from_ms(r.try_get("started_at")?)?,
                    duration_ms: r.try_get::<i64, _>("duration_ms")? as u64,
                    outcome: r.try_get("outcome")?,
                    http_status: r
                        .try_get::<Option<i64>, _>("http_status")?
                        .map(|s| s as u16),
                    partner_code: r.try_get("partner_code")?,
                    error: r.try_get("error")?,
                    partner_ref: r.try_get("partner_ref")?,
                })
            })
            .collect()
    }

    async fn claim(
        &self,
        partner: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Claim>> {
        let lease_until = now + crate::time::span(lease);
        let seal = self.seal.clone();
        // One lease token for the batch: a claim is its delivery id with the token.
        let token = Uuid::now_v7();
        // The update that takes the rows (atomic by itself) and the reads that complete them.
        let mut script = Script::default();
        script
            .push(&format!(
                "UPDATE deliveries AS d SET status = 'sending', attempts = attempts + 1, \
                 lease_token = ?, due_at = ?, updated_at = ? \
                 WHERE d.id IN (SELECT c.id FROM deliveries c \
                     WHERE c.partner = ? AND {open} AND c.due_at <= ? \
                       AND NOT EXISTS (SELECT 1 FROM deliveries e \
                           WHERE e.ticket_id = c.ticket_id AND e.partner = c.partner \
                             AND e.seq < c.seq AND e.status NOT IN {SETTLED_STATUSES}) \
                     ORDER BY c.due_at LIMIT ?) \
                 RETURNING 'delivery' AS part, {returning}, seq",
                open = open_status("c.status"),
                // RETURNING names the updated row's columns unqualified.
                returning = DELIVERY_COLUMNS.replace("d.", "")
            ))
            .bind(token.to_string())
            .bind(ms(lease_until))
            .bind(ms(now))
            .bind(partner.to_owned())
            .bind(ms(now))
            .bind(limit);
        read_claims(&mut script, token, None);
        self.script(false, script, move |rows| claims_from(&rows, token, &seal))
            .await
    }

    async fn claimed(&self, token: &ClaimToken) -> Result<Option<Claim>> {
        let mut conn = self.read.acquire().await?;
        let mut script = Script::default();
        script
            .push(&format!(
                "SELECT 'delivery' AS part, {DELIVERY_COLUMNS}, d.seq FROM deliveries d \
                 WHERE d.id = ? AND d.lease_token = ? AND d.status = 'sending'"
            ))
            .bind(token.delivery_id.to_string())
            .bind(token.lease_token.to_string());
        read_claims(&mut script, token.lease_token, Some(token.delivery_id));
        let claims = claims_from(&script.run(&mut conn).await?, token.lease_token, &self.seal)?;
        Ok(claims.into_iter().next())
    }

    async fn finish_attempt(
        &self,
        claim: &ClaimToken,
        attempt: AttemptRecord,
        next: Next,
    ) -> Result<bool> {
        let now = ms(Utc::now());
        let (delivery_id, lease_token) =
            (claim.delivery_id.to_string(), claim.lease_token.to_string());
        let mut script = Script::default();
        script
            .push(
                "INSERT OR IGNORE INTO attempts (delivery_id, number, started_at, \
                 duration_ms, outcome, http_status, partner_code, error, partner_ref) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(attempt.delivery_id)
            .bind(attempt.number)
            .bind(ms(attempt.started_at))
            .bind(attempt.duration_ms as i64)
            .bind(attempt.outcome)
            .bind(attempt.http_status)
            .bind(attempt.partner_code)
            .bind(attempt.error)
            .bind(attempt.partner_ref);
        let (status, due, error, partner_ref, acked) = match next {
            Next::Acknowledged { partner_ref } => {
                ("acknowledged", None, None, partner_ref, Some(now))
            }
            Next::AwaitingAck { until } => ("awaiting_ack", Some(ms(until)), None, None, None),
            Next::Retry { at, error } => ("retrying", Some(ms(at)), Some(error), None, None),
            Next::Dead { error } => ("dead", None, Some(error), None, None),
            Next::Skipped { reason } => ("skipped", None, Some(reason), None, None),
        };
        if let Some(r) = &partner_ref {
            // Only while the lease holds (checked before the update below ends it).
            remember_partner_ref(&mut script, claim.delivery_id, r, Some(claim.lease_token));
        }
        script
            .push(
                "UPDATE deliveries SET status = ?, due_at = COALESCE(?, due_at), \
                 last_error = ?, partner_ref = COALESCE(?, partner_ref), \
                 acked_at = COALESCE(?, acked_at), lease_token = NULL, updated_at = ? \
                 WHERE id = ? AND lease_token = ? AND status = 'sending'",
            )
            .bind(status)
            .bind(due)
            .bind(error)
            .bind(partner_ref)
            .bind(acked)
            .bind(now)
            .bind(delivery_id)
            .bind(lease_token)
            .push(CHANGED);
        // The update changed the row when the lease still held.
        self.script(false, script, changed_one).await
    }

    async fn acknowledge(
        &self,
        partner: &str,
        message_id: Uuid,
        ack: LateAck,
    ) -> Result<Option<Delivery>> {
        let partner = partner.to_owned();
        self.write(move |conn| {
            Box::pin(async move {
                let Some(row) = sqlx::query(
                    "SELECT id, status FROM deliveries WHERE message_id = ? AND partner = ?",
                )
                .bind(message_id.to_string())
                .bind(&partner)
                .fetch_optional(&mut *conn)
                .await?
                else {
                    return Ok(None);
                };
                let id = get_uuid(&row, "id")?;
                let status: String = row.try_get("status")?;
                let now = ms(Utc::now());
                if status != "acknowledged" {
                    if ack.accepted {
                        sqlx::query(
                            "UPDATE deliveries SET status = 'acknowledged', lease_token = NULL, \
                             partner_ref = COALESCE(?, partner_ref), last_error = NULL, \
                             acked_at = ?, updated_at = ? WHERE id = ?",
                        )
                        .bind(&ack.partner_ref)
                        .bind(now)
                        .bind(now)
                        .bind(id.to_string())
                        .execute(&mut *conn)
                        .await?;
                        if let Some(r) = &ack.partner_ref {
                            let mut script = Script::default();
                            remember_partner_ref(&mut script, id, r, None);
                            script.run(conn).await?;
                        }
                    } else {
                        let reason = format!(
                            "refused by partner: {}",
                            ack.reason.as_deref().unwrap_or("no reason given")
                        );
                        sqlx::query(
                            "UPDATE deliveries SET status = 'dead', lease_token = NULL, \
                             last_error = ?, updated_at = ? WHERE id = ?",
                        )
                        .bind(reason)
                        .bind(now)
                        .bind(id.to_string())
                        .execute(&mut *conn)
                        .await?;
                    }
                }
                delivery_with(conn, id).await
            })
        })
        .await
    }

    async fn retry(&self, id: Uuid, now: DateTime<Utc>) -> Result<RetryResult> {
        self.write(move |conn| {
            Box::pin(async move {
                let Some(d) = delivery_with(conn, id).await? else {
                    return Ok(RetryResult::NotFound);
                };
                if d.status != DeliveryStatus::Dead {
                    return Ok(RetryResult::NotDead(d.status));
                }
                sqlx::query(
                    "UPDATE deliveries SET status = 'pending', due_at = ?, round_base = attempts, \
                     updated_at = ? WHERE id = ? AND status = 'dead'",
                )
                .bind(ms(now))
                .bind(ms(now))
                .bind(id.to_string())
                .execute(&mut *conn)
                .await?;
                let d = delivery_with(conn, id)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt(format!("delivery {id} vanished")))?;
                Ok(RetryResult::Requeued(d))
            })
        })
        .await
    }

    async fn next_due(&self, partner: &str) -> Result<Option<DateTime<Utc>>> {
        let sql = format!(
            "SELECT MIN(due_at) FROM deliveries WHERE partner = ? AND {}",
            open_status("status")
        );
        let v: Option<i64> = sqlx::query_scalar(&sql)
            .bind(partner)
            .fetch_one(&self.read)
            .await?;
        v.map(from_ms).transpose()
    }

    async fn release_claims(&self, tokens: &[ClaimToken], now: DateTime<Utc>) -> Result<u64> {
        let mut script = Script::default();
        for t in tokens {
            script
                .push(
                    "UPDATE deliveries SET attempts = attempts - 1, \
                     status = CASE WHEN attempts > 1 THEN 'retrying' ELSE 'pending' END, \
                     lease_token = NULL, due_at = ?, updated_at = ? \
                     WHERE id = ? AND lease_token = ? AND status = 'sending' RETURNING id",
                )
                .bind(ms(now))
                .bind(ms(now))
                .bind(t.delivery_id.to_string())
                .bind(t.lease_token.to_string());
        }
        self.script(false, script, |rows| Ok(rows.len() as u64))
            .await
    }

    async fn release_retries(
        &self,
        partner: &str,
        now: DateTime<Utc>,
        limit: Option<u32>,
    ) -> Result<u64> {
        let partner = partner.to_owned();
        self.write(move |conn| {
            Box::pin(async move {
                let r = sqlx::query(
                    "UPDATE deliveries SET due_at = ?1, updated_at = ?1 WHERE id IN ( \
                     SELECT id FROM deliveries WHERE partner = ?2 AND status = 'retrying' \
                     AND due_at > ?1 ORDER BY due_at LIMIT ?3)",
                )
                .bind(ms(now))
                .bind(&partner)
                .bind(limit.map_or(-1, i64::from))
                .execute(conn)
                .await?;
                Ok(r.rows_affected())
            })
        })
        .await
    }

    async fn delivery_counts(&self) -> Result<Vec<StatusCount>> {
        let rows = sqlx::query(
            "SELECT partner, status, COUNT(*) AS n, MIN(created_at) AS oldest \
             FROM deliveries GROUP BY partner, status",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let status: String = r.try_get("status")?;
                Ok(StatusCount {
                    partner: r.try_get("partner")?,
                    status: DeliveryStatus::parse(&status)
                        .ok_or_else(|| StoreError::Corrupt(format!("status {status}")))?,
                    count: r.try_get::<i64, _>("n")? as u64,
                    oldest: r
                        .try_get::<Option<i64>, _>("oldest")?
                        .map(from_ms)
                        .transpose()?,
                })
            })
            .collect()
    }

    async fn clocks(&self, ticket_id: Uuid) -> Result<Vec<Clock>> {
        let rows = sqlx::query(&format!(
            "SELECT {CLOCK_COLUMNS} FROM sla_clocks WHERE ticket_id = ? ORDER BY started_at, id"
        ))
        .bind(ticket_id.to_string())
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(clock_from_row).collect()
    }

    async fn clocks_waking(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Clock>> {
        let rows = sqlx::query(&clocks_waking_sql())
            .bind(ms(now))
            .bind(limit)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(clock_from_row).collect()
    }

    async fn mark_clock(&self, id: Uuid, mark: ClockMark, at: DateTime<Utc>) -> Result<bool> {
        let col = match mark {
            ClockMark::Urged => "urged_at",
            ClockMark::Overdue => "overdue_at",
        };
        self.write(move |conn| {
            Box::pin(async move {
                let r = sqlx::query(&format!(
                    "UPDATE sla_clocks SET {col} = ? WHERE id = ? AND {col} IS NULL"
                ))
                .bind(ms(at))
                .bind(id.to_string())
                .execute(conn)
                .await?;
                Ok(r.rows_affected() == 1)
            })
        })
        .await
    }

    async fn provisional_clocks(&self) -> Result<Vec<Clock>> {
        let rows = sqlx::query(&format!(
            "SELECT {CLOCK_COLUMNS} FROM sla_clocks WHERE state = 'running' AND provisional = 1"
        ))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(clock_from_row).collect()
    }

    async fn change_clocks(&self, ops: Vec<ClockOp>) -> Result<()> {
        self.write(move |conn| {
            Box::pin(async move {
                let mut script = Script::default();
                apply_clock_ops(&mut script, Uuid::nil(), &ops);
                script.run(conn).await.map(drop)
            })
        })
        .await
    }

    async fn clocks_started(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<Clock>> {
        let rows = sqlx::query(&format!(
            "SELECT {CLOCK_COLUMNS} FROM sla_clocks WHERE started_at >= ? AND started_at < ?"
        ))
        .bind(ms(from))
        .bind(ms(to))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(clock_from_row).collect()
    }

    async fn events_between(
        &self,
        kind: EventKind,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Event>> {
        let rows = sqlx::query(
            "SELECT body FROM events WHERE kind = ? AND at >= ? AND at < ? ORDER BY at",
        )
        .bind(kind.as_str())
        .bind(ms(from))
        .bind(ms(to))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| self.seal.event_in(r.try_get("body")?))
            .collect()
    }

    async fn put_case_update(&self, u: &CaseUpdate) -> Result<bool> {
        let (case_no, version, body) = (
            u.case_no.clone(),
            u.version as i64,
            serde_json::to_string(u)?,
        );
        self.write(move |conn| {
            Box::pin(async move {
                let r = sqlx::query(
                    "INSERT OR IGNORE INTO legal_aid_updates (case_no, version, body, received_at) \
                     VALUES (?, ?, ?, ?)",
                )
                .bind(&case_no)
                .bind(version)
                .bind(&body)
                .bind(ms(Utc::now()))
                .execute(conn)
                .await?;
                Ok(r.rows_affected() == 1)
            })
        })
        .await
    }

    async fn case_updates_after(&self, case_no: &str, version: u64) -> Result<Vec<CaseUpdate>> {
        let rows = sqlx::query(
            "SELECT body FROM legal_aid_updates WHERE case_no = ? AND version > ? ORDER BY version",
        )
        .bind(case_no)
        .bind(version as i64)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(doc_from_row).collect()
    }

    async fn legal_aid_case(&self, case_no: &str) -> Result<Option<LegalAidCase>> {
        let row = sqlx::query("SELECT body FROM legal_aid_cases WHERE case_no = ?")
            .bind(case_no)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(doc_from_row).transpose()
    }

    async fn save_case(&self, case: &LegalAidCase, expected: u64) -> Result<bool> {
        let c = case.clone();
        let body = serde_json::to_string(case)?;
        self.write(move |conn| {
            Box::pin(async move {
                let r = if expected == 0 {
                    sqlx::query(
                        "INSERT OR IGNORE INTO legal_aid_cases \
                         (case_no, ticket_id, version, open, body, updated_at) \
                         VALUES (?, ?, ?, ?, ?, ?)",
                    )
                    .bind(&c.case_no)
                    .bind(c.ticket_id.to_string())
                    .bind(c.version as i64)
                    .bind(!c.status.is_final())
                    .bind(&body)
                    .bind(ms(c.updated_at))
                    .execute(conn)
                    .await?
                } else {
                    sqlx::query(
                        "UPDATE legal_aid_cases SET version = ?, open = ?, body = ?, updated_at = ? \
                         WHERE case_no = ? AND version = ?",
                    )
                    .bind(c.version as i64)
                    .bind(!c.status.is_final())
                    .bind(&body)
                    .bind(ms(c.updated_at))
                    .bind(&c.case_no)
                    .bind(expected as i64)
                    .execute(conn)
                    .await?
                };
                Ok(r.rows_affected() == 1)
            })
        })
        .await
    }

    async fn legal_aid_cases(&self, q: &CaseQuery) -> Result<Vec<LegalAidCase>> {
        let rows = sqlx::query(
            "SELECT body FROM legal_aid_cases WHERE (?1 IS NULL OR ticket_id = ?1) \
             AND (?2 IS NULL OR open = ?2) ORDER BY case_no",
        )
        .bind(q.ticket_id.map(|t| t.to_string()))
        .bind(q.open)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(doc_from_row).collect()
    }

    async fn raise_alert(&self, a: NewAlert) -> Result<bool> {
        self.write(move |conn| {
            Box::pin(async move {
                let r = sqlx::query(
                    "INSERT OR IGNORE INTO alerts (id, key, kind, ticket_id, party, message, detail, created_at) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(Uuid::now_v7().to_string())
                .bind(&a.key)
                .bind(a.kind.as_str())
                .bind(a.ticket_id.map(|t| t.to_string()))
                .bind(&a.party)
                .bind(&a.message)
                .bind(a.detail.to_string())
                .bind(ms(Utc::now()))
                .execute(conn)
                .await?;
                Ok(r.rows_affected() == 1)
            })
        })
        .await
    }

    async fn alerts(&self, q: &AlertQuery) -> Result<Vec<Alert>> {
        let rows = sqlx::query(
            "SELECT * FROM alerts WHERE (?1 IS NULL OR (?1 = 1) = (acknowledged_at IS NULL)) \
             AND (?2 IS NULL OR kind = ?2) AND (?3 IS NULL OR ticket_id = ?3) \
             ORDER BY created_at DESC, id DESC LIMIT ?4",
        )
        .bind(q.open)
        .bind(q.kind.map(AlertKind::as_str))
        .bind(q.ticket_id.map(|t| t.to_string()))
        .bind(page_limit(q.limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(alert_from_row).collect()
    }

    async fn open_alert_counts(&self) -> Result<Vec<AlertCount>> {
        let rows = sqlx::query(
            "SELECT a.kind, a.party, json_extract(t.draft, '$.units[0]') AS unit, COUNT(*) AS n \
             FROM alerts a LEFT JOIN tickets t ON t.id = a.ticket_id \
             WHERE a.acknowledged_at IS NULL GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AlertCount {
                    kind: get_enum(r, "kind")?,
                    party: r.try_get("party")?,
                    unit: r.try_get("unit")?,
                    open: r.try_get::<i64, _>("n")? as u64,
                })
            })
            .collect()
    }

    async fn ack_alert(&self, id: Uuid, by: &str) -> Result<Option<Alert>> {
        let by = by.to_owned();
        self.write(move |conn| {
            Box::pin(async move {
                sqlx::query(
                    "UPDATE alerts SET acknowledged_at = ?, acknowledged_by = ? \
                     WHERE id = ? AND acknowledged_at IS NULL",
                )
                .bind(ms(Utc::now()))
                .bind(&by)
                .bind(id.to_string())
                .execute(&mut *conn)
                .await?;
                sqlx::query("SELECT * FROM alerts WHERE id = ?")
                    .bind(id.to_string())
                    .fetch_optional(conn)
                    .await?
                    .as_ref()
                    .map(alert_from_row)
                    .transpose()
            })
        })
        .await
    }

    async fn caller_tickets(&self, caller_hash: &str, since: DateTime<Utc>) -> Result<Vec<Uuid>> {
        let rows = sqlx::query(CALLER_TICKETS)
            .bind(caller_hash)
            .bind(ms(since))
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(|r| get_uuid(r, "id")).collect()
    }

    async fn cursor(&self, partner: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT cursor FROM partner_cursors WHERE partner = ?")
                .bind(partner)
                .fetch_optional(&self.read)
                .await?,
        )
    }

    async fn set_cursor(&self, partner: &str, cursor: &str) -> Result<()> {
        let (partner, cursor) = (partner.to_owned(), cursor.to_owned());
        self.write(move |conn| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO partner_cursors (partner, cursor, updated_at) VALUES (?, ?, ?) \
                     ON CONFLICT (partner) DO UPDATE SET cursor = excluded.cursor, \
                     updated_at = excluded.updated_at",
                )
                .bind(&partner)
                .bind(&cursor)
                .bind(ms(Utc::now()))
                .execute(conn)
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn insert_transfer(
        &self,
        transfer: &Transfer,
        entry: TransferEntry,
    ) -> Result<TransferInsert> {
        let t = transfer.clone();
        let doc = self.seal.transfer_out(&t)?;
        self.write(move |conn| {
            Box::pin(async move {
                if t.direction == crate::transfer::record::Direction::Inbound
                    && let Some(r) = &t.partner_ref
                {
                    let existing: Option<String> = sqlx::query_scalar(
                        "SELECT id FROM transfers WHERE direction = 'inbound' AND partner = ? \
                         AND partner_ref = ?",
                    )
                    .bind(&t.partner)
                    .bind(r)
                    .fetch_optional(&mut *conn)
                    .await?;
                    if let Some(id) = existing {
                        let id =
                            Uuid::from_str(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                        return Ok(TransferInsert::Duplicate(id));
                    }
                }
                sqlx::query(
                    "INSERT INTO transfers (id, direction, partner, call_id, partner_ref, state, \
                     requested_at, deadline_at, fallback_ticket_id, fallback_due, notify_pending, \
                     version, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(t.id.to_string())
                .bind(t.direction.as_str())
                .bind(&t.partner)
                .bind(&t.call_id)
                .bind(&t.partner_ref)
                .bind(t.state.as_str())
                .bind(ms(t.requested_at))
                .bind(t.deadline_at.map(ms))
                .bind(t.fallback_ticket_id.map(|u| u.to_string()))
                .bind(t.fallback_due())
                .bind(t.notify_pending)
                .bind(t.version)
                .bind(&doc)
                .execute(&mut *conn)
                .await?;
                insert_transfer_entry(conn, &entry).await?;
                Ok(TransferInsert::New(t.id))
            })
        })
        .await
    }

    async fn update_transfer(
        &self,
        transfer: &Transfer,
        entries: Vec<TransferEntry>,
    ) -> Result<()> {
        let t = transfer.clone();
        let doc = self.seal.transfer_out(&t)?;
        self.write(move |conn| {
            Box::pin(async move {
                let r = sqlx::query(
                    "UPDATE transfers SET partner_ref = ?, state = ?, deadline_at = ?, \
                     fallback_ticket_id = ?, fallback_due = ?, notify_pending = ?, version = ?, \
                     doc = ? WHERE id = ? AND version = ?",
                )
                .bind(&t.partner_ref)
                .bind(t.state.as_str())
                .bind(t.deadline_at.map(ms))
                .bind(t.fallback_ticket_id.map(|u| u.to_string()))
                .bind(t.fallback_due())
                .bind(t.notify_pending)
                .bind(t.version)
                .bind(&doc)
                .bind(t.id.to_string())
                .bind(t.version - 1)
                .execute(&mut *conn)
                .await?;
                if r.rows_affected() != 1 {
                    return Err(StoreError::StatusChanged);
                }
                for e in &entries {
                    insert_transfer_entry(conn, e).await?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn record_transfer_entry(&self, entry: TransferEntry) -> Result<bool> {
        self.write(move |conn| Box::pin(async move { insert_transfer_entry(conn, &entry).await }))
            .await
    }

    async fn transfer(&self, id: Uuid) -> Result<Option<Transfer>> {
        let doc: Option<String> = sqlx::query_scalar("SELECT doc FROM transfers WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await?;
        doc.map(|d| self.seal.transfer_in(&d)).transpose()
    }

    async fn transfer_entries(&self, id: Uuid) -> Result<Vec<TransferEntry>> {
        let rows = sqlx::query("SELECT * FROM transfer_entries WHERE transfer_id = ? ORDER BY seq")
            .bind(id.to_string())
            .fetch_all(&self.read)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(TransferEntry {
                    transfer_id: get_uuid(r, "transfer_id")?,
                    kind: r.try_get("kind")?,
                    at: from_ms(r.try_get("at")?)?,
                    recorded_at: from_ms(r.try_get("recorded_at")?)?,
                    source: r.try_get("source")?,
                    outcome: get_enum(r, "outcome")?,
                    detail: r.try_get("detail")?,
                    key: r.try_get("key")?,
                })
            })
            .collect()
    }

    async fn transfers_due(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Transfer>> {
        let docs: Vec<String> = sqlx::query_scalar(
            "SELECT doc FROM transfers WHERE deadline_at <= ?1 OR fallback_due = 1 \
             OR notify_pending = 1 ORDER BY requested_at LIMIT ?2",
        )
        .bind(ms(now))
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        docs.iter().map(|d| self.seal.transfer_in(d)).collect()
    }

    async fn transfers(&self, q: &TransferQuery) -> Result<Vec<Transfer>> {
        let docs: Vec<String> = sqlx::query_scalar(
            "SELECT doc FROM transfers WHERE (?1 IS NULL OR partner = ?1) \
             AND (?2 IS NULL OR state = ?2) AND (?3 IS NULL OR direction = ?3) \
             AND (?4 IS NULL OR requested_at >= ?4) ORDER BY requested_at DESC, id DESC LIMIT ?5",
        )
        .bind(&q.partner)
        .bind(q.state.map(|s| s.as_str()))
        .bind(q.direction.map(|d| d.as_str()))
        .bind(q.since.map(ms))
        .bind(page_limit(q.limit))
        .fetch_all(&self.read)
        .await?;
        docs.iter().map(|d| self.seal.transfer_in(d)).collect()
    }

    async fn running_clocks(&self, limit: u32) -> Result<Vec<Clock>> {
        let rows = sqlx::query(&format!(
            "SELECT {CLOCK_COLUMNS} FROM sla_clocks WHERE state = 'running' \
             ORDER BY due_at, id LIMIT ?"
        ))
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(clock_from_row).collect()
    }

    async fn record_audit(&self, entry: NewAudit) -> Result<AuditEntry> {
        self.write(move |conn| {
            Box::pin(async move {
                let last = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                    .fetch_optional(&mut *conn)
                    .await?;
                let (seq, prev_hash) = match last {
                    Some(r) => (
                        r.try_get::<i64, _>("seq")? as u64 + 1,
                        r.try_get::<String, _>("hash")?,
                    ),
                    None => (1, crate::audit::GENESIS.to_owned()),
                };
                // Millisecond precision, as stored, so the hash can be checked later.
                let at = from_ms(ms(Utc::now()))?;
                let hash = crate::audit::entry_hash(&prev_hash, seq, at, &entry);
                sqlx::query(
                    "INSERT INTO audit_log (seq, at, actor, role, action, target, reason, detail, \
                     prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(seq as i64)
                .bind(ms(at))
                .bind(&entry.actor)
                .bind(&entry.role)
                .bind(&entry.action)
                .bind(&entry.target)
                .bind(&entry.reason)
                .bind(entry.detail.to_string())
                .bind(&prev_hash)
                .bind(&hash)
                .execute(&mut *conn)
                .await?;
                Ok(AuditEntry {
                    seq,
                    at,
                    actor: entry.actor,
                    role: entry.role,
                    action: entry.action,
                    target: entry.target,
                    reason: entry.reason,
                    detail: entry.detail,
                    prev_hash,
                    hash,
                })
            })
        })
        .await
    }

    async fn audit_log(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT * FROM audit_log WHERE (?1 IS NULL OR actor = ?1) \
             AND (?2 IS NULL OR action = ?2) AND (?3 IS NULL OR seq < ?3) \
             ORDER BY seq DESC LIMIT ?4",
        )
        .bind(&q.actor)
        .bind(&q.action)
        .bind(q.before.map(|b| b as i64))
        .bind(page_limit(q.limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let detail: String = r.try_get("detail")?;
                Ok(AuditEntry {
                    seq: r.try_get::<i64, _>("seq")? as u64,
                    at: from_ms(r.try_get("at")?)?,
                    actor: r.try_get("actor")?,
                    role: r.try_get("role")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    reason: r.try_get("reason")?,
                    detail: serde_json::from_str(&detail)?,
                    prev_hash: r.try_get("prev_hash")?,
                    hash: r.try_get("hash")?,
                })
            })
            .collect()
    }

    async fn set_pause(&self, partner: &str, pause: Option<Pause>) -> Result<()> {
        let partner = partner.to_owned();
        self.write(move |conn| {
            Box::pin(async move {
                match pause {
                    Some(p) => {
                        sqlx::query(
                            "INSERT INTO partner_pauses (partner, since, by, reason) \
                             VALUES (?, ?, ?, ?) ON CONFLICT (partner) DO UPDATE SET \
                             since = excluded.since, by = excluded.by, reason = excluded.reason",
                        )
                        .bind(&partner)
                        .bind(ms(p.since))
                        .bind(&p.by)
                        .bind(&p.reason)
                        .execute(conn)
                        .await?;
                    }
                    None => {
                        sqlx::query("DELETE FROM partner_pauses WHERE partner = ?")
                            .bind(&partner)
                            .execute(conn)
                            .await?;
                    }
                }
                Ok(())
            })
        })
        .await
    }

    async fn pauses(&self) -> Result<Vec<Pause>> {
        let rows = sqlx::query("SELECT * FROM partner_pauses ORDER BY partner")
            .fetch_all(&self.read)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Pause {
                    partner: r.try_get("partner")?,
                    since: from_ms(r.try_get("since")?)?,
                    by: r.try_get("by")?,
                    reason: r.try_get("reason")?,
                })
            })
            .collect()
    }

    async fn try_lease(
        &self,
        job: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<bool> {
        let (job, holder) = (job.to_owned(), holder.to_owned());
        let until = now
            .checked_add_signed(crate::time::span(ttl))
            .unwrap_or(now);
        self.write(move |conn| {
            Box::pin(async move {
                let got: Option<String> = sqlx::query_scalar(
                    "INSERT INTO job_leases (job, holder, until) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, until = excluded.until \
                     WHERE job_leases.until < ?4 OR job_leases.holder = excluded.holder \
                     RETURNING holder",
                )
                .bind(&job)
                .bind(&holder)
                .bind(ms(until))
                .bind(ms(now))
                .fetch_optional(conn)
                .await?;
                Ok(got.is_some())
            })
        })
        .await
    }

    async fn remember_nonce(&self, n: &Nonce) -> Result<bool> {
        // Early: a later check on this connection sees the nonce at once; were it lost in a crash
        // before the commit, so is whatever the request wrote after it (a later commit), and a
        // replay is then taken as the duplicate its idempotency keys make it.
        let mut script = Script::default();
        push_take_nonce(&mut script, n);
        self.script(true, script, changed_one).await
    }

    async fn purge_personal_data(
        &self,
        closed_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Uuid>> {
        let seal = self.seal.clone();
        self.write(move |conn| {
            Box::pin(async move {
                let ids = purge_rows(
                    conn,
                    &format!(
                        "SELECT id, draft AS doc FROM tickets WHERE status IN {ENDED_STATUSES} \
                         AND updated_at < ? AND purged_at IS NULL ORDER BY updated_at LIMIT ?"
                    ),
                    "UPDATE tickets SET draft = ?, caller_hash = NULL, purged_at = ? WHERE id = ?",
                    closed_before,
                    limit,
                    |doc| seal.draft_purged(doc),
                )
                .await?;
                // A legal-aid application on the ticket holds the applicant's data too.
                for id in &ids {
                    let events =
                        sqlx::query("SELECT id, body FROM events WHERE ticket_id = ? AND kind = ?")
                            .bind(id.to_string())
                            .bind(EventKind::LegalAid.as_str())
                            .fetch_all(&mut *conn)
                            .await?;
                    for e in &events {
                        if let Some(body) = seal.event_purged(&e.text("body")?)? {
                            sqlx::query("UPDATE events SET body = ? WHERE id = ?")
                                .bind(body)
                                .bind(e.text("id")?)
                                .execute(&mut *conn)
                                .await?;
                        }
                    }
                }
                Ok(ids)
            })
        })
        .await
    }

    async fn purge_transfers(
        &self,
        requested_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Uuid>> {
        let seal = self.seal.clone();
        self.write(move |conn| {
            Box::pin(async move {
                purge_rows(
                    conn,
                    &format!(
                        "SELECT id, doc FROM transfers WHERE {ENDED_TRANSFERS} \
                         AND requested_at < ? ORDER BY requested_at LIMIT ?"
                    ),
                    "UPDATE transfers SET doc = ?, purged_at = ? WHERE id = ?",
                    requested_before,
                    limit,
                    |doc| seal.transfer_purged(doc),
                )
                .await
            })
        })
        .await
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        if self.writer.is_closed() {
            return Err(StoreError::Closed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(sql: &str) -> Work {
        let mut script = Script::default();
        script.push(sql);
        Work::Script(ScriptJob {
            script,
            tx: None,
            early: false,
        })
    }

    fn nothing(_: &mut SqliteConnection) -> BoxFut<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    fn run() -> Work {
        let (tx, _rx) = oneshot::channel();
        Work::Run(Box::new(Job { f: nothing, tx }))
    }

    /// What a batch's jobs are, in order: a script's statement or `run`.
    fn order(batch: &[Work]) -> Vec<String> {
        batch
            .iter()
            .map(|w| match w {
                Work::Script(j) => j.script.sql().trim().to_owned(),
                Work::Run(_) => "run".to_owned(),
            })
            .collect()
    }

    #[test]
    fn a_batch_of_scripts_runs_as_scripts_and_any_other_keeps_its_order() {
        let scripts = scripts_only(vec![script("SELECT 1"), script("SELECT 2")])
            .unwrap_or_else(|_| panic!("scripts alone"));
        assert_eq!(scripts.len(), 2);
        let mixed = vec![script("SELECT 1"), run(), script("SELECT 2"), run()];
        let want = order(&mixed);
        let Err(back) = scripts_only(mixed) else {
            panic!("a batch with a job of its own is mixed");
        };
        assert_eq!(order(&back), want);
    }

    /// SQLite uses an expression index only for a query that names the same expression: the
    /// SLA scan's query must be served by `sla_clocks_wake`, in its order, not by a walk over
    /// every clock and a sort.
    #[tokio::test]
    async fn the_clock_scan_is_served_by_the_wake_index() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = SqliteStore::open(&dir.path().join("gw.db"))
            .await
            .expect("store");
        let plan: Vec<String> = sqlx::query(&format!("EXPLAIN QUERY PLAN {}", clocks_waking_sql()))
            .bind(0_i64)
            .bind(10_i64)
            .fetch_all(&store.read)
            .await
            .expect("plan")
            .iter()
            .map(|r| r.get::<String, _>("detail"))
            .collect();
        assert!(
            plan.iter()
                .any(|p| p.contains("USING INDEX sla_clocks_wake")),
            "plan: {plan:?}"
        );
        assert!(
            !plan.iter().any(|p| p.contains("TEMP B-TREE")),
            "plan: {plan:?}"
        );
    }
}
