//! Makes the SQLite writer's committed batches durable beside it, not inside its commits.
//!
//! With `synchronous=FULL`, SQLite syncs the write-ahead log inside every `COMMIT`, and the
//! writer waits for the disk before it may begin the next batch. The writer runs with
//! `synchronous=NORMAL` instead (its commits write the log's frames without syncing them) and
//! hands each committed batch's answers here; this thread syncs the log file and only then
//! answers them. Meanwhile the writer already runs the next batch, so the disk's wait and the
//! next batch's work overlap, and one sync covers every batch committed before it began.
//!
//! Why this is as safe as `FULL`: a sync of the log file makes every frame written to it before
//! the sync began durable, and a batch is handed over only after its commit wrote its frames.
//! Nothing is answered before its sync. After a power loss SQLite recovers the log up to its
//! last complete commit (each frame's checksum chains to the one before), so a batch not yet
//! synced is lost whole, together with every later one, never partly; and nobody was told of it.
//! SQLite still syncs the log itself where order on disk matters to it: the log's header when
//! the log starts over, and the log before a checkpoint copies frames into the database (with
//! `NORMAL` as with `FULL`). Readers may see a batch up to one sync before its writers hear.
//!
//! A sync that fails leaves the log's state on disk unknown (Linux may have dropped the failed
//! pages): the batches waiting are answered with the error, and [`LogSync::failed`] tells the
//! writer to stop taking writes, so that the gateway is restarted and recovers from disk.

use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use super::{Result, StoreError};

/// The log file's syncing thread; ends once this is dropped and what it holds is answered.
pub(super) struct LogSync<T> {
    tx: mpsc::Sender<T>,
    failed: Arc<AtomicBool>,
}

impl<T: Send + 'static> LogSync<T> {
    /// Starts syncing `log` (the database's `-wal` file, open for as long as the writer's
    /// connection keeps the log in place); `settle` answers the items of one sync with its
    /// outcome.
    pub(super) fn start(
        log: File,
        settle: impl Fn(Vec<T>, Result<()>) + Send + 'static,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<T>();
        let failed = Arc::new(AtomicBool::new(false));
        let flag = failed.clone();
        std::thread::Builder::new()
            .name("sqlite-log-sync".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    // Everything handed over by now was committed before this sync begins.
                    let mut items = vec![first];
                    items.extend(rx.try_iter());
                    let started = std::time::Instant::now();
                    let outcome = if flag.load(Ordering::Relaxed) {
                        Err(StoreError::Database(
                            "an earlier sync of the SQLite log failed".into(),
                        ))
                    } else {
                        log.sync_data().map_err(|e| {
                            flag.store(true, Ordering::Relaxed);
                            tracing::error!(error = %e, "syncing the SQLite log failed; \
                                the store takes no more writes (restart to recover)");
                            StoreError::Database(format!(
                                "the SQLite log could not be synced to disk: {e}"
                            ))
                        })
                    };
                    metrics::histogram!("hotline_store_sync_seconds")
                        .record(started.elapsed().as_secs_f64());
                    metrics::histogram!("hotline_store_sync_batches").record(items.len() as f64);
                    settle(items, outcome);
                }
            })?;
        Ok(Self { tx, failed })
    }

    /// Answers `item` once a sync that begins after this call has ended.
    pub(super) fn after_sync(&self, item: T) {
        // The thread ends only when this sender is dropped, so the send cannot fail.
        let _ = self.tx.send(item);
    }

    /// Whether a sync failed: the writer must take no more writes.
    pub(super) fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    /// Items answered, each with whether its sync succeeded.
    type Answers = Arc<Mutex<Vec<(u32, bool)>>>;

    /// A syncer on `file` whose answers go to the returned list.
    fn syncer(file: File) -> (LogSync<u32>, Answers) {
        let answers = Arc::new(Mutex::new(Vec::new()));
        let seen = answers.clone();
        let log = LogSync::start(file, move |items, outcome: Result<()>| {
            let mut seen = seen.lock().unwrap();
            seen.extend(items.into_iter().map(|i| (i, outcome.is_ok())));
        })
        .unwrap();
        (log, answers)
    }

    fn wait_for(answers: &Mutex<Vec<(u32, bool)>>, n: usize) -> Vec<(u32, bool)> {
        for _ in 0..500 {
            let seen = answers.lock().unwrap().clone();
            if seen.len() >= n {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("only {:?} answered", answers.lock().unwrap());
    }

    #[test]
    fn every_item_is_answered_once_in_order_after_a_sync() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("log")).unwrap();
        let (log, answers) = syncer(file);
        for i in 0..100 {
            log.after_sync(i);
        }
        let seen = wait_for(&answers, 100);
        assert_eq!(seen, (0..100).map(|i| (i, true)).collect::<Vec<_>>());
        assert!(!log.failed());
    }

    #[test]
    fn a_failed_sync_answers_errors_from_then_on_and_says_so() {
        // Linux refuses to sync a character device (EINVAL): a real failing sync.
        let (log, answers) = syncer(File::open("/dev/null").unwrap());
        log.after_sync(1);
        assert_eq!(wait_for(&answers, 1), vec![(1, false)]);
        assert!(log.failed());
        log.after_sync(2);
        assert_eq!(wait_for(&answers, 2), vec![(1, false), (2, false)]);
    }
}
