//! Verify and Save challenges (docs/PROTOCOL.md section 2), by POST and by GET.

use super::*;
use reqwest::StatusCode;
use wharf_protocol::challenge::{new_challenge, post_body};

#[tokio::test]
async fn post_challenge_gets_the_bare_challenge_as_text() {
    let h = Harness::start(&destination("")).await;
    let challenge = new_challenge();
    let response = h
        .client
        .post(h.url("/redox"))
        .header("application-name", "RedoxEngine")
        .header("content-type", "application/json")
        .body(post_body(TOKEN, &challenge))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(response.text().await.unwrap(), challenge);
    assert!(h.inbox().is_empty(), "a challenge is not a message");
}

#[tokio::test]
async fn post_challenge_with_wrong_token_is_403_without_the_challenge() {
    let h = Harness::start(&destination("")).await;
    let challenge = new_challenge();
    let response = h
        .client
        .post(h.url("/redox"))
        .body(post_body("not-the-token", &challenge))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(!response.text().await.unwrap().contains(&challenge));
    // A right body token with a wrong header token is still refused.
    let response = h
        .client
        .post(h.url("/redox"))
        .header("verification-token", "wrong")
        .body(post_body(TOKEN, &challenge))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn post_challenge_without_any_token_is_401() {
    let h = Harness::start(&destination("")).await;
    let response = h
        .client
        .post(h.url("/redox"))
        .body(r#"{"challenge":"abc"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(!response.text().await.unwrap().contains("abc"));
}

#[tokio::test]
async fn get_challenge_with_token_in_query_or_header() {
    let h = Harness::start(&destination("")).await;
    let challenge = new_challenge();
    let by_query = h
        .client
        .get(h.url("/redox"))
        .query(&[
            ("challenge", challenge.as_str()),
            ("verification-token", TOKEN),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(by_query.status(), StatusCode::OK);
    assert!(
        by_query.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(by_query.text().await.unwrap(), challenge);

    let by_header = h
        .client
        .get(h.url("/redox"))
        .query(&[("challenge", challenge.as_str())])
        .header("verification-token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(by_header.status(), StatusCode::OK);
    assert_eq!(by_header.text().await.unwrap(), challenge);
}

#[tokio::test]
async fn get_challenge_refusals() {
    let h = Harness::start(&destination("")).await;
    let get = |query: Vec<(&'static str, String)>| {
        let request = h.client.get(h.url("/redox")).query(&query);
        async move { request.send().await.unwrap() }
    };
    let wrong = get(vec![
        ("challenge", "c1".into()),
        ("verification-token", "nope".into()),
    ])
    .await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    assert!(!wrong.text().await.unwrap().contains("c1"));
    let missing = get(vec![("challenge", "c2".into())]).await;
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    let no_challenge = get(vec![("verification-token", TOKEN.into())]).await;
    assert_eq!(no_challenge.status(), StatusCode::BAD_REQUEST);
    // A "challenge" that is really content to reflect is refused.
    let forged = get(vec![
        ("challenge", "<script>alert(1)</script> x".into()),
        ("verification-token", TOKEN.into()),
    ])
    .await;
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn wharf_verify_logic_passes_against_the_server() {
    // The engine side of the same exchange, as `wharf verify` performs it, is tested in the
    // wharf crate; here the server must also answer a GET challenge on a URL that already has a
    // query string.
    let h = Harness::start(&destination("")).await;
    let challenge = new_challenge();
    let response = h
        .client
        .get(format!(
            "{}?challenge={challenge}&verification-token={TOKEN}&extra=1",
            h.url("/redox")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), challenge);
}

/// A challenge carrying the token both ways, in the `verification-token` header and in the
/// body (POST) or query (GET), as Wharf's Verify and Save sends it, is answered; a header that
/// disagrees with the body or query is refused.
#[tokio::test]
async fn challenge_with_the_token_in_header_and_body_or_query() {
    let h = Harness::start(&destination("")).await;
    let challenge = new_challenge();
    let post = |header: &'static str| {
        h.client
            .post(h.url("/redox"))
            .header("application-name", "RedoxEngine")
            .header("content-type", "application/json")
            .header("verification-token", header)
            .body(post_body(TOKEN, &challenge))
            .send()
    };
    let both = post(TOKEN).await.unwrap();
    assert_eq!(both.status(), StatusCode::OK);
    assert_eq!(both.text().await.unwrap(), challenge);
    assert_eq!(post("wrong").await.unwrap().status(), StatusCode::FORBIDDEN);

    let get = |header: &'static str| {
        h.client
            .get(h.url("/redox"))
            .query(&[
                ("challenge", challenge.as_str()),
                ("verification-token", TOKEN),
            ])
            .header("verification-token", header)
            .send()
    };
    let both = get(TOKEN).await.unwrap();
    assert_eq!(both.status(), StatusCode::OK);
    assert_eq!(both.text().await.unwrap(), challenge);
    assert_eq!(get("wrong").await.unwrap().status(), StatusCode::FORBIDDEN);
    assert!(h.inbox().is_empty(), "a challenge is not a message");
}

/// Wharf's own Verify and Save (wharf-delivery, used by the engine and `wharf verify`) passes
/// against Wharf's destination by POST and by GET, now that it sends the token in the
/// `verification-token` header as well as in the body or query.
#[tokio::test]
async fn wharf_delivery_verify_passes_by_post_and_get() {
    use wharf_delivery::verify::{Method, VerifyFailure, verify};
    let h = Harness::start(&destination("")).await;
    let url: reqwest::Url = h.url("/redox").parse().unwrap();
    let client = wharf_delivery::client::build(None).unwrap();
    for method in [Method::Post, Method::Get] {
        verify(&client, &url, TOKEN, method)
            .await
            .unwrap_or_else(|e| panic!("{method:?}: {e}"));
        let wrong = verify(&client, &url, "not-the-token-at-all", method).await;
        assert!(
            matches!(wrong, Err(VerifyFailure::Status(403, _))),
            "{method:?}: {wrong:?}"
        );
    }
    assert!(h.inbox().is_empty());
}
