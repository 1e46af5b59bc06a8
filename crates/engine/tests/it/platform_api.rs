//! The Platform API in Redox's documented shapes, read as plain JSON (never through the
//! engine's own types): organizations, environments, destinations (created from Redox's own
//! destination object), Verify and Save, auth credentials (secrets only as `has<Secret>`),
//! strategies, logs with Redox's paging and filters; and what a delivered message says about
//! its destination. Runs on the backend `WHARF_TEST_BACKEND` selects.
//!
//! The helpers here are shared with `openapi.rs` and `queries.rs`.

use super::*;
use std::time::Duration;
use wharf_testkit::wait_until;

/// The key of the one source these tests configure, named [`SOURCE_NAME`].
pub(crate) const SOURCE_KEY: &str = "platform-source-key-0123456789-01";
pub(crate) const SOURCE_NAME: &str = "EHR feed";
/// The verification token the test destinations expect.
pub(crate) const TOKEN: &str = "platform-token-0123456789-0123456";

/// An engine with one source and a short retry ladder, private endpoints allowed.
pub(crate) async fn engine() -> Engine {
    let extra = format!(
        "retry_ladder = [\"0s\", \"300ms\"]\ndelivery_timeout = \"2s\"\n[[sources]]\nname = \"{SOURCE_NAME}\"\napi_key = \"{SOURCE_KEY}\"\n"
    );
    Engine::start_with(true, &extra).await
}

/// Calls the API with `body` sent as it is (the bare object, as Redox's cURL examples do;
/// `Engine::call` wraps it in `{"meta", "payload"}`, which the API accepts too).
pub(crate) async fn send(
    engine: &Engine,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = engine
        .client
        .request(method, format!("{}{path}", engine.base))
        .bearer_auth(KEY);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{path} answered {status} with no JSON ({e}): {text:?}"));
    (status, value)
}

pub(crate) async fn get_ok(engine: &Engine, path: &str) -> Value {
    let (status, body) = send(engine, reqwest::Method::GET, path, None).await;
    assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
    assert_eq!(body["meta"]["version"], "1.0.0", "{body}");
    body
}

/// The one organization's id, from `payload.organizations[]`.
pub(crate) async fn org_id(engine: &Engine) -> String {
    let body = get_ok(engine, "/platform/v1/organizations").await;
    body["payload"]["organizations"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no payload.organizations[0].id: {body}"))
        .to_owned()
}

/// The id of the environment with this flag, from `payload.environments[]`.
pub(crate) async fn env_id(engine: &Engine, flag: &str) -> String {
    let org = org_id(engine).await;
    let body = get_ok(
        engine,
        &format!("/platform/v1/organizations/{org}/environments"),
    )
    .await;
    body["payload"]["environments"]
        .as_array()
        .unwrap_or_else(|| panic!("no payload.environments[]: {body}"))
        .iter()
        .find(|e| e["environmentFlag"] == flag)
        .unwrap_or_else(|| panic!("no {flag} environment: {body}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn message(body: &Value) -> &str {
    body["errors"][0]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no errors[0].message: {body}"))
}

/// What a destination server does with a message (not a challenge): its answer.
type Answer = dyn Fn(&Value) -> Reply + Send + Sync;

/// A destination server: answers Verify and Save challenges (POST body or GET query) for
/// [`TOKEN`] and everything else with `answer(message)`.
pub(crate) async fn destination_server(
    answer: impl Fn(&Value) -> Reply + Send + Sync + 'static,
) -> Recorder {
    let answer: Box<Answer> = Box::new(answer);
    Recorder::start(move |_, r: &Received| {
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        let query = r.query.as_deref().map(url_pairs).unwrap_or_default();
        let from_query = |k: &str| {
            query
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| Value::String(v.clone()))
        };
        let challenge = body
            .get("challenge")
            .cloned()
            .or_else(|| from_query("challenge"));
        if let Some(challenge) = challenge {
            let token = body
                .get("verification-token")
                .cloned()
                .or_else(|| from_query("verification-token"));
            return if token.as_ref().and_then(Value::as_str) == Some(TOKEN) {
                Reply {
                    status: 200,
                    content_type: "text/plain",
                    body: challenge.as_str().unwrap_or_default().as_bytes().to_vec(),
                    delay: Duration::ZERO,
                }
            } else {
                Reply::status(403)
            };
        }
        answer(&body)
    })
    .await
}

/// A destination server that accepts every message.
pub(crate) async fn accepting_server() -> Recorder {
    destination_server(|_| Reply::status(200)).await
}

/// Redox's destination object, as its create-destination example writes it.
pub(crate) fn redox_destination(name: &str, env: &str, endpoint: &str) -> Value {
    json!({
        "id": "497f6eca-6276-4993-bfeb-53cbbbba6f08",
        "name": name,
        "authCredential": null,
        "endpoint": endpoint,
        "environment": {"id": env, "environmentFlag": "Development"},
        "setupState": null,
        "verificationToken": TOKEN,
    })
}

/// Creates a Development destination from Redox's create body and answers
/// `payload.destination`.
pub(crate) async fn create_destination(engine: &Engine, name: &str, endpoint: &str) -> Value {
    let dev = env_id(engine, "Development").await;
    let (status, body) = send(
        engine,
        reqwest::Method::POST,
        &format!("/platform/v1/environments/{dev}/destinations"),
        Some(redox_destination(name, &dev, endpoint)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["payload"]["destination"].clone()
}

/// A Development destination on `server` that passed Verify and Save; its id.
pub(crate) async fn verified_destination(engine: &Engine, name: &str, server: &Recorder) -> String {
    let created = create_destination(engine, name, &server.url("/redox")).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, body) = send(
        engine,
        reqwest::Method::POST,
        &format!("/platform/v1/destinations/{id}/verify"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["payload"]["destination"]["verified"], true, "{body}");
    id
}

/// Submits a message from the source; the status and the answer's JSON.
pub(crate) async fn submit(engine: &Engine, body: &Value) -> (StatusCode, Value) {
    let response = engine
        .client
        .post(format!("{}/endpoint", engine.base))
        .bearer_auth(SOURCE_KEY)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("/endpoint answered {status} with no JSON ({e}): {text:?}"));
    (status, value)
}

/// A PatientAdmin Arrival for `destinations`, numbered `n`; the new log ids, in order.
pub(crate) async fn submit_arrival(engine: &Engine, destinations: &[&str], n: u32) -> Vec<String> {
    let (status, body) = submit(
        engine,
        &json!({
            "Meta": {
                "DataModel": "PatientAdmin", "EventType": "Arrival",
                "Destinations": destinations.iter().map(|d| json!({"ID": d})).collect::<Vec<_>>(),
            },
            "Patient": {"Number": n},
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["Meta"]["Logs"]
        .as_array()
        .unwrap_or_else(|| panic!("no Meta.Logs: {body}"))
        .iter()
        .map(|l| l["ID"].as_str().unwrap().to_owned())
        .collect()
}

/// The data model messages (not challenges) a destination server received, in order.
pub(crate) fn messages(server: &Recorder) -> Vec<Value> {
    server
        .received()
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter(|v| v.get("Meta").is_some())
        .collect()
}

/// One log (`payload.result`).
pub(crate) async fn log(engine: &Engine, org: &str, id: &str) -> Value {
    let body = get_ok(
        engine,
        &format!("/platform/v1/organizations/{org}/logs/{id}"),
    )
    .await;
    body["payload"]["result"].clone()
}

/// Waits until the log has `status`, and answers it.
pub(crate) async fn wait_for_status(engine: &Engine, org: &str, id: &str, status: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        last = log(engine, org, id).await;
        if last["status"] == status {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("log {id} never became {status}: {last}");
}

/// The log listing with this query string (`payload.results` and `meta`).
pub(crate) async fn list_logs(engine: &Engine, org: &str, query: &str) -> (StatusCode, Value) {
    send(
        engine,
        reqwest::Method::GET,
        &format!("/platform/v1/organizations/{org}/logs?{query}"),
        None,
    )
    .await
}

/// The ids of the logs a listing found.
pub(crate) fn result_ids(body: &Value) -> Vec<String> {
    body["payload"]["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no payload.results[]: {body}"))
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect()
}

fn keys(object: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = object
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {object}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

#[tokio::test]
async fn organizations_and_environments() {
    let engine = engine().await;
    let body = get_ok(&engine, "/platform/v1/organizations").await;
    let organizations = body["payload"]["organizations"].as_array().unwrap();
    assert_eq!(organizations.len(), 1, "{body}");
    let org = &organizations[0];
    assert!(org["id"].is_string(), "{body}");
    assert_eq!(org["name"], "Acme Health");
    assert!(org.get("alertEmail").is_some(), "{body}");
    let org_id = org["id"].as_str().unwrap();

    let body = get_ok(
        &engine,
        &format!("/platform/v1/organizations/{org_id}/environments"),
    )
    .await;
    let environments = body["payload"]["environments"].as_array().unwrap();
    let flags: Vec<&str> = environments
        .iter()
        .map(|e| e["environmentFlag"].as_str().unwrap())
        .collect();
    assert_eq!(flags, ["Development", "Staging", "Production"]);
    for env in environments {
        assert_eq!(
            keys(env),
            ["environmentFlag", "id", "name", "organization"],
            "{env}"
        );
        assert!(env["id"].is_string() && env["name"].is_string(), "{env}");
        assert_eq!(env["organization"], json!({"id": org_id}));
    }
    let (status, body) = send(
        &engine,
        reqwest::Method::GET,
        "/platform/v1/organizations/no-such-org/environments",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["meta"]["version"], "1.0.0");
    assert!(message(&body).contains("no-such-org"), "{body}");
}

#[tokio::test]
async fn a_destination_is_created_from_redoxs_own_object_and_reads_back_in_its_shape() {
    let engine = engine().await;
    let dev = env_id(&engine, "Development").await;
    let (status, body) = send(
        &engine,
        reqwest::Method::POST,
        &format!("/platform/v1/environments/{dev}/destinations"),
        Some(redox_destination(
            "Acme Scheduling",
            &dev,
            "http://127.0.0.1:9/redox",
        )),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["meta"]["version"], "1.0.0");
    let d = &body["payload"]["destination"];
    assert!(d["id"].is_string(), "{body}");
    assert_eq!(d["name"], "Acme Scheduling");
    assert_eq!(d["authCredential"], Value::Null);
    assert_eq!(d["endpoint"], "http://127.0.0.1:9/redox");
    assert_eq!(
        d["environment"],
        json!({"id": dev, "environmentFlag": "Development"})
    );
    assert!(
        d.get("setupState").is_some() && d["setupState"].is_null(),
        "{d}"
    );
    assert_eq!(d["hasVerificationToken"], true);
    assert_eq!(d["verified"], false);
    for gone in [
        "organizationId",
        "environmentId",
        "environmentFlag",
        "verificationToken",
    ] {
        assert!(d.get(gone).is_none(), "{gone} in {d}");
    }
    assert!(!body.to_string().contains(TOKEN), "the token came back");
    let id = d["id"].as_str().unwrap().to_owned();

    // The same shape from get and list; the object read back is accepted back by PATCH as it
    // is (its read-only fields agree), with a new token beside it.
    let read = get_ok(&engine, &format!("/platform/v1/destinations/{id}")).await;
    assert_eq!(read["payload"]["destination"], *d);
    let listed = get_ok(
        &engine,
        &format!("/platform/v1/environments/{dev}/destinations"),
    )
    .await;
    assert_eq!(listed["payload"]["destinations"], json!([d]));
    let mut back = d.clone();
    back["name"] = json!("Renamed");
    back["verificationToken"] = json!("another-token-0123456789-01234567");
    let (status, patched) = send(
        &engine,
        reqwest::Method::PATCH,
        &format!("/platform/v1/destinations/{id}"),
        Some(back),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["payload"]["destination"]["name"], "Renamed");
    assert_eq!(patched["payload"]["destination"]["id"], id.as_str());

    // Wrapped in Redox's envelope, as Engine::post sends it, also accepted; a null
    // cloudProviderSettings is no cloud destination.
    let (status, body) = engine
        .post(
            &format!("/platform/v1/environments/{dev}/destinations"),
            json!({"name": "Wrapped", "cloudProviderSettings": null}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["payload"]["destination"]["name"], "Wrapped");
    assert_eq!(body["payload"]["destination"]["endpoint"], Value::Null);
}

#[tokio::test]
async fn contradicting_or_undocumented_fields_are_refused_naming_the_field() {
    let engine = engine().await;
    let dev = env_id(&engine, "Development").await;
    let staging = env_id(&engine, "Staging").await;
    let create = format!("/platform/v1/environments/{dev}/destinations");
    let post = |body: Value| send(&engine, reqwest::Method::POST, &create, Some(body));

    let mut other_env = redox_destination("D", &dev, "http://127.0.0.1:9/x");
    other_env["environment"]["id"] = json!(staging);
    let (status, body) = post(other_env).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(message(&body).contains("environment.id"), "{body}");

    let mut other_flag = redox_destination("D", &dev, "http://127.0.0.1:9/x");
    other_flag["environment"]["environmentFlag"] = json!("Production");
    let (status, body) = post(other_flag).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(message(&body).contains("environmentFlag"), "{body}");

    let mut undocumented = redox_destination("D", &dev, "http://127.0.0.1:9/x");
    undocumented["url"] = json!("http://127.0.0.1:9/x");
    let (status, body) = post(undocumented).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(message(&body).contains("`url`"), "{body}");

    let mut cloud = redox_destination("D", &dev, "http://127.0.0.1:9/x");
    cloud["cloudProviderSettings"] = json!({
        "typeId": "azure", "productId": "databricks",
        "settings": {"containerName": "c", "fileNamePrefix": "f", "storageAccountName": "s"},
    });
    let (status, body) = post(cloud).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(message(&body).contains("cloudProviderSettings"), "{body}");

    let listed = get_ok(&engine, &create).await;
    assert_eq!(
        listed["payload"]["destinations"],
        json!([]),
        "a refused create created nothing"
    );

    // On PATCH the object's id must be the path's.
    let id = create_destination(&engine, "D", "http://127.0.0.1:9/x").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/platform/v1/destinations/{id}");
    let (status, body) = send(
        &engine,
        reqwest::Method::PATCH,
        &path,
        Some(json!({"id": "497f6eca-6276-4993-bfeb-53cbbbba6f08", "name": "E"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(message(&body).contains("`id`"), "{body}");
    let (status, body) = send(
        &engine,
        reqwest::Method::PATCH,
        &path,
        Some(json!({"environment": {"id": staging}})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(message(&body).contains("environment.id"), "{body}");
    let (status, body) = send(
        &engine,
        reqwest::Method::PATCH,
        &path,
        Some(json!({"endpoit": "http://127.0.0.1:9/y"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(message(&body).contains("endpoit"), "{body}");
    let read = get_ok(&engine, &path).await;
    assert_eq!(
        read["payload"]["destination"]["name"], "D",
        "nothing changed"
    );
}

#[tokio::test]
async fn destination_list_get_update_verify_and_delete() {
    let engine = engine().await;
    let dev = env_id(&engine, "Development").await;
    let server = accepting_server().await;
    let created = create_destination(&engine, "Acme", &server.url("/post")).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/platform/v1/destinations/{id}");
    let environment = json!({"id": dev, "environmentFlag": "Development"});

    let listed = get_ok(
        &engine,
        &format!("/platform/v1/environments/{dev}/destinations"),
    )
    .await;
    let destinations = listed["payload"]["destinations"].as_array().unwrap();
    assert_eq!(destinations.len(), 1, "{listed}");
    assert_eq!(destinations[0]["id"], id.as_str());
    assert_eq!(destinations[0]["environment"], environment);

    let (status, patched) = send(
        &engine,
        reqwest::Method::PATCH,
        &path,
        Some(json!({"name": "Acme Scheduling"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["payload"]["destination"]["name"], "Acme Scheduling");
    assert_eq!(
        patched["payload"]["destination"]["environment"],
        environment
    );
    let read = get_ok(&engine, &path).await;
    assert_eq!(read["payload"]["destination"]["name"], "Acme Scheduling");

    // Verify and Save by POST, then by GET at another endpoint; each challenge carries the
    // token in the `verification-token` header too.
    let (status, verified) = send(
        &engine,
        reqwest::Method::POST,
        &format!("{path}/verify"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    let d = &verified["payload"]["destination"];
    assert_eq!(d["verified"], true, "{verified}");
    assert_eq!(d["environment"], environment);
    assert!(d["verifiedAt"].is_string(), "{verified}");
    let (status, verified) = send(
        &engine,
        reqwest::Method::POST,
        &format!("{path}/verify"),
        Some(json!({"endpoint": server.url("/get"), "verificationMethod": "GET"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    assert_eq!(
        verified["payload"]["destination"]["verificationMethod"],
        "GET"
    );
    assert_eq!(
        verified["payload"]["destination"]["endpoint"],
        server.url("/get")
    );
    let challenges = server.received();
    assert_eq!(challenges.len(), 2, "{challenges:?}");
    assert_eq!(challenges[0].path, "/post");
    assert_eq!(challenges[1].path, "/get");
    for challenge in &challenges {
        assert_eq!(
            challenge.header("verification-token"),
            Some(TOKEN),
            "{challenge:?}"
        );
    }

    // A failed Verify and Save says why.
    let (status, failed) = send(
        &engine,
        reqwest::Method::POST,
        &format!("{path}/verify"),
        Some(json!({"verificationToken": "the-wrong-token-0123-0123456789ab"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{failed}");
    assert!(
        message(&failed).starts_with("Verification failed"),
        "{failed}"
    );

    let (status, deleted) = send(&engine, reqwest::Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(
        deleted["payload"]["message"],
        format!("Destination id [{id}] was successfully deleted.")
    );
    let (status, _) = send(&engine, reqwest::Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_credential_only_destination_is_created_but_verify_asks_for_a_token() {
    let engine = engine().await;
    let dev = env_id(&engine, "Development").await;
    let server = accepting_server().await;
    let (status, credential) = send(
        &engine,
        reqwest::Method::POST,
        "/platform/v1/authcredentials",
        Some(json!({
            "name": "Signer", "environmentId": dev, "authStrategy": "AwsSigv4",
            "accessKey": "AKIDEXAMPLE", "secretKey": "aws-secret-SENTINEL",
            "serviceName": "execute-api", "awsRegion": "us-east-1",
        })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{credential}");
    let credential_id = credential["payload"]["credential"]["id"].as_str().unwrap();

    let (status, body) = send(
        &engine,
        reqwest::Method::POST,
        &format!("/platform/v1/environments/{dev}/destinations"),
        Some(json!({
            "name": "Credential only", "endpoint": server.url("/redox"),
            "authCredential": credential_id,
            "environment": {"id": dev, "environmentFlag": "Development"},
        })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let d = &body["payload"]["destination"];
    assert_eq!(d["authCredential"], credential_id);
    assert_eq!(d["hasVerificationToken"], false);
    let id = d["id"].as_str().unwrap();

    let (status, body) = send(
        &engine,
        reqwest::Method::POST,
        &format!("/platform/v1/destinations/{id}/verify"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(message(&body).contains("verificationToken"), "{body}");
    assert_eq!(server.count(), 0, "no challenge was sent without a token");
}

#[tokio::test]
async fn strategies_list_their_field_names() {
    let engine = engine().await;
    let body = get_ok(&engine, "/platform/v1/authcredentials/strategies").await;
    let strategies = body["payload"]["strategies"].as_object().unwrap();
    let mut names: Vec<&str> = strategies.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "AwsSigv4",
            "GoogleWIF",
            "JWT_Bearer",
            "OAuth_2.0_2-legged",
            "OAuth_2.0_JWT_Bearer_GCP",
            "SMART_Backend"
        ]
    );
    let fields = |key: &str| -> Vec<&str> {
        let strategy = &body["payload"]["strategies"][key];
        assert_eq!(keys(strategy), ["availableFields"], "{strategy}");
        strategy["availableFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                f.as_str()
                    .unwrap_or_else(|| panic!("{key}: a field that is not a name: {f}"))
            })
            .collect()
    };
    for key in &names {
        assert!(!fields(key).is_empty(), "{key}");
    }
    let wif = fields("GoogleWIF");
    for name in [
        "token_url",
        "sts_scope",
        "service_account_impersonation_url",
    ] {
        assert!(wif.contains(&name), "GoogleWIF lacks {name}: {wif:?}");
    }
    for camel in ["tokenUrl", "stsScope", "serviceAccountImpersonationUrl"] {
        assert!(!wif.contains(&camel), "GoogleWIF has {camel}: {wif:?}");
    }
    let aws = fields("AwsSigv4");
    for name in [
        "accessKey",
        "secretKey",
        "serviceName",
        "awsRegion",
        "sessionToken",
    ] {
        assert!(aws.contains(&name), "AwsSigv4 lacks {name}: {aws:?}");
    }
    assert!(fields("OAuth_2.0_2-legged").contains(&"noBasic"));
}

#[tokio::test]
async fn credentials_show_metadata_and_has_flags_never_secrets() {
    let engine = engine().await;
    let org = org_id(&engine).await;
    let dev = env_id(&engine, "Development").await;
    const SECRETS: [&str; 3] = [
        "aws-secret-SENTINEL-1",
        "aws-session-SENTINEL-2",
        "oauth-secret-SENTINEL-3",
    ];
    let no_secrets = |body: &Value| {
        let text = body.to_string();
        for secret in SECRETS {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    };

    // Redox's read-only `organization` is accepted when it is this organization.
    let (status, aws) = send(
        &engine,
        reqwest::Method::POST,
        "/platform/v1/authcredentials",
        Some(json!({
            "organization": org, "name": "AWS", "environmentId": dev, "authStrategy": "AwsSigv4",
            "accessKey": "AKIDEXAMPLE", "secretKey": SECRETS[0], "sessionToken": SECRETS[1],
            "serviceName": "execute-api", "awsRegion": "us-east-1",
        })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{aws}");
    no_secrets(&aws);
    let c = &aws["payload"]["credential"];
    assert!(c["id"].is_string(), "{aws}");
    assert_eq!(c["name"], "AWS");
    assert_eq!(c["organization"], org.as_str());
    assert_eq!(c["environmentId"], dev.as_str());
    assert_eq!(c["authStrategy"], "AwsSigv4");
    assert!(
        c["createdAt"].is_string() && c["updatedAt"].is_string(),
        "{c}"
    );
    assert_eq!(c["accessKey"], "AKIDEXAMPLE");
    assert_eq!(c["serviceName"], "execute-api");
    assert_eq!(c["awsRegion"], "us-east-1");
    assert_eq!(c["hasSecretKey"], true);
    assert_eq!(c["hasSessionToken"], true);
    assert!(c.get("secretKey").is_none() && c.get("sessionToken").is_none());
    let aws_id = c["id"].as_str().unwrap().to_owned();

    // Redox's own example sends `noBasic` as the string "true".
    let (status, oauth) = send(
        &engine,
        reqwest::Method::POST,
        "/platform/v1/authcredentials",
        Some(json!({
            "name": "OAuth", "environmentId": dev, "authStrategy": "OAuth_2.0_2-legged",
            "grantType": "client_credentials", "url": "https://auth.example.com/token",
            "clientId": "client-1", "clientSecret": SECRETS[2], "noBasic": "true",
        })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{oauth}");
    no_secrets(&oauth);
    let c = &oauth["payload"]["credential"];
    assert_eq!(c["hasClientSecret"], true, "{oauth}");
    assert!(c.get("clientSecret").is_none());
    assert_eq!(c["noBasic"], true, "{oauth}");
    let oauth_id = c["id"].as_str().unwrap().to_owned();

    let read = get_ok(&engine, &format!("/platform/v1/authcredentials/{aws_id}")).await;
    no_secrets(&read);
    assert_eq!(read["payload"]["credential"], aws["payload"]["credential"]);

    let listed = get_ok(
        &engine,
        &format!("/platform/v1/environments/{dev}/authcredentials"),
    )
    .await;
    no_secrets(&listed);
    let credentials = listed["payload"]["credentials"].as_array().unwrap();
    assert_eq!(credentials.len(), 2, "{listed}");
    for c in credentials {
        assert_eq!(
            keys(c),
            [
                "authStrategy",
                "createdAt",
                "environmentId",
                "id",
                "name",
                "organization",
                "updatedAt"
            ],
            "metadata only: {c}"
        );
    }

    let (status, body) = send(
        &engine,
        reqwest::Method::POST,
        "/platform/v1/authcredentials",
        Some(json!({
            "organization": "another-org", "name": "X", "environmentId": dev,
            "authStrategy": "AwsSigv4", "accessKey": "A", "secretKey": "S",
            "serviceName": "s", "awsRegion": "us-east-1",
        })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(message(&body).contains("organization"), "{body}");

    for id in [&aws_id, &oauth_id] {
        let path = format!("/platform/v1/authcredentials/{id}");
        let (status, deleted) = send(&engine, reqwest::Method::DELETE, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{deleted}");
        assert_eq!(
            deleted["payload"]["message"],
            format!("Auth credential id [{id}] was successfully deleted.")
        );
        let (status, _) = send(&engine, reqwest::Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn logs_in_redoxs_shape_with_their_attempts() {
    let engine = engine().await;
    let org = org_id(&engine).await;
    let server = accepting_server().await;
    let destination = verified_destination(&engine, "Acme", &server).await;
    let ids = submit_arrival(&engine, &[&destination], 1).await;
    let one = wait_for_status(&engine, &org, &ids[0], "succeeded").await;

    let (status, listed) = list_logs(&engine, &org, "").await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["meta"]["version"], "1.0.0");
    assert_eq!(
        listed["meta"]["page"],
        json!({
            "currentPage": 1, "pageType": "offset", "pageSize": 50,
            "links": {
                "self": format!("/organizations/{org}/logs?_page=1&_count=50"),
                "first": format!("/organizations/{org}/logs?_page=1&_count=50"),
            },
        })
    );
    let results = listed["payload"]["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{listed}");
    let l = &results[0];
    assert_eq!(l["id"], ids[0].as_str());
    assert!(
        l["createdAt"].is_string() && l["updatedAt"].is_string(),
        "{l}"
    );
    assert_eq!(l["dataModel"], "PatientAdmin");
    assert_eq!(l["eventType"], "Arrival");
    assert_eq!(l["status"], "succeeded");
    assert_eq!(l["type"], "send");
    let organization = json!({"id": org, "name": "Acme Health"});
    assert_eq!(
        l["source"],
        json!({"id": SOURCE_NAME, "name": SOURCE_NAME, "organization": organization})
    );
    assert_eq!(
        l["destination"],
        json!({"id": destination, "name": "Acme", "organization": organization})
    );
    assert_eq!(l["attempts"]["total"], 1, "{l}");
    let latest = &l["attempts"]["latest"];
    assert_eq!(keys(latest), ["attemptAt", "id", "status"], "{l}");
    assert_eq!(latest["status"], "succeeded");
    assert!(latest["id"].is_string() && latest["attemptAt"].is_string());
    assert!(
        l.get("attemptList").is_none(),
        "a listing has no attemptList"
    );
    assert!(
        l["nextAttemptAt"].is_null(),
        "only pending logs have one: {l}"
    );
    for old in ["startedAt", "destinationId", "organizationId"] {
        assert!(l.get(old).is_none(), "{old} in {l}");
    }

    // One log: the same object with every attempt.
    assert_eq!(one["id"], ids[0].as_str());
    assert_eq!(one["source"], l["source"]);
    assert_eq!(one["destination"], l["destination"]);
    assert_eq!(one["attempts"], l["attempts"]);
    let attempts = one["attemptList"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{one}");
    assert_eq!(attempts[0]["id"], latest["id"]);
    assert_eq!(attempts[0]["attemptAt"], latest["attemptAt"]);
    assert_eq!(attempts[0]["status"], "succeeded");
    assert_eq!(attempts[0]["statusCode"], 200);
    assert!(attempts[0]["durationMs"].is_number(), "{one}");
    assert!(attempts[0].get("startedAt").is_none(), "{one}");

    let (status, body) = send(
        &engine,
        reqwest::Method::GET,
        &format!("/platform/v1/organizations/{org}/logs/no-such-log"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn logs_page_with_page_and_count() {
    let engine = engine().await;
    let org = org_id(&engine).await;
    let server = accepting_server().await;
    let destination = verified_destination(&engine, "Acme", &server).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.extend(submit_arrival(&engine, &[&destination], n).await);
        // Distinct creation times, so "newest first" has one answer.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let link = |page: usize, count: usize| {
        format!("/organizations/{org}/logs?_page={page}&_count={count}")
    };

    let (status, first) = list_logs(&engine, &org, "_count=2").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(result_ids(&first), [ids[2].as_str(), ids[1].as_str()]);
    assert_eq!(
        first["meta"]["page"],
        json!({"currentPage": 1, "pageType": "offset", "pageSize": 2,
               "links": {"self": link(1, 2), "next": link(2, 2), "first": link(1, 2)}})
    );

    let (status, second) = list_logs(&engine, &org, "_page=2&_count=2").await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(result_ids(&second), [ids[0].as_str()]);
    assert_eq!(second["meta"]["page"]["currentPage"], 2);
    assert_eq!(second["meta"]["page"]["links"]["self"], link(2, 2));
    assert_eq!(second["meta"]["page"]["links"]["first"], link(1, 2));
    assert!(
        second["meta"]["page"]["links"].get("next").is_none(),
        "the last page has no next: {second}"
    );

    // Following a `next` link (relative to /platform/v1) gives the next page.
    let next = first["meta"]["page"]["links"]["next"].as_str().unwrap();
    let followed = get_ok(&engine, &format!("/platform/v1{next}")).await;
    assert_eq!(result_ids(&followed), result_ids(&second));

    let (status, clamped) = list_logs(&engine, &org, "_count=500").await;
    assert_eq!(status, StatusCode::OK, "{clamped}");
    assert_eq!(clamped["meta"]["page"]["pageSize"], 50);
    assert_eq!(result_ids(&clamped).len(), 3);

    let (status, body) = list_logs(&engine, &org, "_page=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(message(&body).contains("_page"), "{body}");
    let (status, body) = list_logs(&engine, &org, "_page=3&_count=2").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(result_ids(&body), Vec::<String>::new());
}

#[tokio::test]
async fn log_filters_and_stop() {
    let engine = engine().await;
    let org = org_id(&engine).await;
    let healthy = accepting_server().await;
    let held = accepting_server().await;
    let a = verified_destination(&engine, "Healthy", &healthy).await;
    let b = verified_destination(&engine, "Held", &held).await;
    let (status, body) = send(
        &engine,
        reqwest::Method::POST,
        &format!("/platform/v1/destinations/{b}/queue/pause"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let delivered = submit_arrival(&engine, &[&a], 1).await.remove(0);
    let delivered_log = wait_for_status(&engine, &org, &delivered, "succeeded").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let pending = submit_arrival(&engine, &[&b], 2).await.remove(0);
    let pending_log = log(&engine, &org, &pending).await;
    assert_eq!(pending_log["status"], "pending", "{pending_log}");
    assert!(pending_log["nextAttemptAt"].is_string(), "{pending_log}");
    assert_eq!(pending_log["attempts"], json!({"total": 0, "latest": null}));

    let found = |query: &'static str| {
        let engine = &engine;
        let org = &org;
        async move {
            let (status, body) = list_logs(engine, org, query).await;
            assert_eq!(status, StatusCode::OK, "{query}: {body}");
            result_ids(&body)
        }
    };
    assert_eq!(found("status=succeeded").await, [delivered.as_str()]);
    assert_eq!(found("status=pending").await, [pending.as_str()]);
    assert_eq!(found("status=failed").await, Vec::<String>::new());
    assert_eq!(
        found("type=send").await,
        [pending.as_str(), delivered.as_str()]
    );
    assert_eq!(found("type=request").await, Vec::<String>::new());
    assert_eq!(
        found("dataModel=PatientAdmin&eventType=Arrival")
            .await
            .len(),
        2
    );
    assert_eq!(found("eventType=Discharge").await, Vec::<String>::new());
    assert_eq!(found("dataMode=realtime").await.len(), 2);

    let at = |l: &Value, field: &str| l[field].as_str().unwrap().to_owned();
    let instant = |text: String| {
        time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339).unwrap()
    };
    let by_time = |query: String| {
        let engine = &engine;
        let org = &org;
        async move {
            let (status, body) = list_logs(engine, org, &query).await;
            assert_eq!(status, StatusCode::OK, "{query}: {body}");
            result_ids(&body)
        }
    };
    // Bounds are inclusive; the delivered log was created and delivered before the pending one
    // was created.
    assert!(
        instant(at(&delivered_log, "updatedAt")) < instant(at(&pending_log, "createdAt")),
        "{delivered_log} {pending_log}"
    );
    assert_eq!(
        by_time(format!("createdAfter={}", at(&pending_log, "createdAt"))).await,
        [pending.as_str()]
    );
    assert_eq!(
        by_time(format!("createdBefore={}", at(&delivered_log, "createdAt"))).await,
        [delivered.as_str()]
    );
    assert_eq!(
        by_time(format!("updatedAfter={}", at(&pending_log, "updatedAt"))).await,
        [pending.as_str()]
    );
    assert_eq!(
        by_time(format!("updatedBefore={}", at(&delivered_log, "updatedAt"))).await,
        [delivered.as_str()]
    );
    assert_eq!(
        by_time(format!(
            "createdAfter={}&createdBefore={}",
            at(&delivered_log, "createdAt"),
            at(&pending_log, "createdAt")
        ))
        .await
        .len(),
        2
    );

    // Redox's spellings only, and the error says which are accepted.
    let (status, body) = list_logs(&engine, &org, "status=SUCCEEDED").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(message(&body).contains("SUCCEEDED"), "{body}");
    assert!(
        message(&body).contains("pending, succeeded, failed, filtered"),
        "{body}"
    );
    let (status, body) = list_logs(&engine, &org, "type=SEND").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(message(&body).contains("send"), "{body}");
    let (status, body) = list_logs(&engine, &org, "createdAfter=yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(message(&body).contains("createdAfter"), "{body}");
    let (status, body) = list_logs(&engine, &org, "colour=blue").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(message(&body).contains("colour"), "{body}");

    // Stopping the pending log fails it.
    let (status, stopped) = send(
        &engine,
        reqwest::Method::POST,
        &format!("/platform/v1/logs/{pending}/stop"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{stopped}");
    assert_eq!(stopped["payload"]["result"]["id"], pending.as_str());
    assert_eq!(stopped["payload"]["result"]["status"], "failed");
    assert_eq!(log(&engine, &org, &pending).await["status"], "failed");
    assert_eq!(found("status=failed").await, [pending.as_str()]);
    assert_eq!(found("status=pending").await, Vec::<String>::new());
    assert!(
        messages(&held).is_empty(),
        "nothing was sent to the held queue"
    );
}

#[tokio::test]
async fn a_delivered_message_names_its_one_destination() {
    let engine = engine().await;
    let first = accepting_server().await;
    let second = accepting_server().await;
    let a = verified_destination(&engine, "First", &first).await;
    let b = verified_destination(&engine, "Second", &second).await;

    submit_arrival(&engine, &[&a], 1).await;
    submit_arrival(&engine, &[&a, &b], 2).await;
    assert!(
        wait_until(Duration::from_secs(10), || {
            messages(&first).len() >= 2 && !messages(&second).is_empty()
        })
        .await
    );
    for (server, id, name, numbers) in [
        (&first, &a, "First", vec![1, 2]),
        (&second, &b, "Second", vec![2]),
    ] {
        let got = messages(server);
        let seen: Vec<i64> = got
            .iter()
            .map(|m| m["Patient"]["Number"].as_i64().unwrap())
            .collect();
        assert_eq!(seen, numbers);
        for m in &got {
            assert_eq!(
                m["Meta"]["Destinations"],
                json!([{"ID": id, "Name": name}]),
                "{m}"
            );
            assert_eq!(m["Meta"]["Source"]["Name"], SOURCE_NAME, "{m}");
        }
    }
}

/// Redox's own body for an OAuth 2.0 2-legged credential (the reference's PATCH example, every
/// field it shows, `organization` set to this organization) is taken as it is.
#[tokio::test]
async fn redoxs_own_credential_body_is_taken_as_it_is() {
    let engine = engine().await;
    let org = org_id(&engine).await;
    let dev = env_id(&engine, "Development").await;
    let body = json!({
        "organization": org, "name": "Sample Auth Credential", "environmentId": dev,
        "grantType": "client_credentials", "url": "https://auth.example.com/token",
        "clientId": "client-1", "clientSecret": "zzzSecret-assigned-by-authorization-server!!",
        "audience": "https://api.example.com", "scopes": "read write",
        "authStrategy": "OAuth_2.0_2-legged", "grantTypeName": "grant_type",
        "refreshGrantType": "refresh_token", "clientIdName": "client_id",
        "clientSecretName": "client_secret", "accessTokenName": "access_token",
        "expiresFieldName": "expires_in", "refreshTokenName": "refresh_token",
        "contentType": "application/x-www-form-urlencoded", "noBasic": "true",
        "resource": "https://api.example.com", "customFieldName": "tenant",
        "customFieldValue": "acme", "defaultExpirationSeconds": 3600,
        "username": "svc", "password": "a-password-that-is-never-shown",
    });
    let (status, created) = send(
        &engine,
        reqwest::Method::POST,
        "/platform/v1/authcredentials",
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let c = &created["payload"]["credential"];
    assert_eq!(c["organization"], org.as_str(), "{created}");
    assert_eq!(c["refreshGrantType"], "refresh_token", "{created}");
    assert_eq!(c["hasPassword"], true, "{created}");
    assert_eq!(c["hasClientSecret"], true, "{created}");
    let text = created.to_string();
    assert!(
        !text.contains("a-password-that-is-never-shown") && !text.contains("zzzSecret"),
        "{text}"
    );
    // Another organization's id (Redox's are numbers) is refused, naming the field.
    let (status, refused) = send(
        &engine,
        reqwest::Method::POST,
        "/platform/v1/authcredentials",
        Some(
            json!({"organization": 118, "name": "x", "environmentId": dev,
                    "authStrategy": "AwsSigv4", "accessKey": "a", "secretKey": "s",
                    "serviceName": "execute-api", "awsRegion": "us-east-1"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(message(&refused).contains("`organization`"), "{refused}");
}

#[tokio::test]
async fn a_pause_through_the_api_records_who_and_why() {
    let engine = engine().await;
    let sink = accepting_server().await;
    let a = verified_destination(&engine, "Paused with a reason", &sink).await;
    let b = verified_destination(&engine, "Paused without one", &sink).await;
    let (status, body) = send(
        &engine,
        reqwest::Method::POST,
        &format!("/platform/v1/destinations/{a}/queue/pause"),
        Some(json!({"payload": {"reason": "EHR downtime until 14:00"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let queue = &body["payload"]["queue"];
    assert_eq!(queue["state"], "paused", "{body}");
    // The unnamed first management key.
    assert_eq!(queue["pausedBy"], "key-1", "{body}");
    assert_eq!(queue["pauseReason"], "EHR downtime until 14:00", "{body}");
    assert!(queue["pausedAt"].is_string(), "{body}");

    let (status, body) = send(
        &engine,
        reqwest::Method::POST,
        &format!("/platform/v1/destinations/{b}/queue/pause"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = send(
        &engine,
        reqwest::Method::GET,
        &format!("/platform/v1/destinations/{b}/queue"),
        None,
    )
    .await;
    let queue = &body["payload"]["queue"];
    assert_eq!(queue["pausedBy"], "key-1", "{body}");
    assert_eq!(
        queue["pauseReason"], "paused through the Platform API; no reason given",
        "{body}"
    );
}
