//! `wharf up`: the whole thing on one machine with nothing installed.
//!
//! Starts an engine and a destination server in one process on embedded SQLite under
//! `./wharf-data`, makes sure a Development destination exists that points at the local
//! destination server and is verified, and prints what is needed to push data through it.
//! The two halves still meet only over HTTP: the destination record is created and verified
//! through the engine's management API, exactly as a user would.
//!
//! Secrets (management key, master key, source key, verification token) are generated on the
//! first run and kept in `wharf-data/up.json` (mode 0600), so every later run finds the same
//! destination already verified.

use crate::destination_cmd::shutdown_signal;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use wharf_engine::client::{ApiError, ManagementClient};

/// `writeln!` that ignores a closed standard output.
macro_rules! say {
    ($out:expr, $($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}

const DESTINATION_NAME: &str = "Local destination";
const DESTINATION_PATH: &str = "/redox";

#[derive(clap::Args)]
pub struct UpArgs {
    /// Where everything is kept.
    #[arg(long, default_value = "wharf-data")]
    data_dir: PathBuf,
    /// The engine's address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    engine_listen: String,
    /// The destination server's address.
    #[arg(long, default_value = "127.0.0.1:8443")]
    destination_listen: String,
    /// Keep the engine's and the destination's tables in this PostgreSQL database
    /// (`postgres://...`) instead of SQLite files under the data directory.
    #[arg(long, env = "WHARF_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

/// The generated secrets, kept across runs.
#[derive(Serialize, Deserialize)]
struct Secrets {
    management_key: String,
    master_key: String,
    source_key: String,
    verification_token: String,
}

/// Why `wharf up` could not start, in the words of this command: its flags, not the
/// configuration keys they fill.
#[derive(Debug, thiserror::Error)]
enum UpError {
    #[error("--data-dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is damaged ({source}); move it away to start afresh")]
    Damaged {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(transparent)]
    Private(#[from] wharf_store::StoreError),
    #[error("cannot write {path}: {source}; check the data directory's owner and free space")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--destination-listen or --database-url: {0}")]
    DestinationConfig(wharf_config::ConfigError),
    #[error("the destination server {0}; choose another address with --destination-listen")]
    DestinationBind(wharf_serve::BindError),
    #[error("cannot start the destination server: {0}")]
    Destination(wharf_destination::StartError),
    #[error("--engine-listen or --database-url: {0}")]
    EngineConfig(wharf_config::ConfigError),
    #[error("the engine {0}; choose another address with --engine-listen")]
    EngineBind(wharf_serve::BindError),
    #[error("cannot start the engine: {0}")]
    Engine(wharf_engine::StartError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("Verify and Save of the local destination failed: {0}")]
    Verify(ApiError),
}

fn random_secret() -> String {
    wharf_engine::secrets::random_key()
}

fn secrets(data_dir: &Path) -> Result<Secrets, UpError> {
    let path = data_dir.join("up.json");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return serde_json::from_str(&text).map_err(|source| UpError::Damaged { path, source });
    }
    wharf_store::private::dir(data_dir)?;
    let s = Secrets {
        management_key: random_secret(),
        master_key: random_secret(),
        source_key: random_secret(),
        verification_token: random_secret(),
    };
    write_private(
        &path,
        &serde_json::to_vec_pretty(&s).expect("secrets serialise"),
    )
    .map_err(|source| UpError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(s)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

fn toml_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

pub async fn up(args: &UpArgs) -> ExitCode {
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &UpArgs) -> Result<(), UpError> {
    // Absolute from here on: the paths printed below must work from any directory.
    let data_dir = std::path::absolute(&args.data_dir).map_err(|source| UpError::DataDir {
        path: args.data_dir.clone(),
        source,
    })?;
    let s = secrets(&data_dir)?;
    let database = wharf_config::database_toml(args.database_url.as_deref());
    let destination_config = wharf_destination::Config::parse(
        &format!(
            "listen = {}\ndata_dir = {}\n{database}[[destinations]]\nname = {}\npath = {}\nenvironment = \"Development\"\nverification_token = {}\n",
            toml_string(&args.destination_listen),
            toml_string(&data_dir.join("destination").to_string_lossy()),
            toml_string(DESTINATION_NAME),
            toml_string(DESTINATION_PATH),
            toml_string(&s.verification_token),
        ),
        &wharf_destination::config::ProcessEnv,
    )
    .map_err(UpError::DestinationConfig)?;
    let destination_config_database = destination_config.database_url.clone();
    // Errors in the words of this command: its flags, not the configuration keys they fill.
    let destination = wharf_destination::start(destination_config)
        .await
        .map_err(|e| match e {
            wharf_destination::StartError::Bind(bind) => UpError::DestinationBind(bind),
            e => UpError::Destination(e),
        })?;
    let engine_config = wharf_engine::EngineConfig::parse(
        &format!(
            "listen = {}\ndata_dir = {}\n{database}organization = \"Local\"\napi_keys = [{}]\nmaster_key = {}\nprivate_endpoints = [{}]\n[[sources]]\nname = \"wharf send\"\napi_key = {}\n",
            toml_string(&args.engine_listen),
            toml_string(&data_dir.join("engine").to_string_lossy()),
            toml_string(&s.management_key),
            toml_string(&s.master_key),
            // The engine may reach its own loopback destination, and no other private address.
            toml_string(&destination.local_addr().to_string()),
            toml_string(&s.source_key),
        ),
        &wharf_config::ProcessEnv,
    )
    .map_err(UpError::EngineConfig)?;

    let engine = wharf_engine::start(engine_config)
        .await
        .map_err(|e| match e {
            wharf_engine::StartError::Bind(bind) => UpError::EngineBind(bind),
            e => UpError::Engine(e),
        })?;
    let api = format!("http://{}", engine.local_addr());
    let endpoint = format!("http://{}{DESTINATION_PATH}", destination.local_addr());
    let id = ensure_verified_destination(&api, &s, &endpoint).await?;

    // Every command printed works as printed, from any directory: the binary by its absolute
    // path, the data directory absolute, the examples from inside the binary.
    let wharf = this_binary();
    // Written so that a closed stdout (`wharf up | head`) does not stop the servers.
    let mut out = std::io::stdout().lock();
    say!(out, "Wharf is up.");
    say!(
        out,
        "  engine API:          {api}/platform/v1  (Authorization: Bearer {})",
        s.management_key
    );
    say!(
        out,
        "  dashboard:           {api}/dashboard  (sign in with the management key above)"
    );
    say!(
        out,
        "  destination:         {endpoint}  (id {id}, verified)"
    );
    say!(
        out,
        "  verification token:  {}  (the destination's; the dashboard's wizard asks for one)",
        s.verification_token
    );
    say!(
        out,
        "  data:                {}  (keys in {})",
        data_dir.display(),
        data_dir.join("up.json").display()
    );
    match &destination_config_database {
        // The URL as given may carry a password: show it masked, as the logs do.
        Some(url) => say!(
            out,
            "  inbox:               {wharf} destination inbox --database-url {}",
            url.masked()
        ),
        None => say!(
            out,
            "  inbox:               {wharf} destination inbox --data-dir {}",
            shell_word(&data_dir.join("destination").to_string_lossy())
        ),
    }
    say!(out, "");
    say!(
        out,
        "Push the bundled examples through the engine to the destination (from any directory):"
    );
    say!(
        out,
        "  {wharf} send --engine {api} --key {} --destination {id} --example {}",
        s.source_key,
        crate::examples::ASYNC_NAMES
    );
    say!(
        out,
        "(`cargo install --path crates/wharf` puts `wharf` on your PATH, to type it short.)"
    );
    say!(out, "");
    say!(out, "Ctrl-C stops both.");
    drop(out);
    let engine_stop = tokio::spawn(async move { engine.run_until(shutdown_signal()).await });
    destination.run_until(shutdown_signal()).await;
    let _ = engine_stop.await;
    Ok(())
}

/// This binary's absolute path as a shell word, or plain `wharf` when it cannot be known.
fn this_binary() -> String {
    std::env::current_exe()
        .map(|path| shell_word(&path.to_string_lossy()))
        .unwrap_or_else(|_| "wharf".to_owned())
}

/// `word` as one word of a POSIX shell command: as it is when nothing in it is special,
/// else in single quotes.
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+:@%=,".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Finds (or creates) the local destination through the management API and verifies it if it
/// is not verified yet. Idempotent across restarts.
async fn ensure_verified_destination(
    api: &str,
    s: &Secrets,
    endpoint: &str,
) -> Result<String, UpError> {
    let api = ManagementClient::new(reqwest::Client::new(), api, &s.management_key);
    let dev = api.development().await?;
    let found = api
        .destinations(&dev)
        .await?
        .into_iter()
        .find(|d| d["name"] == DESTINATION_NAME);
    let destination = match found {
        Some(d) => d,
        None => {
            api.create_destination(&dev, DESTINATION_NAME, endpoint, &s.verification_token)
                .await?
        }
    };
    let id = destination["id"]
        .as_str()
        .ok_or(ApiError::Missing {
            path: format!("/platform/v1/environments/{dev}/destinations"),
            what: "destination id",
        })?
        .to_owned();
    if destination["verified"] != true || destination["endpoint"] != endpoint {
        api.verify(
            &id,
            json!({"endpoint": endpoint, "verificationToken": s.verification_token}),
        )
        .await
        .map_err(UpError::Verify)?;
    }
    Ok(id)
}
