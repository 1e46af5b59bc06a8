//! Issue 30, item 2, in the browser: linking a credential to a verified destination asks
//! first, says what changed (verification cleared, the credential now fills `Authorization`),
//! and a failing Verify and Save shows what the endpoint answered, escaped.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linking_a_credential_warns_and_a_refused_verification_shows_the_answer() {
    let driver = ChromeDriver::start().await;
    let engine = engine_with_dashboard("").await;
    // An endpoint that reads `Authorization` as the verification token (a Bearer), and says
    // so when it holds anything else.
    let endpoint = Recorder::start(|_, r: &Received| {
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        let bearer = format!("Bearer {}", crate::delivery::TOKEN);
        if r.header("authorization")
            .is_some_and(|a| a != bearer.as_str())
        {
            return Reply::json(
                403,
                "{\"error\":\"expected Authorization: Bearer <token>\"}",
            );
        }
        match body["challenge"].as_str() {
            Some(challenge) => Reply {
                status: 200,
                content_type: "text/plain",
                body: challenge.as_bytes().to_vec(),
                delay: Duration::ZERO,
            },
            None => Reply::status(200),
        }
    })
    .await;
    let id = crate::delivery::verified_destination(&engine, &endpoint).await;
    let dev = engine.environment("Development").await;
    let (status, credential) = engine
        .post(
            "/platform/v1/authcredentials",
            json!({"name": "AWS gateway", "environmentId": dev, "authStrategy": "AwsSigv4",
                   "accessKey": "AKIDEXAMPLE", "secretKey": "aws-secret-value-1",
                   "serviceName": "execute-api", "awsRegion": "us-east-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{credential}");
    let credential = credential["payload"]["credential"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let browser = driver.browser().await;
    let at = |path: &str| format!("{}{path}", engine.base);
    browser.goto(&at("/dashboard/signin")).await.unwrap();
    fill(&browser, "#secret", PASSWORD).await;
    click(&browser, "#signin").await;
    find(&browser, "#new-destination").await;

    // Saving step 6 unchanged asks nothing and clears nothing.
    browser
        .goto(&at(&format!("/dashboard/destinations/{id}/setup/6")))
        .await
        .unwrap();
    click(&browser, "#next").await;
    wait_for_url(&browser, "/setup/7").await;
    assert!(!text(&browser, "#verified").await.contains("not yet"));

    // Linking the credential asks first; dismissed, nothing changes.
    browser
        .goto(&at(&format!("/dashboard/destinations/{id}/setup/6")))
        .await
        .unwrap();
    find(&browser, "#authCredential")
        .await
        .select_by_value(&credential)
        .await
        .unwrap();
    click(&browser, "#next").await;
    let asked = browser.get_alert_text().await.unwrap();
    assert!(
        asked.contains("clears this destination's verification") && asked.contains("Authorization"),
        "{asked}"
    );
    browser.dismiss_alert().await.unwrap();
    let (_, read) = engine.get(&format!("/platform/v1/destinations/{id}")).await;
    assert!(
        read["payload"]["destination"]["authCredential"].is_null(),
        "{read}"
    );
    // Accepted: the next page says what changed.
    click(&browser, "#next").await;
    browser.accept_alert().await.unwrap();
    let said = wait_for_text(
        &browser,
        "#notice",
        "Linked the auth credential AWS gateway",
    )
    .await;
    assert!(
        said.contains("Authorization header")
            && said.contains("cleared the destination's verification"),
        "{said}"
    );
    assert!(text(&browser, "#verified").await.contains("not yet"));

    // Verify and Save fails: the endpoint's own answer is shown, escaped, and why.
    click(&browser, "#next").await;
    let failed = text(&browser, "#error").await;
    assert!(
        failed.contains("HTTP 403")
            && failed.contains("saying: {\"error\":\"expected Authorization: Bearer <token>\"}"),
        "{failed}"
    );
    // Escaped: text in the page, not an element.
    let source = browser.source().await.unwrap();
    assert!(
        source.contains("Bearer &lt;token&gt;"),
        "escaped in the page"
    );
    assert!(
        browser
            .find(fantoccini::Locator::Css("token"))
            .await
            .is_err()
    );
    let hint = text(&browser, "#credential-hint").await;
    assert!(
        hint.contains("AWS gateway") && hint.contains("Authorization header"),
        "{hint}"
    );
    browser.close().await.unwrap();
}
