//! Issue 30, item 5, in the browser: credential forms in Redox's dashboard words, advanced
//! fields folded, what was typed kept when a form is refused (secrets too), errors without
//! API field names, "Test this credential", "Link to a destination", and the way back to a
//! destination's setup after "Create a credential".

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_forms_speak_plainly_keep_what_was_typed_and_test_the_credential() {
    let driver = ChromeDriver::start().await;
    let engine = engine_with_dashboard("").await;
    let sink = crate::delivery::endpoint(0).await;
    let destination = crate::delivery::verified_destination(&engine, &sink).await;
    let token_endpoint = Recorder::start(|_, _: &Received| {
        Reply::json(
            200,
            "{\"access_token\":\"tok-abcdefghijkl\",\"token_type\":\"Bearer\",\"expires_in\":3600}",
        )
    })
    .await;
    let browser = driver.browser().await;
    let shots = Screenshots::from_env();
    let at = |path: &str| format!("{}{path}", engine.base);
    browser.goto(&at("/dashboard/signin")).await.unwrap();
    fill(&browser, "#secret", PASSWORD).await;
    click(&browser, "#signin").await;
    find(&browser, "#new-destination").await;

    // Redox's names for the strategies, and no default choice.
    browser
        .goto(&at("/dashboard/credentials/new"))
        .await
        .unwrap();
    let options = text(&browser, "#strategy").await;
    for name in [
        "AWS Signature Version 4",
        "OAuth 2.0 Two-Legged with secrets",
        "SMART backend",
        "JWT bearer",
    ] {
        assert!(options.contains(name), "{name} in {options}");
    }
    assert!(
        !options.contains("AwsSigv4") && !options.contains("OAuth_2.0"),
        "{options}"
    );
    let chosen = find(&browser, "#strategy").await;
    assert_eq!(chosen.prop("value").await.unwrap().as_deref(), Some(""));
    chosen.select_by_value("OAuth_2.0_2-legged").await.unwrap();
    click(&browser, "#choose").await;

    // Human labels; the advanced settings folded away.
    find(&browser, "#field-clientSecret").await;
    let form = text(&browser, "#credential-form").await;
    assert!(
        form.contains("Client ID") && form.contains("Token URL"),
        "{form}"
    );
    assert!(
        !form.contains("clientId") && !form.contains("grantTypeName"),
        "{form}"
    );
    let advanced = find(&browser, "#advanced").await;
    assert_eq!(advanced.attr("open").await.unwrap(), None);
    assert!(
        !find(&browser, "#field-grantTypeName")
            .await
            .is_displayed()
            .await
            .unwrap()
    );
    shots.take(&browser, "credential-new").await;

    // Refused: the error names the field as the form does; what was typed is still there.
    fill(&browser, "#name", "Token endpoint").await;
    fill(&browser, "#field-url", "not a url").await;
    fill(&browser, "#field-clientId", "wharf-client").await;
    fill(&browser, "#field-clientSecret", "typed-secret-value-1").await;
    click(&browser, "#save").await;
    let error = text(&browser, "#error").await;
    assert!(
        error.contains("Token URL") && !error.contains('`'),
        "{error}"
    );
    let secret = find(&browser, "#field-clientSecret").await;
    assert_eq!(
        secret.prop("value").await.unwrap().as_deref(),
        Some("typed-secret-value-1")
    );
    let described = find(&browser, "#name").await;
    assert_eq!(
        described.attr("aria-describedby").await.unwrap().as_deref(),
        Some("error")
    );
    fill(&browser, "#field-url", &token_endpoint.url("/token")).await;
    click(&browser, "#save").await;
    assert_eq!(text(&browser, "#notice").await, "Saved.");
    let credential = path(&browser).await.rsplit('/').next().unwrap().to_owned();
    assert!(
        text(&browser, "#strategy-name")
            .await
            .contains("OAuth 2.0 Two-Legged with secrets")
    );

    // Test this credential: a token is fetched, and shown only by its first characters.
    click(&browser, "#test-credential").await;
    let trial = wait_for_text(&browser, "#trial", "It works").await;
    assert!(
        trial.contains("Bearer tok-abcd… (16 characters)"),
        "{trial}"
    );
    assert!(!browser.source().await.unwrap().contains("tok-abcdefghijkl"));
    assert!(
        !token_endpoint.received().is_empty(),
        "the token endpoint was asked"
    );
    shots.take(&browser, "credential-test").await;

    // Link to a destination: its auth credential step, this credential chosen.
    find(&browser, "#link-destination")
        .await
        .select_by_value(&destination)
        .await
        .unwrap();
    click(&browser, "#link").await;
    wait_for_url(
        &browser,
        &format!("/dashboard/destinations/{destination}/setup/6"),
    )
    .await;
    let select = find(&browser, "#authCredential").await;
    assert_eq!(
        select.prop("value").await.unwrap().as_deref(),
        Some(credential.as_str())
    );

    // From the setup, "Create a credential" leads back to it with the new one chosen.
    click(&browser, "#create-credential").await;
    find(&browser, "#strategy")
        .await
        .select_by_value("AwsSigv4")
        .await
        .unwrap();
    click(&browser, "#choose").await;
    fill(&browser, "#name", "AWS gateway").await;
    fill(&browser, "#field-accessKey", "AKIDEXAMPLE").await;
    fill(&browser, "#field-secretKey", "aws-secret-value-2").await;
    fill(&browser, "#field-serviceName", "execute-api").await;
    fill(&browser, "#field-awsRegion", "us-east-1").await;
    click(&browser, "#save").await;
    let aws = path(&browser).await.rsplit('/').next().unwrap().to_owned();
    click(&browser, "#back-to-setup a").await;
    wait_for_url(
        &browser,
        &format!("/dashboard/destinations/{destination}/setup/6"),
    )
    .await;
    let select = find(&browser, "#authCredential").await;
    assert_eq!(
        select.prop("value").await.unwrap().as_deref(),
        Some(aws.as_str())
    );
    browser.close().await.unwrap();
}
