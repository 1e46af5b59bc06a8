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

/// Over TLS every response, whatever the route or status, carries Strict-Transport-Security
/// (a browser opening `/_wharf` then never falls back to plain HTTP); over plain HTTP none does
/// (the header is meaningless there and browsers ignore it).
#[tokio::test]
async fn every_response_over_tls_carries_hsts() {
    let certs_dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(certs_dir.path());
    let top = format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"",
        ca.cert_path.display(),
        ca.key_path.display()
    );
    let h = Harness::start_with(&production(), &top, ca.client(), "https").await;
    let responses = [
        h.client.get(h.url("/healthz")).send().await.unwrap(),
        h.client.get(h.url("/metrics")).send().await.unwrap(),
        h.client.get(h.url("/nowhere")).send().await.unwrap(),
        h.post("/redox", Some("wrong-token"), "{}").await,
        h.post("/redox", Some(TOKEN), notification("hsts")).await,
    ];
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses, [200, 200, 404, 403, 200]);
    for r in &responses {
        assert_eq!(
            r.headers()
                .get("strict-transport-security")
                .and_then(|v| v.to_str().ok()),
            Some("max-age=31536000"),
            "{} {}",
            r.url(),
            r.status()
        );
    }

    let plain = Harness::start(&destination("")).await;
    let response = plain
        .client
        .get(plain.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert!(
        response
            .headers()
            .get("strict-transport-security")
            .is_none()
    );
}

/// The sender's own code (wharf-delivery's Verify and Save and push, which the engine uses)
/// trusting only the test CA, over TLS to a Production destination, through to the
/// application behind it.
#[tokio::test]
async fn end_to_end_over_tls_verify_and_deliver_through_to_the_application() {
    use wharf_delivery::push::{Credentials, RESPONSE_EXCERPT_BYTES, push};
    use wharf_delivery::verify::{Method, verify};
    let certs_dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(certs_dir.path());
    let app = wharf_testkit::Recorder::ok().await;
    let top = format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"",
        ca.cert_path.display(),
        ca.key_path.display()
    );
    let destinations = format!("{}forward_url = \"{}\"\n", production(), app.url("/in"));
    let h = Harness::start_with(&destinations, &top, ca.client(), "https").await;
    let url: reqwest::Url = h.url("/redox").parse().unwrap();

    let sender = wharf_delivery::client::build(Some(ca.ca_pem.as_bytes())).unwrap();
    for method in [Method::Post, Method::Get] {
        verify(&sender, &url, TOKEN, method)
            .await
            .unwrap_or_else(|e| panic!("{method:?}: {e}"));
    }
    // A sender that does not trust the certificate fails verification, and says it was TLS.
    let stranger = wharf_delivery::client::build(None).unwrap();
    let failure = verify(&stranger, &url, TOKEN, Method::Post)
        .await
        .unwrap_err()
        .to_string();
    assert!(failure.contains("TLS"), "{failure}");

    let outcome = push(
        &sender,
        &url,
        Credentials::token(TOKEN),
        "application/json",
        notification("over-tls").into_bytes(),
        Duration::from_secs(10),
        RESPONSE_EXCERPT_BYTES,
    )
    .await;
    assert!(outcome.accepted(), "{outcome:?}");
    assert!(wharf_testkit::wait_until(WAIT, || app.count() == 1).await);
    let forwarded = &app.received()[0];
    assert!(String::from_utf8_lossy(&forwarded.body).contains("over-tls"));
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

// ------------------------------------------------------------------------------------------
// Protocol versions and cipher suites
// ------------------------------------------------------------------------------------------

mod handshakes {
    use super::*;
    use rustls::crypto::aws_lc_rs;
    use rustls::{ClientConfig, ProtocolVersion, RootCertStore, SupportedCipherSuite};
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, ServerName};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    async fn start_tls(ca: &TestCa) -> Harness {
        let top = format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"",
            ca.cert_path.display(),
            ca.key_path.display()
        );
        Harness::start_with(&production(), &top, ca.client(), "https").await
    }

    /// A rustls handshake limited to `versions` and `suites`: what was negotiated.
    async fn handshake(
        h: &Harness,
        ca: &TestCa,
        versions: &[&'static rustls::SupportedProtocolVersion],
        suites: Vec<SupportedCipherSuite>,
    ) -> Result<(ProtocolVersion, SupportedCipherSuite), String> {
        let mut provider = aws_lc_rs::default_provider();
        provider.cipher_suites = suites;
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca.ca_pem.as_bytes()).unwrap())
            .unwrap();
        let config = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(versions)
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = TcpStream::connect(("127.0.0.1", h.port())).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .map_err(|e| e.to_string())?;
        let (_, connection) = tls.get_ref();
        Ok((
            connection.protocol_version().unwrap(),
            connection.negotiated_cipher_suite().unwrap(),
        ))
    }

    /// AEAD (AES-GCM or ChaCha20-Poly1305) with ephemeral key exchange: every TLS 1.3 suite,
    /// and the ECDHE ones of TLS 1.2.
    fn modern(suite: SupportedCipherSuite) -> bool {
        let name = format!("{:?}", suite.suite());
        let aead = name.contains("_GCM_") || name.contains("CHACHA20_POLY1305");
        aead && (name.starts_with("TLS13_") || name.starts_with("TLS_ECDHE_"))
    }

    #[tokio::test]
    async fn tls_1_3_and_1_2_negotiate_only_modern_aead_suites() {
        let certs = tempfile::tempdir().unwrap();
        let ca = TestCa::new(certs.path());
        let h = start_tls(&ca).await;

        // What the server offers at all: aws-lc-rs's default suites, each modern.
        let server = h.running.as_ref().unwrap().tls().unwrap().current();
        let offered = &server.crypto_provider().cipher_suites;
        assert!(!offered.is_empty());
        for suite in offered {
            assert!(modern(*suite), "the server offers {:?}", suite.suite());
        }

        let (version, suite) = handshake(
            &h,
            &ca,
            &[&rustls::version::TLS13],
            aws_lc_rs::default_provider().cipher_suites,
        )
        .await
        .unwrap();
        assert_eq!(version, ProtocolVersion::TLSv1_3);
        assert!(modern(suite));

        // Every TLS 1.2 suite a client may pick is negotiated on its own; the test CA's key
        // is ECDSA, so the ECDSA ones.
        let mut negotiated = Vec::new();
        for suite in aws_lc_rs::default_provider().cipher_suites {
            let name = format!("{:?}", suite.suite());
            if !name.starts_with("TLS_ECDHE_ECDSA_") {
                continue;
            }
            let (version, got) = handshake(&h, &ca, &[&rustls::version::TLS12], vec![suite])
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(version, ProtocolVersion::TLSv1_2);
            assert_eq!(got.suite(), suite.suite());
            negotiated.push(name);
        }
        assert_eq!(negotiated.len(), 3, "{negotiated:?}");
        eprintln!(
            "TLS 1.2 suites negotiated: {negotiated:?}; TLS 1.3: {:?}",
            suite.suite()
        );
    }

    /// A ClientHello written by hand, since no TLS library here speaks TLS 1.1 or offers
    /// CBC or static-RSA suites any more.
    fn client_hello(version: [u8; 2], suites: &[u16]) -> Vec<u8> {
        let mut body = version.to_vec();
        body.extend_from_slice(&[0x42; 32]); // random
        body.push(0); // no session id
        body.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
        for suite in suites {
            body.extend_from_slice(&suite.to_be_bytes());
        }
        body.extend_from_slice(&[1, 0]); // compression: null only
        let mut handshake = vec![1]; // ClientHello
        handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        handshake.extend_from_slice(&body);
        let mut record = vec![0x16, 0x03, 0x01]; // handshake record
        record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
        record.extend_from_slice(&handshake);
        record
    }

    /// Sends a ClientHello and returns the alert description the server answers with.
    async fn refused_with(h: &Harness, hello: &[u8]) -> u8 {
        let mut tcp = TcpStream::connect(("127.0.0.1", h.port())).await.unwrap();
        tcp.write_all(hello).await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer)).await;
        assert!(
            answer.len() >= 7 && answer[0] == 0x15,
            "expected a TLS alert record, got {answer:02x?}"
        );
        assert_eq!(answer[5], 2, "a fatal alert");
        answer[6]
    }

    #[tokio::test]
    async fn a_tls_handshake_that_never_starts_is_dropped_while_others_are_served() {
        let certs = tempfile::tempdir().unwrap();
        let ca = TestCa::new(certs.path());
        let h = start_tls(&ca).await;
        let started = std::time::Instant::now();
        let mut silent = TcpStream::connect(("127.0.0.1", h.port())).await.unwrap();
        assert_eq!(
            h.client
                .get(h.url("/healthz"))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
        let mut sink = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(20), silent.read_to_end(&mut sink)).await;
        assert!(read.is_ok(), "the silent connection was closed");
        assert!(sink.is_empty());
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_secs(9),
            "closed at the 10 s handshake timeout: {elapsed:?}"
        );
    }

    #[tokio::test]
    async fn tls_1_1_and_weak_suites_are_refused() {
        const HANDSHAKE_FAILURE: u8 = 40;
        const PROTOCOL_VERSION: u8 = 70;
        let certs = tempfile::tempdir().unwrap();
        let ca = TestCa::new(certs.path());
        let h = start_tls(&ca).await;
        // TLS 1.1 (and 1.0) clients.
        for version in [[3, 2], [3, 1]] {
            let alert = refused_with(&h, &client_hello(version, &[0xc009, 0xc013, 0x002f])).await;
            assert!(
                [PROTOCOL_VERSION, HANDSHAKE_FAILURE].contains(&alert),
                "{version:?}: alert {alert}"
            );
        }
        // TLS 1.2 offering only CBC suites (ECDHE and static RSA) and static-RSA AES-GCM.
        let weak = [
            0xc009, 0xc00a, 0xc013, 0xc014, 0xc023, 0xc027, 0x002f, 0x0035, 0x009c, 0x009d,
        ];
        assert_eq!(
            refused_with(&h, &client_hello([3, 3], &weak)).await,
            HANDSHAKE_FAILURE
        );
        // The server is unaffected.
        assert_eq!(
            h.client
                .get(h.url("/healthz"))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
    }
}

// ------------------------------------------------------------------------------------------
// Keys that cannot be used, and reloads that keep connections
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn unreadable_or_mismatched_tls_keys_stop_the_start_naming_tls_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let other_dir = tempfile::tempdir().unwrap();
    let other = TestCa::new(other_dir.path());
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    for (key, expected) in [
        (garbage.as_path(), "tls_key"),
        (empty.as_path(), "tls_key"),
        (dir.path(), "tls_key"),
        (dir.path().join("missing.pem").as_path(), "tls_key"),
        // A readable key that is not the certificate's.
        (other.key_path.as_path(), "do not form a usable pair"),
    ] {
        let text = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n{}",
            dir.path().join("data").display(),
            ca.cert_path.display(),
            key.display(),
            production()
        );
        let config = Config::parse(&text, &wharf_destination::config::ProcessEnv).unwrap();
        let error = wharf_destination::start(config)
            .await
            .err()
            .unwrap_or_else(|| panic!("started with tls_key = {}", key.display()));
        assert!(
            error.to_string().contains(expected),
            "{}: {error}",
            key.display()
        );
    }
}

#[tokio::test]
async fn a_certificate_reload_keeps_open_connections_and_requests_in_flight() {
    let first_dir = tempfile::tempdir().unwrap();
    let second_dir = tempfile::tempdir().unwrap();
    let first = TestCa::new(first_dir.path());
    let second = TestCa::new(second_dir.path());
    let live = tempfile::tempdir().unwrap();
    let (cert, key) = (live.path().join("cert.pem"), live.path().join("key.pem"));
    std::fs::copy(&first.cert_path, &cert).unwrap();
    std::fs::copy(&first.key_path, &key).unwrap();
    let top = format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"",
        cert.display(),
        key.display()
    );
    let h = Harness::start_with(&destination(""), &top, first.client(), "https").await;

    // One client, one pooled connection, opened on the first certificate.
    let old = first.client();
    let healthz = |client: &reqwest::Client| client.get(h.url("/healthz")).send();
    assert_eq!(healthz(&old).await.unwrap().status(), StatusCode::OK);

    // A request whose body is still arriving while the certificate changes.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body = notification("across-reload").into_bytes();
    let in_flight = tokio::spawn(
        old.post(h.url("/redox"))
            .header("verification-token", TOKEN)
            .body(reqwest::Body::wrap_stream(
                tokio_stream::wrappers::ReceiverStream::new(rx),
            ))
            .send(),
    );
    let (head, tail) = body.split_at(body.len() / 2);
    tx.send(Ok(head.to_vec())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    std::fs::copy(&second.cert_path, &cert).unwrap();
    std::fs::copy(&second.key_path, &key).unwrap();
    h.running.as_ref().unwrap().tls().unwrap().reload().unwrap();

    tx.send(Ok(tail.to_vec())).await.unwrap();
    drop(tx);
    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the request in flight finished"
    );
    // The old connection still works: a new one from this client could not be made, since
    // it does not trust the new certificate.
    assert_eq!(healthz(&old).await.unwrap().status(), StatusCode::OK);
    assert!(
        healthz(&first.client()).await.is_err(),
        "new connections get the new certificate"
    );
    assert_eq!(
        healthz(&second.client()).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(h.inbox().len(), 1);
}
