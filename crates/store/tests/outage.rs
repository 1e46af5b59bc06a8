//! The engine's store when PostgreSQL fails under it, on a private cluster each test starts
//! (`wharf_testkit::PgCluster`), whatever `WHARF_TEST_BACKEND` says: every failure has the kind
//! a server needs to answer it (`StoreErrorKind`), no operation outlives the store's deadline,
//! and the store works again within a second of the server accepting connections.

mod common;

use common::queued;
use std::time::{Duration, Instant};
use wharf_store::engine::{EngineStore, EngineStoreOptions, Write};
use wharf_store::postgres::OPERATION_TIMEOUT;
use wharf_store::{Database, StoreErrorKind};
use wharf_testkit::PgCluster;

fn open(url: &str) -> EngineStore {
    EngineStore::open_database(
        &Database::Postgres(url.to_owned()),
        &EngineStoreOptions::default(),
    )
    .unwrap()
}

/// Runs `f` on a blocking thread (the store's API blocks) and says how long it took.
async fn timed<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> (T, Duration) {
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(f).await.unwrap();
    (out, started.elapsed())
}

/// How long after `since` the store answered a read again, polling every 10 ms (fails after 10 s).
async fn answers_again(store: &EngineStore, since: Instant) -> Duration {
    loop {
        let probe = store.clone();
        if tokio::task::spawn_blocking(move || probe.organizations())
            .await
            .unwrap()
            .is_ok()
        {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "the store did not answer again"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The bound a failing operation must keep: the deadline plus scheduling slack.
fn bound() -> Duration {
    OPERATION_TIMEOUT + Duration::from_secs(2)
}

/// Makes every commit of a log whose source is `slow` wait `seconds` inside COMMIT (a deferred
/// constraint trigger runs at commit time).
fn slow_commits(url: &str, seconds: u32) {
    wharf_store::postgres::execute(
        url,
        &format!(
            "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               IF NEW.source = 'slow' THEN PERFORM pg_sleep({seconds}); END IF;
               RETURN NULL;
             END $$;
             CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON logs
               DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit();"
        ),
    )
    .unwrap();
}

#[tokio::test]
async fn a_stopped_server_is_unavailable_within_the_deadline_and_nothing_is_half_written() {
    let cluster = PgCluster::init();
    let store = open(&cluster.url());
    let before = queued("before", "d");
    store.apply(&[Write::Enqueue(vec![before])]).unwrap();

    cluster.pause();
    let read = store.clone();
    let (result, took) = timed(move || read.organizations()).await;
    let error = result.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
    assert!(took <= bound(), "a read took {took:?}");
    let write = store.clone();
    let (result, took) =
        timed(move || write.apply(&[Write::Enqueue(vec![queued("during", "d")])])).await;
    let error = result.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
    assert!(took <= bound(), "a commit took {took:?}");
    let readiness = store.clone();
    let (result, took) = timed(move || readiness.check_writable()).await;
    assert_eq!(result.unwrap_err().kind(), StoreErrorKind::Unavailable);
    assert!(took <= bound(), "the readiness probe took {took:?}");

    let resumed = Instant::now();
    cluster.resume();
    let after = answers_again(&store, resumed).await;
    assert!(
        after < Duration::from_secs(1),
        "answered {after:?} after SIGCONT"
    );
    // Unavailable means nothing was committed: the batch's statements, which the server
    // read only once it was resumed, were rolled back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(store.log("before").unwrap().is_some());
    assert!(
        store.log("during").unwrap().is_none(),
        "a batch reported unavailable was committed"
    );
    store
        .apply(&[Write::Enqueue(vec![queued("after", "d")])])
        .unwrap();
}

#[tokio::test]
async fn a_commit_past_the_deadline_is_outcome_unknown_and_may_have_committed() {
    let cluster = PgCluster::init();
    let store = open(&cluster.url());
    slow_commits(&cluster.url(), 8);
    let mut slow = queued("slow", "d");
    slow.source = "slow".into();
    let write = store.clone();
    let (result, took) = timed(move || write.apply(&[Write::Enqueue(vec![slow])])).await;
    let error = result.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::OutcomeUnknown, "{error}");
    assert!(took <= bound(), "the commit took {took:?}");
    // It did commit, later: "may have been queued" was the truth.
    let committed = wharf_testkit::wait_until(Duration::from_secs(10), || {
        store.log("slow").unwrap().is_some()
    })
    .await;
    assert!(committed);
    // Meanwhile and since, other writes go through.
    store
        .apply(&[Write::Enqueue(vec![queued("next", "d")])])
        .unwrap();
}

#[tokio::test]
async fn a_crash_during_commit_is_outcome_unknown_then_unavailable_until_restarted() {
    let mut cluster = PgCluster::init();
    let store = open(&cluster.url());
    slow_commits(&cluster.url(), 3);
    let mut slow = queued("slow", "d");
    slow.source = "slow".into();
    let write = store.clone();
    let committing = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        (
            write.apply(&[Write::Enqueue(vec![slow])]),
            started.elapsed(),
        )
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.kill();
    let (result, took) = committing.await.unwrap();
    let error = result.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::OutcomeUnknown, "{error}");
    assert!(
        took < Duration::from_secs(2),
        "noticed the crash after {took:?}"
    );

    // Down: refused at once, and said to be unavailable.
    for _ in 0..3 {
        let read = store.clone();
        let (result, took) = timed(move || read.organizations()).await;
        assert_eq!(result.unwrap_err().kind(), StoreErrorKind::Unavailable);
        assert!(
            took < Duration::from_secs(1),
            "a refused read took {took:?}"
        );
        let write = store.clone();
        let (result, _) =
            timed(move || write.apply(&[Write::Enqueue(vec![queued("down", "d")])])).await;
        assert_eq!(result.unwrap_err().kind(), StoreErrorKind::Unavailable);
    }

    // Started again (crash recovery): the store answers within a second of the server.
    cluster.spawn();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cluster.accepts_connections() {
        assert!(Instant::now() < deadline, "{}", cluster.log());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let accepting = Instant::now();
    let after = answers_again(&store, accepting).await;
    assert!(
        after < Duration::from_secs(1),
        "answered {after:?} after the server"
    );
    let write = store.clone();
    let (result, took) =
        timed(move || write.apply(&[Write::Enqueue(vec![queued("recovered", "d")])])).await;
    result.unwrap();
    assert!(took < Duration::from_secs(1));
    // The crash came before the commit record: the slow batch is not there.
    assert!(store.log("slow").unwrap().is_none());
    assert!(store.log("down").unwrap().is_none());
}

#[test]
fn a_server_that_is_not_there_is_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let error = EngineStore::open_database(
        &Database::Postgres(format!("postgres://postgres@127.0.0.1:{port}/test")),
        &EngineStoreOptions::default(),
    )
    .err()
    .expect("nothing listens there");
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn writes_refused_as_by_a_standby_are_unavailable() {
    let schema = wharf_testkit::postgres::PgSchema::create();
    let store = open(&schema.url);
    schema.refuse_writes(true);
    let error = store
        .apply(&[Write::Enqueue(vec![queued("refused", "d")])])
        .unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
    assert_eq!(
        store.check_writable().unwrap_err().kind(),
        StoreErrorKind::Unavailable
    );
    // Reads still work; a mistake is not mistaken for an outage.
    store.organizations().unwrap();
    schema.refuse_writes(false);
    store
        .apply(&[Write::Enqueue(vec![queued("accepted", "d")])])
        .unwrap();
}
