//! The dashboard: its protections checked with plain HTTP (sign-in, sessions, CSRF, Origin,
//! CSP, escaping, secrets never shown, environments not enabled), and the whole operator's
//! journey in a real headless Chromium (sign in, the seven-step wizard to `Success!`, a message
//! found in the logs, a failing one stopped and resent, credentials, queues), which also takes
//! the screenshots in docs/screenshots/ when `WHARF_SCREENSHOTS=1`.

mod browser;
mod credentialforms;
mod credentiallink;
mod destinationpage;
mod loglist;
mod logsearch;
mod phi;
mod signin;
mod sources;
mod tour;
mod traffic;

use super::*;
use browser::{
    ChromeDriver, Screenshots, click, fill, find, path, reload_until, text, wait_for_text,
    wait_for_url,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wharf_testkit::wait_until;

const PASSWORD: &str = "correct horse battery staple";
const SOURCE_KEY: &str = "source-key-0123456789abcdef-01234";
const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// An engine with a dashboard password (cheap argon2 parameters: tests sign in often), a
/// source, and a short retry ladder.
async fn engine_with_dashboard(extra: &str) -> Engine {
    let phc = wharf_engine::dashboard::hash_password_with(PASSWORD, 1024, 1).unwrap();
    Engine::start_with(
        true,
        &format!(
            "dashboard_password_hash = \"{phc}\"\nretry_ladder = [\"0s\", \"1s\"]\ndelivery_timeout = \"5s\"\n{extra}\n[[sources]]\nname = \"EHR feed\"\napi_key = \"{SOURCE_KEY}\"\n"
        ),
    )
    .await
}

/// Signs `browser` in to `engine`'s dashboard with the password, as a person would, and waits
/// for the home page.
async fn sign_in_browser(browser: &fantoccini::Client, engine: &Engine) {
    browser
        .goto(&format!("{}/dashboard/signin", engine.base))
        .await
        .unwrap();
    fill(browser, "#secret", PASSWORD).await;
    click(browser, "#signin").await;
    find(browser, "#new-destination").await;
}

/// A dashboard user without a browser: keeps the cookies it is given, follows no redirect.
struct Visitor {
    base: String,
    client: reqwest::Client,
    cookies: Vec<(String, String)>,
}

/// The `value` of the first hidden `csrf` input of a page.
fn csrf_of(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    html[start..].split('"').next().unwrap().to_owned()
}

impl Visitor {
    fn new(engine: &Engine) -> Visitor {
        Visitor {
            base: engine.base.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: Vec::new(),
        }
    }

    fn keep_cookies(&mut self, response: &reqwest::Response) {
        for set in response.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let (name, rest) = set.split_once('=').unwrap();
            let value = rest.split(';').next().unwrap().to_owned();
            self.cookies.retain(|(n, _)| n != name);
            if !value.is_empty() {
                self.cookies.push((name.to_owned(), value));
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn get(&mut self, path: &str) -> reqwest::Response {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep_cookies(&response);
        response
    }

    async fn post(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        origin: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).unwrap());
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let response = request.send().await.unwrap();
        self.keep_cookies(&response);
        response
    }

    /// Signs in with `secret` (the `admin` account's password, or a management key); returns
    /// the CSRF token of the first page.
    async fn sign_in(&mut self, secret: &str) -> String {
        self.sign_in_as("", secret).await
    }

    /// Signs in as operator `name` (empty: `admin`) with `secret`.
    async fn sign_in_as(&mut self, name: &str, secret: &str) -> String {
        let form = self.get("/dashboard/signin").await.text().await.unwrap();
        let token = csrf_of(&form);
        let origin = self.base.clone();
        let response = self
            .post(
                "/dashboard/signin",
                &[("csrf", &token), ("name", name), ("secret", secret)],
                Some(&origin),
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "sign-in refused");
        assert_eq!(response.headers()["location"], "/dashboard/destinations");
        let page = self.get("/dashboard/destinations").await;
        assert_eq!(page.status(), StatusCode::OK);
        csrf_of(&page.text().await.unwrap())
    }
}

#[tokio::test]
async fn sign_in_sessions_and_the_headers_every_page_carries() {
    let engine = engine_with_dashboard("").await;
    let mut visitor = Visitor::new(&engine);

    // Not signed in: pages send to the sign-in page, which then sends back to them.
    for (page, to) in [
        ("/dashboard", "/dashboard/signin"),
        ("/dashboard/", "/dashboard/signin"),
        (
            "/dashboard/destinations",
            "/dashboard/signin?next=%2Fdashboard%2Fdestinations",
        ),
        (
            "/dashboard/logs/x?done=1",
            "/dashboard/signin?next=%2Fdashboard%2Flogs%2Fx%3Fdone%3D1",
        ),
    ] {
        let response = visitor.get(page).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{page}");
        assert_eq!(response.headers()["location"], to, "{page}");
    }
    // Only to a dashboard page of this site.
    let form = visitor
        .get("/dashboard/signin?next=https://evil.example/")
        .await
        .text()
        .await
        .unwrap();
    assert!(!form.contains("evil.example"), "{form}");

    let response = visitor.get("/dashboard/signin").await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers["content-security-policy"], CSP);
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["cache-control"], "no-store");
    let form = response.text().await.unwrap();
    assert!(
        !form.contains("<script>") && !form.contains("style="),
        "no inline code"
    );
    let token = csrf_of(&form);

    // A wrong password: refused, said so, and the password is not echoed.
    let origin = engine.base.clone();
    let wrong = visitor
        .post(
            "/dashboard/signin",
            &[("csrf", &token), ("secret", "not-the-password")],
            Some(&origin),
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let page = wrong.text().await.unwrap();
    assert!(page.contains("neither the password of that operator account nor a management key"));
    assert!(!page.contains("not-the-password"));
    // The sign-in form's own CSRF token is required too.
    let forged = visitor
        .post("/dashboard/signin", &[("secret", PASSWORD)], Some(&origin))
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);

    // The password signs in; the session cookie is locked down.
    let response = visitor
        .post(
            "/dashboard/signin",
            &[("csrf", &token), ("secret", PASSWORD)],
            Some(&origin),
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let session = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("wharf_session="))
        .expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/dashboard"] {
        assert!(session.contains(attribute), "{session}");
    }
    assert!(!session.contains("Secure"), "plain HTTP here: {session}");
    let id = session["wharf_session=".len()..].split(';').next().unwrap();
    assert_eq!(id.len(), 64, "a 256-bit session id");

    // Home is traffic at a glance (issue 29), under the same headers.
    let home = visitor.get("/dashboard").await;
    assert_eq!(home.status(), StatusCode::OK);
    assert_eq!(home.headers()["content-security-policy"], CSP);
    assert!(home.text().await.unwrap().contains("<h1>Traffic</h1>"));
    let missing = visitor.get("/dashboard/nothing").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(missing.headers()["content-security-policy"], CSP);
    let page = visitor.get("/dashboard/destinations").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["content-security-policy"], CSP);
    assert_eq!(page.headers()["cache-control"], "no-store");
    let csrf = csrf_of(&page.text().await.unwrap());

    // Static files are served with the same policy and their own type.
    let css = visitor.get("/dashboard/static/dashboard.css").await;
    assert_eq!(css.status(), StatusCode::OK);
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(css.headers()["content-security-policy"], CSP);
    let js = visitor.get("/dashboard/static/dashboard.js").await;
    assert_eq!(
        js.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(
        visitor.get("/dashboard/static/other.js").await.status(),
        StatusCode::NOT_FOUND
    );

    // Signing out ends the session on the server, whatever the browser keeps.
    let kept = visitor.cookies.clone();
    let out = visitor
        .post("/dashboard/signout", &[("csrf", &csrf)], Some(&origin))
        .await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    visitor.cookies = kept;
    let after = visitor.get("/dashboard/destinations").await;
    assert_eq!(after.status(), StatusCode::SEE_OTHER);

    // A management key signs in too.
    let mut operator = Visitor::new(&engine);
    operator.sign_in(KEY).await;
}

#[tokio::test]
async fn posts_need_the_sessions_csrf_token_and_a_same_origin() {
    let engine = engine_with_dashboard("").await;
    let mut visitor = Visitor::new(&engine);
    let csrf = visitor.sign_in(PASSWORD).await;
    let origin = engine.base.clone();
    let create = "/dashboard/destinations/new";

    let missing = visitor.post(create, &[("name", "A")], Some(&origin)).await;
    assert_eq!(missing.status(), StatusCode::FORBIDDEN);
    assert_eq!(missing.headers()["content-security-policy"], CSP);
    assert!(missing.text().await.unwrap().contains("reload the page"));
    let wrong = visitor
        .post(create, &[("csrf", "0123"), ("name", "B")], Some(&origin))
        .await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let cross_site = visitor
        .post(
            create,
            &[("csrf", &csrf), ("name", "C")],
            Some("http://evil.example"),
        )
        .await;
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    // Another session's token does not do either.
    let mut other = Visitor::new(&engine);
    let other_csrf = other.sign_in(PASSWORD).await;
    let swapped = visitor
        .post(
            create,
            &[("csrf", &other_csrf), ("name", "D")],
            Some(&origin),
        )
        .await;
    assert_eq!(swapped.status(), StatusCode::FORBIDDEN);
    // Without a session, a POST is refused even with a token.
    let mut stranger = Visitor::new(&engine);
    let anonymous = stranger
        .post(create, &[("csrf", &csrf), ("name", "E")], Some(&origin))
        .await;
    assert_eq!(anonymous.status(), StatusCode::FORBIDDEN);

    let dev = engine.environment("Development").await;
    let (_, listed) = engine
        .get(&format!("/platform/v1/environments/{dev}/destinations"))
        .await;
    assert_eq!(
        listed["payload"]["destinations"],
        json!([]),
        "nothing refused was created"
    );

    // With the token (and without an Origin header, as some clients send), it works.
    let ok = visitor
        .post(create, &[("csrf", &csrf), ("name", "F")], None)
        .await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    let (_, listed) = engine
        .get(&format!("/platform/v1/environments/{dev}/destinations"))
        .await;
    assert_eq!(listed["payload"]["destinations"][0]["name"], "F");
}

#[tokio::test]
async fn pages_escape_what_they_show_and_never_show_a_secret() {
    let engine = engine_with_dashboard("").await;
    let dev = engine.environment("Development").await;
    let (status, created) = engine
        .post(
            &format!("/platform/v1/environments/{dev}/destinations"),
            json!({"name": "<script>alert(1)</script>", "endpoint": "http://127.0.0.1:9/x?a=<b>", "verificationToken": "destination-token-secret-1-012345"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["payload"]["destination"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, credential) = engine
        .post(
            "/platform/v1/authcredentials",
            json!({"name": "Token endpoint", "environmentId": dev, "authStrategy": "OAuth_2.0_2-legged",
                   "url": "https://auth.example/token", "clientId": "client-1",
                   "clientSecret": "client-secret-value-2"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{credential}");
    let credential = credential["payload"]["credential"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut visitor = Visitor::new(&engine);
    visitor.sign_in(KEY).await;
    let mut pages = String::new();
    for path in [
        "/dashboard/destinations".to_owned(),
        format!("/dashboard/destinations/{id}/setup/5"),
        format!("/dashboard/destinations/{id}/setup/7"),
        "/dashboard/credentials".to_owned(),
        format!("/dashboard/credentials/{credential}"),
        "/dashboard/queues".to_owned(),
    ] {
        let response = visitor.get(&path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        pages.push_str(&response.text().await.unwrap());
    }
    // askama escapes < and > as numeric references.
    assert!(pages.contains("&#60;script&#62;alert(1)&#60;/script&#62;"));
    assert!(!pages.contains("<script>alert"));
    assert!(!pages.contains("<b>"));
    assert!(!pages.contains("destination-token-secret-1-012345"));
    assert!(!pages.contains("client-secret-value-2"));
    assert!(pages.contains("set — leave empty to keep"));
    assert!(pages.contains("client-1"), "non-secret fields are shown");
    // The destination made through the API lacks nothing but verification: its page says
    // so and links to Verify and Save.
    let page = visitor.get(&format!("/dashboard/destinations/{id}")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(page.contains("Not verified"), "{page}");
    assert!(page.contains(&format!("/dashboard/destinations/{id}/setup/7")));
    assert!(!page.contains("<script>alert"));
}

#[tokio::test]
async fn only_enabled_environments_take_destinations() {
    let engine = engine_with_dashboard("enabled_environments = [\"Production\"]").await;
    let staging = engine.environment("Staging").await;
    let prod = engine.environment("Production").await;
    // The API refuses Staging too.
    let (status, body) = engine
        .post(
            &format!("/platform/v1/environments/{staging}/destinations"),
            json!({"name": "S"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(error(&body).contains("enabled_environments"), "{body}");

    let mut visitor = Visitor::new(&engine);
    let csrf = visitor.sign_in(PASSWORD).await;
    let origin = engine.base.clone();
    let created = visitor
        .post(
            "/dashboard/destinations/new",
            &[("csrf", &csrf), ("name", "Half-way")],
            Some(&origin),
        )
        .await;
    let step2 = created.headers()["location"].to_str().unwrap().to_owned();
    assert!(step2.ends_with("/setup/2"), "{step2}");
    let page = visitor.get(&step2).await.text().await.unwrap();
    assert!(page.contains("Staging <span class=\"muted\">— not enabled"));
    let refused = visitor
        .post(
            &step2,
            &[("csrf", &csrf), ("environment", &staging)],
            Some(&origin),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(refused.text().await.unwrap().contains("not enabled"));
    let moved = visitor
        .post(
            &step2,
            &[("csrf", &csrf), ("environment", &prod)],
            Some(&origin),
        )
        .await;
    assert_eq!(moved.status(), StatusCode::SEE_OTHER);
    let id = step2.split('/').nth(3).unwrap();
    let (_, read) = engine.get(&format!("/platform/v1/destinations/{id}")).await;
    assert_eq!(
        read["payload"]["destination"]["environment"]["environmentFlag"],
        "Production"
    );
    assert_eq!(
        read["payload"]["destination"]["environment"]["id"],
        prod.as_str()
    );
    // Steps are taken in order: a later one sends back to where the setup stands.
    let step3 = step2.replace("/setup/2", "/setup/3");
    let step4 = step2.replace("/setup/2", "/setup/4");
    let early = visitor
        .post(
            &step4,
            &[("csrf", &csrf), ("endpoint", "https://x.example/")],
            Some(&origin),
        )
        .await;
    assert_eq!(early.headers()["location"], step3.as_str());
    let format = visitor
        .post(
            &step3,
            &[("csrf", &csrf), ("dataFormat", "FHIR")],
            Some(&origin),
        )
        .await;
    assert_eq!(format.headers()["location"], step4.as_str());
    // Production needs HTTPS: the endpoint step says so, with the API's words.
    let http = visitor
        .post(
            &step4,
            &[("csrf", &csrf), ("endpoint", "http://127.0.0.1:9/x")],
            Some(&origin),
        )
        .await;
    assert_eq!(http.status(), StatusCode::BAD_REQUEST);
    assert!(
        http.text()
            .await
            .unwrap()
            .contains("Production and staging destinations must use HTTPS")
    );
    // Saved half-way: listed as in progress, resumed at the first step not done.
    let list = visitor
        .get("/dashboard/destinations")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        list.contains("In progress") && list.contains("Resume at step 4 of 7"),
        "{list}"
    );
    assert!(
        !list.contains("<h2>Staging"),
        "a disabled, empty environment is not listed"
    );
}

/// The destination endpoint of the browser test: answers challenges whose token is the one
/// the wizard generated (known once the page shows it), and fails messages while told to.
struct Endpoint {
    recorder: Recorder,
    token: Arc<Mutex<Option<String>>>,
    failing: Arc<AtomicBool>,
}

impl Endpoint {
    async fn start() -> Endpoint {
        let token: Arc<Mutex<Option<String>>> = Arc::default();
        let failing: Arc<AtomicBool> = Arc::default();
        let (accepted, fail) = (token.clone(), failing.clone());
        let recorder = Recorder::start(move |_, r: &Received| {
            let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            let expected = accepted.lock().unwrap().clone();
            if let Some(challenge) = body["challenge"].as_str() {
                let right = expected.is_some()
                    && body["verification-token"].as_str() == expected.as_deref();
                return Reply {
                    status: if right { 200 } else { 403 },
                    content_type: "text/plain",
                    body: if right {
                        challenge.as_bytes().to_vec()
                    } else {
                        Vec::new()
                    },
                    delay: Duration::ZERO,
                };
            }
            if r.header("verification-token") != expected.as_deref() {
                return Reply::status(403);
            }
            if fail.load(Ordering::SeqCst) {
                Reply::json(500, "{\"error\":\"the application is down\"}")
            } else {
                Reply::json(200, "{\"kept\":true}")
            }
        })
        .await;
        Endpoint {
            recorder,
            token,
            failing,
        }
    }

    fn messages(&self) -> Vec<Value> {
        self.recorder
            .received()
            .iter()
            .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
            .filter(|v| v.get("Meta").is_some())
            .collect()
    }
}

async fn send(engine: &Engine, destination: &str, patient: &str) -> Value {
    let response = engine
        .client
        .post(format!("{}/endpoint", engine.base))
        .bearer_auth(SOURCE_KEY)
        .json(&json!({
            "Meta": {"DataModel": "PatientAdmin", "EventType": "Arrival",
                     "Destinations": [{"ID": destination}]},
            "Patient": {"Demographics": {"FirstName": patient}},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sets_up_a_destination_and_handles_a_failing_message_in_a_browser() {
    let driver = ChromeDriver::start().await;
    let endpoint = Endpoint::start().await;
    let engine = engine_with_dashboard("").await;
    let browser = driver.browser().await;
    let shots = Screenshots::from_env();
    let base = engine.base.clone();
    let at = |path: &str| format!("{base}{path}");

    // Sign in: a wrong password is refused with a message, the right one lets in.
    browser.goto(&at("/dashboard/signin")).await.unwrap();
    fill(&browser, "#secret", "not the password").await;
    click(&browser, "#signin").await;
    let refused = text(&browser, "#error").await;
    assert!(
        refused.contains("neither the password of that operator account"),
        "{refused}"
    );
    shots.take(&browser, "signin").await;
    fill(&browser, "#secret", PASSWORD).await;
    click(&browser, "#signin").await;
    find(&browser, "#new-destination").await;
    assert_eq!(path(&browser).await, "/dashboard/destinations");

    // The wizard, step by step.
    click(&browser, "#new-destination").await;
    fill(&browser, "#name", "Acme Scheduling").await;
    shots.take(&browser, "wizard-1-name").await;
    click(&browser, "#next").await;
    find(&browser, "#environment-Development").await;
    let step2 = path(&browser).await;
    assert!(step2.ends_with("/setup/2"), "{step2}");
    let id = step2.split('/').nth(3).unwrap().to_owned();
    click(&browser, "#environment-Development").await;
    shots.take(&browser, "wizard-2-environment").await;
    click(&browser, "#next").await;
    click(&browser, "#format-JSON").await;
    shots.take(&browser, "wizard-3-data-format").await;
    click(&browser, "#next").await;
    fill(&browser, "#endpoint", &endpoint.recorder.url("/redox")).await;
    shots.take(&browser, "wizard-4-endpoint").await;
    click(&browser, "#next").await;
    click(&browser, "#generate").await;
    let token = text(&browser, "#generated-token").await;
    assert_eq!(token.len(), 48, "{token}");
    assert!(token.bytes().all(|b| b.is_ascii_alphanumeric()));
    shots.take(&browser, "wizard-5-verification-token").await;
    click(&browser, "#next").await;
    find(&browser, "#authCredential").await;
    shots.take(&browser, "wizard-6-auth-credential").await;
    click(&browser, "#next").await;
    find(&browser, "#verificationMethod").await;
    shots.take(&browser, "wizard-7-verify").await;
    // The endpoint does not know the new token yet: Verify and Save says what it answered.
    click(&browser, "#next").await;
    let failed = text(&browser, "#error").await;
    assert!(
        failed.contains("Verification failed") && failed.contains("HTTP 403"),
        "{failed}"
    );
    shots.take(&browser, "wizard-7-failure").await;
    // Configured with it, the retry succeeds.
    *endpoint.token.lock().unwrap() = Some(token.clone());
    click(&browser, "#next").await;
    assert_eq!(text(&browser, "#success").await, "Success!");
    shots.take(&browser, "wizard-7-success").await;
    let source = browser.source().await.unwrap();
    assert!(
        !source.contains(&token),
        "the token is not shown once saved"
    );

    // The list shows it verified.
    browser.goto(&at("/dashboard/destinations")).await.unwrap();
    let row = text(&browser, &format!("tr[data-destination=\"{id}\"]")).await;
    for shown in ["Acme Scheduling", "/redox", "JSON", "Verified", "Running"] {
        assert!(row.contains(shown), "{shown} in {row}");
    }

    // A message goes through, and the operator finds its log.
    let sent = send(&engine, &id, "Jane").await;
    let first = sent["Meta"]["Logs"][0]["ID"].as_str().unwrap().to_owned();
    assert!(wait_until(Duration::from_secs(10), || endpoint.messages().len() == 1).await);
    let search = at(&format!(
        "/dashboard/logs?destination={id}&status=succeeded&dataModel=PatientAdmin&eventType=Arrival"
    ));
    reload_until(&browser, &search, "the delivered log", |page| {
        page.contains(&first)
    })
    .await;
    // The same search through the form.
    browser.goto(&at("/dashboard/logs")).await.unwrap();
    find(&browser, "#destination")
        .await
        .select_by_value(&id)
        .await
        .unwrap();
    find(&browser, "#status")
        .await
        .select_by_value("succeeded")
        .await
        .unwrap();
    fill(&browser, "#dataModel", "PatientAdmin").await;
    click(&browser, "#search").await;
    wait_for_url(&browser, "status=succeeded").await;
    find(&browser, &format!("tr[data-log=\"{first}\"]")).await;
    click(&browser, &format!("tr[data-log=\"{first}\"] a")).await;
    assert_eq!(text(&browser, "#log-status").await, "succeeded");
    assert_eq!(
        find(&browser, "#log-status")
            .await
            .attr("class")
            .await
            .unwrap()
            .as_deref(),
        Some("badge status-succeeded")
    );
    assert!(text(&browser, "#attempts").await.contains("200"));
    assert!(
        !browser.source().await.unwrap().contains("Jane"),
        "PHI is not in the page until asked for"
    );
    click(&browser, "#show-phi").await;
    assert!(text(&browser, "#message-body").await.contains("Jane"));
    assert!(path(&browser).await.ends_with("/phi"));
    click(&browser, "#hide-phi").await;
    find(&browser, "#show-phi").await;
    browser.goto(&at("/dashboard/audit")).await.unwrap();
    let audit = text(&browser, "#audit").await;
    assert!(
        audit.contains(&first) && audit.contains("admin") && audit.contains("log.phi.read"),
        "{audit}"
    );

    // The endpoint fails: the next message is retried and holds the queue.
    endpoint.failing.store(true, Ordering::SeqCst);
    let sent = send(&engine, &id, "John").await;
    let second = sent["Meta"]["Logs"][0]["ID"].as_str().unwrap().to_owned();
    let failing = at(&format!("/dashboard/logs?destination={id}&status=pending"));
    reload_until(&browser, &failing, "the failing log", |page| {
        page.contains(&second)
    })
    .await;
    let log = at(&format!("/dashboard/logs/{second}"));
    reload_until(&browser, &log, "a failed attempt", |page| {
        page.contains(">500<")
    })
    .await;
    // A message behind the failing one names what it waits behind.
    let sent = send(&engine, &id, "Jim").await;
    let third = sent["Meta"]["Logs"][0]["ID"].as_str().unwrap().to_owned();
    browser
        .goto(&at(&format!("/dashboard/logs/{third}")))
        .await
        .unwrap();
    let waiting = text(&browser, "#next-attempt").await;
    assert!(
        waiting.contains("waits behind") && waiting.contains(&second),
        "{waiting}"
    );
    assert!(text(&browser, "#no-attempt").await.contains(&second));
    // The queue is held (one word for it everywhere), not paused: no Resume, but Retry now,
    // which says what it did.
    browser.goto(&at("/dashboard/queues")).await.unwrap();
    let row_css = format!("tr[data-destination=\"{id}\"]");
    let row = find(&browser, &row_css).await;
    assert_eq!(row.attr("class").await.unwrap().as_deref(), Some("held"));
    let shown = row.text().await.unwrap();
    assert!(
        shown.contains("Held") && !shown.contains("Paused"),
        "{shown}"
    );
    assert!(
        browser
            .find(fantoccini::Locator::Css(&format!(
                "{row_css} button.resume"
            )))
            .await
            .is_err()
    );
    click(&browser, &format!("{row_css} button.retry")).await;
    wait_for_text(&browser, "#notice", "Retrying Acme Scheduling").await;

    // Stop it (the page asks first), then resend it once the endpoint is back.
    browser.goto(&log).await.unwrap();
    click(&browser, "#stop").await;
    browser.accept_alert().await.unwrap();
    find(&browser, "#notice").await;
    assert_eq!(text(&browser, "#log-status").await, "failed");
    endpoint.failing.store(false, Ordering::SeqCst);
    click(&browser, "#resend").await;
    browser.accept_alert().await.unwrap();
    wait_for_text(&browser, "#notice", "Resent").await;
    reload_until(&browser, &log, "the resent log to succeed", |page| {
        page.contains("id=\"log-status\">succeeded<")
    })
    .await;
    let delivered: Vec<Value> = endpoint.messages();
    assert_eq!(
        delivered.last().unwrap()["Meta"]["Logs"][0]["ID"],
        second.as_str(),
        "the resent message kept its Log ID"
    );
    let last = endpoint.recorder.received().last().cloned().unwrap();
    assert_eq!(last.header("wharf-resend"), Some("1"), "marked as a resend");
    assert!(text(&browser, "#resends").await.contains("once"));

    // An operator's pause says who, when and why; a paused queue offers Resume, not Pause.
    browser.goto(&at("/dashboard/queues")).await.unwrap();
    let row = format!("tr[data-destination=\"{id}\"]");
    fill(&browser, &format!("#reason-{id}"), "partner maintenance").await;
    click(&browser, &format!("{row} button.pause")).await;
    wait_for_text(&browser, "#notice", "Paused Acme Scheduling").await;
    let paused = wait_for_text(&browser, &row, "by admin at").await;
    assert!(
        paused.contains("Paused") && paused.contains("partner maintenance"),
        "{paused}"
    );
    assert!(
        browser
            .find(fantoccini::Locator::Css(&format!("{row} button.pause")))
            .await
            .is_err(),
        "no Pause on a paused queue"
    );
    click(&browser, &format!("{row} button.resume")).await;
    wait_for_text(&browser, "#notice", "Resumed Acme Scheduling").await;
    wait_for_text(&browser, &row, "Running").await;

    // Auth credentials: a form with the strategy's own fields; the secret is write-only.
    browser
        .goto(&at("/dashboard/credentials/new"))
        .await
        .unwrap();
    find(&browser, "#strategy")
        .await
        .select_by_value("OAuth_2.0_2-legged")
        .await
        .unwrap();
    click(&browser, "#choose").await;
    find(&browser, "#field-clientSecret").await;
    assert!(
        browser
            .find(fantoccini::Locator::Css("#field-accessKey"))
            .await
            .is_err()
    );
    fill(&browser, "#name", "Token endpoint").await;
    fill(&browser, "#field-url", "https://auth.example/token").await;
    fill(&browser, "#field-clientId", "wharf-client").await;
    fill(&browser, "#field-clientSecret", "client-secret-value-3").await;
    click(&browser, "#save").await;
    assert_eq!(text(&browser, "#notice").await, "Saved.");
    let secret = find(&browser, "#field-clientSecret").await;
    assert_eq!(secret.prop("value").await.unwrap().as_deref(), Some(""));
    assert_eq!(
        secret.attr("placeholder").await.unwrap().as_deref(),
        Some("set — leave empty to keep")
    );
    assert!(
        !browser
            .source()
            .await
            .unwrap()
            .contains("client-secret-value-3")
    );
    browser.goto(&at("/dashboard/credentials")).await.unwrap();
    assert!(text(&browser, "main").await.contains("Token endpoint"));
    browser.goto(&at("/dashboard/destinations")).await.unwrap();
    find(&browser, "#new-destination").await;

    // Signing out says so; a link followed afterwards is where signing in lands.
    click(&browser, "#signout").await;
    assert!(
        text(&browser, "#notice")
            .await
            .contains("You are signed out")
    );
    browser.goto(&at("/dashboard/queues")).await.unwrap();
    assert_eq!(path(&browser).await, "/dashboard/signin");
    fill(&browser, "#secret", PASSWORD).await;
    click(&browser, "#signin").await;
    wait_for_url(&browser, "/dashboard/queues").await;
    find(&browser, "#queues").await;
    // A page that does not exist keeps the navigation.
    browser.goto(&at("/dashboard/no-such-page")).await.unwrap();
    assert!(
        text(&browser, "#error")
            .await
            .contains("no such dashboard page")
    );
    find(&browser, "header.top nav a[href=\"/dashboard/logs\"]").await;
    browser.close().await.unwrap();
}
