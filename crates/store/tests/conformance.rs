//! One conformance suite for the store API, run against SQLite and PostgreSQL alike.
//!
//! Every test is a function of a [`Db`]; `conformance!` instantiates it once per backend: on
//! SQLite in a temporary directory, on PostgreSQL in a fresh schema of the test server
//! (`WHARF_TEST_DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/test`), dropped
//! afterwards. An unreachable PostgreSQL fails its tests with how to start one.

mod common;

const PENDING: LogStatus = LogStatus::Pending;
const SUCCEEDED: LogStatus = LogStatus::Succeeded;
const FAILED: LogStatus = LogStatus::Failed;
use common::{Db, queued};
use std::time::Duration;
use wharf_store::engine::*;
use wharf_store::engine::{
    DataFormat, Environment, LogStatus, LogType, Strategy, VerificationMethod,
};
use wharf_store::{
    Body, Database, Inbox, InboxOptions, InboxReader, ListQuery, MessageStatus, NewMessage,
    StoreError,
};

/// Instantiates each test function once per backend.
macro_rules! conformance {
    (sync: [$($sync:ident),* $(,)?], async: [$($async:ident),* $(,)?] $(,)?) => {
        mod sqlite {
            use super::Db;
            $( #[test] fn $sync() { super::$sync(&Db::sqlite()) } )*
            $( #[tokio::test] async fn $async() { super::$async(&Db::sqlite()).await } )*
        }
        mod postgres {
            use super::Db;
            $( #[test] fn $sync() { super::$sync(&Db::postgres()) } )*
            $( #[tokio::test] async fn $async() { super::$async(&Db::postgres()).await } )*
        }
    };
}

conformance! {
    sync: [
        organizations_get_three_environments_once,
        destinations_round_trip_and_endpoints_belong_to_one_organization,
        auth_credentials_round_trip_and_linked_ones_are_not_deleted,
        queues_are_first_in_first_out_per_destination,
        pause_stop_and_resend,
        a_group_commit_keeps_the_order_given_and_is_all_or_nothing,
        queries_are_kept_as_request_logs_with_their_attempt,
        queue_stats_and_state,
        deleting_a_destination_erases_its_logs_and_attempts,
        a_message_to_several_destinations_is_stored_once,
        a_queue_is_read_behind_a_seq,
        log_filters,
        a_newer_schema_is_refused,
        migrations_run_once,
        the_audit_log_is_append_only,
        sources_subscriptions_filters_and_held_logs,
    ],
    async: [
        keeps_once_per_duplicate_key_and_destination,
        concurrent_keeps_share_commits_and_keep_order,
        forwarding_bookkeeping_moves_the_cursor,
        a_retry_within_one_batch_is_kept_once,
        listings_recent_and_counts,
        reopened_inbox_keeps_its_messages,
        bodies_are_kept_byte_for_byte,
        only_forwarded_messages_are_pruned_oldest_first,
        counts_follow_every_change,
        listings_page_by_sequence_status_and_order,
        only_malformed_messages_are_discarded,
        a_poison_head_is_shown_dead_lettered_and_replayed_in_place,
        dead_letters_are_kept_through_retention_and_only_waiting_messages_move,
        a_probe_write_needs_space,
    ],
}

fn record(org: &Organization, env: &EnvironmentRecord, endpoint: &str) -> DestinationRecord {
    DestinationRecord {
        id: uuid::Uuid::new_v4().to_string(),
        organization_id: org.id.clone(),
        environment_id: env.id.clone(),
        name: "Acme".into(),
        data_format: DataFormat::Json,
        endpoint: Some(endpoint.into()),
        verification_token: Some(vec![1, 2, 3]),
        verification_method: VerificationMethod::Post,
        auth_credential: None,
        verified_at: None,
        created_at: 1,
        updated_at: 1,
        setup_step: None,
    }
}

fn organizations_get_three_environments_once(db: &Db) {
    let store = db.engine();
    let org = store.ensure_organization("Acme Health").unwrap();
    assert_eq!(store.ensure_organization("Acme Health").unwrap(), org);
    let flags: Vec<_> = store
        .environments(&org.id)
        .unwrap()
        .into_iter()
        .map(|e| e.flag)
        .collect();
    assert_eq!(flags, Environment::ALL);
    assert_eq!(store.organizations().unwrap().len(), 1);
}

fn destinations_round_trip_and_endpoints_belong_to_one_organization(db: &Db) {
    let store = db.engine();
    let a = store.ensure_organization("A").unwrap();
    let b = store.ensure_organization("B").unwrap();
    let env_a = store.environments(&a.id).unwrap().remove(0);
    let mut d = record(&a, &env_a, "https://x.example/hook");
    store.insert_destination(&d).unwrap();
    assert_eq!(store.destination(&d.id).unwrap().unwrap(), d);
    assert!(
        !store
            .endpoint_taken_elsewhere("https://x.example/hook", &a.id)
            .unwrap()
    );
    assert!(
        store
            .endpoint_taken_elsewhere("https://x.example/hook", &b.id)
            .unwrap()
    );
    d.verified_at = Some(5);
    d.setup_step = Some(3);
    assert!(store.update_destination(&d).unwrap());
    assert_eq!(store.destinations(&env_a.id).unwrap(), vec![d.clone()]);
    assert!(store.delete_destination(&d.id).unwrap());
    assert!(!store.delete_destination(&d.id).unwrap());
    assert!(store.destination(&d.id).unwrap().is_none());
}

fn auth_credentials_round_trip_and_linked_ones_are_not_deleted(db: &Db) {
    let store = db.engine();
    let org = store.ensure_organization("A").unwrap();
    let env = store.environments(&org.id).unwrap().remove(0);
    let mut c = AuthCredentialRecord {
        id: uuid::Uuid::new_v4().to_string(),
        organization_id: org.id.clone(),
        environment_id: env.id.clone(),
        name: "token endpoint".into(),
        strategy: Strategy::OAuth2Legged,
        fields: r#"{"clientId":"c"}"#.into(),
        secrets: Some(vec![9, 9, 9]),
        created_at: 1,
        updated_at: 1,
    };
    store.insert_auth_credential(&c).unwrap();
    assert_eq!(store.auth_credential(&c.id).unwrap().unwrap(), c);
    c.name = "renamed".into();
    c.secrets = None;
    c.updated_at = 2;
    assert!(store.update_auth_credential(&c).unwrap());
    assert_eq!(store.auth_credentials(&env.id).unwrap(), vec![c.clone()]);

    // A destination may only link a credential that exists.
    let mut d = record(&org, &env, "https://x.example/hook");
    d.auth_credential = Some("no-such-credential".into());
    assert!(store.insert_destination(&d).is_err());
    d.auth_credential = Some(c.id.clone());
    store.insert_destination(&d).unwrap();
    assert_eq!(store.destinations_using(&c.id).unwrap(), vec![d.id.clone()]);
    assert_eq!(
        store.delete_auth_credential(&c.id).unwrap(),
        CredentialDeletion::InUse(vec![d.id.clone()])
    );
    assert!(store.auth_credential(&c.id).unwrap().is_some());
    d.auth_credential = Some("no-such-credential".into());
    assert!(store.update_destination(&d).is_err());
    d.auth_credential = None;
    assert!(store.update_destination(&d).unwrap());
    assert_eq!(
        store.delete_auth_credential(&c.id).unwrap(),
        CredentialDeletion::Deleted
    );
    assert_eq!(
        store.delete_auth_credential(&c.id).unwrap(),
        CredentialDeletion::NotFound
    );
    assert!(store.auth_credential(&c.id).unwrap().is_none());
    assert!(!store.update_auth_credential(&c).unwrap());
}

fn by(destination: Option<&str>, status: Option<LogStatus>) -> LogFilter {
    LogFilter {
        destination_id: destination.map(str::to_owned),
        status,
        ..LogFilter::default()
    }
}

fn enqueue(store: &EngineStore, logs: &[LogRecord]) {
    store.apply(&[Write::Enqueue(logs.to_vec())]).unwrap();
}

fn record_attempt(store: &EngineStore, attempt: &AttemptRecord, outcome: AttemptOutcome) {
    store
        .apply(&[Write::Attempt(attempt.clone(), outcome)])
        .unwrap();
}

fn attempt(log_id: &str, n: u32) -> AttemptRecord {
    AttemptRecord {
        id: format!("{log_id}-{n}"),
        log_id: log_id.into(),
        started_at: n as i64,
        duration_ms: 1,
        status_code: Some(500),
        error: None,
        response: None,
    }
}

fn queues_are_first_in_first_out_per_destination(db: &Db) {
    let store = db.engine();
    enqueue(
        &store,
        &[queued("a1", "A"), queued("b1", "B"), queued("a2", "A")],
    );
    let heads: Vec<_> = store
        .queue_heads()
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(heads.len(), 2);
    assert!(heads.contains(&"a1".to_owned()) && heads.contains(&"b1".to_owned()));
    // A failing head stays the head, with its next try moved.
    record_attempt(&store, &attempt("a1", 1), AttemptOutcome::RetryAt(99));
    let a_head = store
        .queue_heads()
        .unwrap()
        .into_iter()
        .find(|l| l.destination_id == "A")
        .unwrap();
    assert_eq!(
        (a_head.id.as_str(), a_head.next_attempt_at, a_head.attempts),
        ("a1", 99, 1)
    );
    record_attempt(&store, &attempt("a1", 2), AttemptOutcome::Succeeded);
    let a_head = store
        .queue_heads()
        .unwrap()
        .into_iter()
        .find(|l| l.destination_id == "A")
        .unwrap();
    assert_eq!(a_head.id, "a2");
    let (log, attempts) = store.log("a1").unwrap().unwrap();
    assert_eq!(log.status, SUCCEEDED);
    assert_eq!(attempts.len(), 2);
    assert_eq!(
        store.logs("o", &by(Some("A"), None), 0, 10).unwrap().len(),
        2
    );
    assert_eq!(
        store
            .logs("o", &by(None, Some(PENDING)), 0, 10)
            .unwrap()
            .len(),
        2
    );
}

fn pause_stop_and_resend(db: &Db) {
    let store = db.engine();
    enqueue(&store, &[queued("a1", "A"), queued("a2", "A")]);
    store.set_paused("A", true).unwrap();
    assert!(store.queue_heads().unwrap().is_empty());
    let q = store.queue("A").unwrap();
    assert!(q.paused_by_operator);
    assert_eq!(q.depth, 2);
    store.set_paused("A", false).unwrap();
    assert_eq!(store.queue_heads().unwrap()[0].id, "a1");
    assert!(store.stop("a1").unwrap());
    assert!(!store.stop("a1").unwrap(), "only pending logs stop");
    assert_eq!(store.queue_heads().unwrap()[0].id, "a2");
    assert!(store.resend("a1").unwrap());
    assert!(
        !store.resend("a2").unwrap(),
        "a pending log is already queued"
    );
    let order: Vec<_> = store
        .logs("o", &by(Some("A"), Some(PENDING)), 0, 10)
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(
        order,
        ["a1", "a2"],
        "newest first: the resent log is now behind a2"
    );
    assert_eq!(store.queue_heads().unwrap()[0].id, "a2");
    enqueue(&store, &[queued("a3", "A")]);
    let order: Vec<_> = store
        .logs("o", &by(Some("A"), None), 0, 10)
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(order, ["a3", "a1", "a2"]);
}

fn a_group_commit_keeps_the_order_given_and_is_all_or_nothing(db: &Db) {
    let store = db.engine();
    let logs: Vec<_> = (0..300).map(|i| queued(&format!("l{i:03}"), "A")).collect();
    store
        .apply(&[
            Write::Enqueue(logs[..100].to_vec()),
            Write::Enqueue(logs[100..].to_vec()),
        ])
        .unwrap();
    let order: Vec<_> = store
        .logs("o", &by(Some("A"), None), 0, 1000)
        .unwrap()
        .into_iter()
        .rev()
        .map(|l| l.id)
        .collect();
    let expected: Vec<_> = logs.iter().map(|l| l.id.clone()).collect();
    assert_eq!(order, expected);
    // One bad write (a duplicate Log ID) and nothing of the batch is kept.
    let err = store
        .apply(&[
            Write::Enqueue(vec![queued("new-1", "B")]),
            Write::Enqueue(vec![queued("l000", "B")]),
        ])
        .unwrap_err();
    assert!(!err.to_string().is_empty());
    assert!(store.log("new-1").unwrap().is_none());
    // Attempts for several logs in one commit.
    store
        .apply(&[
            Write::Attempt(attempt("l000", 1), AttemptOutcome::Succeeded),
            Write::Attempt(attempt("l001", 1), AttemptOutcome::RetryAt(5)),
        ])
        .unwrap();
    assert_eq!(store.log("l000").unwrap().unwrap().0.status, SUCCEEDED);
    let (l001, tries) = store.log("l001").unwrap().unwrap();
    assert_eq!(
        (l001.status, l001.next_attempt_at, l001.attempts),
        (PENDING, 5, 1)
    );
    assert_eq!(tries, vec![attempt("l001", 1)]);
    let latest = store
        .latest_attempts(&["l001".to_owned(), "l002".to_owned()])
        .unwrap();
    assert_eq!(latest, vec![attempt("l001", 1)], "l002 has no attempt yet");
}

fn queries_are_kept_as_request_logs_with_their_attempt(db: &Db) {
    let store = db.engine();
    let mut log = queued("q1", "A");
    log.status = FAILED;
    let mut tried = attempt("q1", 1);
    tried.error = Some("timed out".into());
    tried.status_code = None;
    tried.response = Some(b"partial".to_vec());
    store
        .apply(&[Write::Query(Box::new((log, tried.clone())))])
        .unwrap();
    let (record, attempts) = store.log("q1").unwrap().unwrap();
    assert_eq!(
        (record.log_type, record.status, record.attempts),
        (LogType::Request, FAILED, 1)
    );
    assert_eq!(attempts, vec![tried]);
    assert!(
        store.queue_heads().unwrap().is_empty(),
        "queries are never queued"
    );
}

/// Issue 26, item 5: a deleted destination's PHI does not outlive it.
fn deleting_a_destination_erases_its_logs_and_attempts(db: &Db) {
    let store = db.engine();
    let org = store.ensure_organization("o").unwrap();
    let env = &store.environments(&org.id).unwrap()[0];
    let (gone, kept) = (
        record(&org, env, "https://a.example/r"),
        record(&org, env, "https://b.example/r"),
    );
    store.insert_destination(&gone).unwrap();
    store.insert_destination(&kept).unwrap();
    const PATIENT: &[u8] =
        b"{\"Patient\":{\"Demographics\":{\"FirstName\":\"Timothy-Bixby-Erased\"}}}";
    let with_body = |id: &str, destination: &str| LogRecord {
        organization_id: org.id.clone(),
        body: PATIENT.to_vec(),
        ..queued(id, destination)
    };
    enqueue(
        &store,
        &[
            with_body("g1", &gone.id),
            with_body("g2", &gone.id),
            with_body("k1", &kept.id),
        ],
    );
    let answered = AttemptRecord {
        response: Some(PATIENT.to_vec()),
        ..attempt("g1", 1)
    };
    record_attempt(&store, &answered, AttemptOutcome::RetryAt(50));
    store.set_paused(&gone.id, true).unwrap();

    assert!(store.delete_destination(&gone.id).unwrap());
    assert!(store.destination(&gone.id).unwrap().is_none());
    assert!(store.log("g1").unwrap().is_none() && store.log("g2").unwrap().is_none());
    assert!(store.latest_attempts(&["g1".into()]).unwrap().is_empty());
    let listed: Vec<_> = store
        .logs(&org.id, &LogFilter::default(), 0, 10)
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(listed, ["k1"]);
    assert!(
        store
            .queue_stats()
            .unwrap()
            .iter()
            .all(|q| q.destination_id != gone.id)
    );
    // An attempt finishing after the deletion finds no log: it is dropped, and the rest of
    // its group commit is kept.
    store
        .apply(&[
            Write::Attempt(attempt("g2", 1), AttemptOutcome::Succeeded),
            Write::Enqueue(vec![with_body("k2", &kept.id)]),
        ])
        .unwrap();
    assert!(store.log("g2").unwrap().is_none());
    assert_eq!(store.queue(&kept.id).unwrap().depth, 2);
    // Deleting again erases anything an ingestion that raced the deletion left behind.
    enqueue(&store, &[with_body("late", &gone.id)]);
    assert!(!store.delete_destination(&gone.id).unwrap());
    assert!(store.log("late").unwrap().is_none());

    // On SQLite the bytes themselves are overwritten (secure_delete) and the WAL truncated.
    if let Database::Sqlite(dir) = &db.database {
        drop(store);
        let mut bytes = std::fs::read(dir.join("engine.db")).unwrap();
        if let Ok(wal) = std::fs::read(dir.join("engine.db-wal")) {
            bytes.extend(wal);
        }
        let count = bytes
            .windows(b"Timothy-Bixby-Erased".len())
            .filter(|w| w == b"Timothy-Bixby-Erased")
            .count();
        // Only the kept destination's two logs still hold the name; the erased logs and the
        // attempt's answer do not, anywhere in the file.
        assert_eq!(count, 2);
    }
}

/// How many times `marker` appears in the SQLite engine store's files (database and WAL).
fn sqlite_copies(dir: &std::path::Path, marker: &[u8]) -> usize {
    let mut bytes = std::fs::read(dir.join("engine.db")).unwrap();
    if let Ok(wal) = std::fs::read(dir.join("engine.db-wal")) {
        bytes.extend(wal);
    }
    bytes.windows(marker.len()).filter(|w| *w == marker).count()
}

fn a_message_to_several_destinations_is_stored_once(db: &Db) {
    let store = db.engine();
    let org = store.ensure_organization("o").unwrap();
    let env = &store.environments(&org.id).unwrap()[0];
    let destinations: Vec<DestinationRecord> = (0..3)
        .map(|i| record(&org, env, &format!("https://{i}.example/r")))
        .collect();
    for d in &destinations {
        store.insert_destination(d).unwrap();
    }
    const BODY: &[u8] = b"{\"Meta\":{},\"Patient\":{\"Notes\":\"Fanned-Out-Once\"}}";
    let logs: Vec<LogRecord> = destinations
        .iter()
        .enumerate()
        .map(|(i, d)| LogRecord {
            organization_id: org.id.clone(),
            body: BODY.to_vec(),
            ..queued(&format!("f{i}"), &d.id)
        })
        .collect();
    enqueue(&store, &logs);
    for i in 0..destinations.len() {
        assert_eq!(store.log(&format!("f{i}")).unwrap().unwrap().0.body, BODY);
    }
    // The first destination goes; the others still have the body they share.
    assert!(store.delete_destination(&destinations[0].id).unwrap());
    assert_eq!(store.log("f1").unwrap().unwrap().0.body, BODY);
    assert_eq!(store.log("f2").unwrap().unwrap().0.body, BODY);
    if let Database::Sqlite(dir) = &db.database {
        assert_eq!(
            sqlite_copies(dir, b"Fanned-Out-Once"),
            1,
            "one copy for three logs"
        );
        // With the last destination that shared it, the body is erased from the file too.
        assert!(store.delete_destination(&destinations[1].id).unwrap());
        assert!(store.delete_destination(&destinations[2].id).unwrap());
        drop(store);
        assert_eq!(sqlite_copies(dir, b"Fanned-Out-Once"), 0);
    }
}

/// The delivery worker reads its next batch behind the last log it sent, while that batch's
/// attempts are still being committed (the logs are still pending).
fn a_queue_is_read_behind_a_seq(db: &Db) {
    let store = db.engine();
    let org = store.ensure_organization("o").unwrap();
    let env = &store.environments(&org.id).unwrap()[0];
    let d = record(&org, env, "https://behind.example/r");
    store.insert_destination(&d).unwrap();
    let logs: Vec<LogRecord> = (0..5)
        .map(|i| LogRecord {
            organization_id: org.id.clone(),
            ..queued(&format!("b{i}"), &d.id)
        })
        .collect();
    enqueue(&store, &logs);
    let ids = |logs: Vec<LogRecord>| logs.into_iter().map(|l| l.id).collect::<Vec<_>>();
    // As the worker does: a look at every head first (on PostgreSQL it takes the queue's lease).
    assert_eq!(store.queue_heads().unwrap()[0].id, "b0");
    let first = store.queue_front(&d.id, None, 2).unwrap();
    assert_eq!(ids(first.clone()), ["b0", "b1"]);
    let next = store.queue_front(&d.id, Some(first[1].seq), 2).unwrap();
    assert_eq!(ids(next.clone()), ["b2", "b3"]);
    let last = store.queue_front(&d.id, Some(next[1].seq), 2).unwrap();
    assert_eq!(ids(last.clone()), ["b4"]);
    assert!(
        store
            .queue_front(&d.id, Some(last[0].seq), 2)
            .unwrap()
            .is_empty()
    );
    // From the head again, the first two are still there: nothing was recorded for them.
    assert_eq!(
        ids(store.queue_front(&d.id, None, 2).unwrap()),
        ["b0", "b1"]
    );
    store.set_paused(&d.id, true).unwrap();
    assert!(
        store
            .queue_front(&d.id, Some(first[1].seq), 2)
            .unwrap()
            .is_empty()
    );
}

fn queue_stats_and_state(db: &Db) {
    let store = db.engine();
    let org = store.ensure_organization("A").unwrap();
    let env = store.environments(&org.id).unwrap().remove(0);
    let mut d = record(&org, &env, "https://x.example/a");
    d.id = "A".into();
    store.insert_destination(&d).unwrap();
    let mut e = record(&org, &env, "https://x.example/b");
    e.id = "B".into();
    store.insert_destination(&e).unwrap();
    enqueue(&store, &[queued("a1", "A"), queued("a2", "A")]);
    record_attempt(
        &store,
        &attempt("a1", 1),
        AttemptOutcome::RetryAt(i64::MAX / 2),
    );
    store.set_paused("B", true).unwrap();
    let stats = store.queue_stats().unwrap();
    assert_eq!(
        stats,
        vec![
            QueueStats {
                destination_id: "A".into(),
                depth: 2,
                held: true,
                paused_by_operator: false
            },
            QueueStats {
                destination_id: "B".into(),
                depth: 0,
                held: false,
                paused_by_operator: true
            },
        ]
    );
    let q = store.queue("A").unwrap();
    assert_eq!((q.depth, q.paused_by_operator), (2, false));
    assert_eq!(q.head.unwrap().id, "a1");
    store.check_writable().unwrap();
    // Resuming makes the head due at once.
    store.set_paused("A", true).unwrap();
    store.set_paused("A", false).unwrap();
    assert!(store.queue("A").unwrap().head.unwrap().next_attempt_at <= wharf_store::now_millis());
}

fn log_filters(db: &Db) {
    let store = db.engine();
    let mut a = queued("a", "A");
    a.data_model = Some("PatientAdmin".into());
    a.event_type = Some("Arrival".into());
    a.created_at = 100;
    let mut b = queued("b", "B");
    b.data_model = Some("Scheduling".into());
    b.created_at = 200;
    enqueue(&store, &[a, b]);
    let ids = |f: LogFilter| -> Vec<String> {
        store
            .logs("o", &f, 0, 10)
            .unwrap()
            .into_iter()
            .map(|l| l.id)
            .collect()
    };
    assert_eq!(ids(LogFilter::default()), ["b", "a"]);
    assert_eq!(
        ids(LogFilter {
            data_model: Some("PatientAdmin".into()),
            ..Default::default()
        }),
        ["a"]
    );
    assert_eq!(
        ids(LogFilter {
            event_type: Some("Arrival".into()),
            ..Default::default()
        }),
        ["a"]
    );
    assert_eq!(
        ids(LogFilter {
            created_after: Some(150),
            ..Default::default()
        }),
        ["b"]
    );
    assert_eq!(
        ids(LogFilter {
            created_before: Some(150),
            ..Default::default()
        }),
        ["a"]
    );
    assert!(
        store
            .logs("other", &LogFilter::default(), 0, 10)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.logs("o", &LogFilter::default(), 0, 1).unwrap().len(),
        1
    );
    // Redox's bounds: "before" includes the instant itself, as "after" does.
    assert_eq!(
        ids(LogFilter {
            created_before: Some(200),
            created_after: Some(200),
            ..Default::default()
        }),
        ["b"]
    );
    assert_eq!(
        ids(LogFilter {
            updated_after: Some(150),
            ..Default::default()
        }),
        ["b"]
    );
    assert_eq!(
        ids(LogFilter {
            updated_before: Some(150),
            ..Default::default()
        }),
        ["a"]
    );
    assert_eq!(
        ids(LogFilter {
            log_type: Some(LogType::Send),
            ..Default::default()
        }),
        ["b", "a"]
    );
    assert!(
        ids(LogFilter {
            log_type: Some(LogType::Request),
            ..Default::default()
        })
        .is_empty()
    );
    // Offset paging: the second page of one.
    let second: Vec<String> = store
        .logs("o", &LogFilter::default(), 1, 1)
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(second, ["a"]);
}

/// Sets the recorded schema version of both components past what this binary knows.
fn pretend_newer_schema(db: &Db) {
    match &db.database {
        Database::Sqlite(dir) => {
            for file in [ENGINE_FILE, wharf_store::INBOX_FILE] {
                let conn = rusqlite::Connection::open(dir.join(file)).unwrap();
                conn.pragma_update(None, "user_version", 999).unwrap();
            }
        }
        Database::Postgres(url) => {
            wharf_store::postgres::execute(
                url,
                "INSERT INTO schema_migrations (component, version) VALUES ('engine', 999), ('inbox', 999)",
            )
            .unwrap();
        }
    }
}

fn a_newer_schema_is_refused(db: &Db) {
    drop(db.engine());
    db.inbox().close();
    pretend_newer_schema(db);
    let engine = EngineStore::open_database(&db.database, &EngineStoreOptions::default());
    let inbox = Inbox::open_database(&db.database, InboxOptions::default());
    for err in [engine.err().unwrap(), inbox.err().unwrap()] {
        let text = err.to_string();
        assert!(
            matches!(
                err,
                StoreError::SchemaTooNew { .. } | StoreError::DatabaseSchemaTooNew { .. }
            ),
            "{text}"
        );
        assert!(
            text.contains("newer than this binary knows") && text.contains("999"),
            "{text}"
        );
    }
}

fn migrations_run_once(db: &Db) {
    let store = db.engine();
    let org = store.ensure_organization("A").unwrap();
    drop(store);
    // Reopening migrates nothing again and finds what was there.
    let store = db.engine();
    assert_eq!(store.organizations().unwrap(), vec![org]);
}

/// Runs one statement on the engine's database directly, past the store's API, as anyone with
/// access to the database could.
fn run_sql(db: &Db, sql: &str) -> Result<(), String> {
    match &db.database {
        Database::Sqlite(dir) => rusqlite::Connection::open(dir.join(ENGINE_FILE))
            .unwrap()
            .execute_batch(sql)
            .map_err(|e| e.to_string()),
        Database::Postgres(url) => {
            wharf_store::postgres::execute(url, sql).map_err(|e| e.to_string())
        }
    }
}

fn the_audit_log_is_append_only(db: &Db) {
    let store = db.engine();
    let entry = |n: i64, org: &str| AuditRecord {
        seq: 0,
        organization_id: org.to_owned(),
        at: 1_000 * n,
        actor_kind: "operator".into(),
        actor_name: format!("alice-{n}"),
        action: "log.phi.read".into(),
        subject: format!("log-{n}"),
        address: Some("192.0.2.7".into()),
    };
    for n in 1..=3 {
        store.append_audit(&entry(n, "org-a")).unwrap();
    }
    store.append_audit(&entry(4, "org-b")).unwrap();
    // Newest first, one organization's, paged, and from a time on.
    let all = store.audit("org-a", None, 0, 10).unwrap();
    let names: Vec<&str> = all.iter().map(|e| e.actor_name.as_str()).collect();
    assert_eq!(names, ["alice-3", "alice-2", "alice-1"]);
    assert_eq!(
        all[0],
        AuditRecord {
            seq: all[0].seq,
            ..entry(3, "org-a")
        }
    );
    assert!(all[0].seq > all[1].seq);
    let page = store.audit("org-a", None, 1, 1).unwrap();
    assert_eq!(page[0].actor_name, "alice-2");
    let since = store.audit("org-a", Some(2_000), 0, 10).unwrap();
    assert_eq!(since.len(), 2);

    // The database itself refuses to change or remove an entry.
    for sql in [
        "UPDATE audit SET actor_name = 'mallory'",
        "DELETE FROM audit",
    ] {
        let refused = run_sql(db, sql).expect_err(sql);
        assert!(refused.contains("append-only"), "{sql}: {refused}");
    }
    if matches!(db.database, Database::Postgres(_)) {
        let refused = run_sql(db, "TRUNCATE audit").expect_err("TRUNCATE");
        assert!(refused.contains("append-only"), "{refused}");
    }
    assert_eq!(store.audit("org-a", None, 0, 10).unwrap(), all);
}

fn message(destination: &str, key: &str) -> NewMessage {
    NewMessage {
        destination: destination.into(),
        duplicate_key: key.into(),
        kind: "data_model".into(),
        status: MessageStatus::Received,
        data_model: Some("PatientAdmin".into()),
        event_type: Some("Arrival".into()),
        log_id: None,
        content_type: "application/json".into(),
        body: Body::from_static(b"{\"Meta\":{}}"),
        malformed_reason: None,
    }
}

async fn keeps_once_per_duplicate_key_and_destination(db: &Db) {
    let inbox = db.inbox();
    let first = inbox.keep(message("a", "log:1")).await.unwrap();
    assert!(!first.duplicate);
    let again = inbox.keep(message("a", "log:1")).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.message_id, first.message_id);
    let other = inbox.keep(message("b", "log:1")).await.unwrap();
    assert!(!other.duplicate, "keys are per destination");
    assert_eq!(
        inbox.reader().list(&ListQuery::oldest(100)).unwrap().len(),
        2
    );
}

async fn concurrent_keeps_share_commits_and_keep_order(db: &Db) {
    let inbox = db.inbox();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let inbox = inbox.clone();
            tokio::spawn(async move { inbox.keep(message("a", &format!("k{i}"))).await })
        })
        .collect();
    for t in tasks {
        assert!(!t.await.unwrap().unwrap().duplicate);
    }
    let rows = inbox
        .reader()
        .list(&ListQuery {
            destination: Some("a"),
            ..ListQuery::oldest(1000)
        })
        .unwrap();
    assert_eq!(rows.len(), 200);
    assert!(rows.windows(2).all(|w| w[0].id < w[1].id));
}

async fn forwarding_bookkeeping_moves_the_cursor(db: &Db) {
    let inbox = db.inbox();
    let a = inbox.keep(message("d", "1")).await.unwrap();
    let b = inbox.keep(message("d", "2")).await.unwrap();
    let next = inbox.reader().next_to_forward("d", 0).unwrap().unwrap();
    assert_eq!(next.id, a.id);
    inbox
        .record_forward_failure(a.id, "503".into(), None)
        .await
        .unwrap();
    inbox.mark_forwarded(a.id).await.unwrap();
    let next = inbox.reader().next_to_forward("d", 0).unwrap().unwrap();
    assert_eq!(next.id, b.id);
    let row = inbox.reader().get(&a.message_id).unwrap().unwrap();
    assert_eq!(row.status, MessageStatus::Forwarded);
    assert_eq!(row.forward_attempts, 2);
}

async fn a_retry_within_one_batch_is_kept_once(db: &Db) {
    let inbox = db.inbox();
    // Many senders of the same message at once: they land in the same batches.
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let inbox = inbox.clone();
            tokio::spawn(async move { inbox.keep(message("a", &format!("k{}", i % 5))).await })
        })
        .collect();
    let mut kept = Vec::new();
    for t in tasks {
        kept.push(t.await.unwrap().unwrap());
    }
    assert_eq!(kept.iter().filter(|k| !k.duplicate).count(), 5);
    assert_eq!(
        inbox.reader().list(&ListQuery::oldest(100)).unwrap().len(),
        5
    );
    for k in &kept {
        let row = inbox.reader().get(&k.message_id).unwrap().unwrap();
        assert_eq!(
            row.id, k.id,
            "a duplicate gets the original's id and message id"
        );
    }
}

async fn listings_recent_and_counts(db: &Db) {
    let inbox = db.inbox();
    let a = inbox.keep(message("d", "1")).await.unwrap();
    let mut bad = message("d", "2");
    bad.status = MessageStatus::Malformed;
    bad.kind = "malformed".into();
    bad.malformed_reason = Some("not JSON".into());
    bad.body = Body::from_static(b"<xml/>");
    inbox.keep(bad).await.unwrap();
    inbox.keep(message("e", "3")).await.unwrap();
    inbox.mark_forwarded(a.id).await.unwrap();
    let reader = inbox.reader();
    assert_eq!(
        reader
            .list(&ListQuery {
                destination: Some("d"),
                ..ListQuery::oldest(10)
            })
            .unwrap()
            .len(),
        2
    );
    assert_eq!(reader.list(&ListQuery::oldest(2)).unwrap().len(), 2);
    let recent = reader.recent(None, 10).unwrap();
    assert_eq!(
        recent
            .iter()
            .map(|m| m.duplicate_key.as_str())
            .collect::<Vec<_>>(),
        ["3", "2", "1"]
    );
    let malformed = reader.recent(Some(MessageStatus::Malformed), 10).unwrap();
    assert_eq!(malformed.len(), 1);
    assert_eq!(malformed[0].malformed_reason.as_deref(), Some("not JSON"));
    assert_eq!(malformed[0].body_bytes, 6);
    assert_eq!(
        reader.count_by_status("d").unwrap(),
        vec![(MessageStatus::Forwarded, 1), (MessageStatus::Malformed, 1)]
    );
    let forwarded = reader.get(&a.message_id).unwrap().unwrap();
    assert!(forwarded.forwarded_at.is_some());
    assert!(
        reader.head("d").unwrap().is_none(),
        "malformed ones never forward"
    );
    assert_eq!(reader.head("e").unwrap().unwrap().duplicate_key, "3");
    assert!(reader.get("no-such-id").unwrap().is_none());
}

/// A message kept as malformed, as the destination keeps a body that is not JSON.
fn malformed(destination: &str, key: &str) -> NewMessage {
    NewMessage {
        status: MessageStatus::Malformed,
        kind: "malformed".into(),
        malformed_reason: Some("not JSON".into()),
        body: Body::from_static(b"<xml/>"),
        ..message(destination, key)
    }
}

fn keys(rows: &[wharf_store::MessageSummary]) -> Vec<&str> {
    rows.iter().map(|m| m.duplicate_key.as_str()).collect()
}

async fn listings_page_by_sequence_status_and_order(db: &Db) {
    let inbox = db.inbox();
    let mut kept = Vec::new();
    for i in 0..10 {
        let m = if i % 3 == 0 {
            malformed("d", &i.to_string())
        } else {
            message(if i % 2 == 0 { "d" } else { "e" }, &i.to_string())
        };
        kept.push(inbox.keep(m).await.unwrap());
    }
    let reader = inbox.reader();
    let page = |q: ListQuery<'_>| reader.list(&q).unwrap();
    // Forward pages: each starts after the last sequence number of the one before.
    let first = page(ListQuery::oldest(4));
    assert_eq!(keys(&first), ["0", "1", "2", "3"]);
    let second = page(ListQuery {
        after: Some(first[3].id),
        ..ListQuery::oldest(4)
    });
    assert_eq!(keys(&second), ["4", "5", "6", "7"]);
    let last = page(ListQuery {
        after: Some(second[3].id),
        ..ListQuery::oldest(4)
    });
    assert_eq!(keys(&last), ["8", "9"]);
    // Backward pages from the newest.
    let newest = ListQuery {
        newest_first: true,
        ..ListQuery::oldest(3)
    };
    let top = page(newest);
    assert_eq!(keys(&top), ["9", "8", "7"]);
    let next = page(ListQuery {
        before: Some(top[2].id),
        ..newest
    });
    assert_eq!(keys(&next), ["6", "5", "4"]);
    // Filters combine with the bounds.
    let bad = page(ListQuery {
        status: Some(MessageStatus::Malformed),
        ..ListQuery::oldest(100)
    });
    assert_eq!(keys(&bad), ["0", "3", "6", "9"]);
    let bad_between = page(ListQuery {
        status: Some(MessageStatus::Malformed),
        after: Some(kept[0].id),
        before: Some(kept[9].id),
        ..ListQuery::oldest(100)
    });
    assert_eq!(keys(&bad_between), ["3", "6"]);
    let received_e = page(ListQuery {
        destination: Some("e"),
        status: Some(MessageStatus::Received),
        newest_first: true,
        ..ListQuery::oldest(100)
    });
    assert_eq!(keys(&received_e), ["7", "5", "1"]);
    assert!(
        page(ListQuery {
            destination: Some("nobody"),
            ..ListQuery::oldest(100)
        })
        .is_empty()
    );
    // The body of one message, byte for byte.
    let stored = reader.message(&kept[3].message_id).unwrap().unwrap();
    assert_eq!(stored.body, b"<xml/>");
    assert_eq!(stored.id, kept[3].id);
    assert!(reader.message("no-such-id").unwrap().is_none());
}

async fn only_malformed_messages_are_discarded(db: &Db) {
    let inbox = db.inbox();
    let good = inbox.keep(message("d", "good")).await.unwrap();
    let bad = inbox.keep(malformed("d", "bad")).await.unwrap();
    let other = inbox.keep(malformed("d", "other")).await.unwrap();
    let asked = [
        good.message_id.clone(),
        bad.message_id.clone(),
        "no-such-id".to_owned(),
    ];
    // Beside the running inbox, as the command is used.
    let discarded = wharf_store::discard_malformed(&db.database, &asked).unwrap();
    assert_eq!(discarded, std::slice::from_ref(&bad.message_id));
    let reader = inbox.reader();
    assert!(reader.get(&bad.message_id).unwrap().is_none());
    assert!(reader.get(&good.message_id).unwrap().is_some());
    assert!(reader.get(&other.message_id).unwrap().is_some());
    assert_eq!(
        reader.count_by_status("d").unwrap(),
        vec![(MessageStatus::Malformed, 1), (MessageStatus::Received, 1)]
    );
    // Discarded means gone: the same again deletes nothing; the writer still works after.
    assert!(
        wharf_store::discard_malformed(&db.database, std::slice::from_ref(&bad.message_id))
            .unwrap()
            .is_empty()
    );
    inbox.keep(message("d", "later")).await.unwrap();
    assert_eq!(reader.list(&ListQuery::oldest(10)).unwrap().len(), 3);
    // The discard ran beside the writer, yet the key is free again: the same message sent
    // again is kept as new, not answered with the discarded copy's id.
    let resent = inbox.keep(malformed("d", "bad")).await.unwrap();
    assert!(!resent.duplicate);
    assert_ne!(resent.message_id, bad.message_id);
    assert!(reader.get(&resent.message_id).unwrap().is_some());
    assert!(inbox.keep(malformed("d", "bad")).await.unwrap().duplicate);
}

async fn reopened_inbox_keeps_its_messages(db: &Db) {
    let inbox = db.inbox();
    let kept = inbox.keep(message("a", "x")).await.unwrap();
    inbox.close();
    let reader = InboxReader::open_database(&db.database).unwrap();
    assert_eq!(reader.list(&ListQuery::oldest(10)).unwrap().len(), 1);
    assert_eq!(
        reader.count_by_status("a").unwrap(),
        vec![(MessageStatus::Received, 1)]
    );
    let inbox = db.inbox();
    let again = inbox.keep(message("a", "x")).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.message_id, kept.message_id);
    let _ = tokio::time::timeout(Duration::from_secs(1), async {}).await;
}

async fn bodies_are_kept_byte_for_byte(db: &Db) {
    let inbox = db.inbox();
    let bytes: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    let mut m = message("a", "big");
    m.body = Body::from(bytes.clone());
    let kept = inbox.keep(m).await.unwrap();
    let stored = inbox.reader().next_to_forward("a", 0).unwrap().unwrap();
    assert_eq!((stored.id, stored.body), (kept.id, bytes));
}

async fn only_forwarded_messages_are_pruned_oldest_first(db: &Db) {
    let inbox = db.inbox();
    let first = inbox.keep(message("a", "1")).await.unwrap();
    let second = inbox.keep(message("b", "2")).await.unwrap();
    let third = inbox.keep(message("a", "3")).await.unwrap();
    let mut bad = message("a", "4");
    bad.status = MessageStatus::Malformed;
    inbox.keep(bad).await.unwrap();
    let waiting = inbox.keep(message("a", "5")).await.unwrap();
    // Forwarded in the order second, first, third, a few milliseconds apart.
    for id in [second.id, first.id, third.id] {
        inbox.mark_forwarded(id).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let forwarded_at = |kept: &wharf_store::Kept| {
        inbox
            .reader()
            .get(&kept.message_id)
            .unwrap()
            .unwrap()
            .forwarded_at
            .unwrap()
    };
    let third_at = forwarded_at(&third);

    // Strictly before the cutoff, oldest forward first, at most `limit` at a time.
    assert_eq!(inbox.prune_forwarded(third_at, 1).await.unwrap(), 1);
    assert!(inbox.reader().get(&second.message_id).unwrap().is_none());
    assert_eq!(inbox.prune_forwarded(third_at, 10).await.unwrap(), 1);
    assert!(inbox.reader().get(&first.message_id).unwrap().is_none());
    assert_eq!(inbox.prune_forwarded(third_at, 10).await.unwrap(), 0);
    assert!(inbox.reader().get(&third.message_id).unwrap().is_some());

    // However old, a message not forwarded (waiting or malformed) is the only copy and stays.
    let far_future = wharf_store::now_millis() + 86_400_000;
    assert_eq!(inbox.prune_forwarded(far_future, 10).await.unwrap(), 1);
    let left: Vec<String> = inbox
        .reader()
        .list(&ListQuery::oldest(10))
        .unwrap()
        .into_iter()
        .map(|m| m.duplicate_key)
        .collect();
    assert_eq!(left, ["4", "5"]);
    assert_eq!(
        inbox.reader().next_to_forward("a", 0).unwrap().unwrap().id,
        waiting.id
    );

    // Once pruned, a message's duplicate key is free again: a later retry is kept as new.
    assert!(!inbox.keep(message("a", "1")).await.unwrap().duplicate);
}

/// The counts `/metrics` reads are kept up to date as messages change, not counted on demand:
/// after every kind of change they must equal what a listing of the inbox shows.
async fn counts_follow_every_change(db: &Db) {
    let inbox = db.inbox();
    let check = |inbox: &wharf_store::Inbox, step: &str| {
        let reader = inbox.reader();
        for destination in ["a", "b", "c"] {
            let mut listed = std::collections::BTreeMap::new();
            for m in reader
                .list(&ListQuery {
                    destination: Some(destination),
                    ..ListQuery::oldest(1000)
                })
                .unwrap()
            {
                *listed.entry(m.status.as_str()).or_insert(0i64) += 1;
            }
            let counted: std::collections::BTreeMap<_, _> = reader
                .count_by_status(destination)
                .unwrap()
                .into_iter()
                .map(|(status, n)| (status.as_str(), n))
                .collect();
            assert_eq!(counted, listed, "{destination} after {step}");
        }
    };
    let mut ids = Vec::new();
    for key in ["1", "2", "3", "4"] {
        ids.push(inbox.keep(message("a", key)).await.unwrap().id);
    }
    inbox.keep(message("b", "1")).await.unwrap();
    let mut bad = message("a", "bad");
    bad.status = MessageStatus::Malformed;
    bad.kind = "malformed".into();
    bad.malformed_reason = Some("not JSON".into());
    inbox.keep(bad).await.unwrap();
    check(&inbox, "keeping");
    assert!(inbox.keep(message("a", "1")).await.unwrap().duplicate);
    check(&inbox, "a retry");
    // Keeps that share batches, for two destinations and two statuses, with retries among
    // them: each batch's new rows are counted once per destination and status.
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let inbox = inbox.clone();
            tokio::spawn(async move {
                let destination = if i % 2 == 0 { "b" } else { "c" };
                let mut m = message(destination, &format!("shared{}", i % 14));
                if i % 3 == 0 {
                    m.status = MessageStatus::Malformed;
                    m.kind = "malformed".into();
                    m.malformed_reason = Some("not JSON".into());
                }
                inbox.keep(m).await
            })
        })
        .collect();
    let mut new_rows = 0;
    for t in tasks {
        new_rows += usize::from(!t.await.unwrap().unwrap().duplicate);
    }
    assert_eq!(new_rows, 14);
    check(&inbox, "keeps sharing batches");
    inbox
        .record_forward_failure(ids[0], "503".into(), None)
        .await
        .unwrap();
    check(&inbox, "a failed attempt");
    inbox
        .record_forward_failure(ids[3], "503".into(), Some("dead_letter_after".into()))
        .await
        .unwrap();
    check(&inbox, "a dead letter");
    let dead = inbox
        .reader()
        .list(&ListQuery {
            status: Some(MessageStatus::DeadLetter),
            ..ListQuery::oldest(1)
        })
        .unwrap();
    wharf_store::replay_dead_letters(&db.database, &[dead[0].message_id.clone()]).unwrap();
    check(&inbox, "a replay");
    for id in &ids[..3] {
        inbox.mark_forwarded(*id).await.unwrap();
    }
    check(&inbox, "forwarding");
    let later = wharf_store::now_millis() + 1;
    assert_eq!(inbox.prune_forwarded(later, 2).await.unwrap(), 2);
    check(&inbox, "pruning");
    assert_eq!(
        inbox.reader().count_by_status("a").unwrap(),
        vec![
            (MessageStatus::Forwarded, 1),
            (MessageStatus::Malformed, 1),
            (MessageStatus::Received, 1)
        ]
    );
    // Read twice in a row (on PostgreSQL the first read folds the changes): the same answer.
    check(&inbox, "a second read");
    assert_eq!(inbox.prune_forwarded(later, 10).await.unwrap(), 1);
    check(&inbox, "pruning the last forwarded one");
}

/// The head of a destination is what `/_wharf` and `/metrics` show as stuck: its attempts,
/// when it first failed and why. Dead-lettering it (as `dead_letter_after` does, through the
/// writer) lets the next message be the head; replaying it puts it back where it arrived,
/// ahead of what is still waiting, with its attempts forgotten.
async fn a_poison_head_is_shown_dead_lettered_and_replayed_in_place(db: &Db) {
    let inbox = db.inbox();
    let reader = inbox.reader();
    let poison = inbox.keep(message("d", "poison")).await.unwrap();
    let next = inbox.keep(message("d", "next")).await.unwrap();
    let fresh = reader.head("d").unwrap().unwrap();
    assert_eq!(fresh.id, poison.id);
    assert_eq!((fresh.forward_attempts, fresh.first_failed_at), (0, None));

    let before = wharf_store::now_millis();
    for error in ["HTTP 422", "HTTP 500"] {
        inbox
            .record_forward_failure(poison.id, error.into(), None)
            .await
            .unwrap();
    }
    let stuck = reader.head("d").unwrap().unwrap();
    assert_eq!(stuck.id, poison.id);
    assert_eq!(stuck.forward_attempts, 2);
    assert_eq!(stuck.last_error.as_deref(), Some("HTTP 500"));
    let first = stuck.first_failed_at.expect("the first failure is kept");
    assert!(first >= before && first <= wharf_store::now_millis());
    let stored = reader.next_to_forward("d", 0).unwrap().unwrap();
    assert_eq!(
        (stored.forward_attempts, stored.first_failed_at),
        (2, Some(first))
    );

    inbox
        .record_forward_failure(poison.id, "HTTP 500".into(), Some("failed 3 times".into()))
        .await
        .unwrap();
    let dead = reader.get(&poison.message_id).unwrap().unwrap();
    assert_eq!(dead.status, MessageStatus::DeadLetter);
    assert_eq!(dead.forward_attempts, 3);
    assert_eq!(dead.dead_letter_reason.as_deref(), Some("failed 3 times"));
    assert!(dead.dead_lettered_at.is_some());
    assert_eq!(reader.head("d").unwrap().unwrap().id, next.id);
    assert_eq!(reader.next_to_forward("d", 0).unwrap().unwrap().id, next.id);
    let listed = reader
        .list(&ListQuery {
            destination: Some("d"),
            status: Some(MessageStatus::DeadLetter),
            ..ListQuery::oldest(10)
        })
        .unwrap();
    assert_eq!(keys(&listed), ["poison"]);

    // A later message arrives while the poison one is out; the replay puts it back ahead.
    let later = inbox.keep(message("d", "later")).await.unwrap();
    let replayed = wharf_store::replay_dead_letters(
        &db.database,
        &[poison.message_id.clone(), next.message_id.clone()],
    )
    .unwrap();
    assert_eq!(
        replayed,
        std::slice::from_ref(&poison.message_id),
        "only dead letters are replayed"
    );
    let head = reader.head("d").unwrap().unwrap();
    assert_eq!(head.id, poison.id);
    assert_eq!((head.forward_attempts, head.first_failed_at), (0, None));
    assert!(head.dead_letter_reason.is_none() && head.dead_lettered_at.is_none());
    let waiting = reader
        .list(&ListQuery {
            destination: Some("d"),
            status: Some(MessageStatus::Received),
            ..ListQuery::oldest(10)
        })
        .unwrap();
    assert_eq!(keys(&waiting), ["poison", "next", "later"]);
    assert!(later.id > next.id);
    // A retry of it from the sender is still the same message.
    let again = inbox.keep(message("d", "poison")).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.message_id, poison.message_id);
}

/// The operator's skip moves only messages still waiting; dead letters are counted, kept by
/// the retention task however old, and not discarded as malformed ones are.
async fn dead_letters_are_kept_through_retention_and_only_waiting_messages_move(db: &Db) {
    let inbox = db.inbox();
    let waiting = inbox.keep(message("d", "waiting")).await.unwrap();
    let done = inbox.keep(message("d", "done")).await.unwrap();
    let bad = inbox.keep(malformed("d", "bad")).await.unwrap();
    inbox.mark_forwarded(done.id).await.unwrap();
    let asked = [
        waiting.message_id.clone(),
        done.message_id.clone(),
        bad.message_id.clone(),
        "no-such-id".to_owned(),
    ];
    // Beside the running inbox, as the command is used.
    let moved = wharf_store::dead_letter(&db.database, &asked, "skipped by an operator").unwrap();
    assert_eq!(moved, std::slice::from_ref(&waiting.message_id));
    assert!(
        wharf_store::dead_letter(&db.database, &asked, "again")
            .unwrap()
            .is_empty(),
        "a dead letter is not moved twice"
    );
    let reader = inbox.reader();
    let row = reader.get(&waiting.message_id).unwrap().unwrap();
    assert_eq!(row.status, MessageStatus::DeadLetter);
    assert_eq!(
        row.dead_letter_reason.as_deref(),
        Some("skipped by an operator")
    );
    assert_eq!(
        reader.count_by_status("d").unwrap(),
        vec![
            (MessageStatus::DeadLetter, 1),
            (MessageStatus::Forwarded, 1),
            (MessageStatus::Malformed, 1)
        ]
    );
    assert!(reader.head("d").unwrap().is_none());
    let much_later = wharf_store::now_millis() + 86_400_000;
    assert_eq!(inbox.prune_forwarded(much_later, 100).await.unwrap(), 1);
    assert!(
        wharf_store::discard_malformed(&db.database, std::slice::from_ref(&waiting.message_id))
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        reader.get(&waiting.message_id).unwrap().unwrap().status,
        MessageStatus::DeadLetter,
        "retention and discard leave dead letters alone"
    );
    // From inside the server too (the status page), the same rules.
    assert_eq!(
        inbox
            .replay_dead_letters(&[waiting.message_id.clone(), bad.message_id.clone()])
            .unwrap(),
        std::slice::from_ref(&waiting.message_id)
    );
    assert_eq!(reader.head("d").unwrap().unwrap().id, waiting.id);
}

/// The write `/readyz` makes while the disk is full succeeds on a store with room.
async fn a_probe_write_needs_space(db: &Db) {
    let inbox = db.inbox();
    inbox.probe_write(64 * 1024).await.unwrap();
    inbox.probe_write(1).await.unwrap();
    inbox.keep(message("d", "after")).await.unwrap();
}

/// Sources, OAuth API keys, subscriptions (routes with their filter), a paused subscription's
/// logs held out of the queue and released in place, and a filtered log never queued.
fn sources_subscriptions_filters_and_held_logs(db: &Db) {
    let store = db.engine();
    let org = store.ensure_organization("Acme").unwrap();
    let env = store.environments(&org.id).unwrap().remove(0);
    let destination = record(&org, &env, "https://a.example/x");
    store.insert_destination(&destination).unwrap();
    let key = ApiKeyRecord {
        id: "client-1".into(),
        organization_id: org.id.clone(),
        environment_id: env.id.clone(),
        name: "ehr".into(),
        jwks_url: None,
        jwk_set: Some("{\"keys\":[]}".into()),
        created_at: 1,
        updated_at: 1,
    };
    store.insert_apikey(&key).unwrap();
    assert_eq!(store.apikeys(&env.id).unwrap(), [key]);
    assert!(store.delete_apikey("client-1").unwrap());
    assert!(store.apikey("client-1").unwrap().is_none());
    let source = SourceRecord {
        id: "src".into(),
        organization_id: org.id.clone(),
        environment_id: env.id.clone(),
        name: "feed".into(),
        api_key_digest: Some(vec![7; 32]),
        config_name: None,
        created_at: 1,
        updated_at: 1,
    };
    store.insert_source(&source).unwrap();
    assert_eq!(
        store.source_by_key_digest(&[7; 32]).unwrap(),
        Some(source.clone())
    );
    assert!(store.source_by_key_digest(&[8; 32]).unwrap().is_none());
    let mut config = source.clone();
    config.id = "cfg".into();
    config.api_key_digest = None;
    config.config_name = Some("EHR".into());
    store.insert_source(&config).unwrap();
    assert_eq!(store.config_sources(&org.id, "EHR").unwrap(), [config]);
    assert_eq!(store.sources(&env.id).unwrap().len(), 2);
    let new = SubscriptionRecord {
        id: 0,
        organization_id: org.id.clone(),
        environment_id: env.id.clone(),
        source_id: "src".into(),
        destination_id: destination.id.clone(),
        data_model: "PatientAdmin".into(),
        paused: false,
        created_at: 1,
        updated_at: 1,
    };
    let sub = store.insert_subscription(&new).unwrap();
    assert!(sub.id > 0);
    assert_eq!(
        store.insert_subscription(&new).unwrap().id,
        sub.id,
        "one per triple"
    );
    let filter = FilterRecord {
        id: "f1".into(),
        subscription_id: sub.id,
        organization_id: org.id.clone(),
        environment_id: env.id.clone(),
        name: "only".into(),
        action: FilterAction::Send,
        rules: "[]".into(),
        version: 1,
        created_at: 2,
        updated_at: 2,
        deleted_at: None,
    };
    store.save_filter(&filter).unwrap();
    let saved = store
        .save_filter(&FilterRecord {
            action: FilterAction::BlockAll,
            ..filter.clone()
        })
        .unwrap();
    assert_eq!((saved.version, saved.action), (2, FilterAction::BlockAll));
    let routes = store.routes("src", "PatientAdmin").unwrap();
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].1.as_ref().map(|f| f.id.as_str()), Some("f1"));
    assert!(store.routes("src", "Scheduling").unwrap().is_empty());
    let filtered_by =
        |f: &SubscriptionFilter| store.subscriptions(&env.id, f, 0, 50).unwrap().len();
    assert_eq!(filtered_by(&SubscriptionFilter::default()), 1);
    assert_eq!(
        filtered_by(&SubscriptionFilter {
            source_id: Some("other".into()),
            ..Default::default()
        }),
        0
    );
    // Logs of the subscription: the first queued, then paused: held (pending to readers,
    // not in the queue); one more arrives held; another destination's flows; a filtered log
    // is never queued.
    let log = |id: &str, status: LogStatus| LogRecord {
        subscription_id: Some(sub.id),
        status,
        ..queued(id, &destination.id)
    };
    enqueue(&store, &[log("h1", PENDING)]);
    assert!(store.set_subscription_paused(sub.id, true).unwrap());
    assert!(store.subscription(sub.id).unwrap().unwrap().paused);
    enqueue(
        &store,
        &[
            log("h2", PENDING),
            log("x", LogStatus::Filtered),
            queued("o1", "other"),
        ],
    );
    let heads: Vec<_> = store
        .queue_heads()
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(heads, ["o1"]);
    assert_eq!(
        store.log("h2").unwrap().unwrap().0.status,
        PENDING,
        "read as pending"
    );
    assert_eq!(
        store.log("x").unwrap().unwrap().0.status,
        LogStatus::Filtered
    );
    assert_eq!(
        store.log("h1").unwrap().unwrap().0.subscription_id,
        Some(sub.id)
    );
    assert!(store.set_subscription_paused(sub.id, false).unwrap());
    // (PostgreSQL: reading the heads takes the queues' leases, which `queue_front` needs.)
    let head = store
        .queue_heads()
        .unwrap()
        .into_iter()
        .find(|l| l.destination_id == destination.id)
        .map(|l| l.id);
    assert_eq!(head.as_deref(), Some("h1"));
    let front: Vec<_> = store
        .queue_front(&destination.id, None, 10)
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(front, ["h1", "h2"], "released in place, in order");
    // Paused again, then deleted: its held logs are queued, its filter gone.
    store.set_subscription_paused(sub.id, true).unwrap();
    assert!(
        store
            .queue_front(&destination.id, None, 10)
            .unwrap()
            .is_empty()
    );
    assert!(store.delete_filter(sub.id, "f1", 3).unwrap());
    assert!(store.filters(sub.id, false).unwrap().is_empty());
    assert_eq!(store.filters(sub.id, true).unwrap()[0].deleted_at, Some(3));
    assert!(store.delete_source("src").unwrap());
    assert!(store.subscription(sub.id).unwrap().is_none());
    store.queue_heads().unwrap();
    assert_eq!(
        store.queue_front(&destination.id, None, 10).unwrap().len(),
        2
    );
    assert!(!store.set_subscription_paused(sub.id, false).unwrap());
}
