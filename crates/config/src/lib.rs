//! Configuration plumbing shared by Wharf's servers: the error that names the key, TOML parse
//! errors turned into such errors, and an injectable environment for `*_env` keys.

use std::fmt;
use std::path::{Path, PathBuf};
use wharf_protocol::VerificationToken;

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

/// The shortest secret Wharf accepts where it is the whole defence against guessing (keys,
/// verification tokens, admin tokens, client secrets): 32 characters, at least 128 bits
/// however they are written. `openssl rand -hex 32` gives 64.
pub const MIN_SECRET_LEN: usize = 32;

/// Why `secret` is too weak to accept, if it is: shorter than [`MIN_SECRET_LEN`], or a
/// placeholder from Wharf's example configurations and documentation (`change-me-...`), which
/// anyone can read.
pub fn weak_secret(secret: &str) -> Option<String> {
    let lower = secret.to_ascii_lowercase();
    if secret.chars().count() < MIN_SECRET_LEN {
        Some(format!(
            "must be at least {MIN_SECRET_LEN} characters: generate one with `openssl rand -hex 32`"
        ))
    } else if ["change-me", "changeme", "example"]
        .iter()
        .any(|p| lower.contains(p))
    {
        Some(
            "is a placeholder from Wharf's examples, which anyone can read: generate one with `openssl rand -hex 32`"
                .to_owned(),
        )
    } else {
        None
    }
}

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

/// A PostgreSQL URL from `database_url` or `database_url_env`. Its `Debug` hides the password
/// (configs are logged with `{:?}`).
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL with its password replaced by `***`, for logs and printed hints:
    /// `postgres://user:password@host/db` -> `postgres://user:***@host/db`.
    pub fn masked(&self) -> String {
        let text = &self.0;
        match (text.find("://"), text.find('@')) {
            (Some(scheme), Some(at)) if scheme + 3 < at => {
                let credentials = &text[scheme + 3..at];
                match credentials.split_once(':') {
                    Some((user, _)) => format!("{}{user}:***{}", &text[..scheme + 3], &text[at..]),
                    None => text.clone(),
                }
            }
            _ => text.clone(),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({:?})", self.masked())
    }
}

/// The `database_url = "..."` line of a generated configuration (`wharf up`, the benchmarks),
/// or nothing for SQLite when no URL (or an empty one) was given.
pub fn database_toml(url: Option<&str>) -> String {
    url.filter(|url| !url.is_empty())
        .map(|url| format!("database_url = {}\n", toml::Value::String(url.to_owned())))
        .unwrap_or_default()
}

/// A value given under a configuration key, and the key it was read under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Given {
    pub value: String,
    /// `key` when the file holds the value, `key_env` when an environment variable does: the
    /// key to name in an error about the value itself.
    pub key: String,
}

/// The one rule for every `x` / `x_env` pair of keys: the value is written in the file as `x`,
/// or `x_env` names the environment variable that holds it (so secrets can stay out of the
/// file); never both. `key` is the full key of the value (`destinations[0].verification_token`),
/// its twin is `{key}_env`. An environment variable that is unset or empty is refused naming
/// `{key}_env`. `Ok(None)` when neither key is set.
pub fn value_or_env(
    env: &dyn Env,
    key: &str,
    value: Option<String>,
    var: Option<String>,
) -> Result<Option<Given>, ConfigError> {
    match (value, var) {
        (Some(_), Some(_)) => Err(err(key, format!("set either {key} or {key}_env, not both"))),
        (Some(value), None) => Ok(Some(Given {
            value,
            key: key.to_owned(),
        })),
        (None, Some(var)) => {
            let env_key = format!("{key}_env");
            match env.var(&var).filter(|v| !v.is_empty()) {
                Some(value) => Ok(Some(Given {
                    value,
                    key: env_key,
                })),
                None => Err(err(
                    env_key,
                    format!(
                        "names the environment variable {var:?}, which is not set (or is empty)"
                    ),
                )),
            }
        }
        (None, None) => Ok(None),
    }
}

/// `database_url` (or `database_url_env`, an environment variable's name): a PostgreSQL URL
/// puts the server's data in that database, shared with other processes; neither keeps the
/// embedded SQLite files in `data_dir`. `WHARF_DATABASE_URL`, when set, overrides both, as
/// `WHARF_DATA_DIR` overrides `data_dir` (one image, configured per deployment).
pub fn database_url(
    env: &dyn Env,
    url: Option<String>,
    url_env: Option<String>,
) -> Result<Option<DatabaseUrl>, ConfigError> {
    if let Some(url) = env.var("WHARF_DATABASE_URL").filter(|u| !u.is_empty()) {
        return checked_database_url("WHARF_DATABASE_URL", url).map(Some);
    }
    match value_or_env(env, "database_url", url, url_env)? {
        Some(given) => checked_database_url("database_url", given.value).map(Some),
        None => Ok(None),
    }
}

/// `database_max_connections`: the most connections one process opens to its PostgreSQL
/// database (`default` unless set). Refused without a database, where it would do nothing.
pub fn database_max_connections(
    value: Option<usize>,
    database_url: Option<&DatabaseUrl>,
    default: usize,
) -> Result<usize, ConfigError> {
    const KEY: &str = "database_max_connections";
    match (value, database_url) {
        (None, _) => Ok(default),
        (Some(_), None) => Err(err(
            KEY,
            "only applies to PostgreSQL: set database_url too, or remove it",
        )),
        (Some(n), Some(_)) if !(2..=1000).contains(&n) => Err(err(
            KEY,
            format!(
                "{n} is out of range: give 2 to 1000 (PostgreSQL allows 100 in all by default)"
            ),
        )),
        (Some(n), Some(_)) => Ok(n),
    }
}

/// Refuses a weak secret ([`weak_secret`]) naming `key`. The error never contains the secret.
pub fn strong_secret(key: &str, secret: &str) -> Result<(), ConfigError> {
    match weak_secret(secret) {
        Some(problem) => Err(err(key, problem)),
        None => Ok(()),
    }
}

/// A password-like token given as `key` or `key_env` (an environment variable's name): visible
/// ASCII, not weak ([`weak_secret`]: at least 32 characters, no placeholder).
pub fn secret_token(
    env: &dyn Env,
    key: &str,
    value: Option<String>,
    var: Option<String>,
) -> Result<Option<VerificationToken>, ConfigError> {
    let Some(Given { value, key: from }) = value_or_env(env, key, value, var)? else {
        return Ok(None);
    };
    let token = VerificationToken::new(value).map_err(|e| err(&from, e.to_string()))?;
    strong_secret(&from, token.expose())?;
    Ok(Some(token))
}

/// `url` if it is a PostgreSQL URL; otherwise an error naming `key`, where it came from (a
/// configuration key, an environment variable or a command-line flag).
pub fn checked_database_url(key: &str, url: String) -> Result<DatabaseUrl, ConfigError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(err(
            key,
            "must be a PostgreSQL URL like \"postgres://user:password@host:5432/database\" \
             (add ?sslmode=require for TLS); leave it out to keep SQLite files in data_dir",
        ));
    }
    Ok(DatabaseUrl(url))
}

#[cfg(test)]
mod secret_tests {
    use super::*;

    #[test]
    fn short_secrets_are_refused_with_the_key_and_a_way_out() {
        let e = strong_secret("admin_token", "hunter2").unwrap_err();
        assert_eq!(e.key, "admin_token");
        assert!(e.problem.contains("openssl rand -hex 32"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(strong_secret("admin_token", &"a".repeat(31)).is_err());
        assert!(strong_secret("admin_token", &"a".repeat(32)).is_ok());
    }
}

#[cfg(test)]
mod database_url_tests {
    use super::*;

    struct Vars;
    impl Env for Vars {
        fn var(&self, name: &str) -> Option<String> {
            (name == "DB").then(|| "postgres://u:secret@h/d".to_owned())
        }
    }

    #[test]
    fn database_url_from_the_file_or_the_environment() {
        assert_eq!(database_url(&Vars, None, None).unwrap(), None);
        let url = database_url(&Vars, None, Some("DB".into()))
            .unwrap()
            .unwrap();
        assert_eq!(url.as_str(), "postgres://u:secret@h/d");
        assert!(!format!("{url:?}").contains("secret"));
        let e = database_url(&Vars, Some("mysql://x".into()), None).unwrap_err();
        assert_eq!(e.key, "database_url");
        let e = database_url(&Vars, Some("postgres://x".into()), Some("DB".into())).unwrap_err();
        assert!(e.problem.contains("not both"));
        let e = database_url(&Vars, None, Some("NOPE".into())).unwrap_err();
        assert_eq!(e.key, "database_url_env");
    }

    struct Override(&'static str);
    impl Env for Override {
        fn var(&self, name: &str) -> Option<String> {
            (name == "WHARF_DATABASE_URL").then(|| self.0.to_owned())
        }
    }

    #[test]
    fn database_max_connections_needs_a_database_and_a_sane_number() {
        let url = checked_database_url("database_url", "postgres://h/d".into()).unwrap();
        assert_eq!(database_max_connections(None, None, 16).unwrap(), 16);
        assert_eq!(database_max_connections(None, Some(&url), 16).unwrap(), 16);
        assert_eq!(
            database_max_connections(Some(40), Some(&url), 16).unwrap(),
            40
        );
        let e = database_max_connections(Some(40), None, 16).unwrap_err();
        assert!(e.problem.contains("set database_url"), "{}", e.problem);
        for bad in [0, 1, 1001] {
            let e = database_max_connections(Some(bad), Some(&url), 16).unwrap_err();
            assert_eq!(e.key, "database_max_connections");
        }
    }

    #[test]
    fn wharf_database_url_overrides_the_file() {
        let url = database_url(
            &Override("postgres://o@h/d"),
            Some("postgres://x".into()),
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(url.as_str(), "postgres://o@h/d");
        let e = database_url(&Override("sqlite://nope"), None, None).unwrap_err();
        assert_eq!(e.key, "WHARF_DATABASE_URL");
        // Empty means unset: the file (here: nothing, so SQLite) decides.
        assert_eq!(database_url(&Override(""), None, None).unwrap(), None);
    }
}
