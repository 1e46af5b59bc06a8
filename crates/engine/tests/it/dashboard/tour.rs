//! Issue 30, item 8, and the screenshots: every dashboard page, with realistic traffic (FHIR
//! and data model messages, a failing destination, a linked credential), checked by axe-core
//! for serious and critical accessibility violations (none allowed), with the skip link and
//! the distinct names of the wizard's "edit" links; and, with `WHARF_SCREENSHOTS=1`, the
//! screenshots in docs/screenshots/.

use super::*;
use browser::assert_accessible;

/// A FHIR notification as an EHR sends one (the event type a long URL).
fn fhir(n: usize) -> Value {
    json!({
        "resourceType": "Bundle", "id": format!("tour-bundle-{n}"), "type": "message",
        "entry": [
            {"resource": {"resourceType": "MessageHeader", "id": format!("tour-header-{n}"),
             "eventUri": "https://fhir.redoxengine.com/EventDefinition/PatientAdminNewPatient",
             "source": {"name": "Cerner Millennium", "endpoint": "https://ehr.example/fhir"}}},
            {"resource": {"resourceType": "Patient", "id": format!("p-{n}"),
             "name": [{"family": "Jonkel", "given": ["Nila"]}]}}
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_is_accessible_with_realistic_traffic() {
    let driver = ChromeDriver::start().await;
    let engine = engine_with_dashboard("").await;
    let sink = crate::delivery::endpoint(0).await;
    let healthy = crate::delivery::verified_destination(&engine, &sink).await;
    let broken = crate::delivery::endpoint(usize::MAX).await;
    let failing = crate::delivery::verified_destination(&engine, &broken).await;
    let (status, _) = engine
        .patch(
            &format!("/platform/v1/destinations/{failing}"),
            json!({"name": "Billing system"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // A linked credential (linking clears verification: verified again).
    let dev = engine.environment("Development").await;
    let (_, credential) = engine
        .post(
            "/platform/v1/authcredentials",
            json!({"name": "AWS API Gateway", "environmentId": dev, "authStrategy": "AwsSigv4",
                   "accessKey": "AKIDEXAMPLE", "secretKey": "aws-secret-value-9",
                   "serviceName": "execute-api", "awsRegion": "us-east-1"}),
        )
        .await;
    let credential = credential["payload"]["credential"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = engine
        .patch(
            &format!("/platform/v1/destinations/{healthy}"),
            json!({"name": "Acme Scheduling", "authCredential": credential}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = engine
        .post(
            &format!("/platform/v1/destinations/{healthy}/verify"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Traffic: FHIR and data model messages, and a destination that keeps failing.
    let mut logs = Vec::new();
    for n in 0..6 {
        let response = engine
            .client
            .post(format!("{}/endpoint?destination={healthy}", engine.base))
            .bearer_auth(SOURCE_KEY)
            .header("content-type", "application/fhir+json")
            .body(fhir(n).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let answer: Value = response.json().await.unwrap();
        logs.push(answer["Meta"]["Logs"][0]["ID"].as_str().unwrap().to_owned());
    }
    for patient in ["Jane Doe", "Timothy Bixby", "Nila Jonkel"] {
        send(&engine, &healthy, patient).await;
    }
    let held = send(&engine, &failing, "Kai Ono").await["Meta"]["Logs"][0]["ID"]
        .as_str()
        .unwrap()
        .to_owned();
    send(&engine, &failing, "Ana Lima").await;
    assert!(wait_until(Duration::from_secs(20), || sink.received().len() >= 10).await);

    let browser = driver.browser().await;
    let shots = Screenshots::from_env();
    let at = |path: &str| format!("{}{path}", engine.base);
    browser.goto(&at("/dashboard/signin")).await.unwrap();
    assert_accessible(&browser, "sign-in").await;
    fill(&browser, "#secret", PASSWORD).await;
    click(&browser, "#signin").await;
    find(&browser, "#new-destination").await;
    // The skip link is the first thing a keyboard reaches, and leads to the content.
    let skip = find(&browser, "a.skip").await;
    assert_eq!(skip.attr("href").await.unwrap().as_deref(), Some("#main"));
    find(&browser, "main#main").await;

    // Wait for the failing destination to be held, so the pages show it.
    reload_until(
        &browser,
        &at(&format!("/dashboard/logs/{held}")),
        "the failing delivery",
        |page| page.contains(">500<"),
    )
    .await;

    let pages: Vec<(String, &str)> = vec![
        ("/dashboard".into(), ""),
        ("/dashboard/destinations".into(), "destinations"),
        (format!("/dashboard/destinations/{healthy}"), "destination"),
        (
            format!("/dashboard/destinations/{failing}"),
            "destination-failing",
        ),
        ("/dashboard/destinations/new".into(), ""),
        (format!("/dashboard/destinations/{healthy}/setup/2"), ""),
        (format!("/dashboard/destinations/{healthy}/setup/3"), ""),
        (format!("/dashboard/destinations/{healthy}/setup/4"), ""),
        (format!("/dashboard/destinations/{healthy}/setup/5"), ""),
        (format!("/dashboard/destinations/{healthy}/setup/6"), ""),
        (
            format!("/dashboard/destinations/{healthy}/setup/7"),
            "wizard-7-summary",
        ),
        ("/dashboard/credentials".into(), "credentials"),
        ("/dashboard/credentials/new".into(), ""),
        (
            format!("/dashboard/credentials/new?environment={dev}&strategy=SMART_Backend"),
            "",
        ),
        (
            format!("/dashboard/credentials/{credential}"),
            "credential-edit",
        ),
        ("/dashboard/logs".into(), "logs"),
        (format!("/dashboard/logs/{}", logs[0]), "log"),
        (format!("/dashboard/logs/{}/phi", logs[0]), "log-phi"),
        (format!("/dashboard/logs/{held}"), "log-failing"),
        (format!("/dashboard/logs/{held}/phi"), ""),
        ("/dashboard/queues".into(), "queues"),
        ("/dashboard/sources".into(), ""),
        ("/dashboard/audit".into(), "audit"),
        ("/dashboard/no-such-page".into(), ""),
    ];
    for (path, shot) in &pages {
        browser.goto(&at(path)).await.unwrap();
        find(&browser, "main").await;
        assert_accessible(&browser, path).await;
        if !shot.is_empty() {
            shots.take(&browser, shot).await;
        }
    }

    // The five "edit" links of step 7 have names of their own.
    browser
        .goto(&at(&format!("/dashboard/destinations/{healthy}/setup/7")))
        .await
        .unwrap();
    let names = browser
        .execute(
            "return [...document.querySelectorAll('dl.summary a')].filter(a => a.textContent.trim() === 'edit').map(a => a.getAttribute('aria-label'));",
            Vec::new(),
        )
        .await
        .unwrap();
    let names: Vec<&str> = names
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap_or(""))
        .collect();
    assert!(names.len() >= 5, "{names:?}");
    let mut distinct = names.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), names.len(), "{names:?}");
    assert!(
        names.iter().all(|n| n.starts_with("Edit the ")),
        "{names:?}"
    );
    // Table headers say what they head.
    browser.goto(&at("/dashboard/logs")).await.unwrap();
    let unscoped = browser
        .execute(
            "return document.querySelectorAll('thead th:not([scope])').length;",
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(unscoped, 0);
    // A refused form: the error is tied to its field.
    browser
        .goto(&at("/dashboard/destinations/new"))
        .await
        .unwrap();
    browser
        .execute(
            "document.getElementById('name').removeAttribute('required');",
            Vec::new(),
        )
        .await
        .unwrap();
    fill(&browser, "#name", " ").await;
    click(&browser, "#next").await;
    find(&browser, "#error").await;
    let described = find(&browser, "#name").await;
    assert_eq!(
        described.attr("aria-describedby").await.unwrap().as_deref(),
        Some("name-help error")
    );
    assert!(!text(&browser, "#error").await.contains('`'));
    assert_accessible(&browser, "a refused wizard step").await;
    browser.close().await.unwrap();
}
