//! `wharf engine sources|subscriptions|alerts` against a running engine process: a source
//! created (its apiKey printed once), listed, renamed and deleted; a subscription created,
//! paused, resumed and deleted; an alert rule created linked to it, listed and deleted; the
//! engine reached through its configuration file or `--url` with `WHARF_MANAGEMENT_KEY`.

use super::faults::{KEY, create_destination, write_engine_config};
use super::*;
use wharf_testkit::Recorder;

struct Cli {
    config: String,
}

impl Cli {
    async fn run(&self, args: &[&str]) -> Output {
        let mut all: Vec<&str> = vec!["engine"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--config", &self.config]);
        wharf()
            .args(&all)
            .env_remove("WHARF_MANAGEMENT_KEY")
            .output()
            .await
            .unwrap()
    }

    /// Runs a command that must succeed; answers its standard output.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    }
}

/// The first word of the line of `listing` that mentions `needle`.
fn line_with<'a>(listing: &'a str, needle: &str) -> Option<&'a str> {
    listing.lines().find(|l| l.contains(needle))
}

#[tokio::test]
async fn an_operator_manages_sources_subscriptions_and_alert_rules_from_the_command_line() {
    let dir = TestDir::new();
    let port = free_port();
    let config = write_engine_config(&dir, port, "");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let _engine = wharf()
        .args(["engine", "serve", "--config", config.to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_healthy(addr).await;
    let base = format!("http://{addr}");
    let cli = Cli {
        config: config.to_str().unwrap().to_owned(),
    };

    // A source: its apiKey printed once at creation, never in the listing.
    let created = cli.ok(&["sources", "create", "Clinic feed"]).await;
    let id = created
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("{created}"))
        .to_owned();
    let key = line_with(&created, "apiKey: ")
        .and_then(|l| l.strip_prefix("apiKey: "))
        .unwrap_or_else(|| panic!("{created}"))
        .to_owned();
    assert_eq!(key.len(), 64, "{created}");
    assert!(created.contains("shown this once"), "{created}");
    let listed = cli.ok(&["sources", "list"]).await;
    assert_eq!(
        line_with(&listed, &id),
        Some(format!("{id}\tClinic feed\tapi").as_str()),
        "{listed}"
    );
    assert!(!listed.contains(&key), "the key is shown once: {listed}");
    cli.ok(&["sources", "rename", &id, "Clinic ADT"]).await;
    assert!(
        cli.ok(&["sources", "list"]).await.contains("Clinic ADT"),
        "renamed"
    );

    // A subscription of a destination to it, paused and resumed.
    let target = Recorder::ok().await;
    let destination = create_destination(&base, &target.url("/redox"), TOKEN).await;
    let created = cli
        .ok(&[
            "subscriptions",
            "create",
            "--source",
            &id,
            "--destination",
            &destination,
            "--data-model",
            "PatientAdmin",
        ])
        .await;
    let subscription = created
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("{created}"))
        .to_owned();
    let status_of = |listing: &str| {
        line_with(listing, &format!("source {id}"))
            .map(|l| l.rsplit('\t').next().unwrap().to_owned())
    };
    let listed = cli.ok(&["subscriptions", "list"]).await;
    assert!(listed.starts_with(&format!("{subscription}\t")), "{listed}");
    assert!(listed.contains("PatientAdmin"), "{listed}");
    assert_eq!(status_of(&listed).as_deref(), Some("active"));
    cli.ok(&["subscriptions", "pause", &subscription]).await;
    let listed = cli.ok(&["subscriptions", "list"]).await;
    assert_eq!(status_of(&listed).as_deref(), Some("paused"), "{listed}");
    cli.ok(&["subscriptions", "resume", &subscription]).await;
    let listed = cli.ok(&["subscriptions", "list"]).await;
    assert_eq!(status_of(&listed).as_deref(), Some("active"), "{listed}");

    // An alert rule linked to the subscription.
    let created = cli
        .ok(&[
            "alerts",
            "create",
            "--name",
            "Clinic failures",
            "--type",
            "error-threshold",
            "--lookback",
            "PT1H",
            "--threshold",
            "3",
            "--webhook",
            "https://hooks.example.com/alerts",
            "--ignore-day",
            "SUNDAY",
            "--subscription",
            &subscription,
        ])
        .await;
    let alert = created
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("{created}"))
        .to_owned();
    assert!(
        created.contains(&format!("linked to subscription {subscription}")),
        "{created}"
    );
    let listed = cli.ok(&["alerts", "list"]).await;
    assert_eq!(
        line_with(&listed, &alert),
        Some(
            format!(
                "{alert}\tClinic failures\terror-threshold\tPT1H\tactive\tsubscriptions {subscription}:active"
            )
            .as_str()
        ),
        "{listed}"
    );
    // A queue-paused rule needs no window; a traffic rule without one is refused.
    let stuck = cli
        .ok(&[
            "alerts",
            "create",
            "--name",
            "Stuck queues",
            "--type",
            "queue-paused",
            "--webhook",
            "https://hooks.example.com/queues",
        ])
        .await;
    let stuck = stuck.split_whitespace().nth(1).unwrap().to_owned();
    assert!(
        cli.ok(&["alerts", "list"]).await.contains(&format!(
            "{stuck}\tStuck queues\tqueue-paused\tPT1M\tactive"
        )),
        "the unused window answered as PT1M"
    );
    cli.ok(&["alerts", "delete", &stuck]).await;
    let windowless = cli
        .run(&[
            "alerts",
            "create",
            "--name",
            "x",
            "--type",
            "no-traffic",
            "--webhook",
            "https://hooks.example.com/a",
        ])
        .await;
    assert_eq!(windowless.status.code(), Some(1));
    assert!(
        stderr(&windowless).contains("alertLookbackISODuration` is required"),
        "{}",
        stderr(&windowless)
    );
    // Refusals: the engine's words, exit 1; no way to reach the engine, exit 2.
    let refused = cli
        .run(&[
            "alerts",
            "create",
            "--name",
            "x",
            "--type",
            "quiet",
            "--lookback",
            "PT1H",
            "--webhook",
            "https://hooks.example.com/a",
        ])
        .await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("is not one of no-traffic"),
        "{}",
        stderr(&refused)
    );
    let nowhere = wharf()
        .args(["engine", "sources", "list"])
        .env_remove("WHARF_MANAGEMENT_KEY")
        .output()
        .await
        .unwrap();
    assert_eq!(nowhere.status.code(), Some(2));
    assert!(
        stderr(&nowhere).contains("--config"),
        "{}",
        stderr(&nowhere)
    );
    // `--url` with the key from the environment.
    let by_url = wharf()
        .args(["engine", "alerts", "list", "--url", &base])
        .env("WHARF_MANAGEMENT_KEY", KEY)
        .output()
        .await
        .unwrap();
    assert!(by_url.status.success(), "{}", stderr(&by_url));
    assert!(stdout(&by_url).contains(&alert));
    let wrong_key = wharf()
        .args(["engine", "alerts", "list", "--url", &base])
        .env("WHARF_MANAGEMENT_KEY", "not-the-key-0123456789-0123456789")
        .output()
        .await
        .unwrap();
    assert_eq!(wrong_key.status.code(), Some(1));
    assert!(stderr(&wrong_key).contains("401"), "{}", stderr(&wrong_key));

    // Deleted, each.
    cli.ok(&["alerts", "delete", &alert]).await;
    assert!(!cli.ok(&["alerts", "list"]).await.contains(&alert));
    cli.ok(&["subscriptions", "delete", &subscription]).await;
    assert!(cli.ok(&["subscriptions", "list"]).await.is_empty());
    cli.ok(&["sources", "delete", &id]).await;
    assert!(!cli.ok(&["sources", "list"]).await.contains(&id));
}
