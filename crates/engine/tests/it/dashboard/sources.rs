//! The Sources page over plain HTTP: a source created with its key shown on that answer only,
//! a subscription made, filtered, paused and resumed with forms, as the API would.

use super::*;

fn form_value<'a>(html: &'a str, marker: &str) -> &'a str {
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} in {html}"))
        + marker.len();
    html[start..].split('<').next().unwrap()
}

#[tokio::test]
async fn an_operator_makes_a_source_and_a_filtered_subscription_with_forms() {
    let engine = engine_with_dashboard("").await;
    let dev = engine.environment("Development").await;
    let a = crate::delivery::endpoint(0).await;
    let destination = crate::delivery::verified_destination(&engine, &a).await;
    let mut visitor = Visitor::new(&engine);
    let csrf = visitor.sign_in(PASSWORD).await;
    let origin = engine.base.clone();
    let page = visitor
        .get("/dashboard/sources")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("EHR feed"),
        "the configuration's source is listed"
    );
    let created = visitor
        .post(
            "/dashboard/sources",
            &[
                ("csrf", &csrf),
                ("name", "Cerner <feed>"),
                ("environment", &dev),
            ],
            Some(&origin),
        )
        .await;
    assert_eq!(created.status(), StatusCode::OK);
    assert_eq!(created.headers()["cache-control"], "no-store");
    let html = created.text().await.unwrap();
    assert!(html.contains("Cerner &#60;feed&#62;"), "escaped");
    let key = form_value(&html, "<p class=\"mono\" id=\"api-key\">").to_owned();
    assert_eq!(key.len(), 64);
    let again = visitor
        .get("/dashboard/sources")
        .await
        .text()
        .await
        .unwrap();
    assert!(!again.contains(&key), "the key is shown once");
    let (_, sources) = engine
        .get(&format!("/platform/v1/environments/{dev}/sources"))
        .await;
    let source = sources["payload"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "Cerner <feed>")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let subscribed = visitor
        .post(
            "/dashboard/subscriptions",
            &[
                ("csrf", &csrf),
                ("source", &source),
                ("destination", &destination),
                ("dataModel", "PatientAdmin"),
            ],
            Some(&origin),
        )
        .await;
    assert_eq!(subscribed.status(), StatusCode::SEE_OTHER);
    let (_, subs) = engine
        .get(&format!(
            "/platform/v1/environments/{dev}/subscriptions?sourceId={source}"
        ))
        .await;
    let sub = subs["payload"]["subscriptions"][0]["id"].as_i64().unwrap();
    let filtered = visitor
        .post(
            &format!("/dashboard/subscriptions/{sub}/filter"),
            &[
                ("csrf", &csrf),
                ("action", "send"),
                ("path", "$.Patient.Demographics.FirstName"),
                ("allowList", "on"),
                ("values", "Timothy, Barbara"),
            ],
            Some(&origin),
        )
        .await;
    assert_eq!(filtered.status(), StatusCode::SEE_OTHER);
    let paused = visitor
        .post(
            &format!("/dashboard/subscriptions/{sub}/pause"),
            &[("csrf", &csrf)],
            Some(&origin),
        )
        .await;
    assert_eq!(paused.status(), StatusCode::SEE_OTHER);
    let page = visitor
        .get("/dashboard/sources")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("send if $.Patient.Demographics.FirstName in Timothy, Barbara"),
        "{page}"
    );
    assert!(
        page.contains(&format!("data-subscription=\"{sub}\" class=\"paused\"")),
        "{page}"
    );
    let (_, filters) = engine
        .get(&format!("/platform/v0/subscriptions/{sub}/filters"))
        .await;
    assert_eq!(
        filters["payload"]["filters"][0]["rules"][0]["values"],
        json!(["Timothy", "Barbara"])
    );
    visitor
        .post(
            &format!("/dashboard/subscriptions/{sub}/resume"),
            &[("csrf", &csrf)],
            Some(&origin),
        )
        .await;
    let (_, read) = engine
        .get(&format!("/platform/v1/subscriptions/{sub}"))
        .await;
    assert_eq!(read["payload"]["subscription"]["status"], "active");
    let refused = visitor
        .post(
            &format!("/dashboard/subscriptions/{sub}/filter"),
            &[("csrf", &csrf), ("action", "maybe")],
            Some(&origin),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let deleted = visitor
        .post(
            &format!("/dashboard/sources/{source}/delete"),
            &[("csrf", &csrf)],
            Some(&origin),
        )
        .await;
    assert_eq!(deleted.status(), StatusCode::SEE_OTHER);
    let (status, _) = engine.get(&format!("/platform/v1/sources/{source}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Issue 29's Sources page in a real Chromium: a source created with a form, its key shown on
/// that answer only (not after a reload), renamed and deleted with the row's forms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_is_created_renamed_and_deleted_in_a_browser_with_its_key_shown_once() {
    let driver = ChromeDriver::start().await;
    let engine = engine_with_dashboard("").await;
    let browser = driver.browser().await;
    let shots = Screenshots::from_env();
    let at = |path: &str| format!("{}{path}", engine.base);
    sign_in_browser(&browser, &engine).await;
    browser.goto(&at("/dashboard/sources")).await.unwrap();
    wait_for_text(&browser, "#sources", "EHR feed").await;

    fill(&browser, "#new-source input[name=name]", "Clinic feed").await;
    click(&browser, "#new-source button[type=submit]").await;
    let notice = wait_for_text(&browser, "#created-key", "shown this once").await;
    assert!(notice.contains("Clinic feed"), "{notice}");
    let key = text(&browser, "#api-key").await;
    assert_eq!(key.len(), 64, "{key}");
    assert!(key.chars().all(|c| c.is_ascii_hexdigit()), "{key}");
    shots.take(&browser, "source-created").await;
    // The new row, by the source's id.
    let listing = text(&browser, "#sources").await;
    assert!(listing.contains("Clinic feed"), "{listing}");
    let dev = engine.environment("Development").await;
    let (_, listed) = engine
        .get(&format!("/platform/v1/environments/{dev}/sources"))
        .await;
    let id = listed["payload"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "Clinic feed")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let row = format!("tr[data-source=\"{id}\"]");

    // Shown once: the page again has neither the notice nor the key.
    browser.goto(&at("/dashboard/sources")).await.unwrap();
    wait_for_text(&browser, "#sources", "Clinic feed").await;
    let source = browser.source().await.unwrap();
    assert!(!source.contains(&key), "the key is not shown again");
    assert!(!source.contains("created-key"));

    // Renamed with the row's form.
    fill(
        &browser,
        &format!("{row} form.rename input[name=name]"),
        "Clinic ADT",
    )
    .await;
    click(&browser, &format!("{row} form.rename button")).await;
    wait_for_text(&browser, &row, "Clinic ADT").await;
    let (_, read) = engine.get(&format!("/platform/v1/sources/{id}")).await;
    assert_eq!(read["payload"]["source"]["name"], "Clinic ADT");

    // Deleted with the row's button: the row goes, the configuration's source stays.
    click(&browser, &format!("{row} button.delete")).await;
    reload_until(
        &browser,
        &at("/dashboard/sources"),
        "the deleted row to go",
        |page| !page.contains(&id),
    )
    .await;
    assert!(text(&browser, "#sources").await.contains("EHR feed"));
    let (status, _) = engine.get(&format!("/platform/v1/sources/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
