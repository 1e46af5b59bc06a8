//! What an operator relies on: `/healthz`, `/readyz`, `/metrics` names and values, request
//! ids, the `/_wharf` status page (off by default, password-protected, escaped, no bodies),
//! and TLS certificates reloaded while running.

use super::*;
use wharf_testkit::TestCa;

async fn get(h: &Harness, path: &str) -> reqwest::Response {
    h.client.get(h.url(path)).send().await.unwrap()
}

#[tokio::test]
async fn health_and_readiness() {
    let app = wharf_testkit::Recorder::ok().await;
    let h = Harness::start(&destination(&format!(
        "forward_url = \"{}\"",
        app.url("/in")
    )))
    .await;
    let r = get(&h, "/healthz").await;
    assert_eq!(r.status(), 200);
    let r = get(&h, "/readyz").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ready");
}

#[tokio::test]
async fn metrics_count_requests_auth_failures_inbox_depth_and_batches() {
    let h = Harness::start(&destination("")).await;
    assert_eq!(
        h.post("/redox", Some(TOKEN), notification("m1"))
            .await
            .status(),
        200
    );
    assert_eq!(
        h.post("/redox", Some("wrong"), notification("m2"))
            .await
            .status(),
        403
    );
    assert_eq!(
        h.post("/redox", None, notification("m3")).await.status(),
        401
    );
    assert_eq!(h.post("/nowhere", Some(TOKEN), "{}").await.status(), 404);
    let r = get(&h, "/metrics").await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("openmetrics-text")
    );
    let text = r.text().await.unwrap();
    for expected in [
        r#"wharf_http_requests_total{route="destination",status="200"} 1"#,
        r#"wharf_http_requests_total{route="destination",status="403"} 1"#,
        r#"wharf_http_requests_total{route="unknown_path",status="404"} 1"#,
        r#"wharf_auth_failures_total{reason="wrong_token"} 1"#,
        r#"wharf_auth_failures_total{reason="missing_token"} 1"#,
        r#"wharf_inbox_messages{destination="Acme",status="received"} 1"#,
        "wharf_inbox_commit_batch_size_count 1",
        r#"wharf_http_request_duration_seconds_bucket{le="+Inf",route="destination"} 3"#,
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    assert!(!text.contains(TOKEN), "no secret in metrics");
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_a_sane_one_is_kept() {
    let h = Harness::start(&destination("")).await;
    let r = get(&h, "/healthz").await;
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let r = h
        .client
        .get(h.url("/healthz"))
        .header("x-request-id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-42");
    let r = h
        .client
        .get(h.url("/healthz"))
        .header("x-request-id", "bad id\twith spaces")
        .send()
        .await
        .unwrap();
    assert_ne!(r.headers()["x-request-id"], "bad id\twith spaces");
}

#[tokio::test]
async fn the_status_page_is_off_by_default_and_needs_the_admin_token() {
    let h = Harness::start(&destination("")).await;
    let r = get(&h, "/_wharf").await;
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("admin_token"));

    let h = Harness::start_with(
        &destination(""),
        "admin_token = \"admin-secret-0123456789-0123456789abcdef\"",
        reqwest::Client::new(),
        "http",
    )
    .await;
    assert_eq!(
        h.post("/redox", Some(TOKEN), notification("page-1"))
            .await
            .status(),
        200
    );
    // A malformed body whose parse error must be shown escaped, and no body shown at all.
    assert_eq!(
        h.post(
            "/redox",
            Some(TOKEN),
            "<script>alert(1)</script> PATIENT-SECRET"
        )
        .await
        .status(),
        200
    );
    let r = get(&h, "/_wharf").await;
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    let r = h
        .client
        .get(h.url("/_wharf"))
        .basic_auth("ops", Some("admin-secret-0123456789-0123456789abcdeX"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = h
        .client
        .get(h.url("/_wharf"))
        .basic_auth("ops", Some("admin-secret-0123456789-0123456789abcdef"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = r.text().await.unwrap();
    assert!(html.contains("Acme") && html.contains("/redox"), "{html}");
    assert!(html.contains("Malformed messages"));
    assert!(html.contains("PatientAdmin"), "recent messages listed");
    assert!(!html.contains("<script>"), "nothing unescaped");
    assert!(
        !html.contains("PATIENT-SECRET"),
        "no message body on the page"
    );
    assert!(!html.contains("admin-secret"));
}

#[tokio::test]
async fn tls_certificates_reload_without_a_restart() {
    let first_dir = tempfile::tempdir().unwrap();
    let second_dir = tempfile::tempdir().unwrap();
    let first = TestCa::new(first_dir.path());
    let second = TestCa::new(second_dir.path());
    let live = tempfile::tempdir().unwrap();
    let (cert, key) = (live.path().join("cert.pem"), live.path().join("key.pem"));
    std::fs::copy(&first.cert_path, &cert).unwrap();
    std::fs::copy(&first.key_path, &key).unwrap();
    let h = Harness::start_with(
        &destination(""),
        &format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"",
            cert.display(),
            key.display()
        ),
        first.client(),
        "https",
    )
    .await;
    let healthz = |client: reqwest::Client| {
        let url = h.url("/healthz");
        async move { client.get(url).send().await.map(|r| r.status().as_u16()) }
    };
    assert_eq!(healthz(first.client()).await.unwrap(), 200);
    assert!(
        healthz(second.client()).await.is_err(),
        "not yet the new certificate"
    );

    // A half-written file: the reload fails and the old certificate keeps serving.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\ngarbage").unwrap();
    let tls = h.running.as_ref().unwrap().tls().unwrap();
    assert!(tls.reload().is_err());
    assert_eq!(healthz(first.client()).await.unwrap(), 200);

    std::fs::copy(&second.cert_path, &cert).unwrap();
    std::fs::copy(&second.key_path, &key).unwrap();
    tls.reload().unwrap();
    assert_eq!(healthz(second.client()).await.unwrap(), 200);
    assert!(
        healthz(first.client()).await.is_err(),
        "the old certificate is gone"
    );
}
