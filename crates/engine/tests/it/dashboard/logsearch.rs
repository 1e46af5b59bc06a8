//! Issue 29 in the browser: the log page's search box finds logs by the words of their
//! messages, and "Resend these logs" puts a searched time range back in its queues.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_searches_message_words_and_resends_a_range_in_a_browser() {
    let driver = ChromeDriver::start().await;
    let engine = engine_with_dashboard("").await;
    let sink = crate::delivery::endpoint(0).await;
    let destination = crate::delivery::verified_destination(&engine, &sink).await;
    let nila = crate::log_search::send_patient(&engine, &destination, "Nila Jonkel").await;
    let timothy = crate::log_search::send_patient(&engine, &destination, "Timothy Bixby").await;
    assert!(
        wait_until(Duration::from_secs(10), || crate::delivery::messages(&sink)
            .len()
            == 2)
        .await
    );
    let browser = driver.browser().await;
    let shots = Screenshots::from_env();
    let at = |path: &str| format!("{}{path}", engine.base);
    sign_in_browser(&browser, &engine).await;

    // The search box: every word, in any order, any case.
    browser.goto(&at("/dashboard/logs")).await.unwrap();
    fill(&browser, "#q", "jonkel NILA").await;
    click(&browser, "#search").await;
    wait_for_url(&browser, "q=jonkel").await;
    find(&browser, &format!("tr[data-log=\"{nila}\"]")).await;
    let page = browser.source().await.unwrap();
    assert!(!page.contains(&timothy), "only the matching log is listed");
    shots.take(&browser, "logs-search").await;
    fill(&browser, "#q", ",;").await;
    click(&browser, "#search").await;
    assert!(text(&browser, "#error").await.contains("holds no word"));

    // Both logs delivered; resend the day's succeeded ones from the page.
    reload_until(
        &browser,
        &at("/dashboard/logs?status=succeeded&after=2000-01-01T00:00&before=2100-01-01T00:00"),
        "both delivered logs",
        |page| page.contains(&nila) && page.contains(&timothy),
    )
    .await;
    click(&browser, "#resend-range").await;
    browser.accept_alert().await.unwrap();
    let said = wait_for_text(&browser, "#resent", "Resent 2 logs").await;
    assert!(said.contains("same Log ID"), "{said}");
    assert!(
        wait_until(Duration::from_secs(10), || crate::delivery::messages(&sink)
            .len()
            == 4)
        .await
    );
    let again: Vec<String> = crate::delivery::messages(&sink)[2..]
        .iter()
        .map(|m| m["Meta"]["Logs"][0]["ID"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        again,
        [nila, timothy],
        "same Log IDs, in their original order"
    );
}
