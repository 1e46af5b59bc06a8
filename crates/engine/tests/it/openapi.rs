//! The OpenAPI document at `/platform/v1/openapi.json`: served without a key, a well-formed
//! OpenAPI 3.1 document, naming exactly the routes the engine serves, and describing what they
//! answer: real answers validate against the response schemas of their operations (and
//! answers with a wrong type or a missing field do not).

use super::platform_api::{
    accepting_server, env_id, get_ok, org_id, send, submit_arrival, verified_destination,
    wait_for_status,
};
use super::*;

const DOCUMENT: &str = wharf_engine::OPENAPI_PATH;

/// What the router answers for a route it does not have.
const FALLBACK_MESSAGE: &str = "no such API route not found";

/// Every (method, path) the engine serves under `/platform/v1`, and ingestion. The document
/// must describe each of them, and nothing else.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/platform/v1/organizations"),
    (
        "GET",
        "/platform/v1/organizations/{organizationId}/environments",
    ),
    (
        "GET",
        "/platform/v1/environments/{environmentId}/destinations",
    ),
    (
        "POST",
        "/platform/v1/environments/{environmentId}/destinations",
    ),
    ("GET", "/platform/v1/destinations/{destinationId}"),
    ("PATCH", "/platform/v1/destinations/{destinationId}"),
    ("DELETE", "/platform/v1/destinations/{destinationId}"),
    ("POST", "/platform/v1/destinations/{destinationId}/verify"),
    ("GET", "/platform/v1/destinations/{destinationId}/queue"),
    (
        "POST",
        "/platform/v1/destinations/{destinationId}/queue/pause",
    ),
    (
        "POST",
        "/platform/v1/destinations/{destinationId}/queue/resume",
    ),
    ("GET", "/platform/v1/authcredentials/strategies"),
    ("POST", "/platform/v1/authcredentials"),
    (
        "GET",
        "/platform/v1/environments/{environmentId}/authcredentials",
    ),
    ("GET", "/platform/v1/authcredentials/{id}"),
    ("PATCH", "/platform/v1/authcredentials/{id}"),
    ("DELETE", "/platform/v1/authcredentials/{id}"),
    ("GET", "/platform/v1/authcredentials/{id}/jwks"),
    ("GET", "/platform/v1/organizations/{organizationId}/logs"),
    (
        "GET",
        "/platform/v1/organizations/{organizationId}/logs/{logId}",
    ),
    ("POST", "/platform/v1/logs/{logId}/stop"),
    ("POST", "/platform/v1/logs/{logId}/resend"),
    (
        "POST",
        "/platform/v1/environments/{environmentId}/logs/search/payloads",
    ),
    (
        "POST",
        "/platform/v1/environments/{environmentId}/logs/search/metadata",
    ),
    ("GET", "/platform/v2/environments/{environmentId}/alerts"),
    ("POST", "/platform/v2/environments/{environmentId}/alerts"),
    (
        "GET",
        "/platform/v2/environments/{environmentId}/alerts/{alertId}",
    ),
    (
        "PATCH",
        "/platform/v2/environments/{environmentId}/alerts/{alertId}",
    ),
    (
        "DELETE",
        "/platform/v2/environments/{environmentId}/alerts/{alertId}",
    ),
    (
        "GET",
        "/platform/v2/environments/{environmentId}/alertLinks",
    ),
    (
        "POST",
        "/platform/v2/environments/{environmentId}/alertLinks",
    ),
    (
        "GET",
        "/platform/v2/environments/{environmentId}/alertLinks/{alertLinkId}",
    ),
    (
        "PATCH",
        "/platform/v2/environments/{environmentId}/alertLinks/{alertLinkId}",
    ),
    (
        "DELETE",
        "/platform/v2/environments/{environmentId}/alertLinks/{alertLinkId}",
    ),
    (
        "POST",
        "/platform/v1/environments/{environmentId}/logs/resend",
    ),
    ("GET", "/platform/v1/audit"),
    ("POST", "/endpoint"),
    ("GET", "/platform/v1/environments/{environmentId}/apikeys"),
    ("POST", "/platform/v1/environments/{environmentId}/apikeys"),
    ("GET", "/platform/v1/apikeys/{apikeyId}"),
    ("PATCH", "/platform/v1/apikeys/{apikeyId}"),
    ("DELETE", "/platform/v1/apikeys/{apikeyId}"),
    ("POST", "/v2/auth/token"),
    ("GET", "/platform/v1/environments/{environmentId}/sources"),
    ("POST", "/platform/v1/environments/{environmentId}/sources"),
    ("GET", "/platform/v1/sources/{sourceId}"),
    ("PATCH", "/platform/v1/sources/{sourceId}"),
    ("DELETE", "/platform/v1/sources/{sourceId}"),
    (
        "GET",
        "/platform/v1/environments/{environmentId}/subscriptions",
    ),
    (
        "POST",
        "/platform/v1/environments/{environmentId}/subscriptions",
    ),
    ("GET", "/platform/v1/subscriptions/{subscriptionId}"),
    ("PATCH", "/platform/v1/subscriptions/{subscriptionId}"),
    ("DELETE", "/platform/v1/subscriptions/{subscriptionId}"),
    ("GET", "/platform/v0/subscriptions/{subscriptionId}/filters"),
    (
        "POST",
        "/platform/v0/subscriptions/{subscriptionId}/filters",
    ),
    (
        "DELETE",
        "/platform/v0/subscriptions/{subscriptionId}/filters/{filterId}",
    ),
];

/// Served under `/platform/v1` but not an operation of the API: the document itself.
const UNDOCUMENTED: &[(&str, &str)] = &[("GET", DOCUMENT)];

/// Paths the API might plausibly serve and does not (Redox has no such routes either); probed
/// to show that the route list above is complete.
const NOT_ROUTES: &[&str] = &[
    "/platform/v1",
    "/platform/v1/environments/{environmentId}",
    "/platform/v1/organizations/{organizationId}",
    "/platform/v1/logs/{logId}",
    "/platform/v1/destinations",
    "/platform/v1/environments/{environmentId}/logs",
];

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];

const OPERATION_KEYS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

async fn document(engine: &Engine) -> Value {
    let response = engine
        .client
        .get(format!("{}{DOCUMENT}", engine.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    response.json().await.unwrap()
}

/// A JSON pointer's reference token.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Resolves a local `$ref` (`#/a/b`) in the document.
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

/// Every `$ref` in `value`, with where it was found.
fn refs(value: &Value, at: &str, found: &mut Vec<(String, String)>) {
    match value {
        Value::Object(object) => {
            for (key, child) in object {
                if key == "$ref"
                    && let Some(target) = child.as_str()
                {
                    found.push((at.to_owned(), target.to_owned()));
                }
                refs(child, &format!("{at}/{}", escape(key)), found);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                refs(child, &format!("{at}/{i}"), found);
            }
        }
        _ => {}
    }
}

/// Every operation of the document as (METHOD, path, operation).
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths is an object") {
        for (key, operation) in item.as_object().expect("a path item is an object") {
            if OPERATION_KEYS.contains(&key.as_str()) {
                found.push((key.to_uppercase(), path.clone(), operation));
            }
        }
    }
    found
}

/// The `{name}`s of a path template.
fn template_params(path: &str) -> Vec<&str> {
    path.split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(name, _)| name))
        .collect()
}

/// A validator for the JSON answer `status` of `method path`, its schema resolved against the
/// whole document (the document, with a top-level `$ref` to the response's schema).
fn response_validator(doc: &Value, method: &str, path: &str, status: u16) -> jsonschema::Validator {
    let pointer = format!(
        "/paths/{}/{}/responses/{status}/content/application~1json/schema",
        escape(path),
        method.to_lowercase()
    );
    assert!(
        doc.pointer(&pointer).is_some(),
        "the document has no JSON answer {status} for {method} {path}"
    );
    // `{` and `}` are not URI characters: percent-encoded in the reference, as JSON Schema's
    // URI fragments are read.
    let reference = format!("#{}", pointer.replace('{', "%7B").replace('}', "%7D"));
    let mut root = doc.clone();
    root["$ref"] = json!(reference);
    jsonschema::draft202012::new(&root)
        .unwrap_or_else(|e| panic!("{method} {path} {status}: the schema does not compile: {e}"))
}

/// Validates `body` as the answer `status` of `method path`, panicking with every error.
fn assert_valid(doc: &Value, method: &str, path: &str, status: u16, body: &Value) {
    let validator = response_validator(doc, method, path, status);
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status} does not match its schema: {errors:#?}\n{body}"
    );
}

/// Asserts that `body`, made wrong on purpose, fails its schema.
fn assert_invalid(doc: &Value, method: &str, path: &str, body: &Value, what: &str) {
    let validator = response_validator(doc, method, path, 200);
    assert!(
        !validator.is_valid(body),
        "{method} {path}: {what} still validates, so the schema checks nothing there: {body}"
    );
}

#[tokio::test]
async fn the_document_is_served_without_a_key_and_is_openapi_3_1() {
    let engine = Engine::start(true).await;
    let doc = document(&engine).await;
    let version = doc["openapi"].as_str().expect("openapi is a string");
    assert!(version.starts_with("3.1."), "OpenAPI {version}");
    assert!(
        doc["info"]["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{}",
        doc["info"]
    );
    assert!(doc["info"]["version"].is_string(), "{}", doc["info"]);
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    for scheme in ["managementKey", "sourceKey"] {
        assert_eq!(
            schemes[scheme],
            json!({"type": "http", "scheme": "bearer"}),
            "{scheme}"
        );
    }
    let check_security = |security: &Value, at: &str| {
        for requirement in security.as_array().unwrap_or_else(|| panic!("{at}")) {
            for name in requirement.as_object().unwrap().keys() {
                assert!(schemes.contains_key(name), "{at}: unknown scheme {name}");
            }
        }
    };
    check_security(&doc["security"], "the document");

    let paths = doc["paths"].as_object().expect("paths");
    assert!(!paths.is_empty());
    for (path, item) in paths {
        assert!(path.starts_with('/'), "{path}");
        for key in item.as_object().unwrap().keys() {
            assert!(
                OPERATION_KEYS.contains(&key.as_str())
                    || ["parameters", "summary", "description", "servers"].contains(&key.as_str()),
                "{path}: {key} is not a field of a path item"
            );
        }
    }
    let ops = operations(&doc);
    for (method, path, operation) in &ops {
        let at = format!("{method} {path}");
        let responses = operation["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{at}: no responses"));
        assert!(
            responses.keys().any(|code| code.starts_with('2')),
            "{at}: no success answer"
        );
        for (code, response) in responses {
            assert!(
                code == "default"
                    || (code.len() == 3 && code.chars().all(|c| c.is_ascii_digit() || c == 'X')),
                "{at}: {code} is not a status code"
            );
            assert!(
                response["description"].is_string(),
                "{at} {code}: no description"
            );
            for (media, content) in response["content"].as_object().into_iter().flatten() {
                assert!(
                    content["schema"].is_object(),
                    "{at} {code} {media}: no schema"
                );
                if let Ok(code) = code.parse() {
                    response_validator(&doc, method, path, code);
                }
            }
        }
        // Path parameters: exactly the template's, each required.
        let parameters: Vec<&Value> = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        let mut seen = std::collections::HashSet::new();
        for p in &parameters {
            let name = p["name"].as_str().unwrap_or_else(|| panic!("{at}: {p}"));
            let place = p["in"].as_str().unwrap_or_else(|| panic!("{at}: {p}"));
            assert!(
                ["query", "header", "path", "cookie"].contains(&place),
                "{at}: {p}"
            );
            assert!(seen.insert((name, place)), "{at}: {name} twice");
            assert!(
                p["schema"].is_object() || p["content"].is_object(),
                "{at}: {name} has no schema"
            );
        }
        let declared: Vec<&str> = parameters
            .iter()
            .filter(|p| p["in"] == "path")
            .map(|p| {
                assert_eq!(p["required"], true, "{at}: {p}");
                p["name"].as_str().unwrap()
            })
            .collect();
        let mut in_template = template_params(path);
        let mut declared_sorted = declared.clone();
        in_template.sort_unstable();
        declared_sorted.sort_unstable();
        assert_eq!(in_template, declared_sorted, "{at}: path parameters");
        if let Some(body) = operation.get("requestBody") {
            assert!(body["content"].is_object(), "{at}: request body");
        }
        if let Some(security) = operation.get("security") {
            check_security(security, &at);
        }
        if let Some(id) = operation.get("operationId") {
            assert!(id.is_string(), "{at}");
        }
    }

    // Every reference resolves, and every schema is a JSON Schema 2020-12 schema (OpenAPI
    // 3.1's dialect).
    let mut found = Vec::new();
    refs(&doc, "#", &mut found);
    assert!(!found.is_empty());
    for (at, target) in &found {
        assert!(
            resolve(&doc, target).is_some(),
            "{at}: $ref {target} resolves to nothing"
        );
    }
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for (name, schema) in schemas {
        if let Err(e) = jsonschema::draft202012::meta::validate(schema) {
            panic!("schema {name} is not JSON Schema 2020-12: {e}\n{schema}");
        }
    }

    // The same document with a management key, and at the other entry point.
    let (status, with_key) = send(&engine, reqwest::Method::GET, DOCUMENT, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(with_key, doc);
    assert_eq!(
        serde_json::to_value(wharf_engine::openapi_document()).unwrap(),
        doc
    );
}

/// OpenAPI: "The id MUST be unique among all operations described in the API" (tools name
/// generated client methods after it).
#[tokio::test]
async fn operation_ids_are_unique() {
    let engine = Engine::start(true).await;
    let doc = document(&engine).await;
    let mut seen = std::collections::HashMap::new();
    for (method, path, operation) in operations(&doc) {
        if let Some(id) = operation["operationId"].as_str()
            && let Some(other) = seen.insert(id.to_owned(), format!("{method} {path}"))
        {
            panic!("operationId {id} of {method} {path} is also {other}'s");
        }
    }
}

/// `path` with each `{param}` replaced by a value (the real organization, ids that exist nowhere
/// else).
fn concrete(path: &str, org: &str) -> String {
    let mut out = path.to_owned();
    for name in template_params(path) {
        let value = if name == "organizationId" {
            org.to_owned()
        } else {
            format!("no-such-{name}")
        };
        out = out.replace(&format!("{{{name}}}"), &value);
    }
    out
}

/// Whether the router serves `method path`: anything but its fallback's 404 and a 405.
async fn served(engine: &Engine, method: &str, path: &str) -> (bool, StatusCode, String) {
    let response = engine
        .client
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{path}", engine.base),
        )
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let fallback = status == StatusCode::NOT_FOUND && text.contains(FALLBACK_MESSAGE);
    (
        !fallback && status != StatusCode::METHOD_NOT_ALLOWED,
        status,
        text,
    )
}

#[tokio::test]
async fn the_document_names_exactly_the_routes_served() {
    let engine = Engine::start(true).await;
    let org = org_id(&engine).await;
    let doc = document(&engine).await;
    let documented: std::collections::BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect();
    let listed: std::collections::BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let missing: Vec<_> = listed.difference(&documented).collect();
    assert!(missing.is_empty(), "served but not documented: {missing:?}");
    let extra: Vec<_> = documented.difference(&listed).collect();
    assert!(
        extra.is_empty(),
        "documented but not in this test's list of served routes: {extra:?}"
    );

    // The probe tells: an unknown route gets the fallback, a wrong method is not served.
    let (is_served, status, text) = served(&engine, "GET", "/platform/v1/nothing").await;
    assert!(!is_served, "{status} {text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["errors"][0]["message"], FALLBACK_MESSAGE);
    let (is_served, status, text) = served(&engine, "PUT", "/platform/v1/organizations").await;
    assert!(!is_served, "{status} {text}");

    // Every documented operation is served, and on the documented paths no other method is.
    for (method, path) in &documented {
        let (is_served, status, text) = served(&engine, method, &concrete(path, &org)).await;
        assert!(
            is_served,
            "{method} {path} is documented but not served: {status} {text}"
        );
    }
    let paths: std::collections::BTreeSet<&str> = documented
        .iter()
        .map(|(_, p)| p.as_str())
        .chain(NOT_ROUTES.iter().copied())
        .collect();
    for path in paths {
        for method in METHODS {
            let (is_served, status, text) = served(&engine, method, &concrete(path, &org)).await;
            let known = listed.contains(&(method.to_string(), path.to_owned()))
                || UNDOCUMENTED.iter().any(|(m, p)| m == method && *p == path);
            assert_eq!(
                is_served, known,
                "{method} {path}: served {is_served} ({status} {text}), listed {known}"
            );
        }
    }
    for (method, path) in UNDOCUMENTED {
        assert!(served(&engine, method, path).await.0, "{method} {path}");
    }
}

#[tokio::test]
async fn answers_validate_against_the_document() {
    let engine = super::platform_api::engine().await;
    let doc = document(&engine).await;
    let org = org_id(&engine).await;
    let dev = env_id(&engine, "Development").await;

    let organizations = get_ok(&engine, "/platform/v1/organizations").await;
    assert_valid(
        &doc,
        "GET",
        "/platform/v1/organizations",
        200,
        &organizations,
    );
    let mut wrong = organizations.clone();
    wrong["payload"]["organizations"][0]
        .as_object_mut()
        .unwrap()
        .remove("id");
    assert_invalid(
        &doc,
        "GET",
        "/platform/v1/organizations",
        &wrong,
        "an organization without id",
    );

    let path = "/platform/v1/organizations/{organizationId}/environments";
    let environments = get_ok(&engine, &concrete(path, &org)).await;
    assert_valid(&doc, "GET", path, 200, &environments);
    let mut wrong = environments.clone();
    wrong["payload"]["environments"][0]["environmentFlag"] = json!("development");
    assert_invalid(&doc, "GET", path, &wrong, "environmentFlag \"development\"");

    // Destinations: create (from Redox's own body), get, list, update, verify, delete.
    let server = accepting_server().await;
    let destination = verified_destination(&engine, "Acme", &server).await;
    let (status, created) = send(
        &engine,
        reqwest::Method::POST,
        &format!("/platform/v1/environments/{dev}/destinations"),
        Some(super::platform_api::redox_destination(
            "Other",
            &dev,
            &server.url("/other"),
        )),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let collection = "/platform/v1/environments/{environmentId}/destinations";
    assert_valid(&doc, "POST", collection, 200, &created);
    let mut wrong = created.clone();
    wrong["payload"]["destination"]["verified"] = json!("no");
    assert_invalid(&doc, "POST", collection, &wrong, "verified \"no\"");
    let mut wrong = created.clone();
    wrong["payload"]["destination"]["environment"]["environmentFlag"] = json!("Test");
    assert_invalid(&doc, "POST", collection, &wrong, "environmentFlag \"Test\"");
    let other = created["payload"]["destination"]["id"].as_str().unwrap();

    let one = "/platform/v1/destinations/{destinationId}";
    let read = get_ok(&engine, &format!("/platform/v1/destinations/{destination}")).await;
    assert_valid(&doc, "GET", one, 200, &read);
    let mut wrong = read.clone();
    wrong["payload"]["destination"]
        .as_object_mut()
        .unwrap()
        .remove("id");
    assert_invalid(&doc, "GET", one, &wrong, "a destination without id");
    let listed = get_ok(
        &engine,
        &format!("/platform/v1/environments/{dev}/destinations"),
    )
    .await;
    assert_valid(&doc, "GET", collection, 200, &listed);
    let mut wrong = listed.clone();
    wrong["payload"]["destinations"] = json!({});
    assert_invalid(&doc, "GET", collection, &wrong, "destinations as an object");
    let (status, patched) = send(
        &engine,
        reqwest::Method::PATCH,
        &format!("/platform/v1/destinations/{other}"),
        Some(json!({"name": "Renamed"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_valid(&doc, "PATCH", one, 200, &patched);
    let (status, verified) = send(
        &engine,
        reqwest::Method::POST,
        &format!("/platform/v1/destinations/{other}/verify"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    let verify = "/platform/v1/destinations/{destinationId}/verify";
    assert_valid(&doc, "POST", verify, 200, &verified);
    let (status, failed) = send(
        &engine,
        reqwest::Method::POST,
        &format!("/platform/v1/destinations/{other}/verify"),
        Some(json!({"verificationToken": "a-wrong-token-0123456-0123456789a"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{failed}");
    assert_valid(&doc, "POST", verify, 422, &failed);
    let (status, deleted) = send(
        &engine,
        reqwest::Method::DELETE,
        &format!("/platform/v1/destinations/{other}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_valid(&doc, "DELETE", one, 200, &deleted);
    let (status, missing) = send(
        &engine,
        reqwest::Method::GET,
        &format!("/platform/v1/destinations/{other}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_valid(&doc, "GET", one, 404, &missing);

    // Strategies and credentials.
    let strategies = get_ok(&engine, "/platform/v1/authcredentials/strategies").await;
    let path = "/platform/v1/authcredentials/strategies";
    assert_valid(&doc, "GET", path, 200, &strategies);
    let mut wrong = strategies.clone();
    wrong["payload"]["strategies"]["AwsSigv4"]["availableFields"] =
        json!([{"name": "accessKey", "secret": false}]);
    assert_invalid(&doc, "GET", path, &wrong, "a field as an object");
    let (status, credential) = send(
        &engine,
        reqwest::Method::POST,
        "/platform/v1/authcredentials",
        Some(json!({
            "name": "AWS", "environmentId": dev, "authStrategy": "AwsSigv4",
            "accessKey": "AKIDEXAMPLE", "secretKey": "aws-secret-SENTINEL",
            "serviceName": "execute-api", "awsRegion": "us-east-1",
        })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{credential}");
    assert_valid(
        &doc,
        "POST",
        "/platform/v1/authcredentials",
        200,
        &credential,
    );
    let mut wrong = credential.clone();
    wrong["payload"]["credential"]
        .as_object_mut()
        .unwrap()
        .remove("authStrategy");
    assert_invalid(
        &doc,
        "POST",
        "/platform/v1/authcredentials",
        &wrong,
        "a credential without authStrategy",
    );
    let credential_id = credential["payload"]["credential"]["id"].as_str().unwrap();
    let read = get_ok(
        &engine,
        &format!("/platform/v1/authcredentials/{credential_id}"),
    )
    .await;
    assert_valid(&doc, "GET", "/platform/v1/authcredentials/{id}", 200, &read);
    let listed = get_ok(
        &engine,
        &format!("/platform/v1/environments/{dev}/authcredentials"),
    )
    .await;
    let path = "/platform/v1/environments/{environmentId}/authcredentials";
    assert_valid(&doc, "GET", path, 200, &listed);
    let (status, refused) = send(
        &engine,
        reqwest::Method::POST,
        "/platform/v1/authcredentials",
        Some(json!({"name": "X", "environmentId": dev, "authStrategy": "Nope"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_valid(&doc, "POST", "/platform/v1/authcredentials", 400, &refused);

    // Logs: a listing, one log, stop, and the queue.
    let log_id = submit_arrival(&engine, &[&destination], 1).await.remove(0);
    wait_for_status(&engine, &org, &log_id, "succeeded").await;
    let path = "/platform/v1/organizations/{organizationId}/logs";
    let logs = get_ok(&engine, &concrete(path, &org)).await;
    assert_valid(&doc, "GET", path, 200, &logs);
    let mut wrong = logs.clone();
    wrong["payload"]["results"][0]["status"] = json!("SUCCEEDED");
    assert_invalid(&doc, "GET", path, &wrong, "status \"SUCCEEDED\"");
    let mut wrong = logs.clone();
    wrong["payload"]["results"][0]["attempts"] = json!(1);
    assert_invalid(&doc, "GET", path, &wrong, "attempts as a number");
    let mut wrong = logs.clone();
    wrong["meta"]["page"]["links"]
        .as_object_mut()
        .unwrap()
        .remove("self");
    assert_invalid(&doc, "GET", path, &wrong, "page links without self");
    let (status, refused) = send(
        &engine,
        reqwest::Method::GET,
        &format!("{}?status=SUCCEEDED", concrete(path, &org)),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_valid(&doc, "GET", path, 400, &refused);

    let path = "/platform/v1/organizations/{organizationId}/logs/{logId}";
    let log = get_ok(
        &engine,
        &format!("/platform/v1/organizations/{org}/logs/{log_id}"),
    )
    .await;
    assert_valid(&doc, "GET", path, 200, &log);
    let mut wrong = log.clone();
    wrong["payload"]["result"]
        .as_object_mut()
        .unwrap()
        .remove("attempts");
    assert_invalid(&doc, "GET", path, &wrong, "a log without attempts");
    let mut wrong = log.clone();
    wrong["payload"]["result"]["attemptList"][0]["status"] = json!("ok");
    assert_invalid(&doc, "GET", path, &wrong, "an attempt with status \"ok\"");
    let mut wrong = log.clone();
    wrong["payload"]["result"]["type"] = json!("SEND");
    assert_invalid(&doc, "GET", path, &wrong, "type \"SEND\"");

    // The read above is in the audit log, as the document describes it.
    let audit = get_ok(&engine, "/platform/v1/audit").await;
    assert_eq!(audit["payload"]["entries"][0]["subject"], log_id.as_str());
    assert_valid(&doc, "GET", "/platform/v1/audit", 200, &audit);
    let mut wrong = audit.clone();
    wrong["payload"]["entries"][0]
        .as_object_mut()
        .unwrap()
        .remove("actorName");
    assert_invalid(
        &doc,
        "GET",
        "/platform/v1/audit",
        &wrong,
        "an entry without actorName",
    );

    let (status, resent) = send(
        &engine,
        reqwest::Method::POST,
        &format!("/platform/v1/logs/{log_id}/resend"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{resent}");
    assert_valid(
        &doc,
        "POST",
        "/platform/v1/logs/{logId}/resend",
        200,
        &resent,
    );
    let (status, paused) = send(
        &engine,
        reqwest::Method::POST,
        &format!("/platform/v1/destinations/{destination}/queue/pause"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    let queue = "/platform/v1/destinations/{destinationId}/queue";
    assert_valid(&doc, "POST", &format!("{queue}/pause"), 200, &paused);
    let held = submit_arrival(&engine, &[&destination], 2).await.remove(0);
    let (status, stopped) = send(
        &engine,
        reqwest::Method::POST,
        &format!("/platform/v1/logs/{held}/stop"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{stopped}");
    assert_valid(
        &doc,
        "POST",
        "/platform/v1/logs/{logId}/stop",
        200,
        &stopped,
    );
    let read = get_ok(
        &engine,
        &format!("/platform/v1/destinations/{destination}/queue"),
    )
    .await;
    assert_valid(&doc, "GET", queue, 200, &read);

    let (status, deleted) = send(
        &engine,
        reqwest::Method::DELETE,
        &format!("/platform/v1/authcredentials/{credential_id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_valid(
        &doc,
        "DELETE",
        "/platform/v1/authcredentials/{id}",
        200,
        &deleted,
    );
}

/// A person who opens the engine's bare address in a browser lands on the dashboard; an API
/// client asking the same address gets the API's JSON 404, as for any route it does not have.
#[tokio::test]
async fn the_bare_address_sends_browsers_to_the_dashboard_and_api_clients_a_json_404() {
    let engine = Engine::start(true).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let root = format!("{}/", engine.base);
    let browser = client
        .get(&root)
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(browser.status(), StatusCode::SEE_OTHER);
    assert_eq!(browser.headers()["location"], "/dashboard");

    for accept in [Some("application/json"), Some("*/*"), None] {
        let mut request = client.get(&root);
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{accept:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["errors"][0]["message"], FALLBACK_MESSAGE, "{accept:?}");
    }
    // Only the bare address redirects: a browser on an unknown path gets the 404.
    let elsewhere = client
        .get(format!("{}/nothing", engine.base))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::NOT_FOUND);
}
