//! Durable state behind one trait: tickets, their events, the delivery outbox and its attempts.
//!
//! [`sqlite::SqliteStore`] is the embedded default. Every method is a business operation and is
//! atomic; nothing is acknowledged to a caller before it is committed to disk.

pub mod dump;
mod log_sync;
mod postgres;
mod rows;
mod script;
mod sqlite;
mod types;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hotline_model::legal_aid::CaseUpdate;
use hotline_model::{Event, Ticket};
use uuid::Uuid;

pub use postgres::PgStore;
pub(crate) use rows::enum_str;
pub use rows::{PURGED, Seal};
pub use sqlite::{SqliteStore, configure_sqlite};
pub use types::*;

pub use crate::transfer::record::{Transfer, TransferEntry, TransferInsert, TransferQuery};

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("the store is shutting down")]
    Closed,
    /// Undoing a failed write failed: the transaction it ran in must not commit.
    #[error("a failed write could not be undone: {0}")]
    InDoubt(String),
    #[error("{0}")]
    Conflict(String),
    /// The ticket's status changed meanwhile; read it again and retry.
    #[error("the ticket's status changed meanwhile")]
    StatusChanged,
    /// The operation lost a race with another writer (a key taken meanwhile, a serialization
    /// failure, a deadlock) or its connection; running it again from the start is safe.
    #[error("database contention or lost connection: {0}")]
    Contention(String),
    /// A new ticket's request nonce ([`NewTicket::nonce`]) was used before: a replayed request.
    #[error("nonce `{0}` was already used; a replayed request is refused")]
    Replayed(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        // unique_violation, serialization_failure, deadlock_detected
        const RACES: [&str; 3] = ["23505", "40001", "40P01"];
        match &e {
            sqlx::Error::Database(d) if d.code().is_some_and(|c| RACES.contains(&c.as_ref())) => {
                Self::Contention(e.to_string())
            }
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => Self::Contention(e.to_string()),
            _ => Self::Database(e.to_string()),
        }
    }
}

/// The SQLite writer's scripts run through rusqlite on the writer's handle (see `script.rs`).
impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Database(e.to_string())
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        Self::Corrupt(e.to_string())
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Opens the configured store, creating or migrating its schema; personal data is sealed with
/// `seal`.
pub async fn open(
    config: &crate::config::StoreConfig,
    seal: Seal,
) -> Result<std::sync::Arc<dyn Store>> {
    use crate::config::StoreKind;
    Ok(match config.kind {
        StoreKind::Sqlite => {
            std::sync::Arc::new(SqliteStore::open(&config.path).await?.sealed(seal))
        }
        StoreKind::Postgres => {
            std::sync::Arc::new(PgStore::open(postgres_url(config)?).await?.sealed(seal))
        }
    })
}

/// The PostgreSQL URL of a `postgres` store.
pub(crate) fn postgres_url(config: &crate::config::StoreConfig) -> Result<&str> {
    config.url.as_deref().ok_or_else(|| {
        StoreError::Database("store.url is required for the PostgreSQL store".into())
    })
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores a new ticket with its first event and an outbox row per target, unless one of
    /// `keys` was already used by the same origin, in which case nothing is written.
    async fn accept_ticket(&self, cmd: NewTicket) -> Result<Accepted>;

    /// Stores an event on an existing ticket (and the ticket's new status, and an outbox row per
    /// target), unless one of `keys` was already used by the same source.
    async fn record_event(&self, cmd: NewEvent) -> Result<Accepted>;

    /// The ticket and event an earlier message with one of `keys` from `source` created.
    async fn seen(&self, source: &str, keys: &[String]) -> Result<Option<(Uuid, Uuid)>>;

    /// Records a message the lifecycle refused.
    async fn record_refusal(&self, refused: RefusedEvent) -> Result<()>;

    /// The refused messages of a ticket, oldest first.
    async fn refusals(&self, ticket_id: Uuid) -> Result<Vec<RefusedEvent>>;

    /// The ticket a system knows by its own number.
    async fn resolve_number(&self, system: &str, number: &str) -> Result<Option<Uuid>>;

    async fn ticket(&self, id: Uuid) -> Result<Option<Ticket>>;
    async fn tickets(&self, q: &TicketQuery) -> Result<Vec<Ticket>>;
    async fn events(&self, ticket_id: Uuid) -> Result<Vec<Event>>;

    async fn delivery(&self, id: Uuid) -> Result<Option<Delivery>>;
    async fn deliveries(&self, q: &DeliveryQuery) -> Result<Vec<Delivery>>;

    /// Every delivery of a ticket (up to 1000), oldest first.
    async fn ticket_deliveries(&self, ticket_id: Uuid) -> Result<Vec<Delivery>> {
        self.deliveries(&DeliveryQuery {
            ticket_id: Some(ticket_id),
            limit: Some(1000),
            ..Default::default()
        })
        .await
    }
    /// Every attempt of every delivery of a ticket, oldest first.
    async fn attempts_for_ticket(&self, ticket_id: Uuid) -> Result<Vec<AttemptRecord>>;

    /// Takes up to `limit` due deliveries to `partner` under a lease of `lease`: pending and
    /// retrying rows whose time has come, and rows whose lease expired (a crashed worker). A row
    /// waits while an earlier row for the same ticket and partner is not yet acknowledged.
    async fn claim(
        &self,
        partner: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Claim>>;

    /// The claim a queue message stands for, if it still holds: the delivery is being sent
    /// under exactly this lease. `None` when it was finished or claimed again meanwhile.
    async fn claimed(&self, token: &ClaimToken) -> Result<Option<Claim>>;

    /// Records an attempt and moves the delivery on. Returns `false` when the lease was lost
    /// (the row was re-claimed or acknowledged meanwhile); the attempt is recorded regardless.
    async fn finish_attempt(
        &self,
        claim: &ClaimToken,
        attempt: AttemptRecord,
        next: Next,
    ) -> Result<bool>;

    /// Applies a partner's asynchronous acknowledgement of the message we sent as `message_id`.
    async fn acknowledge(
        &self,
        partner: &str,
        message_id: Uuid,
        ack: LateAck,
    ) -> Result<Option<Delivery>>;

    /// Puts a dead delivery back in the queue with a fresh retry budget.
    async fn retry(&self, id: Uuid, now: DateTime<Utc>) -> Result<RetryResult>;

    /// When the next delivery to `partner` falls due, if any is waiting.
    async fn next_due(&self, partner: &str) -> Result<Option<DateTime<Utc>>>;

    /// Gives back claims that were never sent (a worker stopping with deliveries claimed ahead):
    /// each delivery whose lease `token` still holds is due again at `now`, its claim's attempt
    /// uncounted; returns how many.
    async fn release_claims(&self, tokens: &[ClaimToken], now: DateTime<Utc>) -> Result<u64>;

    /// Makes the partner's retrying deliveries due at `now`, the earliest `limit` of them or all
    /// (its circuit breaker probes, or closed); returns how many.
    async fn release_retries(
        &self,
        partner: &str,
        now: DateTime<Utc>,
        limit: Option<u32>,
    ) -> Result<u64>;

    /// Outbox row counts by partner and status.
    async fn delivery_counts(&self) -> Result<Vec<StatusCount>>;

    /// A ticket's SLA clocks, oldest first.
    async fn clocks(&self, ticket_id: Uuid) -> Result<Vec<Clock>>;

    /// Running clocks not yet marked overdue whose next wake has come, earliest first: the
    /// urge time (or the deadline, should it come first) while a clock is not urged, the
    /// deadline after. One index serves it (`sla_clocks_wake`); the scan decides which mark
    /// each clock needs now.
    async fn clocks_waking(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Clock>>;

    /// Marks a clock urged or overdue; `false` when it already was (another scan did it).
    async fn mark_clock(&self, id: Uuid, mark: ClockMark, at: DateTime<Utc>) -> Result<bool>;

    /// Running clocks with a provisional deadline.
    async fn provisional_clocks(&self) -> Result<Vec<Clock>>;

    /// Applies clock changes outside of any event (a reloaded calendar).
    async fn change_clocks(&self, ops: Vec<ClockOp>) -> Result<()>;

    /// Clocks started in `[from, to)`, for statistics.
    async fn clocks_started(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<Clock>>;

    /// Events of `kind` in `[from, to)`, for statistics.
    async fn events_between(
        &self,
        kind: hotline_model::EventKind,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Event>>;

    /// Keeps a legal-aid case update; `false` when that version was kept before.
    async fn put_case_update(&self, update: &CaseUpdate) -> Result<bool>;

    /// A case's kept updates after `version`, in version order.
    async fn case_updates_after(&self, case_no: &str, version: u64) -> Result<Vec<CaseUpdate>>;

    async fn legal_aid_case(&self, case_no: &str) -> Result<Option<LegalAidCase>>;

    /// Saves a case whose stored version is `expected` (0: a new case); `false` when another
    /// writer saved it first.
    async fn save_case(&self, case: &LegalAidCase, expected: u64) -> Result<bool>;

    async fn legal_aid_cases(&self, q: &CaseQuery) -> Result<Vec<LegalAidCase>>;

    /// Raises an alert unless one with its key exists; `true` when raised.
    async fn raise_alert(&self, alert: NewAlert) -> Result<bool>;

    async fn alerts(&self, q: &AlertQuery) -> Result<Vec<Alert>>;

    /// Open alerts counted by kind and party.
    async fn open_alert_counts(&self) -> Result<Vec<AlertCount>>;

    /// Acknowledges an alert; `None` when there is no such alert.
    async fn ack_alert(&self, id: Uuid, by: &str) -> Result<Option<Alert>>;

    /// Tickets of the caller with this phone hash created since `since`, oldest first (the
    /// same as [`Accepted::Created::caller_tickets`], asked for on its own).
    async fn caller_tickets(&self, caller_hash: &str, since: DateTime<Utc>) -> Result<Vec<Uuid>>;

    /// Where polling of a partner's outbox resumes.
    async fn cursor(&self, partner: &str) -> Result<Option<String>>;

    /// Remembers where polling of a partner's outbox resumes.
    async fn set_cursor(&self, partner: &str, cursor: &str) -> Result<()>;

    /// Stores a new transfer with its first log entry. An inbound transfer the partner already
    /// offered (same partner and `partner_ref`) is not stored again.
    async fn insert_transfer(
        &self,
        transfer: &Transfer,
        entry: TransferEntry,
    ) -> Result<TransferInsert>;

    /// Stores a changed transfer, with its log entries, if it is still at `transfer.version - 1`;
    /// [`StoreError::StatusChanged`] otherwise.
    async fn update_transfer(&self, transfer: &Transfer, entries: Vec<TransferEntry>)
    -> Result<()>;

    /// Adds a log entry on its own (a late or rejected event). `false` when an entry with the
    /// same key exists.
    async fn record_transfer_entry(&self, entry: TransferEntry) -> Result<bool>;

    async fn transfer(&self, id: Uuid) -> Result<Option<Transfer>>;

    /// A transfer's log, oldest first.
    async fn transfer_entries(&self, id: Uuid) -> Result<Vec<TransferEntry>>;

    /// Transfers with work to do: a timer run out by `now`, a fallback ticket to file, the home
    /// CTI to tell.
    async fn transfers_due(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Transfer>>;

    async fn transfers(&self, q: &TransferQuery) -> Result<Vec<Transfer>>;

    /// How many deliveries match `q` (its `after` and `limit` are ignored).
    async fn count_deliveries(&self, q: &DeliveryQuery) -> Result<u64>;

    /// Running clocks, earliest deadline first.
    async fn running_clocks(&self, limit: u32) -> Result<Vec<Clock>>;

    /// Appends an entry to the audit log, chained to the last one.
    async fn record_audit(&self, entry: NewAudit) -> Result<AuditEntry>;

    /// Audit log entries, newest first.
    async fn audit_log(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>>;

    /// Pauses deliveries to a partner (`Some`) or resumes them (`None`).
    async fn set_pause(&self, partner: &str, pause: Option<Pause>) -> Result<()>;

    /// The partners whose deliveries are paused.
    async fn pauses(&self) -> Result<Vec<Pause>>;

    /// Takes or renews the lease on a scheduled job for `ttl`: `true` when `holder` has it (it
    /// was free, expired, or already `holder`'s), `false` when another instance holds it.
    async fn try_lease(
        &self,
        job: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<bool>;

    /// Remembers a partner request's nonce until `keep` from `now`; `false` when it was
    /// already remembered (a replay). Forgets expired nonces on the way.
    async fn remember_nonce(&self, nonce: &Nonce) -> Result<bool>;

    /// Retention: blanks the caller's personal data (name, phone, ID number, address, phone
    /// hash) of up to `limit` tickets closed, withdrawn or merged before `closed_before`, once
    /// each; returns their ids.
    async fn purge_personal_data(
        &self,
        closed_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Uuid>>;

    /// Retention: blanks the caller's personal data in the offers of up to `limit` ended
    /// transfers (refused, completed, failed, expired; any fallback ticket filed and the CTI
    /// told) requested before `requested_before`, once each; returns their ids.
    async fn purge_transfers(
        &self,
        requested_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Uuid>>;

    /// Whether the store answers.
    async fn ping(&self) -> Result<()>;
}
