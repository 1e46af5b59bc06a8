//! Issue 30, item 1, in the browser: a log list full of FHIR traffic (event types that are long
//! URLs) stays one line per log inside its card, with short copyable IDs, the full value of a
//! clipped cell on hover, the failure reason, readable status names, a default time window
//! with a count, pages, and a log found by its ID.

use super::*;

/// A FHIR message bundle whose event type is a long URL, as FHIR traffic carries.
fn fhir_bundle(n: usize) -> Value {
    json!({
        "resourceType": "Bundle", "id": format!("bundle-{n}"), "type": "message",
        "entry": [
            {"resource": {"resourceType": "MessageHeader", "id": format!("header-{n}"),
             "eventUri": format!("https://fhir.redoxengine.com/EventDefinition/PatientAdministration/EncounterNotification/ArrivalWithVeryLongQualifier-{n}"),
             "source": {"name": "EHR", "endpoint": "https://ehr.example/fhir"}}},
            {"resource": {"resourceType": "Patient", "id": format!("patient-{n}")}}
        ]
    })
}

async fn send_fhir(engine: &Engine, destination: &str, n: usize) -> String {
    let response = engine
        .client
        .post(format!(
            "{}/endpoint?destination={destination}",
            engine.base
        ))
        .bearer_auth(SOURCE_KEY)
        .header("content-type", "application/fhir+json")
        .body(fhir_bundle(n).to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["Meta"]["Logs"][0]["ID"].as_str().unwrap().to_owned()
}

/// What the browser measured of the log list.
async fn measure(browser: &fantoccini::Client) -> Value {
    browser
        .execute(
            r#"
            const table = document.getElementById("log-results");
            const rows = [...table.querySelectorAll("tbody tr")];
            const clipped = [...table.querySelectorAll("td.clip")]
                .filter(td => td.scrollWidth > td.clientWidth + 1)
                .map(td => ({text: td.textContent.trim(), title: td.getAttribute("title") || ""}));
            const frame = table.closest("main").getBoundingClientRect();
            const box = table.getBoundingClientRect();
            return {
                rows: rows.length,
                tallest: Math.max(...rows.map(r => r.getBoundingClientRect().height)),
                tableRight: box.right, mainRight: frame.right,
                tableScroll: table.scrollWidth, tableWidth: table.clientWidth,
                pageScroll: document.documentElement.scrollWidth, viewport: window.innerWidth,
                idWidth: Math.min(...rows.map(r => r.querySelector("td.id a").getBoundingClientRect().width)),
                clipped,
            };
            "#,
            Vec::new(),
        )
        .await
        .expect("measure the log list")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fhir_heavy_log_list_stays_one_line_per_log_and_pages_in_a_browser() {
    let driver = ChromeDriver::start().await;
    let engine = engine_with_dashboard("").await;
    let sink = crate::delivery::endpoint(0).await;
    let working = crate::delivery::verified_destination(&engine, &sink).await;
    let broken = crate::delivery::endpoint(usize::MAX).await;
    let failing = crate::delivery::verified_destination(&engine, &broken).await;
    // 52 FHIR messages and a data model one that keeps failing: two pages.
    let mut fhir = Vec::new();
    for n in 0..52 {
        fhir.push(send_fhir(&engine, &working, n).await);
    }
    let held = send(&engine, &failing, "Nila").await["Meta"]["Logs"][0]["ID"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(wait_until(Duration::from_secs(20), || sink.received().len() >= 52).await);
    let browser = driver.browser().await;
    let at = |path: &str| format!("{}{path}", engine.base);
    browser.goto(&at("/dashboard/signin")).await.unwrap();
    fill(&browser, "#secret", PASSWORD).await;
    click(&browser, "#signin").await;
    find(&browser, "#new-destination").await;

    // The failing log shows why, in the list.
    reload_until(
        &browser,
        &at("/dashboard/logs"),
        "the failing log's reason",
        |page| page.contains("The destination answered HTTP 500"),
    )
    .await;
    // Opens on the last 24 hours, with how many logs that is.
    let count = text(&browser, "#log-count").await;
    assert!(
        count.contains("53 logs in the last 24 hours") && count.contains("page 1 of 2"),
        "{count}"
    );
    let window = find(&browser, "#window").await;
    assert_eq!(window.prop("value").await.unwrap().as_deref(), Some("24h"));
    let measured = measure(&browser).await;
    assert_eq!(measured["rows"], 50, "{measured}");
    assert!(
        measured["tallest"].as_f64().unwrap() <= 40.0,
        "every log one line: {measured}"
    );
    assert!(
        measured["tableScroll"].as_f64() <= Some(measured["tableWidth"].as_f64().unwrap() + 1.0)
            && measured["tableRight"].as_f64() <= Some(measured["mainRight"].as_f64().unwrap()),
        "the table fits its frame: {measured}"
    );
    assert!(
        measured["pageScroll"].as_f64() <= measured["viewport"].as_f64(),
        "no sideways scrolling: {measured}"
    );
    assert!(
        measured["idWidth"].as_f64().unwrap() >= 80.0,
        "the Log ID link keeps its room: {measured}"
    );
    let clipped = measured["clipped"].as_array().unwrap();
    assert!(
        clipped
            .iter()
            .any(|c| c["text"].as_str().unwrap().contains("EventDefinition")),
        "the long event types are clipped: {measured}"
    );
    for cell in clipped {
        assert_eq!(cell["title"], cell["text"], "hover shows the whole value");
    }
    // Short IDs: the random tail, the whole ID in the link's title and its copy button.
    let newest = fhir.last().unwrap();
    let row = format!("tr[data-log=\"{newest}\"]");
    let link = find(&browser, &format!("{row} td.id a")).await;
    let shown = link.text().await.unwrap();
    assert!(
        shown.starts_with('…') && newest.ends_with(&shown[3..]),
        "{shown}"
    );
    assert_eq!(
        link.attr("title").await.unwrap().as_deref(),
        Some(newest.as_str())
    );
    let copy = find(&browser, &format!("{row} button.copy")).await;
    assert_eq!(
        copy.attr("data-copy-text").await.unwrap().as_deref(),
        Some(newest.as_str())
    );

    // The next page holds the rest; and back.
    click(&browser, "#next-page").await;
    wait_for_url(&browser, "page=2").await;
    let count = text(&browser, "#log-count").await;
    assert!(count.contains("showing 51–53"), "{count}");
    assert_eq!(measure(&browser).await["rows"], 3);
    find(&browser, &format!("tr[data-log=\"{}\"]", fhir[0])).await;
    click(&browser, "#previous-page").await;
    wait_for_url(&browser, "page=1").await;

    // Statuses by readable names; the held log is pending, with its reason.
    let pending = find(&browser, "#status option[value=\"pending\"]").await;
    assert_eq!(
        pending.text().await.unwrap(),
        "Pending (queued or retrying)"
    );
    find(&browser, "#status")
        .await
        .select_by_value("pending")
        .await
        .unwrap();
    click(&browser, "#search").await;
    wait_for_url(&browser, "status=pending").await;
    let row = text(&browser, &format!("tr[data-log=\"{held}\"]")).await;
    assert!(row.contains("HTTP 500"), "{row}");
    assert!(text(&browser, "#log-count").await.starts_with("1 log "));

    // Find a log by its ID; an unknown one is said so.
    fill(&browser, "#find-id", &fhir[3]).await;
    click(&browser, "#find").await;
    wait_for_url(&browser, &format!("/dashboard/logs/{}", fhir[3])).await;
    assert_eq!(text(&browser, "#log-status").await, "succeeded");
    browser.goto(&at("/dashboard/logs")).await.unwrap();
    fill(&browser, "#find-id", "0000-no-such-log").await;
    click(&browser, "#find").await;
    let said = wait_for_text(&browser, "#error", "No log has the ID").await;
    assert!(said.contains("0000-no-such-log"), "{said}");
    browser.close().await.unwrap();
}
