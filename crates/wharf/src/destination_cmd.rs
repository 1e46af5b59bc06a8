//! `wharf destination serve`, and the operator's inbox commands: `inbox` (list), `message`
//! (one body), `discard` (delete malformed messages), and for poison messages `skip` (move a
//! message the application keeps refusing to the dead letters), `dead-letters` (list them)
//! and `replay` (put them back in the forwarding order).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use wharf_destination::Config;
use wharf_store::{InboxReader, ListQuery, MessageStatus, MessageSummary, rfc3339};

/// Exit status for a configuration mistake.
pub const EXIT_CONFIG: u8 = 2;

fn load(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("configuration error: {e}");
        ExitCode::from(EXIT_CONFIG)
    })
}

pub async fn serve(path: &Path) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let running = match wharf_destination::start(config).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the destination server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let _hangup = reload_tls_on_hangup(running.tls());
    running.run_until(shutdown_signal()).await;
    ExitCode::SUCCESS
}

/// Reloads the TLS certificate and key on every SIGHUP, for as long as the returned task
/// lives. A reload that fails keeps the old certificate and logs why.
pub fn reload_tls_on_hangup(
    tls: Option<std::sync::Arc<wharf_serve::TlsReloader>>,
) -> Option<tokio::task::JoinHandle<()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = signal(SignalKind::hangup()).ok()?;
        Some(tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                match &tls {
                    Some(tls) => {
                        if let Err(e) = tls.reload() {
                            tracing::error!(error = %e, "SIGHUP: could not reload the TLS certificate; still serving the old one");
                        }
                    }
                    None => tracing::info!("SIGHUP: no TLS configured, nothing to reload"),
                }
            }
        }))
    }
    #[cfg(not(unix))]
    {
        let _ = tls;
        None
    }
}

/// Completes on SIGTERM or Ctrl-C (SIGINT).
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Where an inbox is: a destination configuration, or its data directory or database itself.
#[derive(clap::Args)]
pub struct InboxLocation {
    /// The destination server's configuration (its data_dir or database_url holds the inbox).
    #[arg(long, required_unless_present_any = ["data_dir", "database_url"])]
    config: Option<PathBuf>,
    /// Or the data directory itself (SQLite).
    #[arg(long, conflicts_with = "config")]
    data_dir: Option<PathBuf>,
    /// Or the PostgreSQL database itself (`postgres://...`), when `--config` is not given.
    #[arg(long, env = "WHARF_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

impl InboxLocation {
    /// The inbox's database, or the exit code after saying what is wrong.
    fn database(&self) -> Result<wharf_store::Database, ExitCode> {
        // A configuration applies WHARF_DATABASE_URL itself, so the URL only decides without one.
        let url = self.database_url.as_deref().filter(|url| !url.is_empty());
        let database = match (&self.data_dir, &self.config, url) {
            (Some(dir), _, _) => wharf_store::Database::Sqlite(dir.clone()),
            (None, Some(config), _) => {
                let c = load(config)?;
                wharf_store::Database::from_config(
                    &c.data_dir,
                    c.database_url.as_ref().map(|u| u.as_str()),
                )
            }
            (None, None, Some(url)) => {
                match wharf_config::checked_database_url("--database-url", url.to_owned()) {
                    Ok(url) => wharf_store::Database::Postgres(url.as_str().to_owned()),
                    Err(e) => {
                        eprintln!("error: --database-url {}", e.problem);
                        return Err(ExitCode::from(EXIT_CONFIG));
                    }
                }
            }
            (None, None, None) => {
                eprintln!("error: give --config, --data-dir or --database-url");
                return Err(ExitCode::from(EXIT_CONFIG));
            }
        };
        if let wharf_store::Database::Sqlite(data_dir) = &database {
            let db = data_dir.join(wharf_store::INBOX_FILE);
            if !db.exists() {
                // A relative --data-dir is taken from the current directory, which is the
                // usual reason a running server's inbox is "not there": say where we looked.
                let looked = std::path::absolute(&db).unwrap_or(db);
                let relative = self
                    .data_dir
                    .as_ref()
                    .filter(|dir| dir.is_relative())
                    .map(|dir| {
                        let here = std::env::current_dir()
                            .map(|d| d.display().to_string())
                            .unwrap_or_else(|_| "the current directory".into());
                        format!(
                            " --data-dir {} is relative, so it was taken from {here}; give the absolute path (`wharf up` prints it) or run this where the server was started.",
                            dir.display()
                        )
                    })
                    .unwrap_or_else(|| {
                        " No destination server has run with this data_dir yet.".into()
                    });
                eprintln!("no inbox at {}.{relative}", looked.display());
                return Err(ExitCode::FAILURE);
            }
        }
        Ok(database)
    }

    fn reader(&self) -> Result<(InboxReader, wharf_store::Database), ExitCode> {
        let database = self.database()?;
        match InboxReader::open_database(&database) {
            Ok(reader) => Ok((reader, database)),
            Err(e) => Err(cannot_read(&database, &e)),
        }
    }
}

fn cannot_read(database: &wharf_store::Database, e: &wharf_store::StoreError) -> ExitCode {
    eprintln!(
        "error: cannot read the inbox ({}): {e}",
        database.describe()
    );
    ExitCode::FAILURE
}

/// A message status as the command line spells it.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum StatusArg {
    Received,
    Forwarded,
    Malformed,
    DeadLetter,
}

impl From<StatusArg> for MessageStatus {
    fn from(s: StatusArg) -> Self {
        match s {
            StatusArg::Received => MessageStatus::Received,
            StatusArg::Forwarded => MessageStatus::Forwarded,
            StatusArg::Malformed => MessageStatus::Malformed,
            StatusArg::DeadLetter => MessageStatus::DeadLetter,
        }
    }
}

#[derive(clap::Args)]
pub struct InboxArgs {
    #[command(flatten)]
    location: InboxLocation,
    /// Print JSON (one array) instead of a table.
    #[arg(long)]
    json: bool,
    /// Only this destination (its configured name).
    #[arg(long)]
    destination: Option<String>,
    /// Only messages with this status.
    #[arg(long, value_enum)]
    status: Option<StatusArg>,
    /// Only messages after this sequence number (the SEQ column, `sequence` in JSON): the next
    /// page after the last one shown.
    #[arg(long, value_name = "SEQ")]
    after: Option<i64>,
    /// Only messages before this sequence number (with --newest: the next page back).
    #[arg(long, value_name = "SEQ")]
    before: Option<i64>,
    /// Newest first (default: oldest first).
    #[arg(long)]
    newest: bool,
    /// Most messages to list.
    #[arg(long, default_value_t = 1000)]
    limit: usize,
}

pub fn inbox(args: &InboxArgs) -> ExitCode {
    let (reader, database) = match args.location.reader() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let query = ListQuery {
        destination: args.destination.as_deref(),
        status: args.status.map(MessageStatus::from),
        after: args.after,
        before: args.before,
        newest_first: args.newest,
        limit: args.limit,
    };
    let rows = match reader.list(&query) {
        Ok(rows) => rows,
        Err(e) => return cannot_read(&database, &e),
    };
    if args.json {
        let rows: Vec<_> = rows.iter().map(json_row).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("rows serialise")
        );
    } else {
        print_table(&rows);
    }
    ExitCode::SUCCESS
}

#[derive(clap::Args)]
pub struct MessageArgs {
    #[command(flatten)]
    location: InboxLocation,
    /// Wharf's message id (the ID column of `wharf destination inbox`).
    message_id: String,
    /// Write the body to this file instead of standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
}

/// `wharf destination message`: one message's body, byte for byte as it was received.
pub fn message(args: &MessageArgs) -> ExitCode {
    let (reader, database) = match args.location.reader() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let message = match reader.message(&args.message_id) {
        Ok(Some(m)) => m,
        Ok(None) => {
            eprintln!(
                "no message {} in the inbox ({}); `wharf destination inbox` lists their ids",
                args.message_id,
                database.describe()
            );
            return ExitCode::FAILURE;
        }
        Err(e) => return cannot_read(&database, &e),
    };
    let written = match &args.output {
        Some(path) => std::fs::write(path, &message.body),
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(&message.body).and_then(|()| out.flush())
        }
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write the body: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(clap::Args)]
pub struct DiscardArgs {
    #[command(flatten)]
    location: InboxLocation,
    /// Wharf's ids of the malformed messages to delete.
    #[arg(required = true)]
    message_ids: Vec<String>,
}

/// `wharf destination discard`: deletes malformed messages an operator has dealt with.
pub fn discard(args: &DiscardArgs) -> ExitCode {
    change(
        &args.location,
        &args.message_ids,
        wharf_store::discard_malformed,
        "discarded",
        "no such message, or it is not malformed (only malformed messages can be discarded; the others may be the only copy)",
    )
}

#[derive(clap::Args)]
pub struct SkipArgs {
    #[command(flatten)]
    location: InboxLocation,
    /// Why, kept with each message (shown by `dead-letters` and on /_wharf).
    #[arg(long, default_value = "skipped by an operator")]
    reason: String,
    /// Wharf's ids of the messages to move (the head's id is on /_wharf, in the forwarder's
    /// log, and first in `wharf destination inbox --status received --destination NAME`).
    #[arg(required = true)]
    message_ids: Vec<String>,
}

/// `wharf destination skip`: moves messages still waiting to be forwarded (a poison message at
/// the head of its destination) to the dead letters, so the ones behind move again. Works
/// beside a running server; its forwarder notices within a second.
pub fn skip(args: &SkipArgs) -> ExitCode {
    change(
        &args.location,
        &args.message_ids,
        |database, ids| wharf_store::dead_letter(database, ids, &args.reason),
        "moved to the dead letters",
        "no such message, or it is not waiting to be forwarded (already forwarded, malformed, or a dead letter)",
    )
}

#[derive(clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    location: InboxLocation,
    /// Wharf's ids of the dead letters to put back (`wharf destination dead-letters`).
    #[arg(required = true)]
    message_ids: Vec<String>,
}

/// `wharf destination replay`: puts dead letters back in the forwarding order, where they
/// arrived (see `wharf_store::replay_dead_letters`).
pub fn replay(args: &ReplayArgs) -> ExitCode {
    change(
        &args.location,
        &args.message_ids,
        wharf_store::replay_dead_letters,
        "replayed",
        "no such message, or it is not a dead letter",
    )
}

#[derive(clap::Args)]
pub struct DeadLettersArgs {
    #[command(flatten)]
    location: InboxLocation,
    /// Print JSON (one array) instead of a table.
    #[arg(long)]
    json: bool,
    /// Only this destination (its configured name).
    #[arg(long)]
    destination: Option<String>,
    /// Only dead letters after this sequence number: the next page.
    #[arg(long, value_name = "SEQ")]
    after: Option<i64>,
    /// Most to list.
    #[arg(long, default_value_t = 1000)]
    limit: usize,
}

/// `wharf destination dead-letters`: the dead letters, oldest first, with why and when each
/// was moved (the same as `inbox --status dead-letter`).
pub fn dead_letters(args: &DeadLettersArgs) -> ExitCode {
    inbox(&InboxArgs {
        location: InboxLocation {
            config: args.location.config.clone(),
            data_dir: args.location.data_dir.clone(),
            database_url: args.location.database_url.clone(),
        },
        json: args.json,
        destination: args.destination.clone(),
        status: Some(StatusArg::DeadLetter),
        after: args.after,
        before: None,
        newest: false,
        limit: args.limit,
    })
}

/// Runs an operator's change on the messages named and says, for each, whether it applied.
fn change(
    location: &InboxLocation,
    message_ids: &[String],
    apply: impl FnOnce(
        &wharf_store::Database,
        &[String],
    ) -> Result<Vec<String>, wharf_store::StoreError>,
    done: &str,
    not_done: &str,
) -> ExitCode {
    let database = match location.database() {
        Ok(d) => d,
        Err(code) => return code,
    };
    let changed = match apply(&database, message_ids) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "error: cannot change the inbox ({}): {e}",
                database.describe()
            );
            return ExitCode::FAILURE;
        }
    };
    let mut all = true;
    for id in message_ids {
        if changed.contains(id) {
            println!("{done} {id}");
        } else {
            all = false;
            println!("not {done} {id}: {not_done}");
        }
    }
    if all {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn json_row(m: &MessageSummary) -> serde_json::Value {
    serde_json::json!({
        "id": m.message_id,
        "sequence": m.id,
        "destination": m.destination,
        "duplicateKey": m.duplicate_key,
        "kind": m.kind,
        "dataModel": m.data_model,
        "eventType": m.event_type,
        "logId": m.log_id,
        "contentType": m.content_type,
        "bytes": m.body_bytes,
        "receivedAt": rfc3339(m.received_at),
        "status": m.status,
        "forwardAttempts": m.forward_attempts,
        "lastError": m.last_error,
        "malformedReason": m.malformed_reason,
        "forwardedAt": m.forwarded_at.map(rfc3339),
        "firstFailedAt": m.first_failed_at.map(rfc3339),
        "deadLetteredAt": m.dead_lettered_at.map(rfc3339),
        "deadLetterReason": m.dead_letter_reason,
    })
}

fn print_table(rows: &[MessageSummary]) {
    println!(
        "{:>8}  {:<36}  {:<44}  {:<18}  {:<14}  {:<24}  {:<10}  DESTINATION",
        "SEQ", "ID", "DUPLICATE KEY", "DATA MODEL", "EVENT TYPE", "RECEIVED", "STATUS"
    );
    for m in rows {
        let mut status = m.status.as_str().to_owned();
        if let Some(reason) = &m.malformed_reason {
            status = format!("{status} ({reason})");
        } else if let Some(reason) = &m.dead_letter_reason {
            status = format!(
                "{status} ({reason}; after {} failed attempts: {})",
                m.forward_attempts,
                m.last_error.as_deref().unwrap_or("-")
            );
        } else if let Some(error) = m
            .last_error
            .as_ref()
            .filter(|_| m.status.as_str() == "received")
        {
            status = format!(
                "{status} (forwarding failed {}x: {error})",
                m.forward_attempts
            );
        }
        println!(
            "{:>8}  {:<36}  {:<44}  {:<18}  {:<14}  {:<24}  {:<10}  {}",
            m.id,
            m.message_id,
            truncate(&m.duplicate_key, 44),
            truncate(m.data_model.as_deref().unwrap_or("-"), 18),
            truncate(m.event_type.as_deref().unwrap_or("-"), 14),
            rfc3339(m.received_at),
            status,
            m.destination
        );
    }
    println!("{} message(s)", rows.len());
}

fn truncate(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(width - 1).collect();
        t.push('…');
        t
    }
}
