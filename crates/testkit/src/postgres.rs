//! A fresh PostgreSQL schema per test, so tests share one database without seeing each other.
//!
//! The server is `WHARF_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`).
//! An unreachable server fails the test with how to start one: a skipped PostgreSQL test would
//! look green while testing nothing. `WHARF_TEST_BACKEND=postgres` makes the integration test
//! harnesses run every server on PostgreSQL instead of SQLite.

/// The server tests use when `WHARF_TEST_DATABASE_URL` is not set.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Whether the integration suites should run their servers on PostgreSQL
/// (`WHARF_TEST_BACKEND=postgres`).
pub fn backend_is_postgres() -> bool {
    std::env::var("WHARF_TEST_BACKEND").is_ok_and(|b| b.eq_ignore_ascii_case("postgres"))
}

/// The test server's URL.
pub fn server_url() -> String {
    std::env::var("WHARF_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// A schema created for one test and dropped (with everything in it) when this is dropped.
#[derive(Debug)]
pub struct PgSchema {
    /// The server's URL with `search_path` set to the schema: give it to a store or a config.
    pub url: String,
    pub name: String,
    server: String,
}

impl PgSchema {
    /// Creates `t_<random>` on the test server. Panics, saying how to start PostgreSQL, when
    /// the server cannot be reached.
    pub fn create() -> PgSchema {
        PgSchema::create_on(&server_url())
    }

    /// Creates `t_<random>` on the server at `server` (a [`PgCluster`](crate::PgCluster)'s
    /// URL, say). Panics when the server cannot be reached.
    pub fn create_on(server: &str) -> PgSchema {
        let server = server.to_owned();
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        if let Err(e) = wharf_store::postgres::execute(&server, &format!("CREATE SCHEMA {name}")) {
            panic!(
                "PostgreSQL tests need a server at {} and could not use it: {e}\n\
                 Start one, e.g. `apt-get install -y postgresql && pg_ctlcluster 15 main start` \
                 with `host all all 127.0.0.1/32 trust` in pg_hba.conf and a database `test` \
                 (`createdb -U postgres test`), or point WHARF_TEST_DATABASE_URL at another.",
                wharf_store::postgres::describe(&server)
            );
        }
        let separator = if server.contains('?') { '&' } else { '?' };
        PgSchema {
            url: format!("{server}{separator}options=-csearch_path%3D{name}"),
            name,
            server,
        }
    }
}

impl PgSchema {
    /// Makes every write to the schema's tables fail as a read-only server's would (SQLSTATE
    /// 25006, "cannot execute INSERT in a read-only transaction"), until called with `false`:
    /// a failover to a standby, for this test alone on a server others share. Reads keep
    /// working. (Statement-level triggers on every table of the schema.)
    pub fn refuse_writes(&self, refuse: bool) {
        self.refuse_writes_as(
            refuse,
            "read_only_sql_transaction",
            "cannot execute % in a read-only transaction",
        );
    }

    /// The same with PostgreSQL's answer on a full disk (SQLSTATE 53100, `disk_full`, "could
    /// not extend file ...: No space left on device"), for the tests of a full disk.
    pub fn fill_disk(&self, full: bool) {
        self.refuse_writes_as(
            full,
            "disk_full",
            "could not extend file for %: No space left on device",
        );
    }

    /// Writes refused with `errcode` (a condition name) and `message` (`%` is the operation).
    fn refuse_writes_as(&self, refuse: bool, errcode: &str, message: &str) {
        let schema = &self.name;
        let each_table = |statement: &str| {
            format!(
                "DO $$ DECLARE t text; BEGIN
                   FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = '{schema}' LOOP
                     EXECUTE format('{statement}', '{schema}', t);
                   END LOOP;
                 END $$"
            )
        };
        let sql = if refuse {
            format!(
                "CREATE OR REPLACE FUNCTION {schema}.wharf_test_refuse() RETURNS trigger
                   LANGUAGE plpgsql AS $f$ BEGIN
                     RAISE EXCEPTION '{message}', TG_OP
                       USING ERRCODE = '{errcode}';
                   END $f$;
                 {}",
                each_table(&format!(
                    "CREATE TRIGGER wharf_test_refuse BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE \
                     ON %I.%I FOR EACH STATEMENT EXECUTE FUNCTION {schema}.wharf_test_refuse()"
                ))
            )
        } else {
            each_table("DROP TRIGGER IF EXISTS wharf_test_refuse ON %I.%I")
        };
        wharf_store::postgres::execute(&self.url, &sql).unwrap();
    }

    /// Every row of every table in the schema, as text (`row::text`, with `bytea` in the
    /// escape format, so text stored as bytes shows as itself): to search what the database
    /// holds, as a test on SQLite searches its files.
    pub fn dump(&self) -> String {
        let name = self.name.clone();
        self.with_client(Box::new(move |client| {
            Box::pin(async move {
                client
                    .batch_execute("SET bytea_output = 'escape'")
                    .await
                    .unwrap();
                let tables = client
                    .query(
                        "SELECT tablename FROM pg_tables WHERE schemaname = $1",
                        &[&name],
                    )
                    .await
                    .unwrap();
                let mut text = String::new();
                for table in tables {
                    let table: String = table.get(0);
                    let rows = client
                        .query(
                            &format!("SELECT t::text FROM \"{name}\".\"{table}\" t"),
                            &[],
                        )
                        .await
                        .unwrap();
                    for row in rows {
                        text.push_str(&row.get::<_, String>(0));
                        text.push('\n');
                    }
                }
                text
            })
        }))
    }

    /// Runs `sql` in a transaction on a connection of its own and keeps the transaction open
    /// (with whatever locks `sql` took) until the returned guard is dropped.
    pub fn hold(&self, sql: &str) -> Held {
        let sql = sql.to_owned();
        let (taken_tx, taken) = std::sync::mpsc::channel();
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let thread = self.spawn_client(Box::new(move |client| {
            Box::pin(async move {
                client
                    .batch_execute(&format!("BEGIN; {sql}"))
                    .await
                    .unwrap();
                taken_tx.send(()).unwrap();
                let _ = released.await;
                client.batch_execute("ROLLBACK").await.unwrap();
            })
        }));
        taken.recv().expect("the holding transaction failed");
        Held {
            release: Some(release),
            thread: Some(thread),
        }
    }

    fn with_client<T: Send + 'static>(&self, work: ClientWork<T>) -> T {
        self.spawn_client(work).join().unwrap()
    }

    /// Runs `work` on a connection of its own to the schema, on a thread with its own runtime,
    /// so it works from sync and async tests alike.
    fn spawn_client<T: Send + 'static>(&self, work: ClientWork<T>) -> std::thread::JoinHandle<T> {
        let url = self.url.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(connection);
                work(&client).await
            })
        })
    }
}

/// What [`PgSchema::spawn_client`] runs with the connection.
type ClientWork<T> = Box<
    dyn FnOnce(
            &tokio_postgres::Client,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + '_>>
        + Send,
>;

/// A transaction held open by [`PgSchema::hold`]; dropping it rolls the transaction back.
pub struct Held {
    release: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        // A server still running in this test may hold a lock for a moment; never hang on it.
        let sql = format!(
            "SET lock_timeout = '5s'; DROP SCHEMA IF EXISTS {} CASCADE",
            self.name
        );
        if let Err(e) = wharf_store::postgres::execute(&self.server, &sql) {
            eprintln!("could not drop test schema {}: {e}", self.name);
        }
    }
}
