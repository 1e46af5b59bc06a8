//! Auth credentials end to end: a real engine delivers to a real destination over HTTP with
//! each of the six strategies (docs/PROTOCOL.md section 5). For each: Verify and Save fails with
//! a wrong credential and says why, succeeds with the right one, and a message is delivered
//! and kept. Token strategies also show the 401 -> new token -> one retry rule, and a token
//! endpoint that refuses shows its reason in the attempt's log.
//!
//! The only stand-in is Google: GoogleWIF talks to a local security token service and
//! impersonation endpoint (a `Recorder`) that checks the engine's subject token against the
//! engine's published JWKS and answers with ID tokens signed by its own key, as Google would.

use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wharf_auth::jwks::KeySet;
use wharf_auth::keys::SigningKey;
use wharf_testkit::{Received, Recorder, Reply, wait_until};

use super::TestDir;

const KEY: &str = "management-key-0123456789-0123456";
const SOURCE_KEY: &str = "source-key-0123456789abcdef-01234";
const TOKEN: &str = "dest-token-0123456789abcdef-01234";

pub(crate) struct Engine {
    _running: wharf_engine::Running,
    base: String,
    client: reqwest::Client,
    _dir: TestDir,
}

impl Engine {
    pub(crate) async fn start() -> Engine {
        let dir = TestDir::new();
        let text = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n{}organization = \"Acme Health\"\napi_keys = [\"{KEY}\"]\nmaster_key = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\nallow_private_endpoints = true\nretry_ladder = [\"0s\", \"200ms\"]\ndelivery_timeout = \"5s\"\n[[sources]]\nname = \"EHR feed\"\napi_key = \"{SOURCE_KEY}\"\n",
            dir.path().join("engine").display(),
            dir.database_toml()
        );
        let config = wharf_engine::EngineConfig::parse(&text, &wharf_config::ProcessEnv).unwrap();
        let running = wharf_engine::start(config).await.unwrap();
        Engine {
            base: format!("http://{}", running.local_addr()),
            _running: running,
            client: reqwest::Client::new(),
            _dir: dir,
        }
    }

    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(KEY);
        if let Some(body) = body {
            request = request.json(&json!({"meta": {"version": "1.0.0"}, "payload": body}));
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn development(&self) -> String {
        let (_, orgs) = self
            .call(reqwest::Method::GET, "/platform/v1/organizations", None)
            .await;
        let org = orgs["payload"]["organizations"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (_, envs) = self
            .call(
                reqwest::Method::GET,
                &format!("/platform/v1/organizations/{org}/environments"),
                None,
            )
            .await;
        envs["payload"]["environments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["environmentFlag"] == "Development")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Creates an auth credential; returns its view.
    async fn credential(&self, strategy: &str, fields: Value) -> Value {
        let mut body = json!({"name": format!("{strategy} credential"), "environmentId": self.development().await, "authStrategy": strategy});
        for (k, v) in fields.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, view) = self
            .call(
                reqwest::Method::POST,
                "/platform/v1/authcredentials",
                Some(body),
            )
            .await;
        assert_eq!(status, 200, "{view}");
        view["payload"]["credential"].clone()
    }

    async fn destination(&self, endpoint: &str, credential: &str) -> String {
        let env = self.development().await;
        let (status, view) = self
            .call(
                reqwest::Method::POST,
                &format!("/platform/v1/environments/{env}/destinations"),
                Some(json!({"name": "Acme", "endpoint": endpoint, "verificationToken": TOKEN, "authCredential": credential})),
            )
            .await;
        assert_eq!(status, 200, "{view}");
        view["payload"]["destination"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn link(&self, destination: &str, credential: &str) {
        let (status, view) = self
            .call(
                reqwest::Method::PATCH,
                &format!("/platform/v1/destinations/{destination}"),
                Some(json!({"authCredential": credential})),
            )
            .await;
        assert_eq!(status, 200, "{view}");
        assert_eq!(
            view["payload"]["destination"]["verified"], false,
            "a new credential needs verifying again"
        );
    }

    pub(crate) async fn verify(&self, destination: &str) -> (u16, Value) {
        self.call(
            reqwest::Method::POST,
            &format!("/platform/v1/destinations/{destination}/verify"),
            Some(json!({})),
        )
        .await
    }

    pub(crate) async fn submit(&self, destination: &str, n: usize) -> String {
        let body = json!({
            "Meta": {"DataModel": "PatientAdmin", "EventType": "Arrival", "Destinations": [{"ID": destination}]},
            "Patient": {"Number": n},
        });
        let response = self
            .client
            .post(format!("{}/endpoint", self.base))
            .bearer_auth(SOURCE_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["Meta"]["Logs"][0]["ID"].as_str().unwrap().to_owned()
    }

    pub(crate) async fn log(&self, id: &str) -> Value {
        let (_, orgs) = self
            .call(reqwest::Method::GET, "/platform/v1/organizations", None)
            .await;
        let org = orgs["payload"]["organizations"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        self.call(
            reqwest::Method::GET,
            &format!("/platform/v1/organizations/{org}/logs/{id}"),
            None,
        )
        .await
        .1["payload"]["result"]
            .clone()
    }

    /// Waits until log `id` has at least `attempts` attempts; returns it.
    pub(crate) async fn log_after(&self, id: &str, attempts: u64) -> Value {
        for _ in 0..200 {
            let log = self.log(id).await;
            if log["attempts"]["total"].as_u64().unwrap_or(0) >= attempts
                && log["status"] != "pending"
                || log["status"] == "succeeded"
            {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.log(id).await
    }
}

struct Destination {
    running: Option<wharf_destination::Running>,
    port: u16,
    dir: TestDir,
    auth: String,
}

impl Destination {
    /// A Development destination at `/redox` with [`TOKEN`] and the given auth table.
    async fn start(auth: &str) -> Destination {
        let dir = TestDir::new();
        let mut d = Destination {
            running: None,
            port: 0,
            dir,
            auth: auth.to_owned(),
        };
        d.boot().await;
        d
    }

    async fn boot(&mut self) {
        if self.port == 0 {
            // Known before the start: the token endpoint's URL (`public_url`) names it.
            self.port = crate::free_port();
        }
        let text = format!(
            "listen = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\ndata_dir = \"{}\"\n{}[[destinations]]\nname = \"Acme\"\npath = \"/redox\"\nenvironment = \"Development\"\nverification_token = \"{TOKEN}\"\n[destinations.auth]\n{}\n",
            self.dir.path().join("data").display(),
            self.dir.database_toml(),
            self.auth,
            port = self.port,
        );
        let config = wharf_destination::Config::parse(&text, &wharf_config::ProcessEnv).unwrap();
        let running = wharf_destination::start(config).await.unwrap();
        self.port = running.local_addr().port();
        self.running = Some(running);
    }

    /// Restarts with a new auth table (same port and inbox): issued tokens are forgotten.
    async fn restart(&mut self, auth: &str) {
        self.running.take().unwrap().shutdown().await;
        self.auth = auth.to_owned();
        self.boot().await;
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn kept(&self) -> usize {
        self.running
            .as_ref()
            .unwrap()
            .inbox()
            .reader()
            .list(&wharf_store::ListQuery::oldest(1000))
            .unwrap()
            .len()
    }
}

/// The whole story for one strategy: a wrong credential fails Verify and Save with `why`,
/// the right one verifies, and a message is delivered and kept.
async fn verify_and_deliver(
    engine: &Engine,
    dest: &Destination,
    wrong: &Value,
    right: &Value,
    why: &str,
) -> String {
    let id = engine
        .destination(&dest.url("/redox"), wrong["id"].as_str().unwrap())
        .await;
    let (status, body) = engine.verify(&id).await;
    assert_eq!(status, 422, "{body}");
    let reason = body["errors"][0]["message"].as_str().unwrap();
    assert!(reason.contains(why), "expected {why:?} in {reason:?}");
    assert_eq!(dest.kept(), 0);

    engine.link(&id, right["id"].as_str().unwrap()).await;
    let (status, body) = engine.verify(&id).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["payload"]["destination"]["verified"], true);

    let log = engine.submit(&id, 1).await;
    let log = engine.log_after(&log, 1).await;
    assert_eq!(log["status"], "succeeded", "{log}");
    assert!(wait_until(Duration::from_secs(5), || dest.kept() == 1).await);
    id
}

/// The engine's published JWKS for a key-holding credential, fetched without a management key.
async fn engine_jwks(engine: &Engine, credential: &Value) -> Value {
    let url = credential["jwksUrl"].as_str().unwrap();
    assert!(url.starts_with(&engine.base), "{url}");
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn oauth_2_legged_end_to_end_with_token_refresh_after_401_and_token_endpoint_failures() {
    let engine = Engine::start().await;
    let auth = "strategy = \"OAuth_2.0_2-legged\"\ntoken_path = \"/redox/token\"\nclients = [{ client_id = \"redox\", client_secret = \"right-secret-0123456789abcdef-0123456789\" }]";
    let mut dest = Destination::start(auth).await;
    let fields = |secret: &str| json!({"url": dest.url("/redox/token"), "clientId": "redox", "clientSecret": secret, "scopes": ["write"]});
    let wrong = engine
        .credential("OAuth_2.0_2-legged", fields("wrong-secret"))
        .await;
    let right = engine
        .credential(
            "OAuth_2.0_2-legged",
            fields("right-secret-0123456789abcdef-0123456789"),
        )
        .await;
    let id = verify_and_deliver(&engine, &dest, &wrong, &right, "invalid_client").await;

    // A restarted destination forgot the token it issued (on SQLite; on PostgreSQL the
    // servers' shared database keeps it): the engine's cached token gets 401, a new token is
    // fetched and the same attempt succeeds. Either way it is one attempt.
    dest.restart(auth).await;
    let log = engine.submit(&id, 2).await;
    let log = engine.log_after(&log, 1).await;
    assert_eq!(log["status"], "succeeded", "{log}");
    assert_eq!(
        log["attempts"]["total"], 1,
        "the retry after 401 is part of one attempt"
    );
    assert!(wait_until(Duration::from_secs(5), || dest.kept() == 2).await);

    // The destination rotates the secret: tokens issued under the old one are refused (also
    // from the shared database), the token endpoint refuses, the attempt fails with the token
    // endpoint's reason, and nothing is kept.
    dest.restart(&auth.replace("right-secret", "rotated-secret"))
        .await;
    let log = engine.submit(&id, 3).await;
    let log = engine.log_after(&log, 1).await;
    let error = log["attemptList"][0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("token endpoint")
            && error.contains("401")
            && error.contains("invalid_client"),
        "{log}"
    );
    assert!(!error.contains("right-secret"));
    assert_eq!(dest.kept(), 2);
}

#[tokio::test]
async fn oauth_2_legged_with_renamed_fields_json_body_and_no_basic() {
    // A token endpoint with its own parameter names, as some customers run: a Recorder
    // standing in for it checks that every renamed field arrives.
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let seen_by_endpoint = seen.clone();
    let token_endpoint = Recorder::start(move |_, r: &Received| {
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        seen_by_endpoint.lock().unwrap().push(body.clone());
        let ok = r.header("authorization").is_none()
            && r.header("content-type") == Some("application/json")
            && body == json!({"gt": "client_credentials", "cid": "redox", "csec": "s3cret", "tenant": "t-1", "audience": "https://dest", "resource": "https://res", "scope": "a b"});
        if ok {
            Reply::json(200, r#"{"tok":"opaque-token-1","ttl":"600"}"#)
        } else {
            Reply::json(400, r#"{"error":"invalid_request"}"#)
        }
    })
    .await;
    let endpoint = Recorder::start(|_, r: &Received| {
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        if r.header("authorization") != Some("Bearer opaque-token-1") {
            return Reply::status(401);
        }
        // A challenge carries the verification token in its body, a message in its header.
        match body["challenge"].as_str() {
            Some(c) if body["verification-token"] == TOKEN => Reply {
                status: 200,
                content_type: "text/plain",
                body: c.as_bytes().to_vec(),
                delay: Duration::ZERO,
            },
            None if r.header("verification-token") == Some(TOKEN) => Reply::status(200),
            _ => Reply::status(403),
        }
    })
    .await;
    let engine = Engine::start().await;
    let credential = engine
        .credential(
            "OAuth_2.0_2-legged",
            json!({
                "url": token_endpoint.url("/oauth"), "clientId": "redox", "clientSecret": "s3cret",
                "noBasic": true, "contentType": "application/json", "grantTypeName": "gt",
                "clientIdName": "cid", "clientSecretName": "csec", "accessTokenName": "tok",
                "expiresFieldName": "ttl", "customFieldName": "tenant", "customFieldValue": "t-1",
                "audience": "https://dest", "resource": "https://res", "scopes": "a b",
            }),
        )
        .await;
    let id = engine
        .destination(&endpoint.url("/redox"), credential["id"].as_str().unwrap())
        .await;
    let (status, body) = engine.verify(&id).await;
    assert_eq!(
        status,
        200,
        "{body} / token endpoint saw {:?}",
        seen.lock().unwrap()
    );
    let log = engine.submit(&id, 1).await;
    assert_eq!(engine.log_after(&log, 1).await["status"], "succeeded");
    assert_eq!(
        token_endpoint.count(),
        1,
        "the token is cached between Verify and delivery"
    );
}

#[tokio::test]
async fn smart_backend_end_to_end_with_the_engines_published_keys() {
    let engine = Engine::start().await;
    let right = engine.credential("SMART_Backend", json!({"url": "http://placeholder/", "clientId": "redox-smart", "scopes": "system/*.write"})).await;
    assert_eq!(
        right["algorithm"], "ES384",
        "generated SMART keys are ES384"
    );
    let jwks = engine_jwks(&engine, &right).await;
    assert_eq!(jwks["keys"][0]["kid"], right["kid"]);
    assert!(jwks["keys"][0].get("d").is_none());
    // Another credential with its own key, registered nowhere: its assertions must fail.
    let wrong = engine
        .credential(
            "SMART_Backend",
            json!({"url": "http://placeholder/", "clientId": "redox-smart", "algorithm": "RS384"}),
        )
        .await;
    let auth = format!(
        "strategy = \"SMART_Backend\"\ntoken_path = \"/redox/token\"\nclients = [{{ client_id = \"redox-smart\", jwks_url = \"{}\" }}]",
        right["jwksUrl"].as_str().unwrap()
    );
    let dest = Destination::start(&auth).await;
    for c in [&wrong, &right] {
        let id = c["id"].as_str().unwrap();
        let (status, body) = engine
            .call(
                reqwest::Method::PATCH,
                &format!("/platform/v1/authcredentials/{id}"),
                Some(json!({"url": dest.url("/redox/token")})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    verify_and_deliver(&engine, &dest, &wrong, &right, "invalid_client").await;
}

#[tokio::test]
async fn jwt_bearer_end_to_end() {
    let engine = Engine::start().await;
    let fields = |aud: &str| json!({"issuer": "https://wharf-engine.example", "audience": aud, "lifetimeSeconds": 120});
    let wrong = engine
        .credential("JWT_Bearer", fields("https://someone-else.example"))
        .await;
    let right = engine
        .credential("JWT_Bearer", fields("https://acme.example/redox"))
        .await;
    assert_eq!(right["algorithm"], "RS256");
    let dest = Destination::start(&format!(
        "strategy = \"JWT_Bearer\"\nissuer = \"https://wharf-engine.example\"\naudience = \"https://acme.example/redox\"\njwks_url = \"{}\"",
        right["jwksUrl"].as_str().unwrap()
    ))
    .await;
    // The wrong credential's key is not in the JWKS either; the audience check comes first
    // only if its kid were known, so the reason is the one for an unknown key.
    verify_and_deliver(&engine, &dest, &wrong, &right, "403").await;
}

#[tokio::test]
async fn aws_sigv4_end_to_end() {
    let engine = Engine::start().await;
    let fields = |secret: &str| json!({"accessKey": "AKIDWHARFTEST", "secretKey": secret, "serviceName": "execute-api", "awsRegion": "us-east-1"});
    let wrong = engine
        .credential("AwsSigv4", fields("not-the-secret"))
        .await;
    let right = engine
        .credential(
            "AwsSigv4",
            fields("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        )
        .await;
    let dest = Destination::start(
        "strategy = \"AwsSigv4\"\nregion = \"us-east-1\"\nservice = \"execute-api\"\ncredentials = [{ access_key = \"AKIDWHARFTEST\", secret_key = \"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\" }]",
    )
    .await;
    verify_and_deliver(&engine, &dest, &wrong, &right, "403").await;
}

#[tokio::test]
async fn gcp_jwt_grant_end_to_end() {
    let engine = Engine::start().await;
    let sa = "wharf@acme-project.iam.gserviceaccount.com";
    let right = engine.credential("OAuth_2.0_JWT_Bearer_GCP", json!({"serviceAccountEmail": sa, "tokenUrl": "http://placeholder/", "scopes": ["https://www.googleapis.com/auth/cloud-platform"]})).await;
    let wrong = engine.credential("OAuth_2.0_JWT_Bearer_GCP", json!({"serviceAccountEmail": "stranger@evil.iam.gserviceaccount.com", "tokenUrl": "http://placeholder/"})).await;
    let dest = Destination::start(&format!(
        "strategy = \"OAuth_2.0_JWT_Bearer_GCP\"\ntoken_path = \"/redox/token\"\nclients = [{{ client_id = \"{sa}\", jwks_url = \"{}\" }}]",
        right["jwksUrl"].as_str().unwrap()
    ))
    .await;
    for c in [&wrong, &right] {
        let id = c["id"].as_str().unwrap();
        let (status, body) = engine
            .call(
                reqwest::Method::PATCH,
                &format!("/platform/v1/authcredentials/{id}"),
                Some(json!({"tokenUrl": dest.url("/redox/token")})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    verify_and_deliver(&engine, &dest, &wrong, &right, "invalid_grant").await;
}

/// A local stand-in for Google's security token service and IAM credentials API.
struct FakeGoogle {
    recorder: Recorder,
    /// The engine's keys, which the workload identity pool trusts (set once published).
    trusted: Arc<Mutex<Option<KeySet>>>,
}

const GOOGLE_ISSUER: &str = "https://accounts.google.example";
const POOL: &str =
    "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/wharf/providers/engine";

impl FakeGoogle {
    async fn start() -> FakeGoogle {
        let trusted: Arc<Mutex<Option<KeySet>>> = Arc::default();
        let signer = Arc::new(
            SigningKey::generate(jsonwebtoken::Algorithm::RS256, Some("google-1")).unwrap(),
        );
        let (keys, key) = (trusted.clone(), signer.clone());
        let recorder = Recorder::start(move |_, r: &Received| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
            match r.path.as_str() {
                "/certs" => Reply::json(200, &wharf_auth::keys::jwks_document([key.as_ref()]).to_string()),
                "/v1/token" => {
                    // RFC 8693 exchange: the subject token must be the engine's, for our pool.
                    let form: Vec<(String, String)> = url_pairs(&String::from_utf8_lossy(&r.body));
                    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
                    let guard = keys.lock().unwrap();
                    let Some(trusted) = guard.as_ref() else { return Reply::json(400, r#"{"error":"invalid_grant"}"#) };
                    let rules = wharf_auth::jwt::Rules::new(vec![], vec![POOL.into()]);
                    let ok = get("grant_type") == wharf_auth::client::TOKEN_EXCHANGE_GRANT
                        && get("subject_token_type") == "urn:ietf:params:oauth:token-type:jwt"
                        && wharf_auth::jwt::verify(&get("subject_token"), trusted, &rules, &wharf_auth::SystemClock).is_ok();
                    if ok {
                        Reply::json(200, r#"{"access_token":"sts-federated-token","token_type":"Bearer","expires_in":3600}"#)
                    } else {
                        Reply::json(400, r#"{"error":"invalid_grant","error_description":"the subject token was refused"}"#)
                    }
                }
                p if p.ends_with(":generateIdToken") => {
                    if r.header("authorization") != Some("Bearer sts-federated-token") {
                        return Reply::json(401, r#"{"error":{"code":401}}"#);
                    }
                    let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
                    let token = key
                        .sign(&json!({"iss": GOOGLE_ISSUER, "aud": body["audience"], "sub": "1234567890", "email": "wharf@acme.iam.gserviceaccount.com", "iat": now, "exp": now + 3600}))
                        .unwrap();
                    Reply::json(200, &json!({"token": token}).to_string())
                }
                _ => Reply::status(404),
            }
        })
        .await;
        FakeGoogle { recorder, trusted }
    }
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{query}"))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[tokio::test]
async fn google_wif_end_to_end_through_a_local_token_service() {
    let google = FakeGoogle::start().await;
    let engine = Engine::start().await;
    let fields = |audience: &str| {
        json!({
            "audience": audience,
            "token_url": google.recorder.url("/v1/token"),
            "service_account_impersonation_url": google.recorder.url("/v1/projects/-/serviceAccounts/wharf@acme.iam.gserviceaccount.com:generateIdToken"),
            "idTokenAudience": "https://acme.example/redox",
        })
    };
    let right = engine.credential("GoogleWIF", fields(POOL)).await;
    let wrong = engine
        .credential("GoogleWIF", fields("//iam.googleapis.com/some/other/pool"))
        .await;
    let published = engine_jwks(&engine, &right).await;
    *google.trusted.lock().unwrap() =
        Some(KeySet::from_jwks_bytes(published.to_string().as_bytes()).unwrap());
    let dest = Destination::start(&format!(
        "strategy = \"GoogleWIF\"\nissuer = \"{GOOGLE_ISSUER}\"\naudience = \"https://acme.example/redox\"\njwks_url = \"{}\"",
        google.recorder.url("/certs")
    ))
    .await;
    verify_and_deliver(&engine, &dest, &wrong, &right, "invalid_grant").await;
}
