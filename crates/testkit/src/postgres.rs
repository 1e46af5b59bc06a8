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
        let server = server_url();
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
