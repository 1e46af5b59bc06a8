//! SSRF at the engine: the addresses it refuses to call (Verify and Save, deliveries, queries,
//! auth credentials' token endpoints), a DNS answer that changes after Verify and Save, and
//! redirects, which are never followed. The address rules themselves are unit-tested in
//! `wharf-delivery`'s `ssrf.rs`; here they are shown to hold on every path that calls out.

use super::delivery::{TOKEN, config, endpoint, messages, org_id, query, submit};
use super::*;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wharf_delivery::ssrf::{Lookup, Resolve, SharedResolver};
use wharf_testkit::wait_until;

/// Endpoints that must be refused when `allow_private_endpoints` is false; `{port}` is a live
/// endpoint's port, so a mistake would show as a request it received.
const PRIVATE: &[&str] = &[
    "http://127.0.0.1:{port}/redox",
    "http://localhost:{port}/redox",
    "http://[::1]:{port}/redox",
    "http://[::ffff:127.0.0.1]:{port}/redox",
    "http://[::ffff:7f00:1]:{port}/redox",
    "http://10.0.0.1/redox",
    "http://172.16.5.4/redox",
    "http://192.168.1.1/redox",
    "http://100.64.0.1/redox",
    "http://[fd00::1]/redox",
];

/// Endpoints refused whatever the configuration says.
const ALWAYS: &[&str] = &[
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://100.100.100.200/latest/meta-data/",
    "http://[fe80::1]/redox",
    "http://0.0.0.0:{port}/redox",
    "http://[::]:{port}/redox",
    "http://224.0.0.1/redox",
];

fn at(pattern: &str, port: u16) -> String {
    pattern.replace("{port}", &port.to_string())
}

/// The detail of a log by id.
async fn log(engine: &Engine, id: &str) -> Value {
    let org = org_id(engine).await;
    engine
        .get(&format!("/platform/v1/organizations/{org}/logs/{id}"))
        .await
        .1["payload"]["result"]
        .clone()
}

/// Waits until the log has at least `n` attempts and returns it.
async fn attempted(engine: &Engine, id: &str, n: usize) -> Value {
    for _ in 0..200 {
        let found = log(engine, id).await;
        if found["attemptList"].as_array().map_or(0, Vec::len) >= n {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "log {id} did not reach {n} attempts: {}",
        log(engine, id).await
    );
}

async fn submitted(engine: &Engine, destination: &str, n: usize) -> String {
    let response = submit(engine, &[destination], n).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["Meta"]["Logs"][0]["ID"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn verify_and_save_refuses_private_and_special_addresses() {
    let engine = Engine::start(false).await;
    let live = endpoint(0).await;
    let port = live.addr.port();
    let id = create_destination(&engine, "https://partner.example/redox", TOKEN, "POST").await;
    let path = format!("/platform/v1/destinations/{id}/verify");
    for pattern in PRIVATE.iter().chain(ALWAYS) {
        let url = at(pattern, port);
        let (status, body) = engine.post(&path, json!({"endpoint": url})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {body}");
        assert!(
            error(&body).starts_with("Verification failed: refused to connect to "),
            "{url}: {body}"
        );
    }
    assert_eq!(live.count(), 0, "nothing reached a refused address");
    let (_, read) = engine.get(&format!("/platform/v1/destinations/{id}")).await;
    assert_eq!(read["payload"]["destination"]["verified"], false);
    assert_eq!(
        read["payload"]["destination"]["endpoint"],
        "https://partner.example/redox"
    );
}

#[tokio::test]
async fn metadata_and_link_local_are_refused_even_when_private_is_allowed() {
    let engine = Engine::start(true).await;
    let live = endpoint(0).await;
    let id = create_destination(&engine, &live.url("/redox"), TOKEN, "POST").await;
    let path = format!("/platform/v1/destinations/{id}/verify");
    for pattern in ALWAYS {
        let url = at(pattern, live.addr.port());
        let (status, body) = engine.post(&path, json!({"endpoint": url})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {body}");
        assert!(error(&body).contains("refused to connect"), "{url}: {body}");
    }
    assert_eq!(live.count(), 0);
}

#[tokio::test]
async fn deliveries_and_queries_are_refused_when_private_addresses_stop_being_allowed() {
    // Verified while the operator allowed private addresses; then the engine restarts without
    // that permission. Queued messages are held, not sent, and not lost.
    let engine = Engine::start_with(true, &config()).await;
    let live = endpoint(0).await;
    let destination = super::delivery::verified_destination(&engine, &live).await;
    let engine = engine.restart(false, &config()).await;
    let id = submitted(&engine, &destination, 1).await;
    let held = attempted(&engine, &id, 2).await;
    for attempt in held["attemptList"].as_array().unwrap() {
        let error = attempt["error"].as_str().unwrap();
        assert!(
            error.starts_with("refused to connect to 127.0.0.1"),
            "{error}"
        );
        assert!(error.contains("allow_private_endpoints"), "{error}");
        assert_eq!(attempt["statusCode"], Value::Null);
    }
    assert_eq!(held["status"], "pending");
    let response = query(&engine, &[&destination]).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let body: Value = response.json().await.unwrap();
    let text = body["Meta"]["Errors"][0]["Text"].as_str().unwrap();
    assert!(text.contains("refused to connect"), "{body}");
    assert!(
        messages(&live).is_empty(),
        "only the challenge was ever sent"
    );

    // Allowed again: the held message goes, with the Log ID it was acknowledged with.
    let engine = engine.restart(true, &config()).await;
    assert!(wait_until(Duration::from_secs(10), || messages(&live).len() == 1).await);
    assert_eq!(messages(&live)[0]["Meta"]["Logs"][0]["ID"], id.as_str());
    drop(engine);
}

#[tokio::test]
async fn token_endpoints_are_refused_like_destinations() {
    let engine = Engine::start(true).await;
    let live = endpoint(0).await;
    let id = create_destination(&engine, &live.url("/redox"), TOKEN, "POST").await;
    let dev = engine.environment("Development").await;
    for pattern in ALWAYS {
        let url = at(pattern, live.addr.port());
        let (status, created) = engine
            .post(
                "/platform/v1/authcredentials",
                json!({"authStrategy": "OAuth_2.0_2-legged", "environmentId": dev,
                       "name": format!("token at {url}"), "url": url, "clientId": "c",
                       "clientSecret": "client-secret-0123456789", "grantType": "client_credentials"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{url}: {created}");
        let credential = created["payload"]["credential"]["id"].as_str().unwrap();
        let (status, linked) = engine
            .patch(
                &format!("/platform/v1/destinations/{id}"),
                json!({"authCredential": credential}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{linked}");
        let (status, body) = engine
            .post(&format!("/platform/v1/destinations/{id}/verify"), json!({}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {body}");
        let message = error(&body);
        assert!(
            message.contains("could not reach the token endpoint")
                && message.contains("refused to connect"),
            "{url}: {message}"
        );
    }
    assert_eq!(live.count(), 0, "no challenge went without its token");
}

/// DNS that a test controls: every name resolves to the addresses currently set.
#[derive(Clone)]
struct Switchable(Arc<Mutex<Vec<IpAddr>>>);

impl Switchable {
    fn new(ip: &str) -> Self {
        Switchable(Arc::new(Mutex::new(vec![ip.parse().unwrap()])))
    }
    fn point_at(&self, ip: &str) {
        *self.0.lock().unwrap() = vec![ip.parse().unwrap()];
    }
}

impl Resolve for Switchable {
    fn lookup<'a>(&'a self, _host: &'a str, port: u16) -> Lookup<'a> {
        let answer: Vec<SocketAddr> = self
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|ip| SocketAddr::new(*ip, port))
            .collect();
        Box::pin(async move { Ok(answer) })
    }
}

#[tokio::test]
async fn a_dns_answer_that_changes_after_verify_and_save_is_refused() {
    // partner.test resolves to the live endpoint for Verify and Save and the first delivery,
    // then (DNS rebinding) to the cloud metadata address. Outbound clients are resolved again
    // for every request here (client_ttl 0; 60 s in production).
    let dns = Switchable::new("127.0.0.1");
    let resolver = SharedResolver::new(dns.clone());
    let engine = Engine::start_tuned(tempfile::tempdir().unwrap(), true, &config(), |c| {
        c.resolver = resolver;
        c.client_ttl = Duration::ZERO;
    })
    .await;
    let live = endpoint(0).await;
    let url = format!("http://partner.test:{}/redox", live.addr.port());
    let destination = create_destination(&engine, &url, TOKEN, "POST").await;
    let verify = format!("/platform/v1/destinations/{destination}/verify");
    let (status, body) = engine.post(&verify, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let first = submitted(&engine, &destination, 1).await;
    assert!(wait_until(Duration::from_secs(10), || messages(&live).len() == 1).await);

    dns.point_at("169.254.169.254");
    let second = submitted(&engine, &destination, 2).await;
    let held = attempted(&engine, &second, 2).await;
    let refusal = held["attemptList"][0]["error"].as_str().unwrap();
    assert_eq!(
        refusal,
        "refused to connect to partner.test (169.254.169.254): a link-local address (cloud metadata services live there)"
    );
    let (status, body) = engine.post(&verify, json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(error(&body).contains("169.254.169.254"), "{body}");
    assert_eq!(
        messages(&live).len(),
        1,
        "nothing went anywhere after the change"
    );

    // The name points back at the endpoint: the held message is retried and delivered.
    dns.point_at("127.0.0.1");
    assert!(wait_until(Duration::from_secs(10), || messages(&live).len() == 2).await);
    let ids: Vec<Value> = messages(&live)
        .iter()
        .map(|m| m["Meta"]["Logs"][0]["ID"].clone())
        .collect();
    assert_eq!(ids, [json!(first), json!(second)]);
}

/// A destination that answers challenges (unless `redirect_challenges`) and redirects every
/// message to `location` with 302.
async fn redirecting(location: String, redirect_challenges: bool) -> SocketAddr {
    use axum::http::{StatusCode as Code, header};
    use axum::response::IntoResponse;
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let location = location.clone();
        async move {
            let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            match value["challenge"].as_str() {
                Some(challenge) if !redirect_challenges => challenge.to_owned().into_response(),
                _ => (Code::FOUND, [(header::LOCATION, location)]).into_response(),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn redirects_are_never_followed() {
    let engine = Engine::start_with(true, &config()).await;
    // The internal service a redirect points at: it must never hear from the engine.
    let internal = endpoint(0).await;

    let always = redirecting(internal.url("/admin"), true).await;
    let id = create_destination(&engine, &format!("http://{always}/redox"), TOKEN, "POST").await;
    let (status, body) = engine
        .post(&format!("/platform/v1/destinations/{id}/verify"), json!({}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        error(&body).starts_with("Verification failed: the endpoint answered HTTP 302, not 2xx"),
        "{body}"
    );

    let later = redirecting(internal.url("/admin"), false).await;
    let id = create_destination(&engine, &format!("http://{later}/redox"), TOKEN, "POST").await;
    let (status, body) = engine
        .post(&format!("/platform/v1/destinations/{id}/verify"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let log_id = submitted(&engine, &id, 1).await;
    let held = attempted(&engine, &log_id, 2).await;
    assert_eq!(held["attemptList"][0]["statusCode"], 302);
    assert_eq!(held["status"], "pending", "a redirect holds the queue");
    // A query redirected is the destination's error status: 200 with Meta.Errors.
    let response = query(&engine, &[&id]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["Meta"]["Errors"][0]["Text"]
            .as_str()
            .unwrap()
            .contains("HTTP 302"),
        "{body}"
    );
    assert_eq!(body["Meta"]["Errors"][0]["DestinationStatusCode"], 302);
    assert_eq!(internal.count(), 0, "the redirect target received nothing");
}
