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
