//! PHI outside its gate, and the audit trail of reading it: a log's page carries no message
//! body and no destination answer (one that echoes the message puts the patient's name there);
//! the PHI view is its own page, served only to operators allowed to see PHI, and every read of
//! PHI, in the dashboard or over the API, is recorded first in an append-only audit log naming
//! the operator account or the management key and the client's address. If the record cannot
//! be written, no PHI is returned (503).

use super::*;

/// What the patient's record says; none of it may reach a page without the PHI view.
const FAMILY_NAME: &str = "Quintanilla";
const BIRTH_DATE: &str = "1961-04-17";
const RECORD_NUMBER: &str = "MRN-5821399";
/// A second management key, named in the configuration.
const NAMED_KEY: &str = "records-export-key-0123456789-0123456";
const NAMED_KEY_NAME: &str = "records-export";

/// A destination endpoint that answers challenges for `delivery::TOKEN` and echoes every
/// message back as its answer, as some do.
async fn echoing_destination(engine: &Engine) -> (Recorder, String) {
    let recorder = Recorder::start(|_, r: &Received| {
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        if let Some(challenge) = body["challenge"].as_str() {
            return Reply {
                status: 200,
                content_type: "text/plain",
                body: challenge.as_bytes().to_vec(),
                delay: Duration::ZERO,
            };
        }
        Reply {
            status: 200,
            content_type: "application/json",
            body: r.body.to_vec(),
            delay: Duration::ZERO,
        }
    })
    .await;
    let id = crate::delivery::verified_destination(engine, &recorder).await;
    (recorder, id)
}

/// Sends a message about the patient; returns its log id once it was delivered.
async fn deliver_patient(engine: &Engine, destination: &str) -> String {
    let response = engine
        .client
        .post(format!("{}/endpoint", engine.base))
        .bearer_auth(SOURCE_KEY)
        .json(&json!({
            "Meta": {"DataModel": "PatientAdmin", "EventType": "Arrival",
                     "Destinations": [{"ID": destination}]},
            "Patient": {"Identifiers": [{"ID": RECORD_NUMBER, "IDType": "MR"}],
                        "Demographics": {"FirstName": "Rosa", "LastName": FAMILY_NAME,
                                         "DOB": BIRTH_DATE}},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let sent: Value = response.json().await.unwrap();
    let log = sent["Meta"]["Logs"][0]["ID"].as_str().unwrap().to_owned();
    let store = engine.store();
    assert!(
        wait_until(Duration::from_secs(10), || {
            store.log(&log).unwrap().is_some_and(|(l, attempts)| {
                l.status == wharf_store::engine::LogStatus::Succeeded && !attempts.is_empty()
            })
        })
        .await,
        "the message was delivered"
    );
    log
}

fn shows_phi(page: &str) -> Vec<&'static str> {
    [FAMILY_NAME, BIRTH_DATE, RECORD_NUMBER]
        .into_iter()
        .filter(|p| page.contains(p))
        .collect()
}

/// The audit log as the API exports it.
async fn audit(engine: &Engine) -> Vec<Value> {
    let (status, body) = engine.get("/platform/v1/audit").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["payload"]["entries"].as_array().unwrap().clone()
}

/// Runs SQL on the engine's database directly, past the engine, as anyone with access to the
/// database could.
fn run_sql(engine: &Engine, sqlite: &str, postgres: &str) -> Result<(), String> {
    match &engine.pg {
        Some(schema) => {
            wharf_store::postgres::execute(&schema.url, postgres).map_err(|e| e.to_string())
        }
        None => rusqlite::Connection::open(engine.data_dir().join("engine.db"))
            .unwrap()
            .execute_batch(sqlite)
            .map_err(|e| e.to_string()),
    }
}

/// Makes every write to the audit log fail, as a full disk or a broken connection would,
/// while everything else still works.
fn break_the_audit_log(engine: &Engine) {
    run_sql(
        engine,
        "CREATE TRIGGER audit_broken BEFORE INSERT ON audit
             BEGIN SELECT RAISE(ABORT, 'the disk is full'); END;",
        "CREATE FUNCTION audit_broken() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'the disk is full'; END $$;
         CREATE TRIGGER audit_broken BEFORE INSERT ON audit
             FOR EACH ROW EXECUTE FUNCTION audit_broken();",
    )
    .unwrap();
}

#[tokio::test]
async fn a_logs_page_carries_no_phi_and_the_phi_view_is_recorded_before_it_is_shown() {
    let engine = engine_with_dashboard("").await;
    let (endpoint, destination) = echoing_destination(&engine).await;
    let log = deliver_patient(&engine, &destination).await;
    let echoed = String::from_utf8_lossy(&endpoint.received().last().unwrap().body).into_owned();
    assert!(echoed.contains(FAMILY_NAME), "the destination echoed it");

    let mut admin = Visitor::new(&engine);
    admin.sign_in(PASSWORD).await;
    let page = admin.get(&format!("/dashboard/logs/{log}")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert_eq!(
        shows_phi(&page),
        Vec::<&str>::new(),
        "no body, no echoed answer in the log's page"
    );
    assert!(page.contains(&format!("href=\"/dashboard/logs/{log}/phi\"")));
    assert!(
        page.contains(">200<"),
        "the attempt's status is still shown"
    );
    assert!(audit(&engine).await.is_empty(), "nothing was read yet");

    let phi = admin.get(&format!("/dashboard/logs/{log}/phi")).await;
    assert_eq!(phi.status(), StatusCode::OK);
    assert_eq!(phi.headers()["cache-control"], "no-store");
    let phi = phi.text().await.unwrap();
    assert_eq!(shows_phi(&phi), [FAMILY_NAME, BIRTH_DATE, RECORD_NUMBER]);
    assert!(
        phi.matches(RECORD_NUMBER).count() >= 2,
        "the body and the echoed answer"
    );

    let entries = audit(&engine).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    assert_eq!(entry["actorKind"], "operator");
    assert_eq!(entry["actorName"], "admin");
    assert_eq!(entry["action"], "log.phi.read");
    assert_eq!(entry["subject"], log.as_str());
    assert_eq!(entry["address"], "127.0.0.1");
    // The dashboard shows it too.
    let shown = admin.get("/dashboard/audit").await.text().await.unwrap();
    assert!(shown.contains(&log) && shown.contains("admin") && shown.contains("127.0.0.1"));

    // When the read cannot be recorded, the PHI is not shown.
    break_the_audit_log(&engine);
    let refused = admin.get(&format!("/dashboard/logs/{log}/phi")).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(
        shows_phi(&refused.text().await.unwrap()),
        Vec::<&str>::new()
    );
    // The page without PHI still works.
    let page = admin.get(&format!("/dashboard/logs/{log}")).await;
    assert_eq!(page.status(), StatusCode::OK);
}

#[tokio::test]
async fn operators_have_their_own_accounts_and_only_those_allowed_see_phi() {
    let phc = wharf_engine::dashboard::hash_password_with("bobs own password", 1024, 1).unwrap();
    let engine = engine_with_dashboard(&format!(
        "[[operators]]\nname = \"bob\"\npassword_hash = \"{phc}\"\nmay_view_phi = false\n"
    ))
    .await;
    let (_endpoint, destination) = echoing_destination(&engine).await;
    let log = deliver_patient(&engine, &destination).await;

    // Bob's password is bob's: not admin's, not with another name.
    let mut stranger = Visitor::new(&engine);
    let form = stranger
        .get("/dashboard/signin")
        .await
        .text()
        .await
        .unwrap();
    let token = csrf_of(&form);
    let origin = engine.base.clone();
    for (name, secret) in [
        ("admin", "bobs own password"),
        ("carol", "bobs own password"),
    ] {
        let refused = stranger
            .post(
                "/dashboard/signin",
                &[("csrf", &token), ("name", name), ("secret", secret)],
                Some(&origin),
            )
            .await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{name}");
    }

    let mut bob = Visitor::new(&engine);
    bob.sign_in_as("bob", "bobs own password").await;
    let page = bob
        .get(&format!("/dashboard/logs/{log}"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(shows_phi(&page), Vec::<&str>::new());
    assert!(!page.contains("/phi\""), "no Show PHI link for bob");
    assert!(page.contains("may not see PHI"));
    let refused = bob.get(&format!("/dashboard/logs/{log}/phi")).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let text = refused.text().await.unwrap();
    assert_eq!(shows_phi(&text), Vec::<&str>::new());
    assert!(text.contains("may_view_phi"), "{text}");
    assert!(
        audit(&engine).await.is_empty(),
        "a refused read reads nothing"
    );
    // Bob may see the audit log itself: it holds no PHI.
    assert_eq!(bob.get("/dashboard/audit").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn reading_a_log_over_the_api_is_recorded_with_the_keys_name_and_address() {
    let engine = Engine::start_tuned(
        tempfile::tempdir().unwrap(),
        true,
        &crate::delivery::config(),
        |c| {
            c.api_keys.push(NAMED_KEY.to_owned());
            c.api_key_names.push(NAMED_KEY_NAME.to_owned());
        },
    )
    .await;
    let (_endpoint, destination) = echoing_destination(&engine).await;
    let log = deliver_patient(&engine, &destination).await;
    let org = crate::delivery::org_id(&engine).await;

    // Listing logs shows no PHI and records nothing.
    let (status, _) = engine
        .get(&format!("/platform/v1/organizations/{org}/logs"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(audit(&engine).await.is_empty());

    let read = |key: &'static str| {
        let url = format!("{}/platform/v1/organizations/{org}/logs/{log}", engine.base);
        let client = engine.client.clone();
        async move { client.get(url).bearer_auth(key).send().await.unwrap() }
    };
    let response = read(NAMED_KEY).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let answer = body["payload"]["result"]["attemptList"][0]["response"]
        .as_str()
        .unwrap();
    assert!(answer.contains(RECORD_NUMBER), "{answer}");

    let entries = audit(&engine).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["actorKind"], "api_key");
    assert_eq!(entries[0]["actorName"], NAMED_KEY_NAME);
    assert_eq!(entries[0]["action"], "log.phi.read");
    assert_eq!(entries[0]["subject"], log.as_str());
    assert_eq!(entries[0]["address"], "127.0.0.1");
    // The first key is named by its position.
    assert_eq!(read(KEY).await.status(), StatusCode::OK);
    let entries = audit(&engine).await;
    assert_eq!(entries[0]["actorName"], "key-1", "newest first");
    // The export filters by time and pages.
    let (_, later) = engine
        .get("/platform/v1/audit?since=2999-01-01T00:00:00Z")
        .await;
    assert_eq!(later["payload"]["entries"], json!([]));
    let (_, first) = engine.get("/platform/v1/audit?_count=1").await;
    assert_eq!(first["payload"]["entries"].as_array().unwrap().len(), 1);
    assert!(
        first["meta"]["page"]["links"]["next"].is_string(),
        "{first}"
    );
    let (status, wrong) = engine.get("/platform/v1/audit?since=yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&wrong).contains("`since`"), "{wrong}");
    let unkeyed = engine
        .client
        .get(format!("{}/platform/v1/audit", engine.base))
        .send()
        .await
        .unwrap();
    assert_eq!(unkeyed.status(), StatusCode::UNAUTHORIZED);

    // The database itself refuses to change or remove an entry.
    for (sqlite, postgres) in [
        (
            "UPDATE audit SET actor_name = 'nobody'",
            "UPDATE audit SET actor_name = 'nobody'",
        ),
        ("DELETE FROM audit", "DELETE FROM audit"),
    ] {
        let refused = run_sql(&engine, sqlite, postgres).expect_err(sqlite);
        assert!(refused.contains("append-only"), "{refused}");
    }
    assert_eq!(audit(&engine).await.len(), 2);

    // When the read cannot be recorded, no PHI is returned: 503.
    break_the_audit_log(&engine);
    let refused = read(NAMED_KEY).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().contains_key("retry-after"));
    let text = refused.text().await.unwrap();
    assert_eq!(shows_phi(&text), Vec::<&str>::new(), "{text}");
}
