//! Several processes on one PostgreSQL database, played by several stores in one test process
//! (each store has its own pool, listener, heartbeat and holder name, as a process would).
//! The same with real processes and SIGKILL is in `crates/wharf/tests/it/shared_database.rs`.

mod common;

use common::queued;
use std::collections::HashSet;
use std::time::Duration;
use wharf_store::engine::{EngineStore, EngineStoreOptions, LogRecord, Write};
use wharf_store::{Body, Database, Inbox, InboxOptions, ListQuery, MessageStatus, NewMessage};
use wharf_testkit::postgres::PgSchema;
use wharf_testkit::wait_until;

fn engine(db: &Database) -> EngineStore {
    EngineStore::open_database(db, &EngineStoreOptions::default()).unwrap()
}

fn heads(store: &EngineStore) -> HashSet<String> {
    store
        .queue_heads()
        .unwrap()
        .into_iter()
        .map(|h| h.destination_id)
        .collect()
}

#[tokio::test]
async fn engines_split_the_queues_and_take_over_released_ones() {
    let schema = PgSchema::create();
    let db = Database::Postgres(schema.url.clone());
    let stores: Vec<EngineStore> = (0..3).map(|_| engine(&db)).collect();
    let logs: Vec<LogRecord> = (0..20)
        .map(|d| queued(&format!("log-{d}"), &format!("dest-{d:02}")))
        .collect();
    stores[0].apply(&[Write::Enqueue(logs)]).unwrap();
    // Every queue ends up worked by exactly one of them, and each works a fair share.
    let split = wait_until(Duration::from_secs(15), || {
        let seen: Vec<HashSet<String>> = stores.iter().map(heads).collect();
        let total: usize = seen.iter().map(HashSet::len).sum();
        let union: HashSet<&String> = seen.iter().flatten().collect();
        total == 20 && union.len() == 20
    })
    .await;
    assert!(
        split,
        "the queues were not split: {:?}",
        stores.iter().map(heads).collect::<Vec<_>>()
    );
    for store in &stores {
        let mine = heads(store).len();
        assert!((5..=8).contains(&mine), "an unfair share: {mine} of 20");
    }
    // One stops and gives its queues up: the others take them over at once.
    let gone = heads(&stores[2]);
    stores[2].release_leases().unwrap();
    let taken = wait_until(Duration::from_secs(10), || {
        let now: HashSet<String> = heads(&stores[0])
            .union(&heads(&stores[1]))
            .cloned()
            .collect();
        gone.iter().all(|d| now.contains(d))
    })
    .await;
    assert!(taken, "released queues were not taken over");
    assert!(
        heads(&stores[0]).is_disjoint(&heads(&stores[1])),
        "a queue is worked by two processes"
    );
}

/// An engine that joins while another works every queue gets its share without waiting for the
/// busy queues to go idle: the first sheds what is beyond its share, the newcomer takes it once
/// those leases run out, and no queue is worked by both meanwhile.
#[tokio::test]
async fn an_engine_that_joins_gets_a_share_of_busy_queues() {
    let schema = PgSchema::create();
    let db = Database::Postgres(schema.url.clone());
    // Short attempts, so the shortest lease (15 s) applies.
    let options = EngineStoreOptions {
        attempt_bound: Duration::from_secs(1),
        ..EngineStoreOptions::default()
    };
    let first = EngineStore::open_database(&db, &options).unwrap();
    let logs: Vec<LogRecord> = (0..10)
        .map(|d| queued(&format!("log-{d}"), &format!("dest-{d:02}")))
        .collect();
    first.apply(&[Write::Enqueue(logs)]).unwrap();
    assert!(wait_until(Duration::from_secs(5), || heads(&first).len() == 10).await);

    let second = EngineStore::open_database(&db, &options).unwrap();
    let started = std::time::Instant::now();
    let mut overlap = None;
    let shared = wait_until(Duration::from_secs(40), || {
        let (a, b) = (heads(&first), heads(&second));
        if !a.is_disjoint(&b) {
            overlap.get_or_insert((a.clone(), b.clone()));
        }
        b.len() == 5 && a.len() == 5 && a.union(&b).count() == 10
    })
    .await;
    assert_eq!(overlap, None, "a queue was worked by both engines");
    assert!(
        shared,
        "the queues were not shared: first {:?}, second {:?}",
        heads(&first),
        heads(&second)
    );
    // Not before the shed leases ran out (renewed in the round that shed them, so 15 s after
    // the newcomer joined at the earliest): an attempt in flight ends before anyone else starts.
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "handed over after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_store_that_only_reads_never_takes_a_queue() {
    let schema = PgSchema::create();
    let db = Database::Postgres(schema.url.clone());
    let reader = EngineStore::open_database(
        &db,
        &EngineStoreOptions {
            work_queues: false,
            ..Default::default()
        },
    )
    .unwrap();
    reader
        .apply(&[Write::Enqueue(vec![queued("l", "d")])])
        .unwrap();
    assert!(reader.queue_heads().unwrap().is_empty());
    let worker = engine(&db);
    assert_eq!(heads(&worker), HashSet::from(["d".to_owned()]));
}

fn message(key: &str) -> NewMessage {
    NewMessage {
        destination: "acme".into(),
        duplicate_key: key.into(),
        kind: "data_model".into(),
        status: MessageStatus::Received,
        data_model: None,
        event_type: None,
        log_id: None,
        content_type: "application/json".into(),
        body: Body::from_static(b"{}"),
        malformed_reason: None,
    }
}

#[tokio::test]
async fn inboxes_keep_each_message_once_and_one_forwards() {
    let schema = PgSchema::create();
    let db = Database::Postgres(schema.url.clone());
    let a = Inbox::open_database(&db, InboxOptions::default()).unwrap();
    let b = Inbox::open_database(&db, InboxOptions::default()).unwrap();
    // The same 100 messages to both at once, as retries through a load balancer would.
    let mut tasks = Vec::new();
    for i in 0..100 {
        for inbox in [a.clone(), b.clone()] {
            tasks.push(tokio::spawn(async move {
                inbox.keep(message(&format!("k{i}"))).await.unwrap()
            }));
        }
    }
    let mut kept = Vec::new();
    for t in tasks {
        kept.push(t.await.unwrap());
    }
    assert_eq!(kept.iter().filter(|k| !k.duplicate).count(), 100);
    let rows = a.reader().list(&ListQuery::oldest(1000)).unwrap();
    assert_eq!(rows.len(), 100);
    for pair in kept.chunks(2) {
        assert_eq!(
            pair[0].message_id, pair[1].message_id,
            "one row per message"
        );
    }
    // A message kept by one wakes the other's forwarder.
    let mut woken = b.subscribe();
    woken.borrow_and_update();
    a.keep(message("late")).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), woken.changed())
        .await
        .expect("the other process heard of the new message")
        .unwrap();
    // One forwarder at a time; the other takes over when it lets go.
    a.want_forwarder("acme");
    b.want_forwarder("acme");
    assert!(
        wait_until(Duration::from_secs(10), || a.holds_forwarder("acme")
            || b.holds_forwarder("acme"))
        .await
    );
    assert!(!(a.holds_forwarder("acme") && b.holds_forwarder("acme")));
    let (holder, other) = if a.holds_forwarder("acme") {
        (&a, &b)
    } else {
        (&b, &a)
    };
    holder.release_forwarder("acme").await;
    assert!(!holder.holds_forwarder("acme"));
    assert!(
        wait_until(Duration::from_secs(10), || other.holds_forwarder("acme")).await,
        "the lease was not taken over"
    );
}

#[test]
fn an_unreachable_server_is_reported_with_what_to_check() {
    let db = Database::Postgres("postgres://postgres@127.0.0.1:1/test".into());
    let err = EngineStore::open_database(&db, &EngineStoreOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("cannot connect to PostgreSQL at postgres://postgres@127.0.0.1:1/test"),
        "{err}"
    );
    assert!(err.contains("check database_url"), "{err}");
    let err = Inbox::open_database(
        &Database::Postgres("postgres://u:secret@127.0.0.1:1/test".into()),
        InboxOptions::default(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        !err.contains("secret"),
        "the password is never shown: {err}"
    );
}

/// TLS to the database (`sslmode=require`), against the local server's own certificate when it
/// has the one Debian's PostgreSQL package makes (CN and SAN `localhost`).
#[test]
fn tls_verifies_the_server_certificate() {
    const SNAKEOIL: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
    let server = wharf_testkit::postgres::server_url();
    if !std::path::Path::new(SNAKEOIL).exists() || !server.contains("127.0.0.1") {
        eprintln!("skipped: no {SNAKEOIL} for a local server");
        return;
    }
    let base = server.replace("127.0.0.1", "localhost");
    let sep = if base.contains('?') { '&' } else { '?' };
    let trusted = format!("{base}{sep}sslmode=require&sslrootcert={SNAKEOIL}");
    wharf_store::postgres::execute(&trusted, "SELECT 1").unwrap();
    let untrusted = format!("{base}{sep}sslmode=require");
    let err = wharf_store::postgres::execute(&untrusted, "SELECT 1")
        .unwrap_err()
        .to_string();
    assert!(err.contains("certificate"), "{err}");
}

/// Leases stay renewed under a constant stream of queue changes (a regression: the renewal's
/// timer lost every race against the notifications, the leases lapsed after ~9 s and the
/// queues stalled until the worker's idle timer).
#[tokio::test]
async fn leases_are_renewed_while_notifications_stream_in() {
    let schema = PgSchema::create();
    let db = Database::Postgres(schema.url.clone());
    let store = engine(&db);
    store
        .apply(&[Write::Enqueue(vec![queued("first", "d")])])
        .unwrap();
    assert_eq!(heads(&store), HashSet::from(["d".to_owned()]));
    // Past the point where an unrenewed lease stops work (40 s lease, 30 s needed, so 10 s).
    let until = std::time::Instant::now() + Duration::from_secs(13);
    let mut n = 0;
    while std::time::Instant::now() < until {
        n += 1;
        store
            .apply(&[Write::Enqueue(vec![queued(&format!("more-{n}"), "e")])])
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        store.holds_queue("d"),
        "the lease of queue d lapsed while {n} notifications streamed in"
    );
}

/// Two servers' inboxes on one database share the memory of single-use credentials: what one
/// accepted the other refuses, of many racing on one digest exactly one is first, and expired
/// entries are taken over and swept.
#[test]
fn inboxes_share_single_use_credentials_and_exactly_one_racer_wins() {
    let schema = PgSchema::create();
    let db = Database::Postgres(schema.url.clone());
    let a = Inbox::open_database(&db, InboxOptions::default()).unwrap();
    let b = Inbox::open_database(&db, InboxOptions::default()).unwrap();
    let (ra, rb) = (a.shared_replays().unwrap(), b.shared_replays().unwrap());
    let now = 1_000_000;
    let digest = [7u8; 32];
    assert!(ra.first_use(&digest, now + 600, now).unwrap());
    assert!(
        !rb.first_use(&digest, now + 600, now).unwrap(),
        "replayed to the other server"
    );
    assert!(!ra.first_use(&digest, now + 600, now + 599).unwrap());
    // Once expired it could not pass its other checks any more: taken over as new.
    assert!(rb.first_use(&digest, now + 1200, now + 600).unwrap());

    // Sixteen threads on two servers race on each of 20 digests: exactly one wins each.
    for round in 0..20u8 {
        let mut digest = [0xAA; 32];
        digest[0] = round;
        let winners: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..16)
                .map(|i| {
                    let r = if i % 2 == 0 { ra.clone() } else { rb.clone() };
                    scope.spawn(move || r.first_use(&digest, now + 5000, now + 1000).unwrap())
                })
                .collect();
            handles
                .into_iter()
                .map(|h| usize::from(h.join().unwrap()))
                .sum()
        });
        assert_eq!(winners, 1, "round {round}");
    }
    // Issued access tokens: recorded by one, found by the other, per destination.
    let token = [0x55; 32];
    ra.record_token(&token, "/redox", "client-1", &[9; 32], now + 300)
        .unwrap();
    assert_eq!(
        rb.issued_token(&token, "/redox").unwrap(),
        Some(wharf_store::SharedToken {
            client_id: "client-1".to_owned(),
            registration: vec![9; 32],
            expires_at: now + 300
        })
    );
    assert_eq!(rb.issued_token(&token, "/other").unwrap(), None);
    assert_eq!(rb.issued_token(&[0x56; 32], "/redox").unwrap(), None);
    // Expired rows are swept (at most once a minute per server) by a later record.
    let later = now + 100_000;
    assert!(ra.first_use(&[0xEE; 32], later + 10, later).unwrap());
    assert_eq!(ra.rows().unwrap(), 1, "only the fresh row is left");
    assert_eq!(
        ra.issued_token(&token, "/redox").unwrap(),
        None,
        "the expired token was swept"
    );
}

#[test]
fn sqlite_inboxes_keep_their_replay_memory_to_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::open(dir.path(), InboxOptions::default()).unwrap();
    assert!(inbox.shared_replays().is_none());
}
