//! A headless Chromium driven through chromedriver (WebDriver), for the dashboard's browser
//! tests: finds the two programs, starts chromedriver on a free port (stopped on drop), opens a
//! session with a fixed 1280x900 window, and saves screenshots when `WHARF_SCREENSHOTS=1`.
//!
//! Missing programs fail the test with the command that installs them: a browser test that
//! silently passed without a browser would prove nothing.

use fantoccini::{Client, ClientBuilder, Locator};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Width and height of the page in the browser window (and of every screenshot).
pub const WINDOW: (u32, u32) = (1280, 900);

const INSTALL: &str = "run `apt-get install chromium chromium-driver` (Debian; `.ci/run` does it) to run the dashboard's browser tests";

/// The first executable called one of `names` on the PATH.
fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// A running chromedriver; shut down with its browsers when dropped.
pub struct ChromeDriver {
    child: Child,
    port: u16,
    pub url: String,
    chromium: PathBuf,
    /// The browser's profile, removed with the driver.
    profile: tempfile::TempDir,
}

impl ChromeDriver {
    /// Starts chromedriver on a free port and waits until it answers. Panics, saying how to
    /// install them, when chromedriver or Chromium is missing.
    pub async fn start() -> ChromeDriver {
        let driver = find_program(&["chromedriver"])
            .unwrap_or_else(|| panic!("chromedriver is not installed: {INSTALL}"));
        let chromium = find_program(&["chromium", "chromium-browser", "google-chrome"])
            .unwrap_or_else(|| panic!("Chromium is not installed: {INSTALL}"));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("no free local port")
            .port();
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}; {INSTALL}", driver.display()));
        let mut chrome = ChromeDriver {
            child,
            port,
            url: format!("http://127.0.0.1:{port}"),
            chromium,
            profile: tempfile::tempdir().expect("no temporary directory for the browser profile"),
        };
        let started = Instant::now();
        let client = reqwest::Client::new();
        loop {
            if let Ok(r) = client.get(format!("{}/status", chrome.url)).send().await
                && r.status().is_success()
            {
                return chrome;
            }
            if let Ok(Some(status)) = chrome.child.try_wait() {
                panic!("chromedriver exited at start ({status}); {INSTALL}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not answer on {} within 20 s",
                chrome.url
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new browser session: headless Chromium, fixed window size.
    pub async fn browser(&self) -> Client {
        let args = vec![
            "--headless=new".to_owned(),
            // Tests run as root in containers, where Chromium's sandbox cannot start.
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            // A container's /dev/shm is often too small for the renderer.
            "--disable-dev-shm-usage".to_owned(),
            format!("--window-size={},{}", WINDOW.0, WINDOW.1),
            "--force-device-scale-factor=1".to_owned(),
            "--hide-scrollbars".to_owned(),
            format!("--user-data-dir={}", self.profile.path().display()),
        ];
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({"binary": self.chromium, "args": args}),
        );
        let client = ClientBuilder::rustls()
            .expect("TLS roots for the WebDriver client")
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| {
                panic!("Chromium did not start through chromedriver: {e}; {INSTALL}")
            });
        // The window includes the browser's own (invisible) frame: grow it until the page
        // itself, and so every screenshot, is exactly WINDOW.
        client
            .set_window_size(WINDOW.0, WINDOW.1)
            .await
            .expect("set the window size");
        let inner = client
            .execute(
                "return [window.innerWidth, window.innerHeight];",
                Vec::new(),
            )
            .await
            .expect("read the viewport size");
        let size = |i: usize| inner[i].as_u64().unwrap_or(0) as u32;
        let (width, height) = (size(0), size(1));
        if (width, height) != WINDOW && width > 0 && height > 0 {
            client
                .set_window_size(2 * WINDOW.0 - width, 2 * WINDOW.1 - height)
                .await
                .expect("set the window size");
        }
        client
    }
}

impl Drop for ChromeDriver {
    /// Asks chromedriver to end its sessions and exit (`GET /shutdown`): killing it outright
    /// would leave the browsers it started running when a test fails before closing its
    /// session. Kills it if it has not exited after 5 s.
    fn drop(&mut self) {
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        if let Ok(mut stream) =
            std::net::TcpStream::connect_timeout(&address, Duration::from_secs(1))
        {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = stream.write_all(
                b"GET /shutdown HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            );
            let _ = stream.read_to_end(&mut Vec::new());
        }
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where screenshots go, if they are wanted (`WHARF_SCREENSHOTS=1`): `docs/screenshots/`.
pub struct Screenshots(Option<PathBuf>);

impl Screenshots {
    pub fn from_env() -> Screenshots {
        let wanted = std::env::var("WHARF_SCREENSHOTS").is_ok_and(|v| v == "1");
        Screenshots(wanted.then(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../docs/screenshots")
                .to_path_buf()
        }))
    }

    /// Saves the visible page as `docs/screenshots/{name}.png`.
    pub async fn take(&self, browser: &Client, name: &str) {
        let Some(dir) = &self.0 else {
            return;
        };
        std::fs::create_dir_all(dir).expect("create docs/screenshots");
        let png = browser.screenshot().await.expect("take a screenshot");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write a screenshot");
    }
}

/// Waits for an element to appear (pages load after clicks and redirects) and returns it.
///
/// A lookup that lands while the page is navigating is answered by chromedriver with an error
/// ("aborted by navigation") rather than "no such element"; both mean "not yet", so both are
/// retried until the deadline.
pub async fn find(browser: &Client, css: &str) -> fantoccini::elements::Element {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let last = match browser.find(Locator::Css(css)).await {
            Ok(element) => return element,
            Err(e) => e,
        };
        let not_yet = last.is_no_such_element() || last.to_string().contains("navigation");
        if !not_yet || Instant::now() >= deadline {
            panic!("no element {css:?} on the page within 10 s: {last}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The text of the element matching `css`.
pub async fn text(browser: &Client, css: &str) -> String {
    find(browser, css).await.text().await.expect("element text")
}

/// Waits until the element matching `css` shows `needle` (after a click the old page may
/// still be there for a moment) and returns its text.
pub async fn wait_for_text(browser: &Client, css: &str, needle: &str) -> String {
    let started = Instant::now();
    loop {
        let shown = match browser.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if shown.contains(needle) {
            return shown;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{css:?} did not show {needle:?} within 10 s; it shows {shown:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the browser's URL contains `needle` (a form was submitted and answered).
pub async fn wait_for_url(browser: &Client, needle: &str) {
    let started = Instant::now();
    loop {
        let url = browser.current_url().await.expect("current URL");
        if url.as_str().contains(needle) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the browser did not reach a URL with {needle:?} within 10 s; it is at {url}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Replaces the value of the input matching `css` with `value`.
pub async fn fill(browser: &Client, css: &str, value: &str) {
    let input = find(browser, css).await;
    input.clear().await.expect("clear an input");
    input.send_keys(value).await.expect("type into an input");
}

/// Clicks the element matching `css`.
pub async fn click(browser: &Client, css: &str) {
    find(browser, css).await.click().await.expect("click");
}

/// The path of the page the browser shows.
pub async fn path(browser: &Client) -> String {
    browser
        .current_url()
        .await
        .expect("current URL")
        .path()
        .to_owned()
}

/// Reloads `url` until `check` accepts the page source (deliveries happen in the background).
pub async fn reload_until(browser: &Client, url: &str, what: &str, check: impl Fn(&str) -> bool) {
    let started = Instant::now();
    loop {
        browser.goto(url).await.expect("open a page");
        let source = browser.source().await.expect("page source");
        if check(&source) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "waited 20 s for {what} at {url}; the page shows:\n{source}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// axe-core's script (`axe.min.js`): `WHARF_AXE_CORE`, or where `scripts/setup-dev` installs
/// it (`.tools/node_modules/axe-core/`). Missing fails the test with how to install it.
fn axe_source() -> &'static str {
    static SOURCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SOURCE.get_or_init(|| {
        let path = std::env::var_os("WHARF_AXE_CORE")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../../.tools/node_modules/axe-core/axe.min.js")
            });
        std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "axe-core is not installed ({}: {e}): run scripts/setup-dev (it runs `npm install --prefix .tools axe-core`)",
                path.display()
            )
        })
    })
}

/// Runs axe-core in the page the browser shows and fails, listing them, on any serious or
/// critical violation (WCAG 2 A and AA rules and axe's best practices).
pub async fn assert_accessible(browser: &Client, page: &str) {
    let loaded = browser
        .execute(&format!("{}\nreturn typeof axe;", axe_source()), Vec::new())
        .await
        .expect("inject axe-core");
    assert_eq!(loaded, "object", "axe-core did not load in {page}");
    let violations = browser
        .execute_async(
            r#"
            const done = arguments[arguments.length - 1];
            axe.run(document, {resultTypes: ["violations"]}).then(results => done(
                results.violations
                    .filter(v => v.impact === "serious" || v.impact === "critical")
                    .map(v => ({rule: v.id, impact: v.impact, help: v.help,
                                nodes: v.nodes.slice(0, 3).map(n => n.target.join(" "))}))
            ), error => done([{rule: "axe failed", help: String(error)}]));
            "#,
            Vec::new(),
        )
        .await
        .expect("run axe-core");
    let list = violations.as_array().cloned().unwrap_or_default();
    assert!(
        list.is_empty(),
        "{page}: {} serious or critical accessibility violations: {}",
        list.len(),
        serde_json::to_string_pretty(&violations).unwrap_or_default()
    );
}
