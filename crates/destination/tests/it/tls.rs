//! Staging and Production destinations over real TLS (rustls), with a test CA.

use super::*;
use reqwest::StatusCode;
use wharf_protocol::challenge::{new_challenge, post_body};
use wharf_testkit::TestCa;

fn production() -> String {
    format!(
        "[[destinations]]\nname = \"Acme Prod\"\npath = \"/redox\"\nenvironment = \"Production\"\nverification_token = \"{TOKEN}\"\n"
    )
}

#[tokio::test]
async fn production_destination_over_tls() {
    let certs_dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(certs_dir.path());
    let top = format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"",
        ca.cert_path.display(),
        ca.key_path.display()
    );
    let h = Harness::start_with(&production(), &top, ca.client(), "https").await;

    let challenge = new_challenge();
    let response = h
        .client
        .post(h.url("/redox"))
        .body(post_body(TOKEN, &challenge))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), challenge);

    assert_eq!(
        h.post("/redox", Some(TOKEN), notification("tls-1"))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(h.inbox().len(), 1);

    // Plain HTTP to the TLS port gets no answer from a destination.
    let plain = reqwest::Client::new()
        .post(h.url("/redox").replace("https://", "http://"))
        .header("verification-token", TOKEN)
        .body(notification("plain"))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    // A client that does not trust the CA refuses the server.
    assert!(
        reqwest::Client::new()
            .get(h.url("/healthz"))
            .send()
            .await
            .is_err()
    );
    assert_eq!(h.inbox().len(), 1);
}

#[tokio::test]
async fn production_without_tls_refuses_to_start() {
    let text = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"unused\"\n{}",
        production()
    );
    let error = Config::parse(&text, &wharf_destination::config::ProcessEnv).unwrap_err();
    assert_eq!(error.key, "destinations[0].environment");
    assert!(error.problem.contains("HTTPS"), "{error}");
}

#[tokio::test]
async fn unreadable_tls_files_stop_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), "not a pem").unwrap();
    let text = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n{}",
        dir.path().join("data").display(),
        dir.path().join("cert.pem").display(),
        dir.path().join("missing-key.pem").display(),
        production()
    );
    let config = Config::parse(&text, &wharf_destination::config::ProcessEnv).unwrap();
    let error = wharf_destination::start(config)
        .await
        .err()
        .expect("start must fail");
    assert!(error.to_string().contains("tls_cert"), "{error}");
}
