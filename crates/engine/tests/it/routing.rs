//! Issue 29, parts 1-4 through the Platform API: OAuth API keys and `/v2/auth/token` (every
//! refusal, with Rust-signed assertions), sources with their `apiKey`, subscriptions as the
//! routing rule (pause and resume), and filters (a blocked message is a `filtered` log that
//! holds nothing up).

use super::delivery::{TOKEN, config, endpoint, messages, verified_destination};
use super::*;
use std::time::Duration;
use wharf_auth::keys::{SigningKey, jwks_document, parse_algorithm};
use wharf_testkit::wait_until;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn key(alg: &str, kid: &str) -> SigningKey {
    SigningKey::generate(parse_algorithm(alg).unwrap(), Some(kid)).unwrap()
}

/// Creates an OAuth API key holding `keys`' public halves; returns its client ID.
async fn apikey(engine: &Engine, env: &str, keys: &[&SigningKey]) -> String {
    let (status, body) = engine
        .post(
            &format!("/platform/v1/environments/{env}/apikeys"),
            json!({"name": "ehr", "jwkSet": jwks_document(keys.iter().copied())}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["payload"]["apikey"]["id"].as_str().unwrap().to_owned()
}

fn claims(engine: &Engine, client: &str) -> Value {
    let t = now();
    json!({"iss": client, "sub": client, "aud": format!("{}/v2/auth/token", engine.base),
           "iat": t, "exp": t + 300, "jti": uuid::Uuid::new_v4().to_string()})
}

async fn token_request(engine: &Engine, content_type: &str, body: String) -> (StatusCode, Value) {
    let response = engine
        .client
        .post(format!("{}/v2/auth/token", engine.base))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

fn form(assertion: &str) -> String {
    format!(
        "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={assertion}"
    )
}

const FORM: &str = "application/x-www-form-urlencoded";

async fn token(engine: &Engine, signer: &SigningKey, client: &str) -> String {
    let assertion = signer.sign(&claims(engine, client)).unwrap();
    let (status, body) = token_request(engine, FORM, form(&assertion)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// An unsigned JWT's header and claims with a made-up signature.
fn unsigned(header: Value, claims: &Value) -> String {
    use base64::Engine as _;
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    };
    format!("{}.{}.c2ln", b64(&header), b64(claims))
}

#[tokio::test]
async fn a_signed_assertion_buys_a_five_minute_token_for_the_api() {
    let engine = Engine::start(true).await;
    let dev = engine.environment("Development").await;
    for alg in ["RS384", "ES384"] {
        let signer = key(alg, &format!("k-{alg}"));
        let client = apikey(&engine, &dev, &[&signer]).await;
        let assertion = signer.sign(&claims(&engine, &client)).unwrap();
        let (status, body) = token_request(&engine, FORM, form(&assertion)).await;
        assert_eq!(status, StatusCode::OK, "{alg}: {body}");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 300);
        let token = body["access_token"].as_str().unwrap();
        let orgs = engine
            .client
            .get(format!("{}/platform/v1/organizations", engine.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            orgs.status(),
            StatusCode::OK,
            "the token opens the Platform API"
        );
    }
    let forged = engine
        .client
        .get(format!("{}/platform/v1/organizations", engine.base))
        .bearer_auth("wharf_at.bm90LWEtdG9rZW4")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    // Static management keys keep working.
    let (status, _) = engine.get("/platform/v1/organizations").await;
    assert_eq!(status, StatusCode::OK);
    // The key's CRUD in Redox's shapes.
    let (_, listed) = engine
        .get(&format!("/platform/v1/environments/{dev}/apikeys"))
        .await;
    let keys = listed["payload"]["apikeys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["environment"]["environmentFlag"], "Development");
    assert!(keys[0]["jwkSet"]["keys"][0]["kid"].is_string());
    let id = keys[0]["id"].as_str().unwrap();
    let (status, changed) = engine
        .patch(
            &format!("/platform/v1/apikeys/{id}"),
            json!({"name": "renamed"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["payload"]["apikey"]["name"], "renamed");
    let (status, _) = engine
        .call(
            reqwest::Method::DELETE,
            &format!("/platform/v1/apikeys/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = engine.get(&format!("/platform/v1/apikeys/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A private key is never taken.
    let private = json!({"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]});
    let (status, body) = engine
        .post(
            &format!("/platform/v1/environments/{dev}/apikeys"),
            json!({"name": "x", "jwkSet": private}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(error(&body).contains("public key only"), "{body}");
}

#[tokio::test]
async fn every_refusal_of_the_token_endpoint_in_redox_words() {
    let engine = Engine::start(true).await;
    let dev = engine.environment("Development").await;
    let signer = key("RS384", "k1");
    let client = apikey(&engine, &dev, &[&signer]).await;
    let good = || claims(&engine, &client);
    let with = |name: &str, value: Value| {
        let mut c = good();
        if value.is_null() {
            c.as_object_mut().unwrap().remove(name);
        } else {
            c[name] = value;
        }
        signer.sign(&c).unwrap()
    };
    let other = key("RS384", "k1");
    let rs256 = key("RS256", "k1");
    let t = now();
    let replayed = signer.sign(&good()).unwrap();
    let (status, _) = token_request(&engine, FORM, form(&replayed)).await;
    assert_eq!(status, StatusCode::OK);
    let cases: Vec<(&str, String, String, u16, &str)> = vec![
        (
            "json body",
            "application/json".into(),
            "{}".into(),
            400,
            "x-www-form-urlencoded content-type required",
        ),
        (
            "no grant_type",
            FORM.into(),
            "client_assertion=x".into(),
            400,
            "grant_type",
        ),
        (
            "wrong grant_type",
            FORM.into(),
            form(&replayed).replace("client_credentials", "password"),
            400,
            "grant_type",
        ),
        (
            "wrong assertion type",
            FORM.into(),
            form(&replayed).replace("jwt-bearer", "saml2-bearer"),
            400,
            "client_assertion_type",
        ),
        (
            "no assertion",
            FORM.into(),
            form(""),
            400,
            "client_assertion",
        ),
        (
            "not a JWT",
            FORM.into(),
            form("abc"),
            400,
            "client_assertion",
        ),
        (
            "no kid",
            FORM.into(),
            form(&unsigned(json!({"alg": "RS384", "typ": "JWT"}), &good())),
            400,
            "JWT header kid property is required",
        ),
        (
            "RS256",
            FORM.into(),
            form(&rs256.sign(&good()).unwrap()),
            400,
            "Unexpected alg header value",
        ),
        (
            "HS384",
            FORM.into(),
            form(&unsigned(json!({"alg": "HS384", "kid": "k1"}), &good())),
            400,
            "Unexpected alg header value",
        ),
        (
            "unknown client",
            FORM.into(),
            form(&with("iss", json!("nobody"))),
            401,
            "Public key not found, check client_id, kid and Redox dashboard settings",
        ),
        (
            "unknown kid",
            FORM.into(),
            form(&key("RS384", "k2").sign(&good()).unwrap()),
            401,
            "Public key not found, check client_id, kid and Redox dashboard settings",
        ),
        (
            "wrong signature",
            FORM.into(),
            form(&other.sign(&good()).unwrap()),
            401,
            "Invalid signature",
        ),
        (
            "wrong sub",
            FORM.into(),
            form(&with("sub", json!("someone"))),
            400,
            "Unexpected sub claim value",
        ),
        (
            "wrong aud",
            FORM.into(),
            form(&with(
                "aud",
                json!("https://api.redoxengine.com/v2/auth/token"),
            )),
            400,
            "Unexpected aud claim value",
        ),
        (
            "old iat",
            FORM.into(),
            form(&with("iat", json!(t - 400))),
            400,
            "Unexpected iat claim value",
        ),
        (
            "future iat",
            FORM.into(),
            form(&with("iat", json!(t + 120))),
            400,
            "Unexpected iat claim value",
        ),
        (
            "no iat",
            FORM.into(),
            form(&with("iat", Value::Null)),
            400,
            "Unexpected iat claim value",
        ),
        (
            "expired",
            FORM.into(),
            form(&with("exp", json!(t - 60))),
            400,
            "Unexpected exp claim value",
        ),
        (
            "no jti",
            FORM.into(),
            form(&with("jti", Value::Null)),
            400,
            "Unexpected jti claim value",
        ),
        (
            "replayed jti",
            FORM.into(),
            form(&replayed),
            400,
            "Unexpected jti claim value",
        ),
    ];
    for (what, content_type, body, status, wording) in cases {
        let (got, answer) = token_request(&engine, &content_type, body).await;
        assert_eq!(got.as_u16(), status, "{what}: {answer}");
        let expected_code = if status == 401 {
            "invalid_client"
        } else {
            "invalid_request"
        };
        assert_eq!(answer["error"], expected_code, "{what}: {answer}");
        let description = answer["error_description"].as_str().unwrap();
        assert!(description.contains(wording), "{what}: {description}");
        assert_eq!(
            answer["error_uri"],
            "https://docs.redoxengine.com/troubleshooting/troubleshoot-oauth-api-key-errors/",
            "{what}"
        );
    }
}

/// Two engines on one PostgreSQL database (whatever the suite's backend) share the `jti`s
/// their token endpoints accepted: an assertion used at one is refused at the other, as a
/// replay to the same engine is.
#[tokio::test]
async fn a_jti_is_used_once_across_engines_sharing_a_database() {
    let schema = wharf_testkit::postgres::PgSchema::create();
    let url = schema.url.clone();
    // One public URL for both, as behind a load balancer: the assertion's `aud` is good at both.
    let public = "public_url = \"https://wharf.example.com\"\n";
    let first = Engine::start_on(
        tempfile::tempdir().unwrap(),
        Some(schema),
        true,
        public,
        |_| {},
    )
    .await;
    let second = Engine::start_on(
        tempfile::tempdir().unwrap(),
        None,
        true,
        &format!("{public}database_url = \"{url}\"\n"),
        |_| {},
    )
    .await;
    let dev = first.environment("Development").await;
    let signer = key("RS384", "k1");
    let client = apikey(&first, &dev, &[&signer]).await;
    let assertion = |jti: &str| {
        let t = now();
        signer
            .sign(&json!({"iss": client, "sub": client,
                          "aud": "https://wharf.example.com/v2/auth/token",
                          "iat": t, "exp": t + 300, "jti": jti}))
            .unwrap()
    };
    let used = assertion("jti-one");
    let (status, body) = token_request(&first, FORM, form(&used)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for engine in [&second, &first] {
        let (status, body) = token_request(engine, FORM, form(&used)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"], "invalid_request", "{body}");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("Unexpected jti claim value"),
            "{body}"
        );
    }
    // Another jti is fine at the second engine, and then used there for both.
    let other = assertion("jti-two");
    let (status, body) = token_request(&second, FORM, form(&other)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = token_request(&first, FORM, form(&other)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_jwks_url_is_fetched_and_fetched_again_for_an_unknown_kid() {
    let engine = Engine::start(true).await;
    let dev = engine.environment("Development").await;
    let first = key("ES384", "first");
    let second = key("ES384", "second");
    let document = std::sync::Arc::new(std::sync::Mutex::new(
        serde_json::to_vec(&jwks_document([&first])).unwrap(),
    ));
    let served = document.clone();
    let jwks = Recorder::start(move |_, _: &Received| Reply {
        status: 200,
        content_type: "application/json",
        body: served.lock().unwrap().clone(),
        delay: Duration::ZERO,
    })
    .await;
    let (status, body) = engine
        .post(
            &format!("/platform/v1/environments/{dev}/apikeys"),
            json!({"name": "rotating", "jwksURL": jwks.url("/jwks.json")}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let client = body["payload"]["apikey"]["id"].as_str().unwrap().to_owned();
    token(&engine, &first, &client).await;
    token(&engine, &first, &client).await;
    assert_eq!(jwks.received().len(), 1, "cached");
    *document.lock().unwrap() = serde_json::to_vec(&jwks_document([&first, &second])).unwrap();
    token(&engine, &second, &client).await;
    assert_eq!(jwks.received().len(), 2, "refreshed for the unknown kid");
}

pub(crate) async fn create_source(engine: &Engine, env: &str, name: &str) -> (String, String) {
    let (status, body) = engine
        .post(
            &format!("/platform/v1/environments/{env}/sources"),
            json!({"name": name, "serviceRegion": "AWS_USA_EAST_1"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let source = &body["payload"]["source"];
    (
        source["id"].as_str().unwrap().to_owned(),
        source["apiKey"].as_str().unwrap().to_owned(),
    )
}

pub(crate) async fn subscribe(engine: &Engine, env: &str, source: &str, destination: &str) -> i64 {
    let (status, body) = engine
        .post(
            &format!("/platform/v1/environments/{env}/subscriptions"),
            json!({"source": {"id": source}, "destination": {"id": destination}, "dataModel": "PatientAdmin"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let s = &body["payload"]["subscription"];
    assert_eq!(s["dataModel"], "PatientAdmin");
    assert_eq!(s["source"]["environmentFlag"], "Development");
    assert_eq!(s["destination"]["id"], destination);
    assert!(s["deletedAt"].is_null());
    s["id"].as_i64().unwrap()
}

pub(crate) async fn send(engine: &Engine, key: &str, message: Value) -> (StatusCode, Value) {
    let response = engine
        .client
        .post(format!("{}/endpoint", engine.base))
        .bearer_auth(key)
        .json(&message)
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

pub(crate) fn arrival(first_name: &str, destinations: &[&str]) -> Value {
    json!({"Meta": {"DataModel": "PatientAdmin", "EventType": "Arrival",
                    "Destinations": destinations.iter().map(|d| json!({"ID": d})).collect::<Vec<_>>()},
           "Patient": {"Demographics": {"FirstName": first_name}}})
}

#[tokio::test]
async fn sources_through_the_api_with_their_key_shown_once_and_the_config_ones_listed() {
    let engine = Engine::start_with(true, &config()).await;
    let dev = engine.environment("Development").await;
    let prod = engine.environment("Production").await;
    let (id, key) = create_source(&engine, &dev, "Cerner feed").await;
    assert_eq!(key.len(), 64);
    let (_, listed) = engine
        .get(&format!("/platform/v1/environments/{dev}/sources"))
        .await;
    let sources = listed["payload"]["sources"].as_array().unwrap();
    let names: Vec<_> = sources
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["EHR feed", "Cerner feed"],
        "the config's source too"
    );
    assert!(sources.iter().all(|s| s["apiKey"].is_null()), "shown once");
    assert_eq!(sources[0]["fromConfig"], true);
    assert_eq!(sources[1]["hasSFTPPassword"], false);
    let (_, in_prod) = engine
        .get(&format!("/platform/v1/environments/{prod}/sources"))
        .await;
    assert_eq!(in_prod["payload"]["sources"][0]["name"], "EHR feed");
    let config_id = sources[0]["id"].as_str().unwrap();
    let (status, body) = engine
        .call(
            reqwest::Method::DELETE,
            &format!("/platform/v1/sources/{config_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, renamed) = engine
        .patch(
            &format!("/platform/v1/sources/{id}"),
            json!({"name": "Epic feed"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(renamed["payload"]["source"]["name"], "Epic feed");
    let (_, read) = engine.get(&format!("/platform/v1/sources/{id}")).await;
    assert_eq!(read["payload"]["source"]["environment"]["id"], dev);
    assert!(read["payload"]["source"]["apiKey"].is_null());
    let (status, _) = engine
        .post(
            &format!("/platform/v1/environments/{dev}/sources"),
            json!({"name": "x", "serviceRegion": "MARS"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // The key sends (no subscription yet: refused, naming the fix), then a deleted source's
    // key does not.
    let (status, body) = send(&engine, &key, arrival("Timothy", &[])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(error(&body).contains("no subscription"), "{body}");
    let (status, _) = engine
        .call(
            reqwest::Method::DELETE,
            &format!("/platform/v1/sources/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(&engine, &key, arrival("Timothy", &[])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn no_subscription_no_transfer_and_meta_destinations_narrows() {
    let engine = Engine::start_with(true, &config()).await;
    let dev = engine.environment("Development").await;
    let staging = engine.environment("Staging").await;
    let a = endpoint(0).await;
    let b = endpoint(0).await;
    let to_a = verified_destination(&engine, &a).await;
    let to_b = verified_destination(&engine, &b).await;
    let (source, key) = create_source(&engine, &dev, "feed").await;
    let (status, body) = send(&engine, &key, arrival("Timothy", &[&to_a])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(error(&body).contains("no subscription"), "{body}");
    let sub_a = subscribe(&engine, &dev, &source, &to_a).await;
    let sub_b = subscribe(&engine, &dev, &source, &to_b).await;
    // Across environments: refused.
    let (status, body) = engine
        .post(
            &format!("/platform/v1/environments/{staging}/subscriptions"),
            json!({"source": {"id": source}, "destination": {"id": to_a}, "dataModel": "PatientAdmin"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // No Meta.Destinations: every subscribed destination; named: only those.
    let (status, body) = send(&engine, &key, arrival("One", &[])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["Meta"]["Logs"].as_array().unwrap().len(), 2);
    let (status, _) = send(&engine, &key, arrival("Two", &[&to_b])).await;
    assert_eq!(status, StatusCode::OK);
    wait_until(Duration::from_secs(10), || messages(&b).len() == 2).await;
    wait_until(Duration::from_secs(10), || !messages(&a).is_empty()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(messages(&a).len(), 1, "narrowed to b");
    // Another data model has no subscription.
    let mut other = arrival("Three", &[]);
    other["Meta"]["DataModel"] = json!("Scheduling");
    let (status, _) = send(&engine, &key, other).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // The listing and its filters.
    let (_, listed) = engine
        .get(&format!(
            "/platform/v1/environments/{dev}/subscriptions?destinationId={to_b}"
        ))
        .await;
    let subs = listed["payload"]["subscriptions"].as_array().unwrap();
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0]["id"], sub_b);
    let (_, all) = engine
        .get(&format!(
            "/platform/v1/environments/{dev}/subscriptions?sourceId={source}&_count=1&_page=1"
        ))
        .await;
    assert_eq!(all["payload"]["subscriptions"][0]["id"], sub_b, "paged");
    // Deleted: no transfer to a.
    let (status, _) = engine
        .call(
            reqwest::Method::DELETE,
            &format!("/platform/v1/subscriptions/{sub_a}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(&engine, &key, arrival("Four", &[&to_a])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_paused_subscription_holds_its_messages_in_order_until_resumed() {
    let engine = Engine::start_with(true, &config()).await;
    let dev = engine.environment("Development").await;
    let a = endpoint(0).await;
    let to_a = verified_destination(&engine, &a).await;
    let (source, key) = create_source(&engine, &dev, "feed").await;
    let sub = subscribe(&engine, &dev, &source, &to_a).await;
    let (status, body) = engine
        .patch(
            &format!("/platform/v1/subscriptions/{sub}"),
            json!({"status": "paused"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["payload"]["subscription"]["status"], "paused");
    let mut logs = Vec::new();
    for name in ["First", "Second", "Third"] {
        let (status, body) = send(&engine, &key, arrival(name, &[])).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        logs.push(body["Meta"]["Logs"][0]["ID"].as_str().unwrap().to_owned());
    }
    // The config source's messages to the same destination keep flowing.
    let response = super::delivery::submit(&engine, &[&to_a], 9).await;
    assert_eq!(response.status(), StatusCode::OK);
    wait_until(Duration::from_secs(10), || messages(&a).len() == 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(messages(&a).len(), 1, "held, not sent");
    let (_, orgs) = engine.get("/platform/v1/organizations").await;
    let org = orgs["payload"]["organizations"][0]["id"].as_str().unwrap();
    let (_, log) = engine
        .get(&format!(
            "/platform/v1/organizations/{org}/logs/{}",
            logs[0]
        ))
        .await;
    assert_eq!(log["payload"]["result"]["status"], "pending", "{log}");
    let (status, body) = engine
        .patch(
            &format!("/platform/v1/subscriptions/{sub}"),
            json!({"status": "active"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["payload"]["subscription"]["status"], "active");
    wait_until(Duration::from_secs(10), || messages(&a).len() == 4).await;
    let names: Vec<_> = messages(&a)[1..]
        .iter()
        .map(|m| {
            m["Patient"]["Demographics"]["FirstName"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(names, ["First", "Second", "Third"], "in order");
    let (status, _) = engine
        .patch(
            &format!("/platform/v1/subscriptions/{sub}"),
            json!({"status": "sleeping"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_filter_blocks_as_a_filtered_log_that_holds_nothing_up() {
    let engine = Engine::start_with(true, &config()).await;
    let dev = engine.environment("Development").await;
    let a = endpoint(0).await;
    let to_a = verified_destination(&engine, &a).await;
    let (source, key) = create_source(&engine, &dev, "feed").await;
    let sub = subscribe(&engine, &dev, &source, &to_a).await;
    let path = format!("/platform/v0/subscriptions/{sub}/filters");
    let (status, body) = engine
        .post(
            &path,
            json!({"filter": {"name": "first names", "environmentId": dev, "action": "send",
                "rules": [{"path": "$.Patient.Demographics.FirstName", "values": ["Timothy", "Barbara"]},
                          {"path": "$.Meta.EventType", "values": ["Discharge"], "allowList": false}]}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let filter = &body["payload"]["filter"];
    assert_eq!(filter["action"], "send");
    assert_eq!(filter["rules"][0]["allowList"], true);
    assert_eq!(filter["filterLinks"][0]["destinationId"], to_a);
    assert_eq!(filter["version"], 1);
    let filter_id = filter["id"].as_str().unwrap().to_owned();
    let (status, _) = engine
        .post(
            &path,
            json!({"filter": {"name": "second", "action": "send", "rules": []}}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "one filter per subscription");
    let (_, blocked) = send(&engine, &key, arrival("timothy", &[])).await;
    let (status, _) = send(&engine, &key, arrival("Timothy", &[])).await;
    assert_eq!(status, StatusCode::OK);
    wait_until(Duration::from_secs(10), || messages(&a).len() == 1).await;
    assert_eq!(
        messages(&a)[0]["Patient"]["Demographics"]["FirstName"],
        "Timothy",
        "case-sensitive; the blocked one held nothing up"
    );
    let (_, orgs) = engine.get("/platform/v1/organizations").await;
    let org = orgs["payload"]["organizations"][0]["id"].as_str().unwrap();
    let blocked_id = blocked["Meta"]["Logs"][0]["ID"].as_str().unwrap();
    let (_, log) = engine
        .get(&format!(
            "/platform/v1/organizations/{org}/logs/{blocked_id}"
        ))
        .await;
    assert_eq!(log["payload"]["result"]["status"], "filtered", "{log}");
    // block-all, then deleted (kept for showDeleted): messages flow again.
    let (status, body) = engine
        .post(&path, json!({"filter": {"id": filter_id, "name": "none", "action": "block-all", "rules": []}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["payload"]["filter"]["version"], 2);
    send(&engine, &key, arrival("Barbara", &[])).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(messages(&a).len(), 1, "block-all");
    let (status, body) = engine
        .call(
            reqwest::Method::DELETE,
            &format!("{path}/{filter_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["payload"]["filterId"], filter_id);
    assert_eq!(body["payload"]["subscriptionId"], sub);
    let (_, current) = engine.get(&path).await;
    assert!(current["payload"]["filters"].as_array().unwrap().is_empty());
    let (_, deleted) = engine.get(&format!("{path}?showDeleted=true")).await;
    assert!(deleted["payload"]["filters"][0]["deletedAt"].is_string());
    send(&engine, &key, arrival("Anyone", &[])).await;
    wait_until(Duration::from_secs(10), || messages(&a).len() == 2).await;
    let (status, body) = engine
        .post(&path, json!({"filter": {"name": "bad", "action": "send", "rules": [{"path": "Patient", "values": ["x"]}]}}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn an_access_token_sends_data_as_the_source_meta_source_id_names() {
    let engine = Engine::start_with(true, &config()).await;
    let dev = engine.environment("Development").await;
    let prod = engine.environment("Production").await;
    let a = endpoint(0).await;
    let to_a = verified_destination(&engine, &a).await;
    let (source, _) = create_source(&engine, &dev, "feed").await;
    subscribe(&engine, &dev, &source, &to_a).await;
    let signer = key("RS384", "k1");
    let client = apikey(&engine, &dev, &[&signer]).await;
    let bearer = token(&engine, &signer, &client).await;
    let mut message = arrival("Timothy", &[]);
    let (status, body) = send(&engine, &bearer, message.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(error(&body).contains("Meta.Source.ID"), "{body}");
    message["Meta"]["Source"] = json!({"ID": source});
    let (status, body) = send(&engine, &bearer, message.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_until(Duration::from_secs(10), || messages(&a).len() == 1).await;
    // A key of another environment may not send as this source.
    let prod_signer = key("RS384", "p1");
    let prod_client = apikey(&engine, &prod, &[&prod_signer]).await;
    let prod_bearer = token(&engine, &prod_signer, &prod_client).await;
    let (status, _) = send(&engine, &prod_bearer, message).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let _ = TOKEN;
}
