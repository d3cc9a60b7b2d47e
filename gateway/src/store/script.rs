//! Several SQLite statements sent to the connection's thread as one.
//!
//! sqlx runs each SQLite statement on the connection's own thread and hands every statement and
//! its rows across a channel: a thread switch each way per statement. A business write of ten
//! statements pays that ten times. A [`Script`] joins the statements into one multi-statement
//! query with their arguments in order (`?` placeholders are numbered across statements), so
//! the whole write crosses once. Statements run in order inside a savepoint of the script's
//! own: when one fails, the script stops and what ran before it is undone, so a script is
//! atomic on its own (within the surrounding transaction).

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

pub(super) struct Script {
    sql: String,
    values: Vec<Value>,
    statements: usize,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            sql: String::from("SAVEPOINT script;\n"),
            values: Vec::new(),
            statements: 0,
        }
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
        self.statements += 1;
        self
    }

    /// Binds the next placeholder.
    pub(super) fn bind(&mut self, value: impl Into<Value>) -> &mut Self {
        self.values.push(value.into());
        self
    }

    pub(super) fn is_empty(&self) -> bool {
        self.statements == 0
    }

    /// Runs every statement; the rows any of them returned (`RETURNING`, `SELECT`), in order.
    /// On an error nothing the script wrote is kept. Scripts of the same shape share prepared
    /// statements.
    pub(super) async fn run(self, conn: &mut SqliteConnection) -> Result<Vec<SqliteRow>> {
        if self.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!("{}RELEASE script;", self.sql);
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
}
