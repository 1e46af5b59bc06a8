//! `wharf engine serve` and `wharf hash-password`.

use crate::destination_cmd::{EXIT_CONFIG, shutdown_signal};
use std::io::{IsTerminal, Read};
use std::path::Path;
use std::process::ExitCode;
use wharf_engine::EngineConfig;

pub async fn serve(path: &Path) -> ExitCode {
    let config = match EngineConfig::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match wharf_engine::start(config).await {
        Ok(running) => {
            let _hangup = crate::destination_cmd::reload_tls_on_hangup(running.tls());
            running.run_until(shutdown_signal()).await;
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot start the engine: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `wharf hash-password`: reads a dashboard password from standard input (one line; the
/// trailing newline is not part of it) and prints its argon2id hash for the engine's
/// `dashboard_password_hash`.
pub fn hash_password() -> ExitCode {
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!(
            "Type the dashboard password and press Enter (it shows as you type; pipe it in to avoid that):"
        );
    }
    let mut input = String::new();
    let read = if stdin.is_terminal() {
        stdin.read_line(&mut input).map(|_| ())
    } else {
        stdin.read_to_string(&mut input).map(|_| ())
    };
    if let Err(e) = read {
        eprintln!("error: cannot read the password from standard input: {e}");
        return ExitCode::FAILURE;
    }
    let password = input.strip_suffix('\n').unwrap_or(&input);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.chars().count() < 12 {
        eprintln!(
            "error: the password must be at least 12 characters: it guards every destination and message"
        );
        return ExitCode::from(EXIT_CONFIG);
    }
    match wharf_engine::dashboard::hash_password(password) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot hash the password: {e}");
            ExitCode::FAILURE
        }
    }
}
