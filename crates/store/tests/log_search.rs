//! Issue 29 in the store, on SQLite and PostgreSQL alike: payload and metadata search, bulk
//! resend, payload and log retention, and the counts the dashboard's charts and alert rules
//! read. (A test binary of its own, with the conformance suite's two-backend pattern.)

mod common;

use common::{Db, queued};
use wharf_store::Database;
use wharf_store::engine::*;

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(&super::Db::sqlite()) } )*
        }
        mod postgres {
            $( #[test] fn $name() { super::$name(&super::Db::postgres()) } )*
        }
    };
}

both! {
    payload_search_finds_phrases_through_the_index,
    metadata_search_pages_by_cursor_and_scopes,
    bulk_resend_requeues_a_range_in_creation_order,
    payload_retention_erases_bodies_answers_and_index_entries,
    log_retention_deletes_old_finished_logs,
    traffic_and_window_counts,
    alert_rules_round_trip_and_breach_changes_once,
    alert_links_round_trip_and_go_with_their_rule_or_subscription,
    queue_breaches_change_once_per_queue_and_a_config_rule_is_inserted_once,
}

fn log(id: &str, destination: &str, body: &str, created_at: i64) -> LogRecord {
    LogRecord {
        body: body.as_bytes().to_vec(),
        created_at,
        next_attempt_at: created_at,
        ..queued(id, destination)
    }
}

fn enqueue(store: &EngineStore, logs: &[LogRecord]) {
    store.apply(&[Write::Enqueue(logs.to_vec())]).unwrap();
}

fn finish(store: &EngineStore, log_id: &str, n: u32, outcome: AttemptOutcome) {
    let attempt = AttemptRecord {
        id: format!("{log_id}-{n}"),
        log_id: log_id.into(),
        started_at: n as i64,
        duration_ms: 1,
        status_code: Some(200),
        error: None,
        response: Some(b"{\"Echo\":\"Answer-Phi-Marker\"}".to_vec()),
    };
    store.apply(&[Write::Attempt(attempt, outcome)]).unwrap();
}

fn search(store: &EngineStore, terms: &[&str]) -> Vec<String> {
    let search = LogSearch {
        terms: terms.iter().map(|t| t.to_string()).collect(),
        ..Default::default()
    };
    store
        .search_logs("o", &search, 50)
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect()
}

fn payload_search_finds_phrases_through_the_index(db: &Db) {
    let store = db.engine();
    enqueue(
        &store,
        &[
            log(
                "a",
                "A",
                r#"{"Patient":{"FirstName":"Nila","LastName":"Jonkel"}}"#,
                1,
            ),
            log(
                "b",
                "B",
                r#"{"Patient":{"FirstName":"Jonkel","LastName":"Nila"}}"#,
                2,
            ),
            log(
                "c",
                "A",
                r#"{"Patient":{"FirstName":"José","LastName":"Ørsted"}}"#,
                3,
            ),
        ],
    );
    // One message to two destinations: one body, two logs found.
    let fanned = [
        log("d1", "A", r#"{"Note":"shared Kettleby body"}"#, 4),
        log("d2", "B", r#"{"Note":"shared Kettleby body"}"#, 4),
    ];
    enqueue(&store, &fanned);
    // A relayed query keeps its body searchable too.
    let mut query = log("q", "A", r#"{"Search":"Kettleby"}"#, 5);
    query.status = LogStatus::Succeeded;
    let attempt = AttemptRecord {
        id: "q-1".into(),
        log_id: "q".into(),
        started_at: 5,
        duration_ms: 1,
        status_code: Some(200),
        error: None,
        response: None,
    };
    store
        .apply(&[Write::Query(Box::new((query, attempt)))])
        .unwrap();
    assert_eq!(
        store.log("q").unwrap().unwrap().0.body,
        br#"{"Search":"Kettleby"}"#
    );

    assert_eq!(search(&store, &["Nila"]), ["b", "a"]);
    // Every word of a term, in any order: a name's parts sit in separate fields.
    assert_eq!(search(&store, &["Nila Jonkel"]), ["b", "a"]);
    assert_eq!(
        search(&store, &["nila JONKEL"]),
        ["b", "a"],
        "case-insensitive"
    );
    assert!(search(&store, &["Nila Bixby"]).is_empty());
    // Every term must match.
    assert_eq!(search(&store, &["Nila", "Jonkel"]), ["b", "a"]);
    assert!(search(&store, &["Nila", "Nobody"]).is_empty());
    assert_eq!(search(&store, &["José"]), ["c"]);
    assert_eq!(search(&store, &["Kettleby"]), ["q", "d2", "d1"]);
    // A quote in a term is a character to find, not syntax.
    assert!(search(&store, &["Nila\" OR \"x"]).is_empty());
    // Terms and metadata together.
    let scoped = LogSearch {
        terms: vec!["Kettleby".into()],
        filter: LogFilter {
            destination_id: Some("B".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let found: Vec<_> = store
        .search_logs("o", &scoped, 50)
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(found, ["d2"]);
    assert!(store.search_logs("other", &scoped, 50).unwrap().is_empty());
}

fn metadata_search_pages_by_cursor_and_scopes(db: &Db) {
    let store = db.engine();
    let org = store.ensure_organization("Acme").unwrap();
    let envs = store.environments(&org.id).unwrap();
    let destination = |env: &EnvironmentRecord, id: &str| DestinationRecord {
        id: id.into(),
        organization_id: org.id.clone(),
        environment_id: env.id.clone(),
        name: id.into(),
        data_format: DataFormat::Json,
        endpoint: Some(format!("https://{id}.example/r")),
        verification_token: None,
        verification_method: VerificationMethod::Post,
        auth_credential: None,
        verified_at: Some(1),
        created_at: 1,
        updated_at: 1,
        setup_step: None,
    };
    store
        .insert_destination(&destination(&envs[0], "dev"))
        .unwrap();
    store
        .insert_destination(&destination(&envs[2], "prod"))
        .unwrap();
    let logs: Vec<LogRecord> = (0..5)
        .map(|i| LogRecord {
            organization_id: org.id.clone(),
            source: if i % 2 == 0 { "emr" } else { "lab" }.into(),
            ..log(
                &format!("l{i}"),
                if i < 3 { "dev" } else { "prod" },
                "{}",
                i,
            )
        })
        .collect();
    enqueue(&store, &logs);
    let page = |search: &LogSearch, limit| -> Vec<LogRecord> {
        store.search_logs(&org.id, search, limit).unwrap()
    };
    let ids = |logs: &[LogRecord]| logs.iter().map(|l| l.id.clone()).collect::<Vec<_>>();
    let first = page(&LogSearch::default(), 2);
    assert_eq!(ids(&first), ["l4", "l3"]);
    let next = LogSearch {
        before_seq: Some(first[1].seq),
        ..Default::default()
    };
    assert_eq!(ids(&page(&next, 2)), ["l2", "l1"]);
    let dev = LogSearch {
        environment_id: Some(envs[0].id.clone()),
        ..Default::default()
    };
    assert_eq!(ids(&page(&dev, 10)), ["l2", "l1", "l0"]);
    let lab = LogSearch {
        source: Some("lab".into()),
        ..Default::default()
    };
    assert_eq!(ids(&page(&lab, 10)), ["l3", "l1"]);
    let window = LogSearch {
        filter: LogFilter {
            updated_after: Some(1),
            updated_before: Some(3),
            ..Default::default()
        },
        ..Default::default()
    };
    assert_eq!(ids(&page(&window, 10)), ["l3", "l2", "l1"]);
}

fn bulk_resend_requeues_a_range_in_creation_order(db: &Db) {
    let store = db.engine();
    // Created out of queue order on purpose: b2 was created before b1 but queued after.
    enqueue(
        &store,
        &[
            log("a1", "A", "{}", 10),
            log("b1", "B", "{}", 30),
            log("b2", "B", "{}", 20),
            log("a2", "A", "{}", 40),
            log("late", "A", "{}", 90),
        ],
    );
    for id in ["a1", "b1", "b2", "late"] {
        finish(&store, id, 1, AttemptOutcome::Succeeded);
    }
    assert!(store.stop("a2").unwrap());
    enqueue(&store, &[log("waiting", "A", "{}", 50)]);
    let range = ResendRange {
        organization_id: "o".into(),
        created_after: 0,
        created_before: 60,
        environment_id: None,
        destination_id: None,
        status: None,
    };
    // Finished logs in the range; the pending one is queued already, `late` is outside.
    assert_eq!(store.resend_range(&range).unwrap(), 4);
    // Queue order, read without a queue's lease (PostgreSQL's `queue_front` needs one).
    let queued = |destination: &str| -> Vec<String> {
        let filter = LogFilter {
            destination_id: Some(destination.into()),
            status: Some(LogStatus::Pending),
            ..Default::default()
        };
        let mut logs = store.logs("o", &filter, 0, 10).unwrap();
        logs.reverse();
        logs.into_iter().map(|l| l.id).collect()
    };
    let a = queued("A");
    assert_eq!(
        a,
        ["waiting", "a1", "a2"],
        "behind what was queued, same ids"
    );
    let b = queued("B");
    assert_eq!(b, ["b2", "b1"], "in creation order");
    // The attempts are kept with the same Log ID.
    assert_eq!(store.log("a1").unwrap().unwrap().1.len(), 1);
    // Narrowed to one destination and one status.
    finish(&store, "b2", 2, AttemptOutcome::Succeeded);
    store.stop("b1").unwrap();
    let failed_b = ResendRange {
        destination_id: Some("B".into()),
        status: Some(LogStatus::Failed),
        ..range
    };
    assert_eq!(store.resend_range(&failed_b).unwrap(), 1);
    assert_eq!(store.queue("B").unwrap().head.unwrap().id, "b1");
    assert_eq!(
        store.log("b2").unwrap().unwrap().0.status,
        LogStatus::Succeeded
    );
}

fn payload_retention_erases_bodies_answers_and_index_entries(db: &Db) {
    let store = db.engine();
    const OLD: &str = r#"{"Patient":{"Name":"Quimbyoldpatient"}}"#;
    enqueue(
        &store,
        &[log("old1", "A", OLD, 10), log("old2", "B", OLD, 10)],
    );
    enqueue(
        &store,
        &[log("shared-new", "A", r#"{"N":"Zedsharednew"}"#, 10)],
    );
    enqueue(
        &store,
        &[log("recent", "A", r#"{"N":"Recentpatient"}"#, 500)],
    );
    enqueue(
        &store,
        &[log("stuck", "C", r#"{"N":"Pendingpatient"}"#, 10)],
    );
    for id in ["old1", "old2", "shared-new", "recent"] {
        finish(&store, id, 1, AttemptOutcome::Succeeded);
    }
    // A body shared with a log still pending stays: it is still to be delivered.
    store.resend("shared-new").unwrap();
    assert_eq!(search(&store, &["Quimbyoldpatient"]), ["old2", "old1"]);

    let erased = store.erase_payloads(100, 1000).unwrap();
    assert_eq!((erased.bodies, erased.payloads), (1, 2));
    for id in ["old1", "old2"] {
        let (record, attempts) = store.log(id).unwrap().unwrap();
        assert!(record.body.is_empty(), "{id}'s body is erased");
        assert_eq!(record.status, LogStatus::Succeeded, "its metadata stays");
        assert_eq!(attempts.len(), 1);
        assert!(attempts[0].response.is_none(), "the answer was PHI too");
    }
    assert!(search(&store, &["Quimbyoldpatient"]).is_empty());
    assert!(!store.log("recent").unwrap().unwrap().0.body.is_empty());
    assert!(!store.log("stuck").unwrap().unwrap().0.body.is_empty());
    assert!(!store.log("shared-new").unwrap().unwrap().0.body.is_empty());
    assert_eq!(search(&store, &["Pendingpatient"]), ["stuck"]);
    assert_eq!(store.erase_payloads(100, 1000).unwrap(), Erased::default());

    // On SQLite, nothing of it is left in the file: not the body, not the words the index
    // kept (lower-cased), not the answer.
    if let Database::Sqlite(dir) = &db.database {
        drop(store);
        let mut bytes = std::fs::read(dir.join(ENGINE_FILE)).unwrap();
        if let Ok(wal) = std::fs::read(dir.join("engine.db-wal")) {
            bytes.extend(wal);
        }
        let count = |marker: &[u8]| bytes.windows(marker.len()).filter(|w| *w == marker).count();
        assert_eq!(count(b"Quimbyoldpatient"), 0);
        assert_eq!(
            count(b"quimbyoldpatient"),
            0,
            "the index's words are erased"
        );
        assert_eq!(
            count(b"recentpatient"),
            1,
            "a kept body's words stay indexed"
        );
    }
}

fn log_retention_deletes_old_finished_logs(db: &Db) {
    let store = db.engine();
    enqueue(&store, &[log("old", "A", "{\"N\":\"Oldlog\"}", 10)]);
    enqueue(&store, &[log("pending", "B", "{}", 10)]);
    enqueue(&store, &[log("new", "A", "{}", 500)]);
    finish(&store, "old", 1, AttemptOutcome::Succeeded);
    finish(&store, "new", 1, AttemptOutcome::Succeeded);
    let erased = store.delete_logs_before("o", 100, 1000).unwrap();
    assert_eq!((erased.logs, erased.bodies), (1, 1));
    assert!(store.log("old").unwrap().is_none());
    assert!(store.latest_attempts(&["old".into()]).unwrap().is_empty());
    assert!(store.log("pending").unwrap().is_some());
    assert!(store.log("new").unwrap().is_some());
    assert!(search(&store, &["Oldlog"]).is_empty());
}

fn traffic_and_window_counts(db: &Db) {
    let store = db.engine();
    const HOUR: i64 = 3_600_000;
    enqueue(
        &store,
        &[
            log("a", "A", "{}", HOUR + 5),
            log("b", "A", "{}", HOUR + 10),
            log("c", "B", "{}", 2 * HOUR + 1),
            log("d", "B", "{}", 3),
        ],
    );
    finish(&store, "a", 1, AttemptOutcome::Succeeded);
    finish(&store, "c", 1, AttemptOutcome::RetryAt(9_999_999_999));
    finish(&store, "c", 2, AttemptOutcome::RetryAt(9_999_999_999));
    store.stop("c").unwrap();
    let mut traffic = store.traffic("o", HOUR).unwrap();
    traffic.sort_by(|x, y| {
        (&x.destination_id, x.hour, x.status.as_str()).cmp(&(
            &y.destination_id,
            y.hour,
            y.status.as_str(),
        ))
    });
    let seen: Vec<(&str, i64, LogStatus, i64)> = traffic
        .iter()
        .map(|t| (t.destination_id.as_str(), t.hour, t.status, t.count))
        .collect();
    assert_eq!(
        seen,
        [
            ("A", HOUR, LogStatus::Pending, 1),
            ("A", HOUR, LogStatus::Succeeded, 1),
            ("B", 2 * HOUR, LogStatus::Failed, 1),
        ]
    );
    let both = ["A".to_owned(), "B".to_owned()];
    let all = store
        .window_counts("o", CountScope::Destinations(&both), HOUR)
        .unwrap();
    assert_eq!((all.total, all.failed, all.retried), (3, 1, 1));
    let only_a = store
        .window_counts("o", CountScope::Destinations(&["A".to_owned()]), 0)
        .unwrap();
    assert_eq!((only_a.total, only_a.failed, only_a.retried), (2, 0, 0));
    let none = store
        .window_counts("o", CountScope::Destinations(&[]), 0)
        .unwrap();
    assert_eq!(none.total, 0);
    // By subscription: the logs each routed, whatever their destination.
    let routed = |id: &str, destination: &str, subscription: i64| LogRecord {
        subscription_id: Some(subscription),
        ..log(id, destination, "{}", HOUR + 20)
    };
    enqueue(
        &store,
        &[
            routed("s1", "A", 11),
            routed("s2", "B", 11),
            routed("s3", "A", 12),
        ],
    );
    let by = |ids: &[i64]| {
        store
            .window_counts("o", CountScope::Subscriptions(ids), HOUR)
            .unwrap()
            .total
    };
    assert_eq!(by(&[11]), 2);
    assert_eq!(by(&[12]), 1);
    assert_eq!(by(&[11, 12]), 3);
    assert_eq!(by(&[13]), 0);
    assert_eq!(by(&[]), 0);
}

fn alert_rules_round_trip_and_breach_changes_once(db: &Db) {
    let store = db.engine();
    let rule = AlertRuleRecord {
        id: "r1".into(),
        organization_id: "o".into(),
        environment_id: "env".into(),
        name: "Quiet feed".into(),
        alert_type: "no-traffic".into(),
        configuration: r#"{"alertLookbackISODuration":"PT1H"}"#.into(),
        notification: r#"{"type":"email","configuration":{"to":["a@example.com"]}}"#.into(),
        ignore_days: r#"["SATURDAY"]"#.into(),
        ignore_holidays: false,
        time_zone: "America/Adak".into(),
        status: "active".into(),
        breached_at: None,
        created_at: 1,
        updated_at: 1,
    };
    store.insert_alert_rule(&rule).unwrap();
    assert_eq!(store.alert_rule("r1").unwrap().unwrap(), rule);
    assert_eq!(store.alert_rules(Some("env")).unwrap(), vec![rule.clone()]);
    assert!(store.alert_rules(Some("other")).unwrap().is_empty());
    assert_eq!(store.alert_rules(None).unwrap().len(), 1);
    // Into breach once, out of it once.
    assert!(store.set_alert_breach("r1", Some(5)).unwrap());
    assert!(!store.set_alert_breach("r1", Some(6)).unwrap());
    assert_eq!(
        store.alert_rule("r1").unwrap().unwrap().breached_at,
        Some(5)
    );
    assert!(store.set_alert_breach("r1", None).unwrap());
    assert!(!store.set_alert_breach("r1", None).unwrap());
    let paused = AlertRuleRecord {
        status: "paused".into(),
        updated_at: 2,
        ..rule
    };
    assert!(store.update_alert_rule(&paused).unwrap());
    assert_eq!(store.alert_rule("r1").unwrap().unwrap().status, "paused");
    assert!(store.delete_alert_rule("r1").unwrap());
    assert!(!store.delete_alert_rule("r1").unwrap());
    assert!(store.alert_rule("r1").unwrap().is_none());
}

/// A rule, a subscription, the link between them (one per pair, active or paused), and the
/// link going when its rule or its subscription goes.
fn alert_links_round_trip_and_go_with_their_rule_or_subscription(db: &Db) {
    let store = db.engine();
    let org = store.ensure_organization("Acme").unwrap();
    let env = store.environments(&org.id).unwrap().remove(0);
    let destination = DestinationRecord {
        id: "dest".into(),
        organization_id: org.id.clone(),
        environment_id: env.id.clone(),
        name: "Acme".into(),
        data_format: DataFormat::Json,
        endpoint: Some("https://a.example/x".into()),
        verification_token: None,
        verification_method: VerificationMethod::Post,
        auth_credential: None,
        verified_at: None,
        created_at: 1,
        updated_at: 1,
        setup_step: None,
    };
    store.insert_destination(&destination).unwrap();
    store
        .insert_source(&SourceRecord {
            id: "src".into(),
            organization_id: org.id.clone(),
            environment_id: env.id.clone(),
            name: "feed".into(),
            api_key_digest: None,
            config_name: None,
            created_at: 1,
            updated_at: 1,
        })
        .unwrap();
    let subscribe = |model: &str| {
        store
            .insert_subscription(&SubscriptionRecord {
                id: 0,
                organization_id: org.id.clone(),
                environment_id: env.id.clone(),
                source_id: "src".into(),
                destination_id: "dest".into(),
                data_model: model.into(),
                paused: false,
                created_at: 1,
                updated_at: 1,
            })
            .unwrap()
            .id
    };
    let (s1, s2) = (subscribe("PatientAdmin"), subscribe("Scheduling"));
    let rule = |id: &str| AlertRuleRecord {
        id: id.into(),
        organization_id: org.id.clone(),
        environment_id: env.id.clone(),
        name: "r".into(),
        alert_type: "no-traffic".into(),
        configuration: r#"{"alertLookbackISODuration":"PT1H"}"#.into(),
        notification: r#"{"type":"webhook","configuration":{"url":"https://h.example/"}}"#.into(),
        ignore_days: "[]".into(),
        ignore_holidays: false,
        time_zone: "UTC".into(),
        status: "active".into(),
        breached_at: None,
        created_at: 1,
        updated_at: 1,
    };
    store.insert_alert_rule(&rule("r1")).unwrap();
    store.insert_alert_rule(&rule("r2")).unwrap();
    let link = |id: &str, alert: &str, subscription: i64, at: i64| AlertLinkRecord {
        id: id.into(),
        organization_id: org.id.clone(),
        environment_id: env.id.clone(),
        alert_id: alert.into(),
        subscription_id: subscription,
        active: true,
        created_at: at,
        updated_at: at,
    };
    let l1 = store.insert_alert_link(&link("l1", "r1", s1, 1)).unwrap();
    assert_eq!(l1, link("l1", "r1", s1, 1));
    assert_eq!(
        store
            .insert_alert_link(&link("again", "r1", s1, 2))
            .unwrap(),
        l1,
        "one link per rule and subscription"
    );
    store.insert_alert_link(&link("l2", "r1", s2, 3)).unwrap();
    store.insert_alert_link(&link("l3", "r2", s2, 4)).unwrap();
    let ids = |links: Vec<AlertLinkRecord>| links.into_iter().map(|l| l.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.alert_links(&env.id, None).unwrap()),
        ["l1", "l2", "l3"]
    );
    assert_eq!(
        ids(store.alert_links(&env.id, Some("r1")).unwrap()),
        ["l1", "l2"]
    );
    assert!(store.alert_links("elsewhere", None).unwrap().is_empty());
    // Paused, then active again.
    assert!(store.set_alert_link_active("l2", false, 9).unwrap());
    let paused = store.alert_link("l2").unwrap().unwrap();
    assert_eq!((paused.active, paused.updated_at), (false, 9));
    assert!(store.set_alert_link_active("l2", true, 10).unwrap());
    assert!(!store.set_alert_link_active("gone", true, 10).unwrap());
    // A subscription's deletion takes its links (l2, l3), not its rules.
    assert!(store.delete_subscription(s2).unwrap());
    assert_eq!(ids(store.alert_links(&env.id, None).unwrap()), ["l1"]);
    assert!(store.alert_rule("r2").unwrap().is_some());
    // A rule's deletion takes its links.
    assert!(store.delete_alert_rule("r1").unwrap());
    assert!(store.alert_link("l1").unwrap().is_none());
    // A link deleted by itself.
    store.insert_alert_link(&link("l4", "r2", s1, 5)).unwrap();
    assert!(store.delete_alert_link("l4").unwrap());
    assert!(!store.delete_alert_link("l4").unwrap());
    // A destination's deletion takes its subscriptions' links.
    store.insert_alert_link(&link("l5", "r2", s1, 6)).unwrap();
    store.delete_destination("dest").unwrap();
    assert!(store.alert_link("l5").unwrap().is_none());
}

/// A `queue-paused` rule's breaches: per queue, each into breach once and out of it once, the
/// rule's `breached_at` its earliest open breach; going with the rule. A config-defined rule
/// (fixed id) inserted by two engines is inserted once, the second insert changing nothing.
fn queue_breaches_change_once_per_queue_and_a_config_rule_is_inserted_once(db: &Db) {
    let store = db.engine();
    let rule = AlertRuleRecord {
        id: "config-queue-paused-env-webhook".into(),
        organization_id: "o".into(),
        environment_id: "env".into(),
        name: "Paused queues (alert_webhook_url)".into(),
        alert_type: "queue-paused".into(),
        configuration: r#"{"alertLookbackISODuration":"PT1M"}"#.into(),
        notification: r#"{"type":"webhook","configuration":{"url":"http://a.example/"}}"#.into(),
        ignore_days: "[]".into(),
        ignore_holidays: false,
        time_zone: "UTC".into(),
        status: "active".into(),
        breached_at: None,
        created_at: 1,
        updated_at: 1,
    };
    assert!(store.insert_alert_rule_if_absent(&rule).unwrap());
    let other = AlertRuleRecord {
        name: "Another engine's".into(),
        created_at: 2,
        ..rule.clone()
    };
    assert!(!store.insert_alert_rule_if_absent(&other).unwrap());
    assert_eq!(store.alert_rules(None).unwrap(), vec![rule.clone()]);
    let id = rule.id.as_str();
    let breached = |store: &EngineStore| store.alert_rule(id).unwrap().unwrap().breached_at;

    assert!(
        store
            .set_queue_breach(id, "d1", Some(("log-1", 10)))
            .unwrap()
    );
    assert!(
        !store
            .set_queue_breach(id, "d1", Some(("log-1", 11)))
            .unwrap(),
        "still paused: no second breach"
    );
    assert_eq!(breached(&store), Some(10));
    assert!(
        store
            .set_queue_breach(id, "d2", Some(("log-2", 20)))
            .unwrap()
    );
    assert_eq!(breached(&store), Some(10), "the earliest open breach");
    assert!(store.set_queue_breach(id, "d1", None).unwrap());
    assert!(
        !store.set_queue_breach(id, "d1", None).unwrap(),
        "recovered once"
    );
    assert_eq!(breached(&store), Some(20), "d2 is still paused");
    assert!(
        !store.set_queue_breach(id, "d3", None).unwrap(),
        "never paused"
    );
    assert!(store.set_queue_breach(id, "d2", None).unwrap());
    assert_eq!(breached(&store), None);
    assert!(
        store
            .set_queue_breach(id, "d1", Some(("log-3", 30)))
            .unwrap()
    );
    assert!(
        store.delete_alert_rule(id).unwrap(),
        "its breaches go with it"
    );
    assert!(store.alert_rule(id).unwrap().is_none());
    assert!(store.insert_alert_rule_if_absent(&rule).unwrap());
    assert!(
        store
            .set_queue_breach(id, "d1", Some(("log-4", 40)))
            .unwrap(),
        "a new rule of that id starts afresh"
    );
}
