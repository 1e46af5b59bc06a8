//! Issue 29 through the API: payload and metadata search (cursor paging, scoping, refusals),
//! bulk resend (same Log IDs, back of the queue, creation order), and retention (bodies and
//! answers erased after `payload_retention`, metadata kept).

use super::delivery::{SOURCE_KEY, config, endpoint, messages, verified_destination};
use super::*;
use std::time::Duration;
use wharf_testkit::wait_until;

/// Sends one message naming `patient` to `destination`; answers its Log ID.
pub(crate) async fn send_patient(engine: &Engine, destination: &str, patient: &str) -> String {
    let body = json!({
        "Meta": {"DataModel": "PatientAdmin", "EventType": "Arrival",
                 "Destinations": [{"ID": destination}]},
        "Patient": {"Demographics": {"FirstName": patient.split(' ').next().unwrap(),
                                      "LastName": patient.split(' ').nth(1).unwrap_or("")}},
    });
    let response = engine
        .client
        .post(format!("{}/endpoint", engine.base))
        .bearer_auth(SOURCE_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    answer["Meta"]["Logs"][0]["ID"].as_str().unwrap().to_owned()
}

fn ids(body: &Value) -> Vec<String> {
    body["payload"]["results"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn payload_and_metadata_search_through_the_api() {
    let engine = Engine::start_with(true, &config()).await;
    let sink = endpoint(0).await;
    let destination = verified_destination(&engine, &sink).await;
    let dev = engine.environment("Development").await;
    let prod = engine.environment("Production").await;
    let nila = send_patient(&engine, &destination, "Nila Jonkel").await;
    let other = send_patient(&engine, &destination, "Jonkel Nila").await;
    let timothy = send_patient(&engine, &destination, "Timothy Bixby").await;
    let payloads = format!("/platform/v1/environments/{dev}/logs/search/payloads");
    let metadata = format!("/platform/v1/environments/{dev}/logs/search/metadata");

    let (status, found) = engine
        .post(
            &payloads,
            json!({"searchTerms": [{"value": "Nila Jonkel", "category": "patient"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(ids(&found), [other.clone(), nila.clone()]);
    // Metadata only: the log's fields, never its body.
    assert!(!found.to_string().contains("Demographics"), "{found}");
    assert_eq!(
        found["payload"]["results"][0]["destination"]["id"],
        destination
    );
    assert_eq!(found["meta"]["page"]["pageType"], "cursor");
    assert!(
        found["meta"]["page"].get("cursor").is_none(),
        "one page only"
    );

    // Every term must be found, case-insensitive.
    let (_, both) = engine
        .post(
            &payloads,
            json!({"searchTerms": [{"value": "jonkel"}, {"value": "TIMOTHY"}]}),
        )
        .await;
    assert!(ids(&both).is_empty(), "{both}");
    let (_, one) = engine
        .post(&payloads, json!({"searchTerms": [{"value": "bixby"}]}))
        .await;
    assert_eq!(ids(&one), [timothy.as_str()]);
    // With metadata filters beside the terms.
    let (_, none) = engine
        .post(
            &payloads,
            json!({"searchTerms": [{"value": "Nila"}], "dataModel": "Scheduling"}),
        )
        .await;
    assert!(ids(&none).is_empty());
    // Another environment's search does not see Development's logs.
    let (_, elsewhere) = engine
        .post(
            &format!("/platform/v1/environments/{prod}/logs/search/payloads"),
            json!({"searchTerms": [{"value": "Nila"}]}),
        )
        .await;
    assert!(ids(&elsewhere).is_empty());

    // Metadata search, a cursor page at a time, newest first.
    let (status, first) = engine
        .post(
            &format!("{metadata}?_count=2"),
            json!({"dataModel": "PatientAdmin"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(ids(&first), [timothy.clone(), other.clone()]);
    let cursor = first["meta"]["page"]["cursor"].as_str().unwrap().to_owned();
    let (_, second) = engine
        .post(&format!("{metadata}?_count=2&_cursor={cursor}"), json!({}))
        .await;
    assert_eq!(ids(&second), [nila.as_str()]);
    assert!(
        second["meta"]["page"].get("cursor").is_none(),
        "the last page"
    );
    let (_, window) = engine
        .post(
            &metadata,
            json!({"updatedAfter": "2000-01-01T00:00:00.000Z", "updatedBefore": "2000-01-02T00:00:00.000Z"}),
        )
        .await;
    assert!(ids(&window).is_empty());
    let (_, by_source) = engine
        .post(&metadata, json!({"sourceId": "EHR feed", "type": "send"}))
        .await;
    assert_eq!(ids(&by_source).len(), 3);

    // Refusals say what to do.
    for (path, body, says) in [
        (&payloads, json!({}), "`searchTerms` is required"),
        (
            &payloads,
            json!({"searchTerms": [{"value": " ,; "}]}),
            "holds no word",
        ),
        (
            &metadata,
            json!({"searchTerms": [{"value": "x"}]}),
            "search/payloads",
        ),
        (&metadata, json!({"facilityCode": "X1"}), "facility code"),
        (&metadata, json!({"status": "SUCCEEDED!"}), "status"),
        (
            &metadata,
            json!({"createdAfter": "yesterday"}),
            "`createdAfter`",
        ),
        (&metadata, json!({"colour": "blue"}), "colour"),
    ] {
        let (status, answer) = engine.post(path, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert!(error(&answer).contains(says), "{body}: {answer}");
    }
    let (status, answer) = engine
        .post(&format!("{metadata}?_cursor=abc"), json!({}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&answer).contains("meta.page.cursor"), "{answer}");
    let (status, _) = engine
        .post(
            "/platform/v1/environments/nope/logs/search/metadata",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bulk_resend_requeues_a_range_with_the_same_log_ids_in_order() {
    let engine = Engine::start_with(true, &config()).await;
    let sink = endpoint(0).await;
    let destination = verified_destination(&engine, &sink).await;
    let dev = engine.environment("Development").await;
    let before = time::OffsetDateTime::now_utc() - time::Duration::seconds(5);
    let mut sent = Vec::new();
    for name in ["Ann One", "Bob Two", "Cy Three"] {
        sent.push(send_patient(&engine, &destination, name).await);
    }
    assert!(wait_until(Duration::from_secs(10), || messages(&sink).len() == 3).await);
    let store = engine.store();
    assert!(
        wait_until(Duration::from_secs(10), || {
            sent.iter().all(|id| {
                store
                    .log(id)
                    .unwrap()
                    .is_some_and(|(l, _)| l.status == wharf_store::engine::LogStatus::Succeeded)
            })
        })
        .await
    );
    let after = time::OffsetDateTime::now_utc() + time::Duration::seconds(5);
    let rfc = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let resend = format!("/platform/v1/environments/{dev}/logs/resend");
    let (status, answer) = engine
        .post(
            &resend,
            json!({"createdAfter": rfc(before), "createdBefore": rfc(after),
                   "destinationId": destination, "status": "succeeded"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["payload"]["count"], 3);
    assert!(wait_until(Duration::from_secs(10), || messages(&sink).len() == 6).await);
    let delivered: Vec<String> = messages(&sink)
        .iter()
        .map(|m| m["Meta"]["Logs"][0]["ID"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        delivered[3..],
        sent[..],
        "same Log IDs, in their original order"
    );
    // Each log kept its earlier attempt and has a new one.
    assert!(
        wait_until(Duration::from_secs(10), || {
            sent.iter()
                .all(|id| store.log(id).unwrap().unwrap().1.len() == 2)
        })
        .await
    );

    // A range outside the logs resends nothing; pending logs cannot be resent.
    let (_, nothing) = engine
        .post(
            &resend,
            json!({"createdAfter": "2000-01-01T00:00:00Z", "createdBefore": "2000-01-02T00:00:00Z"}),
        )
        .await;
    assert_eq!(nothing["payload"]["count"], 0);
    for (body, says) in [
        (
            json!({"createdAfter": rfc(before), "createdBefore": rfc(after), "status": "pending"}),
            "queued already",
        ),
        (json!({"createdAfter": rfc(before)}), "createdBefore"),
        (
            json!({"createdAfter": rfc(after), "createdBefore": rfc(before)}),
            "later than",
        ),
    ] {
        let (status, answer) = engine.post(&resend, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert!(error(&answer).contains(says), "{body}: {answer}");
    }
    let (status, _) = engine
        .post(
            &resend,
            json!({"createdAfter": rfc(before), "createdBefore": rfc(after), "destinationId": "nope"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn retention_erases_old_payloads_and_keeps_their_metadata() {
    let engine = Engine::start_with(
        true,
        &format!(
            "payload_retention = \"1d\"\nretention_interval = \"200ms\"\n{}",
            config()
        ),
    )
    .await;
    let sink = endpoint(0).await;
    let destination = verified_destination(&engine, &sink).await;
    let org = super::delivery::org_id(&engine).await;
    let dev = engine.environment("Development").await;
    let fresh = send_patient(&engine, &destination, "Fresh Patient").await;
    // A log written two days ago, already delivered (as if the engine had run then).
    let store = engine.store();
    let two_days_ago = wharf_store::now_millis() - 2 * 86_400_000;
    let old = wharf_store::engine::LogRecord {
        seq: 0,
        log_type: wharf_store::engine::LogType::Send,
        id: "old-log".into(),
        organization_id: org,
        destination_id: destination.clone(),
        source: "EHR feed".into(),
        data_model: Some("PatientAdmin".into()),
        event_type: Some("Arrival".into()),
        content_type: "application/json".into(),
        body: br#"{"Patient":{"Name":"Oldname Erasable"}}"#.to_vec(),
        status: wharf_store::engine::LogStatus::Pending,
        attempts: 0,
        next_attempt_at: two_days_ago,
        created_at: two_days_ago,
        updated_at: two_days_ago,
        subscription_id: None,
        resends: 0,
    };
    store
        .apply(&[wharf_store::engine::Write::Enqueue(vec![old])])
        .unwrap();
    // A log written straight into the store wakes no drain: the next message to the same
    // destination does (its drain reads the queue from its head), instead of the worker's
    // periodic look, which a loaded machine can push past the wait below.
    send_patient(&engine, &destination, "Later Patient").await;
    // Delivered by the engine, then erased by its next sweep.
    assert!(
        wait_until(Duration::from_secs(15), || {
            store.log("old-log").unwrap().is_some_and(|(l, _)| {
                l.status == wharf_store::engine::LogStatus::Succeeded && l.body.is_empty()
            })
        })
        .await
    );
    let (log, attempts) = store.log("old-log").unwrap().unwrap();
    assert_eq!(
        log.data_model.as_deref(),
        Some("PatientAdmin"),
        "metadata kept"
    );
    assert!(
        attempts.iter().all(|a| a.response.is_none()),
        "answers erased"
    );
    assert!(!store.log(&fresh).unwrap().unwrap().0.body.is_empty());
    let (_, found) = engine
        .post(
            &format!("/platform/v1/environments/{dev}/logs/search/payloads"),
            json!({"searchTerms": [{"value": "Oldname"}]}),
        )
        .await;
    assert!(ids(&found).is_empty(), "the index forgot it too: {found}");
    let (status, listed) = engine
        .get(&format!(
            "/platform/v1/organizations/{}/logs/old-log",
            super::delivery::org_id(&engine).await
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["payload"]["result"]["status"], "succeeded");
}
