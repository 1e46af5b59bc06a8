//! The operator's commands against a running engine's Platform API: `wharf engine sources`,
//! `subscriptions` and `alerts` (list, create, delete; pause and resume a subscription).
//! They call the same API a client would (docs/PLATFORM.md), reached at the engine's
//! configured address with its first management key (or `--url` and `WHARF_MANAGEMENT_KEY`).

use crate::destination_cmd::EXIT_CONFIG;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use wharf_engine::client::{ApiError, ManagementClient};

/// Where the engine is, and which environment a command works in.
#[derive(Args)]
pub struct Connection {
    /// The engine's configuration file: the API is reached at its `public_url` (or its
    /// `listen` address) with its first management key.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The engine's base URL (e.g. https://wharf.example.com), instead of the configuration's;
    /// the management key is then read from WHARF_MANAGEMENT_KEY.
    #[arg(long)]
    url: Option<String>,
    /// The environment: Development, Staging or Production.
    #[arg(long, default_value = "Development")]
    environment: String,
}

#[derive(Subcommand)]
pub enum SourcesCommand {
    /// List the environment's sources (the configuration's `[[sources]]` among them).
    List(Connection),
    /// Create a source; its apiKey is printed once, now: keep it.
    Create {
        /// The source's name.
        name: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Rename a source.
    Rename {
        id: String,
        name: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Delete a source, with its subscriptions (their held messages are queued).
    Delete {
        id: String,
        #[command(flatten)]
        connection: Connection,
    },
}

#[derive(Subcommand)]
pub enum SubscriptionsCommand {
    /// List the environment's subscriptions.
    List(Connection),
    /// Subscribe a destination to a source's messages of one data model.
    Create {
        #[arg(long)]
        source: String,
        #[arg(long)]
        destination: String,
        /// e.g. PatientAdmin
        #[arg(long)]
        data_model: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Delete a subscription (its held messages are queued).
    Delete {
        id: i64,
        #[command(flatten)]
        connection: Connection,
    },
    /// Pause a subscription: its messages are held, in order, until it is resumed.
    Pause {
        id: i64,
        #[command(flatten)]
        connection: Connection,
    },
    /// Resume a paused subscription: its held messages are queued where they were.
    Resume {
        id: i64,
        #[command(flatten)]
        connection: Connection,
    },
}

#[derive(Subcommand)]
pub enum AlertsCommand {
    /// List the environment's alert rules with their links.
    List(Connection),
    /// Create an alert rule notifying a webhook or email addresses (through the engine's
    /// [smtp]), optionally linked to subscriptions.
    Create(AlertArgs),
    /// Delete an alert rule and its links.
    Delete {
        id: String,
        #[command(flatten)]
        connection: Connection,
    },
}

#[derive(Args)]
pub struct AlertArgs {
    #[arg(long)]
    name: String,
    /// no-traffic, low-traffic, error-threshold, retry-threshold or queue-paused.
    #[arg(long = "type")]
    alert_type: String,
    /// The window, an ISO 8601 duration: PT30M, PT12H, P3D (every type but queue-paused,
    /// which has none).
    #[arg(long)]
    lookback: Option<String>,
    /// The type's threshold (low-traffic, error-threshold, retry-threshold): a count of logs.
    #[arg(long)]
    threshold: Option<i64>,
    /// Where the notice is POSTed (JSON).
    #[arg(long, conflicts_with = "email")]
    webhook: Option<String>,
    /// An address to mail (repeat for several).
    #[arg(long)]
    email: Vec<String>,
    /// Weekdays to skip, e.g. SATURDAY (repeat for several).
    #[arg(long)]
    ignore_day: Vec<String>,
    /// The IANA time zone of the ignored days, e.g. America/Chicago.
    #[arg(long)]
    time_zone: Option<String>,
    /// A subscription the rule watches (repeat for several); without any, the rule watches
    /// its whole environment.
    #[arg(long)]
    subscription: Vec<i64>,
    #[command(flatten)]
    connection: Connection,
}

/// The API client and the environment's id a command needs.
async fn connect(c: &Connection) -> Result<(ManagementClient, String), Failure> {
    let from_env = std::env::var("WHARF_MANAGEMENT_KEY")
        .ok()
        .filter(|k| !k.is_empty());
    let config = match &c.config {
        Some(path) => Some(
            wharf_engine::EngineConfig::load(path)
                .map_err(|e| Failure::Usage(format!("configuration error: {e}")))?,
        ),
        None => None,
    };
    let base = match (&c.url, &config) {
        (Some(url), _) => url.clone(),
        (None, Some(config)) => base_url(config),
        (None, None) => {
            return Err(Failure::Usage(
                "give --config (the engine's configuration file) or --url with WHARF_MANAGEMENT_KEY".into(),
            ));
        }
    };
    let key = from_env
        .or_else(|| config.and_then(|c| c.api_keys.first().cloned()))
        .ok_or_else(|| {
            Failure::Usage(
                "no management key: set WHARF_MANAGEMENT_KEY (or give --config of an engine with api_keys)".into(),
            )
        })?;
    let api = ManagementClient::new(reqwest::Client::new(), base.trim_end_matches('/'), key);
    let env = api
        .environment(&c.environment)
        .await
        .map_err(Failure::api)?;
    Ok((api, env))
}

/// The engine's own address as its configuration gives it: its `public_url`, or its
/// `listen` address (a wildcard one reached on loopback).
fn base_url(config: &wharf_engine::EngineConfig) -> String {
    if let Some(url) = &config.public_url {
        return url.clone();
    }
    let mut addr = config.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{addr}")
}

enum Failure {
    Usage(String),
    Api(String),
}

impl Failure {
    fn api(e: ApiError) -> Self {
        Failure::Api(e.to_string())
    }
}

fn finish(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(Failure::Api(e)) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Subscriptions per page the API answers at most.
const PAGE: usize = 50;

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

pub async fn sources(command: &SourcesCommand) -> ExitCode {
    finish(run_sources(command).await)
}

async fn run_sources(command: &SourcesCommand) -> Result<(), Failure> {
    match command {
        SourcesCommand::List(c) => {
            let (api, env) = connect(c).await?;
            let listed = api
                .get(&format!("/platform/v1/environments/{env}/sources"))
                .await
                .map_err(Failure::api)?;
            for s in listed["sources"].as_array().into_iter().flatten() {
                let origin = if s["fromConfig"] == true {
                    "config"
                } else {
                    "api"
                };
                println!("{}\t{}\t{origin}", text(&s["id"]), text(&s["name"]));
            }
        }
        SourcesCommand::Create { name, connection } => {
            let (api, env) = connect(connection).await?;
            let created = api
                .post(
                    &format!("/platform/v1/environments/{env}/sources"),
                    json!({"name": name}),
                )
                .await
                .map_err(Failure::api)?;
            let source = &created["source"];
            println!(
                "source {} created: {}",
                text(&source["id"]),
                text(&source["name"])
            );
            println!(
                "apiKey: {}\n(shown this once: keep it now; senders use it as their bearer key)",
                text(&source["apiKey"])
            );
        }
        SourcesCommand::Rename {
            id,
            name,
            connection,
        } => {
            let (api, _) = connect(connection).await?;
            api.patch(&format!("/platform/v1/sources/{id}"), json!({"name": name}))
                .await
                .map_err(Failure::api)?;
            println!("source {id} renamed: {name}");
        }
        SourcesCommand::Delete { id, connection } => {
            let (api, _) = connect(connection).await?;
            api.delete(&format!("/platform/v1/sources/{id}"))
                .await
                .map_err(Failure::api)?;
            println!("source {id} deleted");
        }
    }
    Ok(())
}

/// Pauses or resumes a subscription (`status`: `paused` or `active`).
async fn set_status(id: i64, status: &str, connection: &Connection) -> Result<(), Failure> {
    let (api, _) = connect(connection).await?;
    api.patch(
        &format!("/platform/v1/subscriptions/{id}"),
        json!({"status": status}),
    )
    .await
    .map_err(Failure::api)?;
    println!("subscription {id} {status}");
    Ok(())
}

pub async fn subscriptions(command: &SubscriptionsCommand) -> ExitCode {
    finish(run_subscriptions(command).await)
}

async fn run_subscriptions(command: &SubscriptionsCommand) -> Result<(), Failure> {
    match command {
        SubscriptionsCommand::List(c) => {
            let (api, env) = connect(c).await?;
            // A page at a time, until a short one.
            for page in 0.. {
                let listed = api
                    .get(&format!(
                        "/platform/v1/environments/{env}/subscriptions?page={page}&count={PAGE}"
                    ))
                    .await
                    .map_err(Failure::api)?;
                let subscriptions = listed["subscriptions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                for s in &subscriptions {
                    println!(
                        "{}\tsource {}\tdestination {}\t{}\t{}",
                        s["id"],
                        text(&s["source"]["id"]),
                        text(&s["destination"]["id"]),
                        text(&s["dataModel"]),
                        text(&s["status"])
                    );
                }
                if subscriptions.len() < PAGE {
                    break;
                }
            }
        }
        SubscriptionsCommand::Create {
            source,
            destination,
            data_model,
            connection,
        } => {
            let (api, env) = connect(connection).await?;
            let created = api
                .post(
                    &format!("/platform/v1/environments/{env}/subscriptions"),
                    json!({"source": {"id": source}, "destination": {"id": destination}, "dataModel": data_model}),
                )
                .await
                .map_err(Failure::api)?;
            println!("subscription {} created", created["subscription"]["id"]);
        }
        SubscriptionsCommand::Delete { id, connection } => {
            let (api, _) = connect(connection).await?;
            api.delete(&format!("/platform/v1/subscriptions/{id}"))
                .await
                .map_err(Failure::api)?;
            println!("subscription {id} deleted");
        }
        SubscriptionsCommand::Pause { id, connection } => {
            set_status(*id, "paused", connection).await?
        }
        SubscriptionsCommand::Resume { id, connection } => {
            set_status(*id, "active", connection).await?
        }
    }
    Ok(())
}

pub async fn alerts(command: &AlertsCommand) -> ExitCode {
    finish(run_alerts(command).await)
}

async fn run_alerts(command: &AlertsCommand) -> Result<(), Failure> {
    match command {
        AlertsCommand::List(c) => {
            let (api, env) = connect(c).await?;
            let listed = api
                .get(&format!("/platform/v2/environments/{env}/alerts"))
                .await
                .map_err(Failure::api)?;
            for a in listed["alerts"].as_array().into_iter().flatten() {
                let links: Vec<String> = a["alertLinks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|l| format!("{}:{}", l["subscription"]["id"], text(&l["status"])))
                    .collect();
                let watches = if links.is_empty() {
                    "environment".to_owned()
                } else {
                    format!("subscriptions {}", links.join(","))
                };
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{watches}",
                    text(&a["id"]),
                    text(&a["name"]),
                    text(&a["alertType"]["code"]),
                    text(&a["alertConfiguration"]["alertLookbackISODuration"]),
                    text(&a["status"]),
                );
            }
        }
        AlertsCommand::Create(args) => {
            let (api, env) = connect(&args.connection).await?;
            let mut configuration = json!({});
            if let Some(lookback) = &args.lookback {
                configuration["alertLookbackISODuration"] = lookback.as_str().into();
            }
            if let Some(n) = args.threshold {
                let field = match args.alert_type.as_str() {
                    "low-traffic" => "trafficThreshold",
                    "retry-threshold" => "retryThreshold",
                    _ => "errorThreshold",
                };
                configuration[field] = n.into();
            }
            let notification = match &args.webhook {
                Some(url) => json!({"type": "webhook", "configuration": {"url": url}}),
                None if !args.email.is_empty() => {
                    json!({"type": "email", "configuration": {"to": args.email}})
                }
                None => {
                    return Err(Failure::Usage(
                        "give --webhook URL or --email ADDRESS: where the rule's notices go".into(),
                    ));
                }
            };
            let mut body = json!({"name": args.name, "alertType": {"code": args.alert_type},
                                  "alertConfiguration": configuration, "notification": notification,
                                  "ignoreDaysOfWeek": args.ignore_day});
            if let Some(tz) = &args.time_zone {
                body["timeZone"] = tz.clone().into();
            }
            let created = api
                .post(&format!("/platform/v2/environments/{env}/alerts"), body)
                .await
                .map_err(Failure::api)?;
            let id = text(&created["alert"]["id"]).to_owned();
            println!("alert {id} created");
            for subscription in &args.subscription {
                let linked = api
                    .post(
                        &format!("/platform/v2/environments/{env}/alertLinks"),
                        json!({"assignment": {"id": id, "kind": "alert"}, "subscription": {"id": subscription}}),
                    )
                    .await
                    .map_err(|e| {
                        Failure::Api(format!(
                            "alert {id} was created, but linking subscription {subscription} failed: {e}"
                        ))
                    })?;
                println!(
                    "alert {id} linked to subscription {subscription} (link {})",
                    text(&linked["alertLink"]["id"])
                );
            }
        }
        AlertsCommand::Delete { id, connection } => {
            let (api, env) = connect(connection).await?;
            api.delete(&format!("/platform/v2/environments/{env}/alerts/{id}"))
                .await
                .map_err(Failure::api)?;
            println!("alert {id} deleted");
        }
    }
    Ok(())
}
