//! SSRF at the engine process: a proxy from the environment (`HTTP_PROXY` and friends) would
//! resolve destination names itself and connect wherever its answer pointed, past the address
//! check, so the engine's clients to destinations ignore it.

use super::faults::{call, create_destination, echo, write_engine_config};
use super::*;
use serde_json::json;
use wharf_testkit::Recorder;

#[tokio::test]
async fn the_engine_ignores_proxies_from_the_environment() {
    const TOKEN: &str = "proxy-test-token-0123456789-01234";
    let endpoint = Recorder::start(|_, r| echo(r, TOKEN)).await;
    let proxy = Recorder::ok().await;
    let dir = TestDir::new();
    let port = free_port();
    let config = write_engine_config(&dir, port, "");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let _engine = wharf()
        .args(["engine", "serve", "--config", config.to_str().unwrap()])
        .env("HTTP_PROXY", proxy.url(""))
        .env("http_proxy", proxy.url(""))
        .env("HTTPS_PROXY", proxy.url(""))
        .env("ALL_PROXY", proxy.url(""))
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_healthy(addr).await;
    let base = format!("http://{addr}");
    let id = create_destination(&base, &endpoint.url("/redox"), TOKEN).await;
    let (status, body) = call(
        &base,
        reqwest::Method::POST,
        &format!("/platform/v1/destinations/{id}/verify"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        endpoint.count(),
        1,
        "the challenge went straight to the endpoint"
    );
    assert_eq!(proxy.count(), 0, "the proxy saw nothing");
}
