//! Configuration plumbing shared by Wharf's servers: the error that names the key, TOML parse
//! errors turned into such errors, and an injectable environment for `*_env` keys.

use std::fmt;
use std::path::{Path, PathBuf};

/// A configuration mistake: which key, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file the mistake is in, when loaded from a file.
    pub file: Option<PathBuf>,
    /// The key, as a TOML path (`destinations[0].path`); empty for a syntax error.
    pub key: String,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}: ", file.display())?;
        }
        if self.key.is_empty() {
            write!(f, "{}", self.problem)
        } else {
            write!(f, "`{}`: {}", self.key, self.problem)
        }
    }
}

impl std::error::Error for ConfigError {}

pub fn err(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        file: None,
        key: key.into(),
        problem: problem.into(),
    }
}

/// Where environment variables come from; injectable so tests need not touch the process's.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// Turns a TOML error into one that names the key when the parser knows it.
pub fn toml_error(text: &str, e: toml::de::Error) -> ConfigError {
    let location = e.span().map(|span| {
        let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
        let source_line = text.lines().nth(line - 1).unwrap_or("").trim();
        format!(" (line {line}: `{source_line}`)")
    });
    ConfigError {
        file: None,
        key: String::new(),
        problem: format!("{}{}", e.message(), location.unwrap_or_default()),
    }
}

/// Reads and parses a configuration file with `parse`, naming the file in any error.
pub fn load<T>(
    path: &Path,
    parse: impl FnOnce(&str, &dyn Env) -> Result<T, ConfigError>,
) -> Result<T, ConfigError> {
    let text = read(path)?;
    parse(&text, &ProcessEnv).map_err(|mut e| {
        e.file = Some(path.to_owned());
        e
    })
}

/// The `listen` address and `data_dir` every server has, with their `WHARF_LISTEN` and
/// `WHARF_DATA_DIR` overrides and defaults.
pub fn listen_and_data_dir(
    env: &dyn Env,
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    default_listen: &str,
    default_data_dir: &str,
) -> Result<(std::net::SocketAddr, PathBuf), ConfigError> {
    let listen_text = env
        .var("WHARF_LISTEN")
        .or(listen)
        .unwrap_or_else(|| default_listen.to_owned());
    let listen = listen_text.parse().map_err(|_| {
        err(
            "listen",
            format!("{listen_text:?} is not an address with a port, like \"{default_listen}\""),
        )
    })?;
    let data_dir = env
        .var("WHARF_DATA_DIR")
        .map(PathBuf::from)
        .or(data_dir)
        .unwrap_or_else(|| PathBuf::from(default_data_dir));
    if data_dir.as_os_str().is_empty() {
        return Err(err("data_dir", "must not be empty"));
    }
    Ok((listen, data_dir))
}

/// Reads a configuration file, or says which file could not be read.
pub fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: Some(path.to_owned()),
        key: String::new(),
        problem: format!("cannot read the configuration file: {e}"),
    })
}

/// Parses a `"500ms"`-style duration key, refusing zero.
pub fn duration(
    key: &str,
    value: Option<&str>,
    default: std::time::Duration,
) -> Result<std::time::Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(text) => wharf_protocol::ladder::parse_duration(text)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                err(
                    key,
                    format!(
                        "{text:?} is not a positive duration like \"500ms\", \"30s\" or \"2m\""
                    ),
                )
            }),
    }
}
