//! Integration tests of the engine's management API over real sockets: every route, the
//! destination rules of docs/PROTOCOL.md section 1, and Verify and Save against real endpoints.

use reqwest::StatusCode;
use serde_json::{Value, json};
use wharf_engine::{EngineConfig, Running};
use wharf_testkit::{Received, Recorder, Reply};

mod alert_rules;
mod authcredentials;
mod client;
mod dashboard;
mod delivery;
mod faults;
mod log_search;
mod openapi;
mod operations;
mod outage;
mod platform_api;
mod queries;
mod rate_limit;
mod routing;
mod security;
mod ssrf;

const KEY: &str = "management-key-0123456789-0123456";

struct Engine {
    running: Option<Running>,
    _dir: tempfile::TempDir,
    /// The engine's PostgreSQL schema when the suite runs on PostgreSQL
    /// (`WHARF_TEST_BACKEND=postgres`), dropped with the engine.
    pg: Option<wharf_testkit::postgres::PgSchema>,
    base: String,
    client: reqwest::Client,
}

impl Engine {
    /// The engine's data directory (to reopen its store after shutdown).
    fn data_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("engine")
    }

    async fn start(allow_private: bool) -> Engine {
        Engine::start_with(allow_private, "").await
    }

    async fn start_with(allow_private: bool, extra: &str) -> Engine {
        Engine::start_tuned(tempfile::tempdir().unwrap(), allow_private, extra, |_| {}).await
    }

    /// An engine on `dir` whose parsed configuration `tune` may change (settings no file has,
    /// such as a scripted DNS resolver).
    async fn start_tuned(
        dir: tempfile::TempDir,
        allow_private: bool,
        extra: &str,
        tune: impl FnOnce(&mut EngineConfig),
    ) -> Engine {
        let pg = wharf_testkit::postgres::backend_is_postgres()
            .then(wharf_testkit::postgres::PgSchema::create);
        Engine::start_on(dir, pg, allow_private, extra, tune).await
    }

    /// An engine on PostgreSQL in `pg`'s schema, or on SQLite in `dir` without one.
    async fn start_on(
        dir: tempfile::TempDir,
        pg: Option<wharf_testkit::postgres::PgSchema>,
        allow_private: bool,
        extra: &str,
        tune: impl FnOnce(&mut EngineConfig),
    ) -> Engine {
        let database = pg
            .as_ref()
            .map(|s| format!("database_url = \"{}\"\n", s.url))
            .unwrap_or_default();
        let text = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\norganization = \"Acme Health\"\napi_keys = [\"{KEY}\"]\nmaster_key = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\nallow_private_endpoints = {allow_private}\n{database}{extra}\n",
            dir.path().join("engine").display()
        );
        let mut config = EngineConfig::parse(&text, &wharf_config::ProcessEnv).unwrap();
        tune(&mut config);
        let running = wharf_engine::start(config).await.unwrap();
        Engine {
            base: format!("http://{}", running.local_addr()),
            running: Some(running),
            _dir: dir,
            pg,
            client: reqwest::Client::new(),
        }
    }

    /// The engine's store, opened beside it (it never takes a queue's lease).
    fn store(&self) -> wharf_store::engine::EngineStore {
        let database = wharf_store::Database::from_config(
            &self.data_dir(),
            self.pg.as_ref().map(|s| s.url.as_str()),
        );
        let options = wharf_store::engine::EngineStoreOptions {
            work_queues: false,
            ..Default::default()
        };
        wharf_store::engine::EngineStore::open_database(&database, &options).unwrap()
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(KEY);
        if let Some(body) = body {
            request = request.json(&json!({"meta": {"version": "1.0.0"}, "payload": body}));
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::PATCH, path, Some(body)).await
    }

    /// Stops this engine and starts another on the same data directory.
    async fn restart(mut self, allow_private: bool, extra: &str) -> Engine {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
        Engine::start_on(self._dir, self.pg, allow_private, extra, |_| {}).await
    }

    /// The environment id for a flag.
    async fn environment(&self, flag: &str) -> String {
        let (_, orgs) = self.get("/platform/v1/organizations").await;
        let org = orgs["payload"]["organizations"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (_, envs) = self
            .get(&format!("/platform/v1/organizations/{org}/environments"))
            .await;
        envs["payload"]["environments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["environmentFlag"] == flag)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

fn error(body: &Value) -> &str {
    body["errors"][0]["message"].as_str().unwrap()
}

/// A destination endpoint that answers challenges correctly when `token` matches.
async fn echoing_endpoint(token: &'static str) -> Recorder {
    Recorder::start(move |_, r: &Received| {
        let from_body: Option<Value> = serde_json::from_slice(&r.body).ok();
        let from_query: Vec<(String, String)> =
            r.query.as_deref().map(url_pairs).unwrap_or_default();
        let lookup = |k: &str| {
            from_body
                .as_ref()
                .and_then(|b| b[k].as_str().map(str::to_owned))
                .or_else(|| {
                    from_query
                        .iter()
                        .find(|(n, _)| n == k)
                        .map(|(_, v)| v.clone())
                })
        };
        match (lookup("verification-token"), lookup("challenge")) {
            (Some(t), Some(c)) if t == token => Reply {
                status: 200,
                content_type: "text/plain",
                body: c.into_bytes(),
                delay: std::time::Duration::ZERO,
            },
            _ => Reply::status(403),
        }
    })
    .await
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{query}"))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[tokio::test]
async fn the_api_needs_a_valid_management_key() {
    let engine = Engine::start(true).await;
    let url = format!("{}/platform/v1/organizations", engine.base);
    let none = engine.client.get(&url).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    let wrong = engine
        .client
        .get(&url)
        .bearer_auth("management-key-012345678X")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["meta"]["version"], "1.0.0");
    assert!(error(&body).contains("not valid"));
}

#[tokio::test]
async fn organizations_and_their_three_environments() {
    let engine = Engine::start(true).await;
    let (status, orgs) = engine.get("/platform/v1/organizations").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(orgs["meta"]["version"], "1.0.0");
    assert_eq!(orgs["payload"]["organizations"][0]["name"], "Acme Health");
    let org = orgs["payload"]["organizations"][0]["id"].as_str().unwrap();
    let (_, envs) = engine
        .get(&format!("/platform/v1/organizations/{org}/environments"))
        .await;
    let flags: Vec<_> = envs["payload"]["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["environmentFlag"].clone())
        .collect();
    assert_eq!(flags, ["Development", "Staging", "Production"]);
    for env in envs["payload"]["environments"].as_array().unwrap() {
        assert!(env["id"].is_string() && env["name"].is_string());
        assert_eq!(env["organization"]["id"], org);
    }
    let (status, _) = engine
        .get("/platform/v1/organizations/nope/environments")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn destination_crud_never_returns_the_token() {
    let engine = Engine::start(true).await;
    let dev = engine.environment("Development").await;
    let (status, created) = engine
        .post(
            &format!("/platform/v1/environments/{dev}/destinations"),
            json!({"name": "Acme Scheduling", "endpoint": "http://127.0.0.1:9/redox", "verificationToken": "secret-token-123-0123456789abcdef"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let d = &created["payload"]["destination"];
    assert_eq!(d["environment"]["id"], dev.as_str());
    assert_eq!(d["environment"]["environmentFlag"], "Development");
    for gone in ["organizationId", "environmentId", "environmentFlag"] {
        assert!(d.get(gone).is_none(), "{gone} is not Redox's: {d}");
    }
    assert_eq!(d["dataFormat"], "JSON");
    assert_eq!(d["verificationMethod"], "POST");
    assert_eq!(d["hasVerificationToken"], true);
    assert_eq!(d["verified"], false);
    assert!(
        !created
            .to_string()
            .contains("secret-token-123-0123456789abcdef")
    );
    let id = d["id"].as_str().unwrap();

    let (_, listed) = engine
        .get(&format!("/platform/v1/environments/{dev}/destinations"))
        .await;
    assert_eq!(
        listed["payload"]["destinations"].as_array().unwrap().len(),
        1
    );
    assert!(
        !listed
            .to_string()
            .contains("secret-token-123-0123456789abcdef")
    );

    let (status, patched) = engine
        .patch(
            &format!("/platform/v1/destinations/{id}"),
            json!({"name": "Renamed", "dataFormat": "FHIR"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(patched["payload"]["destination"]["name"], "Renamed");
    assert_eq!(patched["payload"]["destination"]["dataFormat"], "FHIR");
    let (_, read) = engine.get(&format!("/platform/v1/destinations/{id}")).await;
    assert_eq!(read["payload"]["destination"]["name"], "Renamed");

    let (status, deleted) = engine
        .call(
            reqwest::Method::DELETE,
            &format!("/platform/v1/destinations/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        deleted["payload"]["message"],
        format!("Destination id [{id}] was successfully deleted.")
    );
    let (status, _) = engine.get(&format!("/platform/v1/destinations/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn destination_rules() {
    let engine = Engine::start(true).await;
    let dev = engine.environment("Development").await;
    let prod = engine.environment("Production").await;
    let create = |env: &str, body: Value| {
        let path = format!("/platform/v1/environments/{env}/destinations");
        let engine = &engine;
        async move { engine.post(&path, body).await }
    };
    let (status, body) = create(&dev, json!({"endpoint": "http://x.test/"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&body).contains("`name` is required"));
    let (status, body) = create(&prod, json!({"name": "P", "endpoint": "http://x.test/"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error(&body),
        "Production and staging destinations must use HTTPS"
    );
    let (status, _) = create(&prod, json!({"name": "P", "endpoint": "https://x.test/"})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = create(&dev, json!({"name": "D", "dataFormat": "CSV"})).await;
    assert!(error(&body).contains("dataFormat"));
    let (_, body) = create(&dev, json!({"name": "D", "verificationMethod": "PUT"})).await;
    assert!(error(&body).contains("POST or GET"));
    let (_, body) = create(&dev, json!({"name": "D", "verificationToken": "has space"})).await;
    assert!(error(&body).contains("verificationToken"));
    let (_, body) = create(&dev, json!({"name": "D", "endpoit": "typo"})).await;
    assert!(error(&body).contains("unknown field `endpoit`"));
    let (_, body) = create(&dev, json!({"name": "D", "endpoint": "not a url"})).await;
    assert!(error(&body).contains("not a URL"));
    // Redox's read-only fields must agree with the path; cloud destinations are refused.
    let (status, body) = create(
        &dev,
        json!({"name": "D", "environment": {"id": prod, "environmentFlag": "Production"}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&body).contains("environment.id"), "{body}");
    let (status, body) = create(
        &dev,
        json!({"name": "D", "cloudProviderSettings": {"provider": "gcp"}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&body).contains("cloudProviderSettings"), "{body}");
    let (status, _) = engine
        .post(
            "/platform/v1/environments/nope/destinations",
            json!({"name": "D"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A destination saved half-way (no endpoint yet) is allowed: the wizard resumes it later.
    let (status, _) = create(&dev, json!({"name": "In progress"})).await;
    assert_eq!(status, StatusCode::OK);
}

async fn create_destination(engine: &Engine, endpoint: &str, token: &str, method: &str) -> String {
    let dev = engine.environment("Development").await;
    let (_, created) = engine
        .post(
            &format!("/platform/v1/environments/{dev}/destinations"),
            json!({"name": "Acme", "endpoint": endpoint, "verificationToken": token, "verificationMethod": method}),
        )
        .await;
    created["payload"]["destination"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn verify_and_save_by_post_and_get() {
    let engine = Engine::start(true).await;
    let endpoint = echoing_endpoint("right-token-123-0123456789abcdefg").await;
    for method in ["POST", "GET"] {
        let id = create_destination(
            &engine,
            &endpoint.url(&format!("/{method}")),
            "right-token-123-0123456789abcdefg",
            method,
        )
        .await;
        let (status, verified) = engine
            .post(&format!("/platform/v1/destinations/{id}/verify"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{method}: {verified}");
        assert_eq!(verified["payload"]["destination"]["verified"], true);
        assert!(
            verified["payload"]["destination"]["verifiedAt"]
                .as_str()
                .unwrap()
                .ends_with('Z')
        );
    }
    let sent = endpoint.received();
    assert_eq!(sent[0].header("application-name"), Some("RedoxEngine"));
    assert!(sent[1].query.as_deref().unwrap().contains("challenge="));
}

#[tokio::test]
async fn verify_failures_say_why_and_save_nothing() {
    let engine = Engine::start(true).await;
    let endpoint = echoing_endpoint("right-token-123-0123456789abcdefg").await;
    let id = create_destination(
        &engine,
        &endpoint.url("/redox"),
        "wrong-token-456-0123456789abcdefg",
        "POST",
    )
    .await;
    let path = format!("/platform/v1/destinations/{id}/verify");
    let (status, body) = engine.post(&path, json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error(&body).contains("HTTP 403"), "{body}");

    let lazy = Recorder::start(|_, _| Reply::json(200, "{\"ok\":true}")).await;
    let (_, body) = engine
        .post(&path, json!({"endpoint": lazy.url("/x")}))
        .await;
    assert!(
        error(&body).contains("does not contain the challenge"),
        "{body}"
    );
    // Nothing was saved by the failed attempt.
    let (_, read) = engine.get(&format!("/platform/v1/destinations/{id}")).await;
    assert_eq!(
        read["payload"]["destination"]["endpoint"],
        endpoint.url("/redox")
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (_, body) = engine
        .post(&path, json!({"endpoint": format!("http://{closed}/")}))
        .await;
    assert!(error(&body).contains("connection refused"), "{body}");
    let (_, body) = engine
        .post(&path, json!({"endpoint": "http://wharf-test.invalid/hook"}))
        .await;
    assert!(error(&body).contains("DNS error"), "{body}");

    // Fixing the token in the verify body succeeds and saves it.
    let (status, body) = engine
        .post(
            &path,
            json!({"verificationToken": "right-token-123-0123456789abcdefg"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["payload"]["destination"]["verified"], true);
}

#[tokio::test]
async fn verify_reports_tls_failures_and_timeouts() {
    let engine = Engine::start(true).await;
    // A plain-HTTP server behind an https:// endpoint: the TLS handshake cannot succeed.
    let plain = Recorder::ok().await;
    let id = create_destination(
        &engine,
        &format!("https://{}/hook", plain.addr),
        "right-token-123-0123456789abcdefg",
        "POST",
    )
    .await;
    let path = format!("/platform/v1/destinations/{id}/verify");
    let (status, body) = engine.post(&path, json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error(&body).contains("TLS error"), "{body}");

    // A server that accepts connections and never answers: Verify and Save gives up after 15 s.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let started = std::time::Instant::now();
    let (status, body) = engine
        .post(&path, json!({"endpoint": format!("http://{addr}/hook")}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error(&body).contains("timeout"), "{body}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(14));
}

#[tokio::test]
async fn changing_endpoint_or_token_clears_verification() {
    let engine = Engine::start(true).await;
    let endpoint = echoing_endpoint("right-token-123-0123456789abcdefg").await;
    let id = create_destination(
        &engine,
        &endpoint.url("/a"),
        "right-token-123-0123456789abcdefg",
        "POST",
    )
    .await;
    let verify = format!("/platform/v1/destinations/{id}/verify");
    let patch = format!("/platform/v1/destinations/{id}");
    assert_eq!(engine.post(&verify, json!({})).await.0, StatusCode::OK);
    let (_, same) = engine
        .patch(
            &patch,
            json!({"verificationToken": "right-token-123-0123456789abcdefg", "name": "n"}),
        )
        .await;
    assert_eq!(
        same["payload"]["destination"]["verified"], true,
        "the same token is no change"
    );
    let (_, moved) = engine
        .patch(&patch, json!({"endpoint": endpoint.url("/b")}))
        .await;
    assert_eq!(moved["payload"]["destination"]["verified"], false);
    assert_eq!(engine.post(&verify, json!({})).await.0, StatusCode::OK);
    let (_, retokened) = engine
        .patch(
            &patch,
            json!({"verificationToken": "another-token-789-0123456789abcde"}),
        )
        .await;
    assert_eq!(retokened["payload"]["destination"]["verified"], false);
}

#[tokio::test]
async fn verification_refuses_private_and_metadata_addresses() {
    let engine = Engine::start(false).await;
    let endpoint = echoing_endpoint("right-token-123-0123456789abcdefg").await;
    let id = create_destination(
        &engine,
        &endpoint.url("/redox"),
        "right-token-123-0123456789abcdefg",
        "POST",
    )
    .await;
    let path = format!("/platform/v1/destinations/{id}/verify");
    let (status, body) = engine.post(&path, json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error(&body).contains("allow_private_endpoints"), "{body}");
    let (_, body) = engine
        .post(
            &path,
            json!({"endpoint": "http://169.254.169.254/latest/meta-data"}),
        )
        .await;
    assert!(error(&body).contains("link-local"), "{body}");
    assert_eq!(endpoint.count(), 0, "nothing was sent to a refused address");
}

#[tokio::test]
async fn unknown_routes_and_bad_bodies_get_enveloped_errors() {
    let engine = Engine::start(true).await;
    let (status, body) = engine.get("/platform/v1/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["meta"]["version"], "1.0.0");
    let dev = engine.environment("Development").await;
    let response = engine
        .client
        .post(format!(
            "{}/platform/v1/environments/{dev}/destinations",
            engine.base
        ))
        .bearer_auth(KEY)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert!(error(&body).contains("not valid JSON"));
    engine.running.unwrap().shutdown().await;
}
