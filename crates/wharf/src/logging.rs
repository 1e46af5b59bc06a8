//! Logging setup: `tracing` to standard error, human-readable or JSON, filtered by `RUST_LOG`
//! (default `info`). Nothing logged anywhere in Wharf carries a secret or a message body.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
}

pub fn init(format: Format) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        Format::Human => builder.init(),
        Format::Json => builder.json().init(),
    }
}
