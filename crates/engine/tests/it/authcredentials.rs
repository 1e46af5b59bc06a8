//! Auth credentials over HTTP: the strategy catalogue, create/read/list/update/delete for all six
//! strategies, secrets never returned and sealed at rest, keys generated or supplied and
//! published as a JWKS without the management key, and linking to destinations.

use super::*;

/// An EC P-256 PKCS#8 key made with `openssl genpkey -algorithm EC -pkeyopt
/// ec_paramgen_curve:P-256` (a test key, used nowhere else), and its public point.
const EC_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg7Vn5juDZwiPQ3kAb
xhvPeR5AB2FfHbOXEghJQIo3s8OhRANCAAR4/HG+r6MEQQ+yg/4boE3WQLXukroQ
J1tDdVf7c1p7TN+WqxKs5KN9j0kpZNDEWkDGIM99RUR3WBoLHXjR23TO
-----END PRIVATE KEY-----
";
const EC_X: &str = "ePxxvq-jBEEPsoP-G6BN1kC17pK6ECdbQ3VX-3Nae0w";
const EC_Y: &str = "35arEqzko32PSSlk0MRaQMYgz31FRHdYGgsdeNHbdM4";

const SECRETS: &[&str] = &[
    "aws-secret-SENTINEL-1",
    "aws-session-SENTINEL-2",
    "oauth-secret-SENTINEL-3",
    "custom-value-SENTINEL-4",
];

const CREDENTIALS: &str = "/platform/v1/authcredentials";

/// Valid fields for each strategy (secrets from [`SECRETS`]).
pub(crate) fn examples() -> Vec<(&'static str, Value)> {
    vec![
        (
            "AwsSigv4",
            json!({"accessKey": "AKIDEXAMPLE", "secretKey": SECRETS[0], "serviceName": "execute-api",
                   "awsRegion": "us-east-1", "sessionToken": SECRETS[1]}),
        ),
        (
            "OAuth_2.0_2-legged",
            json!({"url": "https://auth.example.com/oauth/token", "clientId": "client-1",
                   "clientSecret": SECRETS[2], "scopes": "read write", "noBasic": true,
                   "contentType": "application/json", "defaultExpirationSeconds": 600,
                   "customFieldName": "tenant", "customFieldValue": SECRETS[3],
                   "grantType": "client_credentials"}),
        ),
        (
            "SMART_Backend",
            json!({"url": "https://ehr.example.com/token", "clientId": "smart-client",
                   "scopes": ["system/Patient.read", "system/Observation.read"]}),
        ),
        (
            "JWT_Bearer",
            json!({"issuer": "wharf-engine", "audience": "https://dest.example.com",
                   "lifetimeSeconds": 120}),
        ),
        (
            "OAuth_2.0_JWT_Bearer_GCP",
            json!({"serviceAccountEmail": "svc@project.iam.gserviceaccount.com",
                   "tokenUrl": "http://127.0.0.1:9/token", "scopes": "a,b"}),
        ),
        (
            "GoogleWIF",
            json!({"audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/w",
                   "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/svc@p.iam.gserviceaccount.com:generateAccessToken",
                   "delegates": "a@p.iam.gserviceaccount.com, b@p.iam.gserviceaccount.com",
                   "lifetime": "3600s"}),
        ),
    ]
}

fn request(strategy: &str, env: &str, name: &str, fields: &Value) -> Value {
    let mut body = fields.clone();
    body["authStrategy"] = json!(strategy);
    body["environmentId"] = json!(env);
    body["name"] = json!(name);
    body
}

pub(crate) async fn create(engine: &Engine, strategy: &str, env: &str, fields: Value) -> Value {
    let (status, created) = engine
        .post(CREDENTIALS, request(strategy, env, strategy, &fields))
        .await;
    assert_eq!(status, StatusCode::OK, "{strategy}: {created}");
    created["payload"]["credential"].clone()
}

async fn delete(engine: &Engine, path: &str) -> (StatusCode, Value) {
    engine.call(reqwest::Method::DELETE, path, None).await
}

/// Fetches a JWKS without any key, as a destination would.
async fn fetch_jwks(engine: &Engine, url: &str) -> (StatusCode, Value) {
    let response = engine.client.get(url).send().await.unwrap();
    let status = response.status();
    if status == StatusCode::OK {
        assert_eq!(response.headers()["content-type"], "application/json");
    }
    (status, response.json().await.unwrap())
}

fn assert_no_secrets(text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert!(
        !text.contains("PRIVATE KEY"),
        "a private key leaked: {text}"
    );
    assert!(
        !text.contains("MIGHAgEAMBMGByqGSM49"),
        "a private key leaked"
    );
}

#[tokio::test]
async fn the_strategy_catalogue_lists_all_six_with_their_fields() {
    let engine = Engine::start(true).await;
    let (status, body) = engine.get("/platform/v1/authcredentials/strategies").await;
    assert_eq!(status, StatusCode::OK);
    // Keyed by strategy, each with the names of its fields, as Redox lists them.
    let catalogue = body["payload"]["strategies"].as_object().unwrap();
    let mut keys: Vec<&str> = catalogue.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "AwsSigv4",
            "GoogleWIF",
            "JWT_Bearer",
            "OAuth_2.0_2-legged",
            "OAuth_2.0_JWT_Bearer_GCP",
            "SMART_Backend",
        ]
    );
    for strategy in wharf_auth::strategy::Strategy::ALL {
        let fields = catalogue[strategy.key()]["availableFields"]
            .as_array()
            .unwrap();
        assert!(!fields.is_empty());
        let names: Vec<&str> = fields.iter().map(|f| f.as_str().unwrap()).collect();
        let expected: Vec<&str> = strategy.fields().iter().map(|f| f.name).collect();
        assert_eq!(names, expected, "{}", strategy.key());
    }
    let names = |key: &str| -> Vec<String> {
        catalogue[key]["availableFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap().to_owned())
            .collect()
    };
    assert!(names("OAuth_2.0_2-legged").contains(&"clientSecret".to_owned()));
    // GoogleWIF's fields by Redox's own (snake case) names.
    let wif = names("GoogleWIF");
    for field in [
        "token_url",
        "sts_scope",
        "service_account_impersonation_url",
    ] {
        assert!(wif.contains(&field.to_owned()), "{field} in {wif:?}");
    }
    // The catalogue is behind the management key like the rest of the API.
    let anonymous = engine
        .client
        .get(format!(
            "{}/platform/v1/authcredentials/strategies",
            engine.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn every_strategy_is_created_and_no_secret_is_ever_returned() {
    let engine = Engine::start(true).await;
    let dev = engine.environment("Development").await;
    let mut ids = Vec::new();
    for (strategy, fields) in examples() {
        let created = create(&engine, strategy, &dev, fields).await;
        assert_no_secrets(&created.to_string());
        assert_eq!(created["authStrategy"], strategy);
        assert_eq!(created["environmentId"], dev.as_str());
        assert!(created["createdAt"].as_str().unwrap().ends_with('Z'));
        let id = created["id"].as_str().unwrap().to_owned();
        let (status, read) = engine.get(&format!("{CREDENTIALS}/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            read["payload"]["credential"], created,
            "a read shows what create answered"
        );
        assert_no_secrets(&read.to_string());
        ids.push((strategy, id, created));
    }

    let view = |strategy: &str| &ids.iter().find(|(s, _, _)| *s == strategy).unwrap().2;
    let aws = view("AwsSigv4");
    assert_eq!(aws["hasSecretKey"], true);
    assert_eq!(aws["hasSessionToken"], true);
    assert_eq!(aws["accessKey"], "AKIDEXAMPLE");
    assert!(aws.get("secretKey").is_none() && aws.get("jwksUrl").is_none());
    let oauth = view("OAuth_2.0_2-legged");
    assert_eq!(oauth["hasClientSecret"], true);
    assert_eq!(oauth["hasCustomFieldValue"], true);
    assert_eq!(
        oauth["scopes"],
        json!(["read", "write"]),
        "a scope string is split"
    );
    assert_eq!(oauth["noBasic"], true);
    assert_eq!(oauth["defaultExpirationSeconds"], 600);
    assert_eq!(
        view("OAuth_2.0_JWT_Bearer_GCP")["scopes"],
        json!(["a", "b"])
    );
    assert_eq!(
        view("GoogleWIF")["delegates"],
        json!(["a@p.iam.gserviceaccount.com", "b@p.iam.gserviceaccount.com"])
    );
    assert_eq!(
        view("GoogleWIF")["service_account_impersonation_url"],
        examples()[5].1["service_account_impersonation_url"]
    );
    assert_eq!(aws["organization"], super::delivery::org_id(&engine).await);

    // Key-holding strategies got a generated key, published without the management key.
    for (strategy, algorithm) in [
        ("SMART_Backend", "ES384"),
        ("JWT_Bearer", "RS256"),
        ("OAuth_2.0_JWT_Bearer_GCP", "RS256"),
        ("GoogleWIF", "RS256"),
    ] {
        let v = view(strategy);
        assert_eq!(v["hasPrivateKey"], true, "{strategy}");
        assert_eq!(v["algorithm"], algorithm, "{strategy}");
        let kid = v["kid"].as_str().unwrap();
        let url = v["jwksUrl"].as_str().unwrap();
        assert_eq!(
            url,
            format!(
                "{}/platform/v1/authcredentials/{}/jwks",
                engine.base,
                v["id"].as_str().unwrap()
            )
        );
        let (status, jwks) = fetch_jwks(&engine, url).await;
        assert_eq!(status, StatusCode::OK, "{strategy}: {jwks}");
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0]["kid"], kid);
        assert_eq!(keys[0]["alg"], algorithm);
        assert!(keys[0].get("d").is_none(), "no private part: {jwks}");
        assert!(keys[0].get("p").is_none() && keys[0].get("q").is_none());
    }
    // No JWKS for strategies without a key, nor for unknown credentials.
    let aws_id = aws["id"].as_str().unwrap();
    let (status, _) = fetch_jwks(
        &engine,
        &format!("{}{CREDENTIALS}/{aws_id}/jwks", engine.base),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = fetch_jwks(&engine, &format!("{}{CREDENTIALS}/nope/jwks", engine.base)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The environment's listing has all six, the others none.
    let (status, listed) = engine
        .get(&format!("/platform/v1/environments/{dev}/authcredentials"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let summaries = listed["payload"]["credentials"].as_array().unwrap();
    assert_eq!(summaries.len(), 6);
    // A listing carries the metadata only.
    for summary in summaries {
        let mut keys: Vec<&str> = summary
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "authStrategy",
                "createdAt",
                "environmentId",
                "id",
                "name",
                "organization",
                "updatedAt"
            ]
        );
    }
    assert_no_secrets(&listed.to_string());
    let staging = engine.environment("Staging").await;
    let (_, listed) = engine
        .get(&format!(
            "/platform/v1/environments/{staging}/authcredentials"
        ))
        .await;
    assert_eq!(listed["payload"]["credentials"], json!([]));
    let (status, _) = engine
        .get("/platform/v1/environments/nope/authcredentials")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = engine.get(&format!("{CREDENTIALS}/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_supplied_key_is_used_and_a_bad_one_refused() {
    let engine = Engine::start(true).await;
    let dev = engine.environment("Development").await;
    let fields = json!({"issuer": "i", "audience": "a", "privateKey": EC_PEM, "kid": "my-key"});
    let created = create(&engine, "JWT_Bearer", &dev, fields).await;
    assert_no_secrets(&created.to_string());
    assert_eq!(created["kid"], "my-key");
    assert_eq!(created["algorithm"], "ES256", "the curve decides");
    let (_, jwks) = fetch_jwks(&engine, created["jwksUrl"].as_str().unwrap()).await;
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str()),
        (Some("EC"), Some("P-256"))
    );
    assert_eq!(
        (key["x"].as_str(), key["y"].as_str()),
        (Some(EC_X), Some(EC_Y))
    );
    assert_eq!(key["kid"], "my-key");

    let (status, body) = engine
        .post(
            CREDENTIALS,
            request(
                "SMART_Backend",
                &dev,
                "bad",
                &json!({"url": "https://x.example/token", "clientId": "c", "privateKey": "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&body).contains("PKCS#8"), "{body}");
    let (status, body) = engine
        .post(
            CREDENTIALS,
            request(
                "SMART_Backend",
                &dev,
                "mismatch",
                &json!({"url": "https://x.example/token", "clientId": "c", "privateKey": EC_PEM, "algorithm": "RS384"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&body).contains("does not fit"), "{body}");
    let (status, body) = engine
        .post(
            CREDENTIALS,
            request(
                "JWT_Bearer",
                &dev,
                "hmac",
                &json!({"issuer": "i", "audience": "a", "algorithm": "HS256"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&body).contains("algorithm"), "{body}");
    // An algorithm asked for is generated as asked.
    let created = create(
        &engine,
        "SMART_Backend",
        &dev,
        json!({"url": "https://x.example/token", "clientId": "c", "algorithm": "RS384"}),
    )
    .await;
    assert_eq!(created["algorithm"], "RS384");
}

#[tokio::test]
async fn invalid_credentials_are_refused_with_the_reason() {
    let engine = Engine::start(true).await;
    let dev = engine.environment("Development").await;
    let oauth =
        json!({"url": "https://auth.example.com/token", "clientId": "c", "clientSecret": "s"});
    let refused = |strategy: &'static str, fields: Value| {
        let engine = &engine;
        let body = request(strategy, &dev, "n", &fields);
        async move {
            let (status, answer) = engine.post(CREDENTIALS, body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
            error(&answer).to_owned()
        }
    };
    let message = refused("Basic", oauth.clone()).await;
    assert!(
        message.contains("unknown authStrategy") && message.contains("SMART_Backend"),
        "{message}"
    );
    let mut with_unknown = oauth.clone();
    with_unknown["bogus"] = json!(1);
    let message = refused("OAuth_2.0_2-legged", with_unknown).await;
    assert!(
        message.contains("unknown field `bogus`") && message.contains("clientSecret"),
        "{message}"
    );
    let message = refused("AwsSigv4", json!({"issuer": "i"})).await;
    assert!(message.contains("unknown field `issuer`"), "{message}");
    let message = refused(
        "OAuth_2.0_2-legged",
        json!({"url": "https://a.example/t", "clientId": "c"}),
    )
    .await;
    assert!(message.contains("`clientSecret`"), "{message}");
    for (field, value) in [
        ("noBasic", json!("yes")),
        ("defaultExpirationSeconds", json!("60")),
        ("defaultExpirationSeconds", json!(-5)),
        ("clientId", json!(42)),
        ("scopes", json!([1, 2])),
        ("url", json!("ftp://auth.example.com/token")),
        ("url", json!("not a url")),
        ("contentType", json!("text/plain")),
        ("grantType", json!("password")),
    ] {
        let mut fields = oauth.clone();
        fields[field] = value;
        let message = refused("OAuth_2.0_2-legged", fields).await;
        assert!(
            message.contains(&format!("`{field}`")),
            "{field}: {message}"
        );
    }
    let message = refused("GoogleWIF", json!({"audience": "a", "lifetime": "1h"})).await;
    assert!(message.contains("`lifetime`"), "{message}");

    let (status, answer) = engine
        .post(
            CREDENTIALS,
            json!({"name": "n", "environmentId": "nope", "authStrategy": "JWT_Bearer", "issuer": "i", "audience": "a"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&answer).contains("environmentId"), "{answer}");
    let (status, answer) = engine
        .post(
            CREDENTIALS,
            json!({"environmentId": dev, "authStrategy": "JWT_Bearer", "issuer": "i", "audience": "a"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&answer).contains("`name`"), "{answer}");
    let (_, listed) = engine
        .get(&format!("/platform/v1/environments/{dev}/authcredentials"))
        .await;
    assert_eq!(
        listed["payload"]["credentials"],
        json!([]),
        "nothing was saved"
    );
}

#[tokio::test]
async fn patch_changes_fields_and_reseals_secrets() {
    let engine = Engine::start(true).await;
    let dev = engine.environment("Development").await;
    let created = create(&engine, "OAuth_2.0_2-legged", &dev, examples()[1].1.clone()).await;
    let path = format!("{CREDENTIALS}/{}", created["id"].as_str().unwrap());
    let (status, patched) = engine
        .patch(
            &path,
            json!({"name": "Renamed", "clientSecret": "rotated-SENTINEL-5", "scopes": "one,two three"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    let v = &patched["payload"]["credential"];
    assert_eq!(v["name"], "Renamed");
    assert_eq!(v["hasClientSecret"], true);
    assert_eq!(v["scopes"], json!(["one", "two", "three"]));
    assert_eq!(v["clientId"], "client-1", "untouched fields stay");
    assert_ne!(v["updatedAt"], created["updatedAt"]);
    assert!(!patched.to_string().contains("rotated-SENTINEL-5"));
    assert_no_secrets(&patched.to_string());

    // Booleans may come as strings, as Redox's own example sends them.
    let (status, patched) = engine.patch(&path, json!({"noBasic": "false"})).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["payload"]["credential"]["noBasic"], false);

    // An optional secret may be removed; a required one may not.
    let (_, patched) = engine.patch(&path, json!({"customFieldValue": null})).await;
    assert_eq!(
        patched["payload"]["credential"]["hasCustomFieldValue"],
        false
    );
    assert_eq!(patched["payload"]["credential"]["hasClientSecret"], true);
    let (status, answer) = engine.patch(&path, json!({"clientSecret": null})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&answer).contains("clientSecret"), "{answer}");
    let (status, answer) = engine
        .patch(&path, json!({"authStrategy": "AwsSigv4"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error(&answer).contains("create a new credential"),
        "{answer}"
    );
    let (status, _) = engine
        .patch(&path, json!({"authStrategy": "OAuth_2.0_2-legged"}))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "naming the same strategy is no change"
    );
    let (status, answer) = engine.patch(&path, json!({"secretKey": "x"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&answer).contains("unknown field `secretKey`"));
    let (status, _) = engine
        .patch(&format!("{CREDENTIALS}/nope"), json!({"name": "x"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Keys: a new PEM replaces the key (new kid), a kid alone renames it, null is refused.
    let smart = create(
        &engine,
        "SMART_Backend",
        &dev,
        json!({"url": "https://x.example/token", "clientId": "c"}),
    )
    .await;
    let path = format!("{CREDENTIALS}/{}", smart["id"].as_str().unwrap());
    let jwks_url = smart["jwksUrl"].as_str().unwrap().to_owned();
    let (status, answer) = engine.patch(&path, json!({"privateKey": null})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&answer).contains("privateKey"), "{answer}");
    let (_, before) = fetch_jwks(&engine, &jwks_url).await;
    let (_, renamed) = engine.patch(&path, json!({"kid": "renamed-kid"})).await;
    assert_eq!(renamed["payload"]["credential"]["kid"], "renamed-kid");
    assert_eq!(renamed["payload"]["credential"]["algorithm"], "ES384");
    let (_, after) = fetch_jwks(&engine, &jwks_url).await;
    assert_eq!(after["keys"][0]["x"], before["keys"][0]["x"], "same key");
    assert_eq!(after["keys"][0]["kid"], "renamed-kid");
    let (status, replaced) = engine.patch(&path, json!({"privateKey": EC_PEM})).await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_ne!(
        replaced["payload"]["credential"]["kid"], "renamed-kid",
        "a new key gets a new kid"
    );
    assert_eq!(replaced["payload"]["credential"]["algorithm"], "ES256");
    assert_no_secrets(&replaced.to_string());
    let (_, after) = fetch_jwks(&engine, &jwks_url).await;
    assert_eq!(after["keys"][0]["x"], EC_X);
    assert_eq!(
        after["keys"][0]["kid"],
        replaced["payload"]["credential"]["kid"]
    );
}

#[tokio::test]
async fn credentials_link_to_destinations_of_their_environment() {
    let engine = Engine::start(true).await;
    let dev = engine.environment("Development").await;
    let staging = engine.environment("Staging").await;
    let credential = create(&engine, "AwsSigv4", &dev, examples()[0].1.clone()).await;
    let id = credential["id"].as_str().unwrap();
    let elsewhere = create(&engine, "AwsSigv4", &staging, examples()[0].1.clone()).await;

    let endpoint = echoing_endpoint("right-token-123-0123456789abcdefg").await;
    let destination = create_destination(
        &engine,
        &endpoint.url("/a"),
        "right-token-123-0123456789abcdefg",
        "POST",
    )
    .await;
    let dest_path = format!("/platform/v1/destinations/{destination}");
    let (status, verified) = engine.post(&format!("{dest_path}/verify"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{verified}");

    let (status, linked) = engine
        .patch(&dest_path, json!({"authCredential": id}))
        .await;
    assert_eq!(status, StatusCode::OK, "{linked}");
    assert_eq!(linked["payload"]["destination"]["authCredential"], id);
    assert_eq!(
        linked["payload"]["destination"]["verified"], false,
        "a new credential must be verified again"
    );
    let (_, read) = engine.get(&dest_path).await;
    assert_eq!(read["payload"]["destination"]["authCredential"], id);

    let (status, answer) = engine
        .patch(&dest_path, json!({"authCredential": elsewhere["id"]}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&answer).contains("another environment"), "{answer}");
    let (status, answer) = engine
        .patch(&dest_path, json!({"authCredential": "no-such-credential"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&answer).contains("no auth credential"), "{answer}");
    let (_, read) = engine.get(&dest_path).await;
    assert_eq!(
        read["payload"]["destination"]["authCredential"], id,
        "refusals change nothing"
    );

    // A destination can be created linked, too.
    let (status, second) = engine
        .post(
            &format!("/platform/v1/environments/{dev}/destinations"),
            json!({"name": "Second", "authCredential": id}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["payload"]["destination"]["authCredential"], id);
    let second = second["payload"]["destination"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, answer) = delete(&engine, &format!("{CREDENTIALS}/{id}")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let message = error(&answer);
    assert!(
        message.contains(&destination) && message.contains(&second),
        "{message}"
    );
    assert!(message.contains("\"authCredential\": null"), "{message}");

    for d in [&destination, &second] {
        let (status, unlinked) = engine
            .patch(
                &format!("/platform/v1/destinations/{d}"),
                json!({"authCredential": null}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            unlinked["payload"]["destination"]["authCredential"],
            Value::Null
        );
    }
    let (status, deleted) = delete(&engine, &format!("{CREDENTIALS}/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(
        deleted["payload"]["message"],
        format!("Auth credential id [{id}] was successfully deleted.")
    );
    let (status, _) = engine.get(&format!("{CREDENTIALS}/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = delete(&engine, &format!("{CREDENTIALS}/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn secrets_are_sealed_at_rest() {
    let engine = Engine::start(true).await;
    let dev = engine.environment("Development").await;
    let mut fields = examples()[1].1.clone();
    fields["clientId"] = json!("distinctive-client-id-0451");
    create(&engine, "OAuth_2.0_2-legged", &dev, fields).await;
    create(
        &engine,
        "JWT_Bearer",
        &dev,
        json!({"issuer": "i", "audience": "a", "privateKey": EC_PEM}),
    )
    .await;
    // What the database holds: SQLite's files (the WAL too), or every PostgreSQL row as text.
    let bytes = match &engine.pg {
        Some(pg) => pg.dump().into_bytes(),
        None => {
            let db = engine._dir.path().join("engine").join("engine.db");
            let mut bytes = std::fs::read(&db).unwrap();
            bytes.extend(std::fs::read(db.with_extension("db-wal")).unwrap_or_default());
            bytes
        }
    };
    let contains = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(
        contains("distinctive-client-id-0451"),
        "the non-secret fields are on disk, so the search works"
    );
    for secret in [
        SECRETS[2],
        SECRETS[3],
        "MIGHAgEAMBMGByqGSM49",
        "PRIVATE KEY",
    ] {
        assert!(!contains(secret), "{secret} is stored in clear");
    }
}
