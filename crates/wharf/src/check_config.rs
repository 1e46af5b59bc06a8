//! `wharf check-config FILE`: validates an engine or destination configuration without
//! starting anything (no port bound, no data directory created, no table touched), so a change
//! can be checked before a restart or a SIGHUP. With `database_url` it also connects and reads
//! the schema version, so an unreachable database or one a newer wharf migrated shows up now.
//!
//! The kind of file is told by its keys: `[[destinations]]` makes it a destination server's,
//! `organization`, `api_keys` or `master_key` an engine's. TLS files are read and paired too,
//! since a bad key is the commonest reason a restart fails.

use crate::destination_cmd::EXIT_CONFIG;
use std::path::Path;
use std::process::ExitCode;

fn mistake(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("configuration error: {message}");
    ExitCode::from(EXIT_CONFIG)
}

/// With `database_url`, connects (nothing else: no table is created or migrated) and says what
/// it found; a database that cannot be used fails with status 1, since the file itself is fine.
fn probe_database(
    url: Option<&wharf_config::DatabaseUrl>,
    component: wharf_store::postgres::Component,
) -> ExitCode {
    let Some(url) = url else {
        return ExitCode::SUCCESS;
    };
    match wharf_store::postgres::probe(url.as_str(), component) {
        Ok(found) => {
            println!("  database: {found}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: the configuration is valid but its database cannot be used: {e}");
            ExitCode::FAILURE
        }
    }
}

pub fn run(path: &Path) -> ExitCode {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return mistake(format!("cannot read {}: {e}", path.display())),
    };
    let table: toml::Table = match toml::from_str(&text) {
        Ok(t) => t,
        // The real loaders below give the precise message with the line.
        Err(_) => toml::Table::new(),
    };
    let is_destination = table.contains_key("destinations");
    let is_engine = ["organization", "api_keys", "master_key", "sources"]
        .iter()
        .any(|k| table.contains_key(*k));
    match (is_destination, is_engine) {
        (true, false) => destination(path),
        (false, true) => engine(path),
        (true, true) => mistake(format!(
            "{}: has both [[destinations]] (a destination server's key) and engine keys; one file configures one server",
            path.display()
        )),
        (false, false) => {
            // Let the destination loader report syntax errors or the missing destinations.
            match wharf_destination::Config::load(path) {
                Err(e) => mistake(format!(
                    "{e}\n(an engine configuration would need `organization`, `api_keys` and `master_key`)"
                )),
                Ok(_) => destination(path),
            }
        }
    }
}

fn destination(path: &Path) -> ExitCode {
    let config = match wharf_destination::Config::load(path) {
        Ok(c) => c,
        Err(e) => return mistake(e),
    };
    if let Some(files) = &config.tls
        && let Err(e) = wharf_serve::tls::server_config(files)
    {
        return mistake(e);
    }
    println!(
        "ok: destination server configuration, listening on {}, {}, {} destination(s):",
        config.listen,
        if config.tls.is_some() {
            "HTTPS"
        } else {
            "plain HTTP"
        },
        config.destinations.len()
    );
    for d in &config.destinations {
        println!(
            "  {} at {} ({}){}{}{}",
            d.name,
            d.path,
            d.environment,
            d.auth
                .as_ref()
                .map(|a| format!(", auth {}", a.strategy))
                .unwrap_or_default(),
            if d.forward_url.is_some() {
                ", forwarding"
            } else {
                ""
            },
            if d.query_url.is_some() {
                ", queries"
            } else {
                ""
            },
        );
    }
    probe_database(
        config.database_url.as_ref(),
        wharf_store::postgres::Component::Inbox,
    )
}

fn engine(path: &Path) -> ExitCode {
    let config = match wharf_engine::EngineConfig::load(path) {
        Ok(c) => c,
        Err(e) => return mistake(e),
    };
    println!(
        "ok: engine configuration for organization {:?}, listening on {}, {} management key(s), {} source(s)",
        config.organization,
        config.listen,
        config.api_keys.len(),
        config.sources.len()
    );
    probe_database(
        config.database_url.as_ref(),
        wharf_store::postgres::Component::Engine,
    )
}
