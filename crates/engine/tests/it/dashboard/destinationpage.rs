//! Issue 30, item 4, in the browser: clicking a destination in the list opens its page, with
//! its ID to copy, environment, endpoint, verification, credential, queue, counts, last
//! success and recent logs.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_has_a_page_with_its_id_queue_and_traffic() {
    let driver = ChromeDriver::start().await;
    let engine = engine_with_dashboard("").await;
    let sink = crate::delivery::endpoint(0).await;
    let id = crate::delivery::verified_destination(&engine, &sink).await;
    let first = send(&engine, &id, "Jane").await["Meta"]["Logs"][0]["ID"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = send(&engine, &id, "John").await["Meta"]["Logs"][0]["ID"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        wait_until(Duration::from_secs(10), || crate::delivery::messages(&sink)
            .len()
            == 2)
        .await
    );
    let browser = driver.browser().await;
    let at = |path: &str| format!("{}{path}", engine.base);
    browser.goto(&at("/dashboard/signin")).await.unwrap();
    fill(&browser, "#secret", PASSWORD).await;
    click(&browser, "#signin").await;
    find(&browser, "#new-destination").await;

    click(&browser, &format!("tr[data-destination=\"{id}\"] td a")).await;
    wait_for_url(&browser, &format!("/dashboard/destinations/{id}")).await;
    assert_eq!(
        path(&browser).await,
        format!("/dashboard/destinations/{id}")
    );
    assert_eq!(text(&browser, "#destination-id").await, id);
    let copy = find(&browser, "button[data-copy=\"destination-id\"]").await;
    assert_eq!(
        copy.attr("aria-label").await.unwrap().as_deref(),
        Some("Copy the destination ID")
    );
    assert_eq!(text(&browser, "#environment").await, "Development");
    assert!(text(&browser, "#endpoint").await.ends_with("/redox"));
    assert!(
        text(&browser, "#verification")
            .await
            .starts_with("Verified")
    );
    assert!(text(&browser, "#credential").await.contains("none"));
    let queue = text(&browser, "#queue-state").await;
    assert!(
        queue.starts_with("Running") && queue.contains("0 messages waiting"),
        "{queue}"
    );
    reload_until(
        &browser,
        &at(&format!("/dashboard/destinations/{id}")),
        "both logs counted",
        |page| page.contains(&first) && page.contains(&second),
    )
    .await;
    let counts = text(&browser, "#counts").await;
    assert!(counts.contains("Succeeded, last 24 hours\n2"), "{counts}");
    assert!(!text(&browser, "#last-success").await.contains("never"));
    let recent = text(&browser, "#recent-logs").await;
    assert!(
        recent.contains("PatientAdmin") && recent.contains("succeeded"),
        "{recent}"
    );
    // Its logs are a click away.
    click(&browser, &format!("tr[data-log=\"{first}\"] a")).await;
    wait_for_url(&browser, &format!("/dashboard/logs/{first}")).await;
    browser.close().await.unwrap();
}
