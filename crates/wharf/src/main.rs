//! `wharf`: the one binary. Parses the command line, sets up logging and the runtime, and hands
//! each command to its module. Exit status: 0 success, 1 failure, 2 a usage or configuration
//! mistake the user must fix.

mod check_config;
mod destination_cmd;
mod engine_cmd;
mod examples;
mod logging;
mod platform_cmd;
mod redox;
mod up;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: the HTTP path allocates and frees small buffers for every
/// request (hyper's read buffer, headers, the JSON answer), and glibc's allocator was 16 % of
/// the HTTP workers' CPU under the destination benchmark. With mimalloc the same build answered
/// 5-19 % more durable acknowledgements and more health checks per second, with a lower ack p99
/// in each of three alternating pairs (`docs/experiments/destination-throughput.md`,
/// "mimalloc"). SQLite keeps its own calls to the C library's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "wharf",
    version,
    about = "Redox-style healthcare data delivery: the destination you run, and Redox's side in miniature"
)]
struct Cli {
    /// Log format on standard error.
    #[arg(long, global = true, value_enum, default_value_t = logging::Format::Human)]
    log_format: logging::Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run or inspect a destination server (the endpoint a Redox customer runs).
    #[command(subcommand)]
    Destination(DestinationCommand),
    /// Everything on one machine: an engine and a destination under ./wharf-data, a verified
    /// Development destination, and the command that pushes the examples through them.
    Up(up::UpArgs),
    /// Run the engine (the Redox-like side): management API and Verify and Save.
    #[command(subcommand)]
    Engine(EngineCommand),
    /// Perform Verify and Save against an endpoint, as Redox does: prints `Success!` or the reason.
    Verify(redox::VerifyArgs),
    /// POST message files (or the bundled examples) to an endpoint as Redox would, in order,
    /// and report each status.
    Send(redox::SendArgs),
    /// List the example messages bundled in this binary, or write them out with --write DIR.
    Examples(examples::ExamplesArgs),
    /// Validate an engine or destination configuration file without starting anything:
    /// prints a summary and exits 0, or names the key that is wrong and exits 2.
    CheckConfig {
        /// The configuration file.
        file: PathBuf,
    },
    /// Hash a dashboard password for the engine's `dashboard_password_hash`: reads it from
    /// standard input, prints the argon2id PHC string.
    HashPassword,
    /// Load generators for the benchmarks in docs/BENCHMARKS.md.
    #[command(subcommand)]
    Bench(wharf_bench::BenchCommand),
}

#[derive(Subcommand)]
enum DestinationCommand {
    /// Serve the destinations of a configuration file until SIGTERM or Ctrl-C.
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// List the messages kept in the inbox, a page at a time (works beside a running server).
    Inbox(destination_cmd::InboxArgs),
    /// Print one kept message's body exactly as it was received.
    Message(destination_cmd::MessageArgs),
    /// Delete malformed messages once dealt with (nothing else deletes them).
    Discard(destination_cmd::DiscardArgs),
    /// Move messages the application keeps refusing (a poison message holding its destination)
    /// to the dead letters, so the ones behind them are forwarded (works beside a running server).
    Skip(destination_cmd::SkipArgs),
    /// List the dead letters: messages skipped, or moved by dead_letter_after.
    DeadLetters(destination_cmd::DeadLettersArgs),
    /// Put dead letters back in the forwarding order, where they arrived.
    Replay(destination_cmd::ReplayArgs),
}

#[derive(Subcommand)]
enum EngineCommand {
    /// Serve the engine of a configuration file until SIGTERM or Ctrl-C.
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// A running engine's sources: list, create (its apiKey shown once), rename, delete.
    #[command(subcommand)]
    Sources(platform_cmd::SourcesCommand),
    /// A running engine's subscriptions: list, create, delete, pause, resume.
    #[command(subcommand)]
    Subscriptions(platform_cmd::SubscriptionsCommand),
    /// A running engine's alert rules: list, create (optionally linked to subscriptions),
    /// delete.
    #[command(subcommand)]
    Alerts(platform_cmd::AlertsCommand),
}

fn main() -> ExitCode {
    // Everything this process creates (databases, `wharf up`'s secrets, files written out)
    // holds PHI or secrets: owner only. The store also creates and checks its own files.
    rustix::process::umask(rustix::fs::Mode::from_bits_truncate(0o077));
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Destination(DestinationCommand::Serve { config }) => {
                destination_cmd::serve(&config).await
            }
            Command::Destination(DestinationCommand::Inbox(args)) => destination_cmd::inbox(&args),
            Command::Destination(DestinationCommand::Message(args)) => {
                destination_cmd::message(&args)
            }
            Command::Destination(DestinationCommand::Discard(args)) => {
                destination_cmd::discard(&args)
            }
            Command::Destination(DestinationCommand::Skip(args)) => destination_cmd::skip(&args),
            Command::Destination(DestinationCommand::DeadLetters(args)) => {
                destination_cmd::dead_letters(&args)
            }
            Command::Destination(DestinationCommand::Replay(args)) => {
                destination_cmd::replay(&args)
            }
            Command::Up(args) => up::up(&args).await,
            Command::Engine(EngineCommand::Serve { config }) => engine_cmd::serve(&config).await,
            Command::Engine(EngineCommand::Sources(command)) => {
                platform_cmd::sources(&command).await
            }
            Command::Engine(EngineCommand::Subscriptions(command)) => {
                platform_cmd::subscriptions(&command).await
            }
            Command::Engine(EngineCommand::Alerts(command)) => platform_cmd::alerts(&command).await,
            Command::Verify(args) => redox::verify_cmd(&args).await,
            Command::Send(args) => redox::send_cmd(&args).await,
            Command::Examples(args) => examples::run(&args),
            Command::CheckConfig { file } => check_config::run(&file),
            Command::HashPassword => engine_cmd::hash_password(),
            Command::Bench(command) => wharf_bench::run(command).await,
        }
    })
}
