//! Moving a whole installation between stores (SQLite → PostgreSQL, or back): `export` writes
//! every table to a JSON Lines file, `import` loads one into an empty store. Tickets, history,
//! pending deliveries (with their leases and schedules), clocks, alerts, transfers, the audit
//! chain and pauses all move as they are; both schemas keep the same columns.
//!
//! The file: a header line `{"format":"hotline-gateway-dump","version":1,"counts":{…}}`, then one
//! line per row, `{"t":"<table>","r":{column: value}}`, tables in dependency order.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};

use futures::TryStreamExt;
use serde_json::{Map, Value};
use sqlx::{PgPool, Row, SqlitePool};

use super::{Result, StoreError};

pub const FORMAT: &str = "hotline-gateway-dump";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Int,
    Bool,
}
use Kind::{Bool, Int, Text};

/// Every table, parents before children, with its columns.
const TABLES: &[(&str, &[(&str, Kind)])] = &[
    (
        "tickets",
        &[
            ("id", Text),
            ("origin", Text),
            ("external_id", Text),
            ("status", Text),
            ("kind", Text),
            ("urgency", Text),
            ("draft", Text),
            ("created_at", Int),
            ("updated_at", Int),
            ("caller_hash", Text),
            ("purged_at", Int),
        ],
    ),
    (
        "ticket_numbers",
        &[("system", Text), ("number", Text), ("ticket_id", Text)],
    ),
    (
        "events",
        &[
            ("id", Text),
            ("ticket_id", Text),
            ("kind", Text),
            ("source", Text),
            ("at", Int),
            ("body", Text),
        ],
    ),
    (
        "inbound_keys",
        &[
            ("source", Text),
            ("key", Text),
            ("ticket_id", Text),
            ("event_id", Text),
        ],
    ),
    (
        "deliveries",
        &[
            ("seq", Int),
            ("id", Text),
            ("ticket_id", Text),
            ("event_id", Text),
            ("partner", Text),
            ("message_id", Text),
            ("kind", Text),
            ("status", Text),
            ("attempts", Int),
            ("round_base", Int),
            ("due_at", Int),
            ("lease_token", Text),
            ("partner_ref", Text),
            ("last_error", Text),
            ("created_at", Int),
            ("updated_at", Int),
            ("acked_at", Int),
        ],
    ),
    (
        "attempts",
        &[
            ("delivery_id", Text),
            ("number", Int),
            ("started_at", Int),
            ("duration_ms", Int),
            ("outcome", Text),
            ("http_status", Int),
            ("partner_code", Text),
            ("error", Text),
            ("partner_ref", Text),
        ],
    ),
    (
        "partner_cursors",
        &[("partner", Text), ("cursor", Text), ("updated_at", Int)],
    ),
    (
        "refused_events",
        &[
            ("id", Text),
            ("ticket_id", Text),
            ("source", Text),
            ("kind", Text),
            ("status", Text),
            ("reason", Text),
            ("at", Int),
        ],
    ),
    (
        "sla_clocks",
        &[
            ("id", Text),
            ("ticket_id", Text),
            ("kind", Text),
            ("party", Text),
            ("urgent", Bool),
            ("started_at", Int),
            ("due_at", Int),
            ("urge_at", Int),
            ("provisional", Bool),
            ("extended_days", Int),
            ("state", Text),
            ("stopped_at", Int),
            ("urged_at", Int),
            ("overdue_at", Int),
        ],
    ),
    (
        "alerts",
        &[
            ("id", Text),
            ("key", Text),
            ("kind", Text),
            ("ticket_id", Text),
            ("party", Text),
            ("message", Text),
            ("detail", Text),
            ("created_at", Int),
            ("acknowledged_at", Int),
            ("acknowledged_by", Text),
        ],
    ),
    (
        "transfers",
        &[
            ("id", Text),
            ("direction", Text),
            ("partner", Text),
            ("call_id", Text),
            ("partner_ref", Text),
            ("state", Text),
            ("requested_at", Int),
            ("deadline_at", Int),
            ("fallback_ticket_id", Text),
            ("fallback_due", Bool),
            ("notify_pending", Bool),
            ("version", Int),
            ("doc", Text),
            ("purged_at", Int),
        ],
    ),
    (
        "transfer_entries",
        &[
            ("seq", Int),
            ("transfer_id", Text),
            ("kind", Text),
            ("at", Int),
            ("recorded_at", Int),
            ("source", Text),
            ("outcome", Text),
            ("detail", Text),
            ("key", Text),
        ],
    ),
    (
        "audit_log",
        &[
            ("seq", Int),
            ("at", Int),
            ("actor", Text),
            ("role", Text),
            ("action", Text),
            ("target", Text),
            ("reason", Text),
            ("detail", Text),
            ("prev_hash", Text),
            ("hash", Text),
        ],
    ),
    (
        "partner_pauses",
        &[
            ("partner", Text),
            ("since", Int),
            ("by", Text),
            ("reason", Text),
        ],
    ),
];

/// Tables whose `seq` comes from a sequence in PostgreSQL, to move on after an import.
const SERIAL: &[&str] = &["deliveries", "transfer_entries"];

/// A store's database, opened raw (after the store itself brought the schema up to date).
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

fn columns(table: &str) -> Result<&'static [(&'static str, Kind)]> {
    TABLES
        .iter()
        .find(|(t, _)| *t == table)
        .map(|(_, c)| *c)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown table `{table}` in the dump")))
}

fn order_by(table: &str) -> &'static str {
    match table {
        "deliveries" | "transfer_entries" | "audit_log" => "seq",
        "attempts" => "delivery_id, number",
        "ticket_numbers" => "system, number",
        "inbound_keys" => "source, key",
        "partner_cursors" | "partner_pauses" => "partner",
        _ => "id",
    }
}

impl Db {
    /// Rows per table.
    pub async fn counts(&self) -> Result<BTreeMap<String, u64>> {
        let mut out = BTreeMap::new();
        for (table, _) in TABLES {
            let sql = format!("SELECT COUNT(*) AS n FROM {table}");
            let n: i64 = match self {
                Db::Sqlite(p) => sqlx::query(&sql).fetch_one(p).await?.try_get("n")?,
                Db::Postgres(p) => sqlx::query(&sql).fetch_one(p).await?.try_get("n")?,
            };
            out.insert((*table).to_owned(), n as u64);
        }
        Ok(out)
    }

    /// Writes the header and every row to `out`; `tick` is called once per row.
    pub async fn export(&self, out: &mut impl Write, mut tick: impl FnMut()) -> Result<u64> {
        let counts = self.counts().await?;
        let header = serde_json::json!({ "format": FORMAT, "version": 1, "counts": counts });
        writeln!(out, "{header}").map_err(io)?;
        let mut written = 0;
        for (table, cols) in TABLES {
            let list = cols.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", ");
            let sql = format!("SELECT {list} FROM {table} ORDER BY {}", order_by(table));
            macro_rules! dump {
                ($pool:expr, $bool:expr) => {{
                    let mut rows = sqlx::query(&sql).fetch($pool);
                    while let Some(row) = rows.try_next().await? {
                        let mut r = Map::new();
                        for (name, kind) in *cols {
                            let v = match kind {
                                Text => row
                                    .try_get::<Option<String>, _>(*name)?
                                    .map_or(Value::Null, Value::String),
                                Int => row
                                    .try_get::<Option<i64>, _>(*name)?
                                    .map_or(Value::Null, Value::from),
                                Bool => Value::Bool($bool(&row, *name)?),
                            };
                            r.insert((*name).to_owned(), v);
                        }
                        let line = serde_json::json!({ "t": table, "r": r });
                        writeln!(out, "{line}").map_err(io)?;
                        written += 1;
                        tick();
                    }
                }};
            }
            match self {
                Db::Sqlite(p) => dump!(p, |row: &sqlx::sqlite::SqliteRow, c: &str| row
                    .try_get::<i64, _>(c)
                    .map(|v| v != 0)),
                Db::Postgres(p) => {
                    dump!(p, |row: &sqlx::postgres::PgRow, c: &str| row
                        .try_get::<bool, _>(c))
                }
            }
        }
        Ok(written)
    }

    /// Loads a dump into this (empty) store; returns rows per table as loaded. `tick` is called
    /// once per row.
    pub async fn import(
        &self,
        input: impl BufRead,
        mut tick: impl FnMut(),
    ) -> Result<BTreeMap<String, u64>> {
        let existing = self.counts().await?;
        if let Some((table, n)) = existing.iter().find(|(_, n)| **n > 0) {
            return Err(StoreError::Conflict(format!(
                "the target store is not empty ({table} has {n} rows); import only into a new one"
            )));
        }
        let mut lines = input.lines();
        let header: Value = match lines.next() {
            Some(l) => serde_json::from_str(&l.map_err(io)?)?,
            None => return Err(StoreError::Corrupt("the dump is empty".into())),
        };
        if header["format"] != FORMAT || header["version"] != 1 {
            return Err(StoreError::Corrupt(format!(
                "not a {FORMAT} version 1 file: {header}"
            )));
        }
        let mut loaded: BTreeMap<String, u64> = BTreeMap::new();
        let mut batch: Vec<(String, Map<String, Value>)> = Vec::new();
        for (n, line) in lines.enumerate() {
            let line = line.map_err(io)?;
            if line.trim().is_empty() {
                continue;
            }
            let mut v: Value = serde_json::from_str(&line)
                .map_err(|e| StoreError::Corrupt(format!("line {}: {e}", n + 2)))?;
            let (Some(table), Some(row)) = (
                v["t"].as_str().map(str::to_owned),
                v.get_mut("r")
                    .and_then(|r| r.as_object_mut())
                    .map(std::mem::take),
            ) else {
                return Err(StoreError::Corrupt(format!("line {}: not a row", n + 2)));
            };
            batch.push((table, row));
            if batch.len() >= 500 {
                self.insert(&batch, &mut loaded, &mut tick).await?;
                batch.clear();
            }
        }
        self.insert(&batch, &mut loaded, &mut tick).await?;
        if let Db::Postgres(p) = self {
            for table in SERIAL {
                sqlx::query(&format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'seq'), \
                     GREATEST((SELECT MAX(seq) FROM {table}), 1))"
                ))
                .execute(p)
                .await?;
            }
        }
        let expected: BTreeMap<String, u64> = serde_json::from_value(header["counts"].clone())?;
        let now = self.counts().await?;
        if now != expected {
            return Err(StoreError::Corrupt(format!(
                "loaded {now:?} but the dump's header says {expected:?}"
            )));
        }
        Ok(now)
    }

    async fn insert(
        &self,
        rows: &[(String, Map<String, Value>)],
        loaded: &mut BTreeMap<String, u64>,
        tick: &mut impl FnMut(),
    ) -> Result<()> {
        macro_rules! load {
            ($pool:expr, $db:ty, $placeholder:expr) => {{
                let mut tx = $pool.begin().await?;
                for (table, row) in rows {
                    let cols = columns(table)?;
                    let names = cols.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", ");
                    let marks = (1..=cols.len())
                        .map($placeholder)
                        .collect::<Vec<_>>()
                        .join(", ");
                    let sql = format!("INSERT INTO {table} ({names}) VALUES ({marks})");
                    let mut q = sqlx::query::<$db>(&sql);
                    for (name, kind) in cols {
                        let v = row.get(*name).unwrap_or(&Value::Null);
                        let bad =
                            || StoreError::Corrupt(format!("{table}.{name}: unexpected value {v}"));
                        q = match (kind, v) {
                            (Text, Value::Null) => q.bind(None::<String>),
                            (Text, Value::String(s)) => q.bind(Some(s.clone())),
                            (Int, Value::Null) => q.bind(None::<i64>),
                            (Int, Value::Number(n)) => q.bind(Some(n.as_i64().ok_or_else(bad)?)),
                            (Bool, Value::Bool(b)) => q.bind(*b),
                            _ => return Err(bad()),
                        };
                    }
                    q.execute(&mut *tx).await?;
                    *loaded.entry(table.clone()).or_default() += 1;
                    tick();
                }
                tx.commit().await?;
            }};
        }
        match self {
            Db::Sqlite(p) => load!(p, sqlx::Sqlite, |_| "?".to_owned()),
            Db::Postgres(p) => load!(p, sqlx::Postgres, |i| format!("${i}")),
        }
        Ok(())
    }
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::Database(format!("dump file: {e}"))
}

/// Opens the configured store's database: runs its migrations through the store itself, then
/// opens a plain pool on it.
pub async fn open(config: &crate::config::StoreConfig) -> Result<Db> {
    use crate::config::StoreKind;
    match config.kind {
        StoreKind::Sqlite => {
            drop(super::SqliteStore::open(&config.path).await?);
            let opts = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&config.path)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Full);
            Ok(Db::Sqlite(
                sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(opts)
                    .await?,
            ))
        }
        StoreKind::Postgres => {
            let url = super::postgres_url(config)?;
            drop(super::PgStore::open(url).await?);
            Ok(Db::Postgres(PgPool::connect(url).await?))
        }
    }
}
