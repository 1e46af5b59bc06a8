//! `wharf engine serve`.

use crate::destination_cmd::{EXIT_CONFIG, shutdown_signal};
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
            running.run_until(shutdown_signal()).await;
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot start the engine: {e}");
            ExitCode::FAILURE
        }
    }
}
