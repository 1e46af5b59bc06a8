//! PostgreSQL stopped and killed under an engine that is ingesting steadily (issue 25), on a
//! private cluster the test starts itself (`wharf_testkit::PgCluster`, initdb in a temporary
//! directory), whatever `WHARF_TEST_BACKEND` says.
//!
//! While PostgreSQL is stopped (SIGSTOP: sockets open, nothing answers) and while it is down
//! (SIGKILL), every route that needs the store answers 503 with `Retry-After` within
//! [`BOUND`], never 500 and never a hang; liveness (`/healthz`) stays 200. Once PostgreSQL
//! accepts connections again (SIGCONT; a restart on the same data directory, with crash
//! recovery) ingestion is acknowledged within [`RESUMED_WITHIN`]. When delivery has drained,
//! every message acknowledged with 200 reached the destination exactly once under the Log ID
//! it was acknowledged with, none under another; a message answered 503 "nothing was queued"
//! never arrives; one answered 503 "may have been queued" may, and is counted apart.
//!
//! Every violation is collected and reported together at the end, so one run says everything
//! that is wrong.

use super::delivery::{SOURCE_KEY, endpoint, org_id, verified_destination};
use super::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wharf_testkit::PgCluster;

/// The longest any answer may take while PostgreSQL is stopped or down.
const BOUND: Duration = Duration::from_secs(10);
/// How soon after PostgreSQL accepts connections again ingestion must be acknowledged.
const RESUMED_WITHIN: Duration = Duration::from_secs(1);
/// How long PostgreSQL stays stopped (SIGSTOP) at least.
const STOPPED_FOR: Duration = Duration::from_secs(7);
/// How long PostgreSQL stays down (SIGKILL) before it is started again, at least.
const DOWN_FOR: Duration = Duration::from_secs(3);
/// Concurrent ingesting sources.
const INGESTERS: usize = 4;

fn config() -> String {
    format!(
        "retry_ladder = [\"0s\", \"200ms\"]\ndelivery_timeout = \"2s\"\nrate_limit_requests = 0\n[[sources]]\nname = \"EHR feed\"\napi_key = \"{SOURCE_KEY}\"\n"
    )
}

/// How the engine answered one submission.
#[derive(Debug, Clone)]
enum Answer {
    /// 200, with the Log ID it was queued under.
    Acked(String),
    /// Any other status.
    Refused {
        status: u16,
        retry_after: Option<String>,
        message: String,
    },
    /// No answer: a transport error or the client's own timeout.
    Lost(String),
}

#[derive(Debug, Clone)]
struct Submission {
    /// Its `Patient.Number`, unique per submission.
    n: u64,
    phase: &'static str,
    took: Duration,
    answer: Answer,
}

/// Whether a 503's message says the message may have been queued (the commit's outcome is
/// unknown), rather than that nothing was queued.
fn may_have_been_queued(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    message.contains("may or may not") || message.contains("may have been")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// What the test shares with its ingesting tasks.
struct Ingestion {
    base: String,
    destination: String,
    client: reqwest::Client,
    next: AtomicU64,
    phase: Mutex<&'static str>,
    ledger: Mutex<Vec<Submission>>,
    stop: AtomicBool,
}

impl Ingestion {
    /// Submits one message and records how it was answered.
    async fn submit(&self) -> Submission {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let phase = *self.phase.lock().unwrap();
        let body = json!({
            "Meta": {
                "DataModel": "PatientAdmin", "EventType": "Arrival",
                "Destinations": [{"ID": self.destination}],
            },
            "Patient": {"Number": n},
        });
        let started = Instant::now();
        let answer = match self
            .client
            .post(format!("{}/endpoint", self.base))
            .bearer_auth(SOURCE_KEY)
            .json(&body)
            .send()
            .await
        {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap_or("?").to_owned());
                let text = response.text().await.unwrap_or_default();
                let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                match (status, value["Meta"]["Logs"][0]["ID"].as_str()) {
                    (200, Some(id)) => Answer::Acked(id.to_owned()),
                    _ => Answer::Refused {
                        status,
                        retry_after,
                        message: value["errors"][0]["message"]
                            .as_str()
                            .map(str::to_owned)
                            .unwrap_or(text),
                    },
                }
            }
            Err(e) => Answer::Lost(e.to_string()),
        };
        let submission = Submission {
            n,
            phase,
            took: started.elapsed(),
            answer,
        };
        self.ledger.lock().unwrap().push(submission.clone());
        submission
    }

    fn set_phase(&self, phase: &'static str) {
        *self.phase.lock().unwrap() = phase;
    }
}

/// A dashboard session signed in with the management key (cookies kept by hand).
async fn dashboard_cookies(base: &str) -> String {
    let client = client();
    let cookies = |response: &reqwest::Response| -> Vec<String> {
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
            .collect()
    };
    let form = client
        .get(format!("{base}/dashboard/signin"))
        .send()
        .await
        .unwrap();
    let mut jar = cookies(&form);
    let html = form.text().await.unwrap();
    let start = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    let csrf = html[start..].split('"').next().unwrap().to_owned();
    let signed_in = client
        .post(format!("{base}/dashboard/signin"))
        .header("cookie", jar.join("; "))
        .header("origin", base)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string([("csrf", csrf.as_str()), ("secret", KEY)]).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        signed_in.status(),
        StatusCode::SEE_OTHER,
        "dashboard sign-in refused"
    );
    jar.extend(cookies(&signed_in));
    jar.join("; ")
}

/// What the routes need to name.
struct Names {
    base: String,
    organization: String,
    environment: String,
    destination: String,
    log: String,
    dashboard_cookies: String,
}

/// What a probe of one route expects while the store is unavailable.
#[derive(Clone, Copy, PartialEq)]
enum Expect {
    /// 503 with `Retry-After`.
    Unavailable,
    /// 200: the route does not need the store.
    Ok,
    /// Anything but a 5xx other than 503 (the route may or may not need the store).
    Not500,
}

/// One request to every route, all at once; returns each route's violations.
async fn probe_every_route(names: &Names, phase: &str) -> Vec<String> {
    let client = client();
    let base = &names.base;
    let (org, env, dest, log) = (
        &names.organization,
        &names.environment,
        &names.destination,
        &names.log,
    );
    let api = |method: reqwest::Method, path: String| {
        client
            .request(method, format!("{base}{path}"))
            .bearer_auth(KEY)
    };
    let enveloped = |payload: Value| json!({"meta": {"version": "1.0.0"}, "payload": payload});
    let probes: Vec<(String, Expect, reqwest::RequestBuilder)> = vec![
        (
            "POST /endpoint".into(),
            Expect::Unavailable,
            client
                .post(format!("{base}/endpoint"))
                .bearer_auth(SOURCE_KEY)
                .json(
                    &json!({"Meta": {"DataModel": "PatientAdmin", "EventType": "Arrival",
                    "Destinations": [{"ID": dest}]}, "Patient": {"Number": -1}}),
                ),
        ),
        (
            "GET /platform/v1/organizations".into(),
            Expect::Unavailable,
            api(reqwest::Method::GET, "/platform/v1/organizations".into()),
        ),
        (
            "GET /platform/v1/organizations/{org}/environments".into(),
            Expect::Unavailable,
            api(
                reqwest::Method::GET,
                format!("/platform/v1/organizations/{org}/environments"),
            ),
        ),
        (
            "GET /platform/v1/environments/{env}/destinations".into(),
            Expect::Unavailable,
            api(
                reqwest::Method::GET,
                format!("/platform/v1/environments/{env}/destinations"),
            ),
        ),
        (
            "POST /platform/v1/environments/{env}/destinations".into(),
            Expect::Unavailable,
            api(
                reqwest::Method::POST,
                format!("/platform/v1/environments/{env}/destinations"),
            )
            .json(&enveloped(json!({"name": "Created during an outage"}))),
        ),
        (
            "GET /platform/v1/destinations/{id}".into(),
            Expect::Unavailable,
            api(
                reqwest::Method::GET,
                format!("/platform/v1/destinations/{dest}"),
            ),
        ),
        (
            "PATCH /platform/v1/destinations/{id}".into(),
            Expect::Unavailable,
            api(
                reqwest::Method::PATCH,
                format!("/platform/v1/destinations/{dest}"),
            )
            .json(&enveloped(json!({"name": "Renamed during an outage"}))),
        ),
        (
            "GET /platform/v1/destinations/{id}/queue".into(),
            Expect::Unavailable,
            api(
                reqwest::Method::GET,
                format!("/platform/v1/destinations/{dest}/queue"),
            ),
        ),
        (
            "GET /platform/v1/organizations/{org}/logs".into(),
            Expect::Unavailable,
            api(
                reqwest::Method::GET,
                format!("/platform/v1/organizations/{org}/logs"),
            ),
        ),
        (
            "GET /platform/v1/organizations/{org}/logs/{id}".into(),
            Expect::Unavailable,
            api(
                reqwest::Method::GET,
                format!("/platform/v1/organizations/{org}/logs/{log}"),
            ),
        ),
        (
            "GET /readyz".into(),
            Expect::Unavailable,
            client.get(format!("{base}/readyz")),
        ),
        (
            "GET /dashboard/destinations (signed in)".into(),
            Expect::Unavailable,
            client
                .get(format!("{base}/dashboard/destinations"))
                .header("cookie", &names.dashboard_cookies),
        ),
        (
            "GET /dashboard/logs (signed in)".into(),
            Expect::Unavailable,
            client
                .get(format!("{base}/dashboard/logs"))
                .header("cookie", &names.dashboard_cookies),
        ),
        (
            "GET /healthz".into(),
            Expect::Ok,
            client.get(format!("{base}/healthz")),
        ),
        (
            "GET /dashboard/signin".into(),
            Expect::Not500,
            client.get(format!("{base}/dashboard/signin")),
        ),
        (
            "GET /metrics".into(),
            Expect::Not500,
            client.get(format!("{base}/metrics")),
        ),
    ];
    let tasks: Vec<_> = probes
        .into_iter()
        .map(|(name, expect, request)| {
            tokio::spawn(async move {
                let started = Instant::now();
                let answer = request.send().await;
                let took = started.elapsed();
                let seen = match answer {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let retry_after = response
                            .headers()
                            .get("retry-after")
                            .map(|v| v.to_str().unwrap_or("?").to_owned());
                        let body = response.text().await.unwrap_or_default();
                        let excerpt: String = body.chars().take(300).collect();
                        Ok((status, retry_after, excerpt))
                    }
                    Err(e) => Err(e.to_string()),
                };
                (name, expect, took, seen)
            })
        })
        .collect();
    let mut violations = Vec::new();
    for task in tasks {
        let (name, expect, took, seen) = task.await.unwrap();
        eprintln!("[{phase}] {name}: {seen:?} in {took:?}");
        let mut wrong = Vec::new();
        if took > BOUND {
            wrong.push(format!("took {took:?} (more than {BOUND:?})"));
        }
        match (&seen, expect) {
            (Err(e), _) => wrong.push(format!("no answer: {e}")),
            (Ok((503, Some(_), _)), Expect::Unavailable) => {}
            (Ok((503, None, _)), Expect::Unavailable) => {
                wrong.push("503 without Retry-After".into())
            }
            (Ok((status, _, _)), Expect::Unavailable) => {
                wrong.push(format!("{status} instead of 503"))
            }
            (Ok((200, _, _)), Expect::Ok) => {}
            (Ok((status, _, _)), Expect::Ok) => wrong.push(format!("{status} instead of 200")),
            (Ok((status, _, _)), Expect::Not500) if *status >= 500 && *status != 503 => {
                wrong.push(format!("{status}"))
            }
            (Ok((503, None, _)), Expect::Not500) => wrong.push("503 without Retry-After".into()),
            (Ok(_), Expect::Not500) => {}
        }
        if !wrong.is_empty() {
            let body = seen
                .as_ref()
                .map(|(_, _, body)| body.clone())
                .unwrap_or_default();
            violations.push(format!(
                "[{phase}] {name}: {}; body: {body}",
                wrong.join(", ")
            ));
        }
    }
    violations
}

/// Submits until one is acknowledged; returns when it was answered. Fails after 30 s.
async fn first_acknowledged(ingestion: &Ingestion) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let submission = ingestion.submit().await;
        if matches!(submission.answer, Answer::Acked(_)) {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "ingestion was not acknowledged again within 30 s: {submission:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The first value named `key` in `value`, however deep (the API's envelopes change shape).
fn find<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    match value {
        Value::Object(map) => map
            .get(key)
            .or_else(|| map.values().find_map(|v| find(v, key))),
        Value::Array(items) => items.iter().find_map(|v| find(v, key)),
        _ => None,
    }
}

/// The Log ID, AttemptID and Patient.Number of every message the destination received.
fn received(recorder: &Recorder) -> Vec<(String, String, i64)> {
    super::delivery::messages(recorder)
        .iter()
        .map(|m| {
            (
                m["Meta"]["Logs"][0]["ID"].as_str().unwrap_or("").to_owned(),
                m["Meta"]["Logs"][0]["AttemptID"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
                m["Patient"]["Number"].as_i64().unwrap_or(-2),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_stopped_and_killed_under_ingestion_answers_503_and_loses_nothing() {
    let mut cluster = tokio::task::spawn_blocking(PgCluster::init).await.unwrap();
    let schema = wharf_testkit::postgres::PgSchema::create_on(&cluster.url());
    let mut engine = Engine::start_on(
        tempfile::tempdir().unwrap(),
        Some(schema),
        true,
        &config(),
        |_| {},
    )
    .await;
    let recorder = endpoint(0).await;
    let destination = verified_destination(&engine, &recorder).await;
    let organization = org_id(&engine).await;
    let environment = engine.environment("Development").await;
    let ingestion = Arc::new(Ingestion {
        base: engine.base.clone(),
        destination: destination.clone(),
        client: client(),
        next: AtomicU64::new(1),
        phase: Mutex::new("before"),
        ledger: Mutex::default(),
        stop: AtomicBool::new(false),
    });
    let first = ingestion.submit().await;
    let Answer::Acked(log) = first.answer.clone() else {
        panic!("ingestion does not work before any outage: {first:?}");
    };
    let names = Names {
        base: engine.base.clone(),
        organization,
        environment,
        destination: destination.clone(),
        log,
        dashboard_cookies: dashboard_cookies(&engine.base).await,
    };
    let mut violations: Vec<String> = Vec::new();

    // Steady ingestion from several sources, all through the outages.
    let ingesters: Vec<_> = (0..INGESTERS)
        .map(|_| {
            let ingestion = ingestion.clone();
            tokio::spawn(async move {
                while !ingestion.stop.load(Ordering::SeqCst) {
                    ingestion.submit().await;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // (a) PostgreSQL stopped: sockets open, nothing answers.
    ingestion.set_phase("stopped");
    let stopped_at = Instant::now();
    cluster.pause();
    tokio::time::sleep(Duration::from_millis(300)).await;
    violations.extend(probe_every_route(&names, "stopped").await);
    tokio::time::sleep(STOPPED_FOR.saturating_sub(stopped_at.elapsed())).await;
    ingestion.set_phase("after SIGCONT");
    cluster.resume();
    let resumed_at = Instant::now();
    let after = first_acknowledged(&ingestion).await - resumed_at;
    eprintln!("after SIGCONT: ingestion acknowledged after {after:?}");
    if after > RESUMED_WITHIN {
        violations.push(format!(
            "ingestion was acknowledged {after:?} after SIGCONT (more than {RESUMED_WITHIN:?})"
        ));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // (b) PostgreSQL killed, then started again on its data directory (crash recovery).
    ingestion.set_phase("killed");
    let killed_at = Instant::now();
    cluster = tokio::task::spawn_blocking(move || {
        cluster.kill();
        cluster
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    violations.extend(probe_every_route(&names, "killed").await);
    tokio::time::sleep(DOWN_FOR.saturating_sub(killed_at.elapsed())).await;
    ingestion.set_phase("restarted");
    let (restarted, accepting) = tokio::task::spawn_blocking(move || {
        cluster.spawn();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !cluster.accepts_connections() {
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not restart:\n{}",
                cluster.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let accepting = Instant::now();
        (cluster, accepting)
    })
    .await
    .unwrap();
    cluster = restarted;
    let after = first_acknowledged(&ingestion).await - accepting;
    eprintln!(
        "after restart: ingestion acknowledged {after:?} after PostgreSQL accepted connections"
    );
    if after > RESUMED_WITHIN {
        violations.push(format!(
            "ingestion was acknowledged {after:?} after PostgreSQL accepted connections again (more than {RESUMED_WITHIN:?})"
        ));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ingestion.stop.store(true, Ordering::SeqCst);
    for ingester in ingesters {
        ingester.await.unwrap();
    }

    // Every answer, every phase: 200 or 503 with Retry-After, within the bound.
    let ledger = ingestion.ledger.lock().unwrap().clone();
    let mut per_phase: BTreeMap<&str, BTreeMap<String, usize>> = BTreeMap::new();
    for s in &ledger {
        let label = match &s.answer {
            Answer::Acked(_) => "200".to_owned(),
            Answer::Refused {
                status, message, ..
            } if *status == 503 && may_have_been_queued(message) => {
                "503 may have been queued".into()
            }
            Answer::Refused { status, .. } => status.to_string(),
            Answer::Lost(_) => "no answer".into(),
        };
        *per_phase
            .entry(s.phase)
            .or_default()
            .entry(label)
            .or_default() += 1;
        let wrong = match &s.answer {
            _ if s.took > BOUND => Some(format!("answered after {:?}", s.took)),
            Answer::Acked(_) => None,
            Answer::Refused {
                status: 503,
                retry_after: Some(_),
                ..
            } => None,
            Answer::Refused {
                status,
                retry_after,
                message,
            } => Some(format!("{status} (Retry-After {retry_after:?}): {message}")),
            Answer::Lost(e) => Some(format!("no answer: {e}")),
        };
        if let Some(wrong) = wrong {
            violations.push(format!(
                "[{}] ingestion of message {}: {wrong}",
                s.phase, s.n
            ));
        }
    }
    eprintln!("ingestion answers per phase: {per_phase:#?}");
    for s in &ledger {
        if s.phase != "killed" && !matches!(s.answer, Answer::Acked(_)) {
            eprintln!(
                "[{}] message {} after {:?}: {:?}",
                s.phase, s.n, s.took, s.answer
            );
        }
    }

    // Delivery drains: everything acknowledged arrives.
    let acked: HashMap<String, u64> = ledger
        .iter()
        .filter_map(|s| match &s.answer {
            Answer::Acked(id) => Some((id.clone(), s.n)),
            _ => None,
        })
        .collect();
    let drained = wharf_testkit::wait_until(Duration::from_secs(90), || {
        let delivered: std::collections::HashSet<String> = received(&recorder)
            .into_iter()
            .map(|(id, _, _)| id)
            .collect();
        acked.keys().all(|id| delivered.contains(id))
    })
    .await;
    if !drained {
        eprintln!("delivery did not drain within 90 s");
    }
    // And nothing else is still on its way (a message that may have been queued, a retry).
    let queue_path = format!("/platform/v1/destinations/{destination}/queue");
    for _ in 0..300 {
        let (status, queue) = engine.get(&queue_path).await;
        if status == StatusCode::OK && find(&queue["payload"], "depth") == Some(&json!(0)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let delivered = received(&recorder);
    let mut deliveries: HashMap<&str, Vec<(&str, i64)>> = HashMap::new();
    for (id, attempt, number) in &delivered {
        deliveries
            .entry(id.as_str())
            .or_default()
            .push((attempt.as_str(), *number));
    }
    let number_of: HashMap<u64, &Submission> = ledger.iter().map(|s| (s.n, s)).collect();
    let mut maybe_queued_delivered = 0;
    let mut maybe_queued = 0;
    for s in &ledger {
        if let Answer::Refused {
            status: 503,
            message,
            ..
        } = &s.answer
            && may_have_been_queued(message)
        {
            maybe_queued += 1;
            if delivered.iter().any(|(_, _, n)| *n == s.n as i64) {
                maybe_queued_delivered += 1;
            }
        }
    }
    for (id, n) in &acked {
        match deliveries.get(id.as_str()) {
            None => violations.push(format!(
                "message {n}, acknowledged as {id}, was never delivered (lost)"
            )),
            Some(times) if times.len() > 1 => {
                // Which of the deliveries the engine recorded as attempts: one it did not record
                // (its record failed to commit) was sent again.
                let (_, log) = engine
                    .get(&format!(
                        "/platform/v1/organizations/{}/logs/{id}",
                        names.organization
                    ))
                    .await;
                let recorded = find(&log["payload"], "attemptList")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let each: Vec<String> = times
                    .iter()
                    .map(
                        |(attempt, _)| match recorded.iter().find(|a| a["id"] == *attempt) {
                            Some(a) => format!("{attempt} (recorded, status {})", a["statusCode"]),
                            None => format!("{attempt} (never recorded by the engine)"),
                        },
                    )
                    .collect();
                violations.push(format!(
                    "message {n}, acknowledged as {id}, was delivered {} times: {}",
                    times.len(),
                    each.join(", ")
                ))
            }
            Some(_) => {}
        }
    }
    for (id, times) in &deliveries {
        for (_, number) in times {
            let Some(s) = u64::try_from(*number).ok().and_then(|n| number_of.get(&n)) else {
                continue;
            };
            match &s.answer {
                Answer::Acked(acked_as) if acked_as != id => violations.push(format!(
                    "message {number}, acknowledged as {acked_as}, was also delivered as {id} (queued twice)"
                )),
                Answer::Refused {
                    status: 503,
                    message,
                    ..
                } if !may_have_been_queued(message) => violations.push(format!(
                    "message {number} was answered 503 saying nothing was queued ({message}) and was delivered as {id}"
                )),
                _ => {}
            }
        }
    }
    eprintln!(
        "{} submissions, {} acknowledged, {} deliveries; {maybe_queued} answered 503 'may have been queued', {maybe_queued_delivered} of them delivered",
        ledger.len(),
        acked.len(),
        delivered.len()
    );
    if let Some(running) = engine.running.take() {
        running.shutdown().await;
    }
    drop(engine);
    drop(cluster);
    assert!(
        violations.is_empty(),
        "{} violations:\n{}",
        violations.len(),
        violations.join("\n")
    );
}

/// An ingestion commit whose answer never comes (here: PostgreSQL takes longer than the
/// store's deadline inside `COMMIT`, as when the connection breaks after `COMMIT` was sent)
/// is answered 503 saying the message may have been queued and that sending it again may
/// duplicate it, never "nothing was queued"; and it was in fact queued and is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_ingestion_commit_whose_outcome_is_unknown_says_it_may_have_been_queued() {
    let cluster = tokio::task::spawn_blocking(PgCluster::init).await.unwrap();
    let schema = wharf_testkit::postgres::PgSchema::create_on(&cluster.url());
    let mut engine = Engine::start_on(
        tempfile::tempdir().unwrap(),
        Some(schema),
        true,
        &config(),
        |_| {},
    )
    .await;
    let recorder = endpoint(0).await;
    let destination = verified_destination(&engine, &recorder).await;
    let ingestion = Ingestion {
        base: engine.base.clone(),
        destination: destination.clone(),
        client: client(),
        next: AtomicU64::new(1),
        phase: Mutex::new("before"),
        ledger: Mutex::default(),
        stop: AtomicBool::new(false),
    };
    let before = ingestion.submit().await;
    assert!(matches!(before.answer, Answer::Acked(_)), "{before:?}");
    // From now on every commit that queues a message waits 8 s inside COMMIT (a deferred
    // constraint trigger), longer than the store's deadline.
    wharf_store::postgres::execute(
        &engine.pg.as_ref().unwrap().url,
        "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN PERFORM pg_sleep(8); RETURN NULL; END $$;
         CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON logs
           DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit();",
    )
    .unwrap();
    ingestion.set_phase("slow commit");
    let unknown = ingestion.submit().await;
    let mut violations = Vec::new();
    match &unknown.answer {
        Answer::Refused {
            status: 503,
            retry_after: Some(_),
            message,
        } if may_have_been_queued(message)
            && (message.contains("twice") || message.contains("duplicate")) => {}
        other => violations.push(format!(
            "an ingestion whose commit outcome is unknown was answered {other:?}, not 503 with Retry-After saying it may have been queued and a retry may duplicate it"
        )),
    }
    if unknown.took > BOUND {
        violations.push(format!("it was answered after {:?}", unknown.took));
    }
    // The commit did complete: the message was queued and arrives, once.
    let number = unknown.n as i64;
    let arrived = wharf_testkit::wait_until(Duration::from_secs(30), || {
        received(&recorder).iter().any(|(_, _, n)| *n == number)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let copies = received(&recorder)
        .iter()
        .filter(|(_, _, n)| *n == number)
        .count();
    if !arrived || copies != 1 {
        violations.push(format!(
            "the message whose commit outcome was unknown was delivered {copies} times (it was committed)"
        ));
    }
    if let Some(running) = engine.running.take() {
        running.shutdown().await;
    }
    drop(engine);
    drop(cluster);
    assert!(
        violations.is_empty(),
        "{} violations:\n{}",
        violations.len(),
        violations.join("\n")
    );
}
