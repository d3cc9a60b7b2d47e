//! Several SQLite statements sent to the connection's thread as one.
//!
//! sqlx runs each SQLite statement on the connection's own thread and hands every statement and
//! its rows across a channel: a thread switch each way per statement. A business write of ten
//! statements pays that ten times. A [`Script`] joins the statements into one multi-statement
//! query with their arguments in order (`?` placeholders are numbered across statements), so
//! the whole write crosses once. Statements run in order inside a savepoint of the script's
//! own: when one fails, the script stops and what ran before it is undone, so a script is
//! atomic on its own (within the surrounding transaction).
//!
//! The writer runs scripts without any crossing at all: [`Script::run_locked`] steps them on the
//! connection's own SQLite handle, locked out from sqlx's thread, through rusqlite, with
//! prepared statements kept per statement. Its first pass over a batch runs them without the
//! savepoint ([`Script::run_bare`]) and the whole batch again with it should one fail.

use std::borrow::Cow;

use sqlx::Arguments;
use sqlx::sqlite::{SqliteArguments, SqliteConnection, SqliteRow};

use super::{Result, StoreError};

/// A value bound to a placeholder, in SQLite's own types.
#[derive(Debug, Clone)]
pub(super) enum Value {
    Null,
    Int(i64),
    Text(Cow<'static, str>),
}

macro_rules! int_values {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Self::Int(i64::from(v))
            }
        }
    )*};
}
int_values!(i64, i32, u32, u16, bool);

/// An id as the store keeps it: hyphenated lower-case text (encoded directly, without the
/// formatting machinery of `to_string`).
impl From<uuid::Uuid> for Value {
    fn from(v: uuid::Uuid) -> Self {
        Self::Text(Cow::Owned(
            v.hyphenated()
                .encode_lower(&mut uuid::Uuid::encode_buffer())
                .to_owned(),
        ))
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Self::Text(Cow::Owned(v))
    }
}

impl From<&'static str> for Value {
    fn from(v: &'static str) -> Self {
        Self::Text(Cow::Borrowed(v))
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Null, Into::into)
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(*i),
            Value::Text(t) => ValueRef::Text(t.as_bytes()),
        }))
    }
}

#[derive(Default)]
pub(super) struct Script {
    /// The statements, each ending with `;\n`.
    sql: String,
    /// Where each statement ends in `sql`.
    ends: Vec<usize>,
    values: Vec<Value>,
}

/// A row a script returned when run on the locked handle: its columns by name.
#[derive(Debug, Clone)]
pub(super) struct RawRow {
    names: std::sync::Arc<[String]>,
    values: Vec<rusqlite::types::Value>,
}

impl RawRow {
    fn get(&self, col: &str) -> Result<&rusqlite::types::Value> {
        self.names
            .iter()
            .position(|n| n == col)
            .map(|i| &self.values[i])
            .ok_or_else(|| StoreError::Corrupt(format!("no column `{col}` in the row")))
    }
}

fn wrong_type(col: &str, want: &str) -> StoreError {
    StoreError::Corrupt(format!("column `{col}` is not {want}"))
}

impl super::rows::Fields for RawRow {
    fn text(&self, col: &str) -> Result<String> {
        self.opt_text(col)?.ok_or_else(|| wrong_type(col, "text"))
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        match self.get(col)? {
            rusqlite::types::Value::Null => Ok(None),
            rusqlite::types::Value::Text(t) => Ok(Some(t.clone())),
            _ => Err(wrong_type(col, "text")),
        }
    }
    fn int(&self, col: &str) -> Result<i64> {
        self.opt_int(col)?
            .ok_or_else(|| wrong_type(col, "an integer"))
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        match self.get(col)? {
            rusqlite::types::Value::Null => Ok(None),
            rusqlite::types::Value::Integer(i) => Ok(Some(*i)),
            _ => Err(wrong_type(col, "an integer")),
        }
    }
    fn flag(&self, col: &str) -> Result<bool> {
        Ok(self.int(col)? != 0)
    }
}

impl Script {
    /// Appends a statement; its `?` placeholders take the values bound after it, in order.
    /// Numbered placeholders (`?1`) would count from the script's start: do not use them.
    pub(super) fn push(&mut self, statement: &str) -> &mut Self {
        debug_assert!(
            !statement.contains("?1"),
            "numbered placeholders in a script"
        );
        self.sql.push_str(statement);
        self.sql.push_str(";\n");
        self.ends.push(self.sql.len());
        self
    }

    /// Binds the next placeholder.
    pub(super) fn bind(&mut self, value: impl Into<Value>) -> &mut Self {
        self.values.push(value.into());
        self
    }

    /// The statements, as run.
    #[cfg(test)]
    pub(super) fn sql(&self) -> &str {
        &self.sql
    }

    pub(super) fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Runs every statement on `conn`, a connection's handle locked out from sqlx's thread (see
    /// the writer); the rows any of them returned, in order. On an error nothing the script
    /// wrote is kept; should undoing fail too, the error is [`StoreError::InDoubt`].
    pub(super) fn run_locked(&self, conn: &rusqlite::Connection) -> Result<Vec<RawRow>> {
        if self.is_empty() {
            return Ok(Vec::new());
        }
        let control = |sql: &str| conn.prepare_cached(sql).and_then(|mut s| s.execute([]));
        control("SAVEPOINT script")?;
        match self.steps(conn) {
            Ok(rows) => {
                control("RELEASE script")?;
                Ok(rows)
            }
            Err(e) => {
                control("ROLLBACK TO script")
                    .and_then(|_| control("RELEASE script"))
                    .map_err(|undo| StoreError::InDoubt(undo.to_string()))?;
                Err(e)
            }
        }
    }

    /// Runs every statement on `conn` (locked, as for [`Script::run_locked`]) with no savepoint
    /// of its own: on an error, what the statements before the failing one wrote stays in the
    /// transaction, which the caller must then roll back whole. Cheaper when nothing fails: a
    /// savepoint copies every page the script changes into SQLite's statement journal first.
    pub(super) fn run_bare(&self, conn: &rusqlite::Connection) -> Result<Vec<RawRow>> {
        self.steps(conn)
    }

    fn steps(&self, conn: &rusqlite::Connection) -> Result<Vec<RawRow>> {
        let mut values = self.values.iter();
        let mut rows = Vec::new();
        let mut start = 0;
        for &end in &self.ends {
            let sql = self.sql[start..end].trim_end().trim_end_matches(';');
            start = end;
            let mut stmt = conn.prepare_cached(sql)?;
            for i in 1..=stmt.parameter_count() {
                let v = values.next().ok_or_else(|| {
                    StoreError::Database(format!("too few values bound for `{sql}`"))
                })?;
                stmt.raw_bind_parameter(i, v)?;
            }
            let names: std::sync::Arc<[String]> = match stmt.column_count() {
                0 => std::sync::Arc::new([]),
                _ => stmt.column_names().into_iter().map(str::to_owned).collect(),
            };
            let mut got = stmt.raw_query();
            while let Some(row) = got.next()? {
                let values = (0..names.len())
                    .map(|i| row.get_ref(i).map(rusqlite::types::Value::from))
                    .collect::<rusqlite::Result<_>>()?;
                rows.push(RawRow {
                    names: names.clone(),
                    values,
                });
            }
        }
        if values.next().is_some() {
            return Err(StoreError::Database(
                "more values bound than placeholders".into(),
            ));
        }
        Ok(rows)
    }

    /// Runs every statement; the rows any of them returned (`RETURNING`, `SELECT`), in order.
    /// On an error nothing the script wrote is kept. Scripts of the same shape share prepared
    /// statements.
    pub(super) async fn run(self, conn: &mut SqliteConnection) -> Result<Vec<SqliteRow>> {
        if self.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!("SAVEPOINT script;\n{}RELEASE script;", self.sql);
        let mut args = SqliteArguments::default();
        for value in self.values {
            match value {
                Value::Null => args.add(None::<i64>),
                Value::Int(i) => args.add(i),
                Value::Text(Cow::Borrowed(t)) => args.add(t),
                Value::Text(Cow::Owned(t)) => args.add(t),
            }
            .map_err(|e| StoreError::Database(format!("cannot bind a value: {e}")))?;
        }
        match sqlx::query_with(&sql, args).fetch_all(&mut *conn).await {
            Ok(rows) => Ok(rows),
            Err(e) => {
                // The savepoint is still open when a statement after it failed: undo what the
                // script wrote. Should that fail too, the connection's transaction is in doubt.
                sqlx::Executor::execute(&mut *conn, "ROLLBACK TO script; RELEASE script")
                    .await
                    .map_err(|undo| StoreError::InDoubt(undo.to_string()))?;
                Err(e.into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::{ConnectOptions, Row};

    async fn memory() -> SqliteConnection {
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .in_memory(true)
            .connect()
            .await
            .expect("in-memory database");
        sqlx::query("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
            .execute(&mut conn)
            .await
            .expect("table");
        conn
    }

    /// Adds `INSERT INTO t (k, v) VALUES (k, v)` to the script.
    fn insert(s: &mut Script, k: &'static str, v: i64) {
        s.push("INSERT INTO t (k, v) VALUES (?, ?)").bind(k).bind(v);
    }

    async fn keys(conn: &mut SqliteConnection) -> Vec<String> {
        sqlx::query_scalar("SELECT k FROM t ORDER BY k")
            .fetch_all(conn)
            .await
            .expect("read back")
    }

    #[tokio::test]
    async fn statements_take_their_own_arguments_in_order_and_return_their_rows() {
        let mut conn = memory().await;
        let mut s = Script::default();
        insert(&mut s, "a", 1);
        insert(&mut s, "b", 2);
        s.push("UPDATE t SET v = v + ? WHERE k = ? RETURNING k, v")
            .bind(40_i64)
            .bind("b");
        let rows = s.run(&mut conn).await.expect("script runs");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get::<String, _>("k"), "b");
        assert_eq!(rows[0].get::<i64, _>("v"), 42);
        let all: Vec<(String, i64)> = sqlx::query_as("SELECT k, v FROM t ORDER BY k")
            .fetch_all(&mut conn)
            .await
            .expect("read back");
        assert_eq!(all, vec![("a".into(), 1), ("b".into(), 42)]);
    }

    #[tokio::test]
    async fn a_failing_statement_stops_the_script_with_its_error() {
        let mut conn = memory().await;
        let mut s = Script::default();
        insert(&mut s, "a", 1);
        insert(&mut s, "a", 2);
        insert(&mut s, "c", 3);
        let Err(err) = s.run(&mut conn).await else {
            panic!("a duplicate key must fail the script");
        };
        assert!(err.to_string().contains("UNIQUE"), "{err}");
        let keys = keys(&mut conn).await;
        assert!(
            keys.is_empty(),
            "what ran before the error was undone: {keys:?}"
        );
    }

    #[tokio::test]
    async fn a_failed_script_leaves_the_surrounding_transaction_usable() {
        let mut conn = memory().await;
        sqlx::Executor::execute(&mut conn, "BEGIN; INSERT INTO t (k, v) VALUES ('x', 9)")
            .await
            .expect("transaction");
        let mut s = Script::default();
        insert(&mut s, "y", 1);
        insert(&mut s, "x", 2);
        assert!(s.run(&mut conn).await.is_err());
        let mut s = Script::default();
        insert(&mut s, "z", 3);
        s.run(&mut conn).await.expect("the next script runs");
        sqlx::Executor::execute(&mut conn, "COMMIT")
            .await
            .expect("commit");
        let keys = keys(&mut conn).await;
        assert_eq!(keys, vec!["x".to_owned(), "z".to_owned()]);
    }

    #[tokio::test]
    async fn an_empty_script_does_nothing() {
        let mut conn = memory().await;
        assert!(
            Script::default()
                .run(&mut conn)
                .await
                .expect("runs")
                .is_empty()
        );
    }

    /// The same table on a plain rusqlite connection, for the locked path.
    fn raw_memory() -> rusqlite::Connection {
        let conn = rusqlite::Connection::open_in_memory().expect("in-memory database");
        conn.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
            .expect("table");
        conn
    }

    fn raw_keys(conn: &rusqlite::Connection) -> Vec<String> {
        let mut stmt = conn.prepare("SELECT k FROM t ORDER BY k").expect("query");
        stmt.query_map([], |r| r.get(0))
            .expect("rows")
            .collect::<rusqlite::Result<_>>()
            .expect("read back")
    }

    #[test]
    fn on_the_locked_handle_statements_take_their_arguments_in_order_and_return_rows() {
        use crate::store::rows::Fields;
        let conn = raw_memory();
        for round in 0..2 {
            // The second round runs on the statements prepared by the first.
            let mut s = Script::default();
            insert(&mut s, if round == 0 { "a" } else { "c" }, 1);
            s.push("UPDATE t SET v = v + ? WHERE k = ? RETURNING k, v, NULL AS n")
                .bind(40_i64)
                .bind("a");
            let rows = s.run_locked(&conn).expect("script runs");
            assert_eq!(rows.len(), 1);
            assert_eq!(rows[0].text("k").expect("k"), "a");
            assert_eq!(rows[0].int("v").expect("v"), 41 + 40 * round);
            assert_eq!(rows[0].opt_text("n").expect("n"), None);
            assert!(rows[0].text("v").is_err(), "an integer is not text");
            assert!(rows[0].int("missing").is_err());
        }
        assert_eq!(raw_keys(&conn), vec!["a".to_owned(), "c".to_owned()]);
    }

    #[test]
    fn on_the_locked_handle_a_failing_statement_undoes_the_script_and_leaves_the_transaction() {
        let conn = raw_memory();
        conn.execute_batch("BEGIN; INSERT INTO t (k, v) VALUES ('x', 9)")
            .expect("transaction");
        let mut s = Script::default();
        insert(&mut s, "y", 1);
        insert(&mut s, "x", 2);
        let Err(err) = s.run_locked(&conn) else {
            panic!("a duplicate key must fail the script");
        };
        assert!(err.to_string().contains("UNIQUE"), "{err}");
        let mut s = Script::default();
        insert(&mut s, "z", 3);
        s.run_locked(&conn).expect("the next script runs");
        conn.execute_batch("COMMIT").expect("commit");
        assert_eq!(raw_keys(&conn), vec!["x".to_owned(), "z".to_owned()]);
        assert!(
            Script::default()
                .run_locked(&conn)
                .expect("runs")
                .is_empty()
        );
    }

    #[test]
    fn on_the_locked_handle_too_few_values_is_an_error_not_a_null() {
        let conn = raw_memory();
        let mut s = Script::default();
        s.push("INSERT INTO t (k, v) VALUES (?, ?)").bind("a");
        let Err(err) = s.run_locked(&conn) else {
            panic!("a missing value must fail the script");
        };
        assert!(err.to_string().contains("too few values"), "{err}");
        assert!(raw_keys(&conn).is_empty());
    }
}
