//! Several SQLite statements sent to the connection's thread as one.
//!
//! sqlx runs each SQLite statement on the connection's own thread and hands every statement and
//! its rows across a channel: a thread switch each way per statement. A business write of ten
//! statements pays that ten times. A [`Script`] joins the statements into one multi-statement
//! query with their arguments in order (`?` placeholders are numbered across statements), so
//! the whole write crosses once. Statements run in order and stop at the first error; the
//! caller's savepoint undoes what ran before it.

use sqlx::sqlite::{SqliteArguments, SqliteConnection, SqliteRow};
use sqlx::{Arguments, Encode, Sqlite, Type};

use super::{Result, StoreError};

#[derive(Default)]
pub(super) struct Script {
    sql: String,
    args: SqliteArguments<'static>,
    statements: usize,
    bind_error: Option<String>,
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
    pub(super) fn bind<T>(&mut self, value: T) -> &mut Self
    where
        T: Encode<'static, Sqlite> + Type<Sqlite> + Send + 'static,
    {
        // Encoding into SQLite's argument list only copies the value; should it ever fail, the
        // script fails when run, before any statement.
        if let Err(e) = self.args.add(value)
            && self.bind_error.is_none()
        {
            self.bind_error = Some(e.to_string());
        }
        self
    }

    pub(super) fn is_empty(&self) -> bool {
        self.statements == 0
    }

    /// Runs every statement; the rows any of them returned (`RETURNING`, `SELECT`), in order.
    pub(super) async fn run(self, conn: &mut SqliteConnection) -> Result<Vec<SqliteRow>> {
        if let Some(e) = self.bind_error {
            return Err(StoreError::Database(format!("cannot bind a value: {e}")));
        }
        if self.is_empty() {
            return Ok(Vec::new());
        }
        sqlx::query_with(&self.sql, self.args)
            .fetch_all(conn)
            .await
            .map_err(StoreError::from)
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

    #[tokio::test]
    async fn statements_take_their_own_arguments_in_order_and_return_their_rows() {
        let mut conn = memory().await;
        let mut s = Script::default();
        s.push("INSERT INTO t (k, v) VALUES (?, ?)")
            .bind("a")
            .bind(1_i64);
        s.push("INSERT INTO t (k, v) VALUES (?, ?)")
            .bind("b")
            .bind(2_i64);
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
        s.push("INSERT INTO t (k, v) VALUES (?, ?)")
            .bind("a")
            .bind(1_i64);
        s.push("INSERT INTO t (k, v) VALUES (?, ?)")
            .bind("a")
            .bind(2_i64);
        s.push("INSERT INTO t (k, v) VALUES (?, ?)")
            .bind("c")
            .bind(3_i64);
        let Err(err) = s.run(&mut conn).await else {
            panic!("a duplicate key must fail the script");
        };
        assert!(err.to_string().contains("UNIQUE"), "{err}");
        let keys: Vec<String> = sqlx::query_scalar("SELECT k FROM t ORDER BY k")
            .fetch_all(&mut conn)
            .await
            .expect("read back");
        assert_eq!(
            keys,
            vec!["a".to_owned()],
            "the statement after the error did not run"
        );
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
