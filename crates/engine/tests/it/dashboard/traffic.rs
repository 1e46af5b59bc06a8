//! Issue 29, traffic at a glance: the dashboard's home charts each environment's and each
//! destination's messages per hour, succeeded and failed, for the last 24 hours and 7 days,
//! drawn as inline SVG (nothing loaded from elsewhere), in a real Chromium.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_home_page_charts_traffic_per_environment_and_destination_in_a_browser() {
    let driver = ChromeDriver::start().await;
    let engine = engine_with_dashboard("").await;
    let healthy = crate::delivery::endpoint(0).await;
    let failing = crate::delivery::endpoint(usize::MAX).await;
    let good = crate::delivery::verified_destination(&engine, &healthy).await;
    let bad = crate::delivery::verified_destination(&engine, &failing).await;
    for name in ["Ann One", "Bob Two"] {
        crate::log_search::send_patient(&engine, &good, name).await;
    }
    let stuck = crate::log_search::send_patient(&engine, &bad, "Cy Three").await;
    assert!(
        wait_until(Duration::from_secs(10), || crate::delivery::messages(
            &healthy
        )
        .len()
            == 2)
        .await
    );
    // The failing one, given up on: failed.
    assert!(
        wait_until(Duration::from_secs(10), || !crate::delivery::messages(
            &failing
        )
        .is_empty())
        .await
    );
    let (status, body) = engine
        .post(&format!("/platform/v1/logs/{stuck}/stop"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let browser = driver.browser().await;
    let shots = Screenshots::from_env();
    let at = |path: &str| format!("{}{path}", engine.base);
    sign_in_browser(&browser, &engine).await;
    browser.goto(&at("/dashboard")).await.unwrap();
    let overall = find(&browser, "#traffic-Development #env-Development").await;
    assert_eq!(
        overall.attr("data-total").await.unwrap().as_deref(),
        Some("3")
    );
    assert_eq!(
        overall.attr("data-failed").await.unwrap().as_deref(),
        Some("1")
    );
    let summary = text(&browser, "#env-Development .summary").await;
    assert_eq!(summary, "3 messages: 2 succeeded, 1 failed");
    assert_eq!(
        text(&browser, &format!("#dest-{good} .summary")).await,
        "2 messages: 2 succeeded, 0 failed"
    );
    assert_eq!(
        text(&browser, &format!("#dest-{bad} .summary")).await,
        "1 messages: 0 succeeded, 1 failed"
    );
    // The chart itself: 24 hourly bars, this hour's stacked green under red, drawn by Chromium.
    let bars = browser
        .find_all(fantoccini::Locator::Css("#env-Development svg g"))
        .await
        .unwrap();
    assert_eq!(bars.len(), 24);
    let failed = find(&browser, "#env-Development svg rect.failed").await;
    let ok = find(&browser, "#env-Development svg rect.ok").await;
    let (failed_box, ok_box) = (
        failed.rectangle().await.unwrap(),
        ok.rectangle().await.unwrap(),
    );
    assert!(
        ok_box.3 > failed_box.3,
        "two succeeded are drawn taller than one failed"
    );
    assert!(failed_box.1 < ok_box.1, "failed stacked above succeeded");
    let fill_of =
        |e: fantoccini::elements::Element| async move { e.css_value("fill").await.unwrap() };
    assert_eq!(
        fill_of(ok).await,
        "rgb(46, 125, 50)",
        "coloured by the dashboard's CSS"
    );
    assert_eq!(fill_of(failed).await, "rgb(198, 40, 40)");
    // Nothing in Production yet: a flat chart.
    assert_eq!(
        text(&browser, "#env-Production .summary").await,
        "0 messages: 0 succeeded, 0 failed"
    );
    shots.take(&browser, "traffic").await;

    // The last 7 days: hourly bars for the week.
    click(&browser, "#window-7d").await;
    wait_for_url(&browser, "window=7d").await;
    let week = browser
        .find_all(fantoccini::Locator::Css("#env-Development svg g"))
        .await
        .unwrap();
    assert_eq!(week.len(), 7 * 24);
    assert_eq!(
        text(&browser, "#env-Development .summary").await,
        "3 messages: 2 succeeded, 1 failed"
    );
    find(&browser, "#window-24h").await;
}
