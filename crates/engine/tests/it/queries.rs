//! Synchronous queries through `POST /endpoint`: every (data model, event type) of
//! `wharf_protocol::envelope::SYNC_QUERIES` is relayed to its destination and answered with the
//! destination's own answer in the same response, never queued; close relatives that are not
//! queries are queued; a query the destination fails is answered 200 with `Meta.Errors` as
//! Redox answers it.

use super::platform_api::{
    destination_server, engine, list_logs, log, messages, org_id, result_ids, submit,
    verified_destination, wait_for_status,
};
use super::*;
use wharf_protocol::envelope::SYNC_QUERIES;

/// The answer a destination gives a query: Redox's response event type, and what it answers.
fn answer_to(question: &Value) -> Vec<u8> {
    let meta = &question["Meta"];
    let data_model = meta["DataModel"].as_str().unwrap_or_default();
    let event_type = meta["EventType"].as_str().unwrap_or_default();
    let response = SYNC_QUERIES
        .iter()
        .find(|q| q.data_model == data_model && q.event_type == event_type)
        .and_then(|q| q.response_event_type)
        .unwrap_or("Answer");
    serde_json::to_vec(&json!({
        "Meta": {"DataModel": data_model, "EventType": response, "Errors": []},
        "Answered": {"EventType": event_type, "Number": question["Patient"]["Number"]},
    }))
    .unwrap()
}

/// A destination that answers queries with [`answer_to`] and accepts everything else.
async fn answering_server() -> Recorder {
    destination_server(|message| {
        let is_query = SYNC_QUERIES.iter().any(|q| {
            message["Meta"]["DataModel"] == q.data_model
                && message["Meta"]["EventType"] == q.event_type
        });
        if is_query {
            Reply {
                status: 200,
                content_type: "application/json",
                body: answer_to(message),
                delay: std::time::Duration::ZERO,
            }
        } else {
            Reply::status(200)
        }
    })
    .await
}

fn question(data_model: &str, event_type: &str, destination: &str, n: usize) -> Value {
    json!({
        "Meta": {
            "DataModel": data_model, "EventType": event_type,
            "Destinations": [{"ID": destination}],
        },
        "Patient": {"Number": n},
    })
}

#[tokio::test]
async fn every_sync_query_is_relayed_and_answered_in_the_same_response() {
    let engine = engine().await;
    let org = org_id(&engine).await;
    let server = answering_server().await;
    let destination = verified_destination(&engine, "Acme EHR", &server).await;
    assert!(!SYNC_QUERIES.is_empty());
    for (n, q) in SYNC_QUERIES.iter().enumerate() {
        let what = format!("{} {}", q.data_model, q.event_type);
        let before = messages(&server).len();
        let asked = question(q.data_model, q.event_type, &destination, n);
        let response = engine
            .client
            .post(format!("{}/endpoint", engine.base))
            .bearer_auth(super::platform_api::SOURCE_KEY)
            .json(&asked)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{what}");
        let text = response.bytes().await.unwrap();
        // The destination's answer, byte for byte; it was asked before the source was answered.
        let got = messages(&server);
        assert_eq!(got.len(), before + 1, "{what}: relayed once, at once");
        let relayed = got.last().unwrap();
        assert_eq!(
            text.as_ref(),
            answer_to(relayed).as_slice(),
            "{what}: {}",
            String::from_utf8_lossy(&text)
        );
        assert_eq!(relayed["Meta"]["DataModel"], q.data_model, "{what}");
        assert_eq!(relayed["Meta"]["EventType"], q.event_type, "{what}");
        assert_eq!(relayed["Patient"]["Number"], n, "{what}");
        assert_eq!(
            relayed["Meta"]["Destinations"],
            json!([{"ID": destination, "Name": "Acme EHR"}]),
            "{what}"
        );
        assert!(relayed["Meta"]["Logs"][0]["ID"].is_string(), "{what}");
    }

    // Nothing was queued: no pending log, no send log; each query is one request log that
    // succeeded.
    let (_, pending) = list_logs(&engine, &org, "status=pending").await;
    assert_eq!(result_ids(&pending), Vec::<String>::new(), "{pending}");
    let (_, sent) = list_logs(&engine, &org, "type=send").await;
    assert_eq!(result_ids(&sent), Vec::<String>::new(), "{sent}");
    let (_, requests) = list_logs(&engine, &org, "type=request&_count=50").await;
    let results = requests["payload"]["results"].as_array().unwrap();
    assert_eq!(results.len(), SYNC_QUERIES.len(), "{requests}");
    assert!(
        requests["meta"]["page"]["links"].get("next").is_none(),
        "{requests}"
    );
    for l in results {
        assert_eq!(l["status"], "succeeded", "{l}");
        assert_eq!(l["attempts"]["total"], 1, "{l}");
        assert_eq!(l["destination"]["id"], destination.as_str(), "{l}");
    }
    let events: std::collections::BTreeSet<(String, String)> = results
        .iter()
        .map(|l| {
            (
                l["dataModel"].as_str().unwrap().to_owned(),
                l["eventType"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(events.len(), SYNC_QUERIES.len());
}

#[tokio::test]
async fn close_relatives_of_queries_are_queued() {
    let engine = engine().await;
    let org = org_id(&engine).await;
    let server = answering_server().await;
    let destination = verified_destination(&engine, "Acme EHR", &server).await;
    let notifications = [
        ("Scheduling", "New"),
        ("PatientAdmin", "Arrival"),
        // A query's answer, sent on its own, is a notification.
        ("Clinical Summary", "PatientQueryResponse"),
    ];
    for (n, (data_model, event_type)) in notifications.into_iter().enumerate() {
        let what = format!("{data_model} {event_type}");
        let (status, body) =
            submit(&engine, &question(data_model, event_type, &destination, n)).await;
        assert_eq!(status, StatusCode::OK, "{what}: {body}");
        assert!(body.get("Answered").is_none(), "{what} was relayed: {body}");
        assert_eq!(body["Meta"]["DataModel"], data_model, "{body}");
        assert_eq!(body["Meta"]["EventType"], event_type, "{body}");
        let logs = body["Meta"]["Logs"].as_array().unwrap();
        assert_eq!(logs.len(), 1, "{body}");
        assert_eq!(logs[0]["DestinationID"], destination.as_str());
        let id = logs[0]["ID"].as_str().unwrap();
        let queued = log(&engine, &org, id).await;
        assert_eq!(queued["type"], "send", "{what}: {queued}");
        wait_for_status(&engine, &org, id, "succeeded").await;
    }
    let delivered: Vec<(Value, Value)> = messages(&server)
        .iter()
        .map(|m| {
            (
                m["Meta"]["DataModel"].clone(),
                m["Meta"]["EventType"].clone(),
            )
        })
        .collect();
    assert_eq!(
        delivered,
        notifications
            .iter()
            .map(|(d, e)| (json!(d), json!(e)))
            .collect::<Vec<_>>()
    );
    let (_, requests) = list_logs(&engine, &org, "type=request").await;
    assert_eq!(result_ids(&requests), Vec::<String>::new(), "{requests}");
}

#[tokio::test]
async fn a_query_the_destination_fails_is_answered_200_with_meta_errors() {
    let engine = engine().await;
    let org = org_id(&engine).await;
    let server = destination_server(|_| Reply::json(500, "{\"error\":\"EHR down\"}")).await;
    let destination = verified_destination(&engine, "Acme EHR", &server).await;
    let (status, body) = submit(
        &engine,
        &question("Clinical Summary", "PatientQuery", &destination, 1),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["Meta"]["DataModel"], "Clinical Summary", "{body}");
    assert_eq!(body["Meta"]["EventType"], "PatientQuery", "{body}");
    let errors = body["Meta"]["Errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{body}");
    let e = &errors[0];
    assert_eq!(e["DestinationStatusCode"], 500, "{body}");
    assert!(
        e["Details"].as_str().unwrap().contains("EHR down"),
        "{body}"
    );
    assert_eq!(e["Type"], "query");
    assert_eq!(e["Module"], "Send");
    assert!(e["Text"].as_str().unwrap().contains("500"), "{body}");
    assert!(!e["ID"].is_null(), "{body}");
    assert_eq!(messages(&server).len(), 1, "asked once, not retried");

    let (_, requests) = list_logs(&engine, &org, "type=request").await;
    let results = requests["payload"]["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{requests}");
    assert_eq!(results[0]["status"], "failed");
    assert_eq!(results[0]["attempts"]["total"], 1);
    assert_eq!(results[0]["attempts"]["latest"]["status"], "failed");
    let id = results[0]["id"].as_str().unwrap();
    let one = log(&engine, &org, id).await;
    assert_eq!(one["attemptList"][0]["statusCode"], 500, "{one}");
    let (_, pending) = list_logs(&engine, &org, "status=pending").await;
    assert_eq!(result_ids(&pending), Vec::<String>::new(), "{pending}");
}
