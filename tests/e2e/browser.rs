//! A headless Chromium driven through chromedriver (both from Debian).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::Method;
use serde_json::json;

/// Waits at most this long for a page condition.
const WAIT: Duration = Duration::from_secs(15);

pub struct Browser {
    client: Client,
    driver: Child,
    profile: PathBuf,
}

fn find_binary(env: &str, candidates: &[&str]) -> String {
    if let Ok(p) = std::env::var(env) {
        return p;
    }
    for c in candidates {
        if std::path::Path::new(c).exists() {
            return (*c).to_owned();
        }
    }
    panic!(
        "{} not found: install Debian's chromium and chromium-driver (`apt-get install chromium chromium-driver`) or set {env}",
        candidates[0]
    );
}

fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "target"))
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    target.join("screenshots")
}

impl Browser {
    pub async fn open() -> Self {
        let chromedriver = find_binary("CHROMEDRIVER", &["/usr/bin/chromedriver"]);
        let chromium = find_binary(
            "CHROMIUM",
            &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile =
            std::env::temp_dir().join(format!("envshield-chrome-{}-{port}", std::process::id()));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                    format!("--user-data-dir={}", profile.display()),
                    "--window-size=1280,900",
                ],
            }),
        );
        let client = ClientBuilder::native()
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("WebDriver session starts");
        Self {
            client,
            driver,
            profile,
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    pub async fn current_url(&self) -> String {
        self.client.current_url().await.unwrap().to_string()
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let el = self
            .client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap();
        el.clear().await.unwrap();
        el.send_keys(text).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        let el = self
            .client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap();
        el.click().await.unwrap();
    }

    pub async fn click_link_containing(&self, text: &str) {
        let xpath = format!("//a[contains(., '{text}')]");
        let el = self
            .client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::XPath(&xpath))
            .await
            .unwrap();
        el.click().await.unwrap();
    }

    pub async fn text(&self, css: &str) -> String {
        let el = self
            .client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap();
        el.text().await.unwrap()
    }

    /// Waits until the element's text contains `needle` (pages load after clicks).
    pub async fn wait_for_text(&self, css: &str, needle: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(el) = self.client.find(Locator::Css(css)).await {
                if el.text().await.is_ok_and(|t| t.contains(needle)) {
                    return;
                }
            }
            if Instant::now() > deadline {
                let body = self.text("body").await;
                panic!(
                    "no `{css}` containing {needle:?} at {}; page says:\n{body}",
                    self.current_url().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn resize(&self, width: u32, height: u32) {
        self.client.set_window_size(width, height).await.unwrap();
    }

    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Adds a WebDriver virtual authenticator (W3C WebAuthn §11): a
    /// platform authenticator (CTAP2, internal) holding discoverable
    /// credentials, whose user verification always succeeds. Returns its id.
    pub async fn add_virtual_authenticator(&self) -> String {
        let id = self
            .webauthn(
                Method::POST,
                "webauthn/authenticator",
                Some(json!({
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": true,
                    "hasUserVerification": true,
                    "isUserVerified": true,
                })),
            )
            .await;
        id.as_str().expect("an authenticator id").to_owned()
    }

    /// The credentials a virtual authenticator holds (with their private
    /// keys and signature counters).
    pub async fn credentials(&self, authenticator: &str) -> Vec<serde_json::Value> {
        let path = format!("webauthn/authenticator/{authenticator}/credentials");
        let all = self.webauthn(Method::GET, &path, None).await;
        all.as_array().cloned().unwrap_or_default()
    }

    /// Replaces the authenticator's credentials with `credentials`: an
    /// authenticator cloned from an earlier copy of itself.
    pub async fn replace_credentials(
        &self,
        authenticator: &str,
        credentials: &[serde_json::Value],
    ) {
        let path = format!("webauthn/authenticator/{authenticator}/credentials");
        self.webauthn(Method::DELETE, &path, None).await;
        let path = format!("webauthn/authenticator/{authenticator}/credential");
        for c in credentials {
            self.webauthn(Method::POST, &path, Some(c.clone())).await;
        }
    }

    async fn webauthn(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        self.client
            .issue_cmd(Extension {
                method,
                path: path.to_owned(),
                body,
            })
            .await
            .unwrap_or_else(|e| panic!("WebDriver {path}: {e}"))
    }

    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

/// A WebDriver extension command on the current session (the WebAuthn
/// virtual authenticator commands are not among fantoccini's own).
#[derive(Debug)]
struct Extension {
    method: Method,
    path: String,
    body: Option<serde_json::Value>,
}

impl fantoccini::wd::WebDriverCompatibleCommand for Extension {
    fn endpoint(
        &self,
        base_url: &reqwest::Url,
        session_id: Option<&str>,
    ) -> Result<reqwest::Url, url::ParseError> {
        let session = session_id.unwrap_or_default();
        base_url.join(&format!("session/{session}/{}", self.path))
    }

    fn method_and_body(&self, _: &reqwest::Url) -> (Method, Option<String>) {
        (
            self.method.clone(),
            self.body.as_ref().map(ToString::to_string),
        )
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
