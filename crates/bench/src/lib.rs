//! `wharf bench ...`: the load generators behind docs/BENCHMARKS.md, in a crate of their own
//! so the servers' crates and the `wharf` binary's own modules hold no benchmark code. The
//! `wharf` binary still runs them as `wharf bench load|engine|soak`.
//!
//! | module | owns |
//! |---|---|
//! | `bench` | the `bench` subcommands, and `bench load`: the load generator (closed or open loop) |
//! | `bench_engine` | `bench engine`: engine delivery throughput and latency against a local sink |
//! | `bench_soak` | `bench soak`: engine and destination as child processes, at a steady rate |
//!
//! The modules moved here from `crates/wharf/src` unchanged; `up` keeps the path they use for
//! the generated configuration's database line.

mod bench;
mod bench_engine;
mod bench_soak;

/// The path the benchmark modules name the generated `database_url` line by.
mod up {
    pub use wharf_config::database_toml;
}

pub use bench::{BenchCommand, run};

/// Why a benchmark could not run, or ran and its result does not stand: what failed, and
/// where to look. [`run`] exits 2 for [`BenchError::Usage`] (as for clap's own refusals) and
/// 1 for the rest.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A flag's value is wrong; the message names the flag or value.
    #[error("{0}")]
    Usage(String),
    /// A file, directory, socket or HTTP client of the run's own.
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// The servers under test: one that cannot be configured, does not start or stopped.
    #[error("{0}")]
    Servers(String),
    /// The engine's management API refused to set up the run.
    #[error(transparent)]
    Api(#[from] wharf_engine::client::ApiError),
    /// Traffic failed, or did not arrive in time: the run's figures would mean nothing.
    #[error("{0}")]
    Traffic(String),
}

impl BenchError {
    /// An I/O failure while doing `what`.
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
        let what = what.into();
        move |source| BenchError::Io { what, source }
    }
}
