//! `wharf_engine::client::ManagementClient` against a running engine (what `wharf up` and the
//! benchmarks drive it with), and its errors: which call failed, what came back, what to check.

use super::*;
use wharf_engine::client::{ApiError, ManagementClient};

#[tokio::test]
async fn the_management_client_finds_development_and_keeps_destinations() {
    let engine = Engine::start(true).await;
    let api = ManagementClient::new(reqwest::Client::new(), &engine.base, KEY);
    let dev = api.development().await.unwrap();
    let (_, orgs) = engine.get("/platform/v1/organizations").await;
    let org = orgs["payload"]["organizations"][0]["id"].as_str().unwrap();
    let (_, envs) = engine
        .get(&format!("/platform/v1/organizations/{org}/environments"))
        .await;
    let flag = envs["payload"]["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == dev.as_str())
        .map(|e| e["environmentFlag"].clone());
    assert_eq!(flag, Some(json!("Development")), "{envs}");

    assert!(api.destinations(&dev).await.unwrap().is_empty());
    let created = api
        .create_destination(
            &dev,
            "Through the client",
            "http://127.0.0.1:9/redox",
            "client-token-0123456789-0123456789",
        )
        .await
        .unwrap();
    let listed = api.destinations(&dev).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], created["id"]);
    assert_eq!(listed[0]["name"], "Through the client");
}

#[tokio::test]
async fn the_management_client_says_which_call_failed_and_why() {
    let engine = Engine::start(true).await;
    let wrong = ManagementClient::new(
        reqwest::Client::new(),
        &engine.base,
        "not-the-management-key-0123456789",
    );
    let refused = wrong.development().await.unwrap_err();
    assert!(
        matches!(&refused, ApiError::Refused { status: 401, path, .. } if path == "/platform/v1/organizations"),
        "{refused:?}"
    );
    assert!(
        refused
            .to_string()
            .starts_with("the engine API answered 401 to /platform/v1/organizations: "),
        "{refused}"
    );

    let api = ManagementClient::new(reqwest::Client::new(), &engine.base, KEY);
    let missing = api
        .verify("no-such-destination", json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(missing, ApiError::Refused { status: 404, .. }),
        "{missing:?}"
    );

    // Nothing listens on port 9 of loopback (discard is not run on test machines).
    let nowhere = ManagementClient::new(reqwest::Client::new(), "http://127.0.0.1:9", KEY);
    let unreachable = nowhere.development().await.unwrap_err();
    assert!(
        matches!(unreachable, ApiError::Unreachable { .. }),
        "{unreachable:?}"
    );
    assert!(
        unreachable
            .to_string()
            .contains("check that the engine is running there"),
        "{unreachable}"
    );
}
