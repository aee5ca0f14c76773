//! `spawn_app()` and the calls tests make.

use diesel::{PgConnection, RunQueryDsl};
use envshield_api_types::StartDeviceResponse;
use envshield_server::config::Config;
use envshield_server::db::models::users::User;
use envshield_server::domain::Email;
use envshield_server::service::accounts;
use envshield_server::testing::TestServer;
use reqwest::{Client, Response};
use secrecy::SecretString;
use serde_json::{json, Value};

pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestApp {
    pub server: TestServer,
    /// A client without cookies (the CLI).
    pub cli: Client,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(customize: impl FnOnce(&mut Config) + Send + 'static) -> TestApp {
    let server = tokio::task::spawn_blocking(move || TestServer::spawn(customize))
        .await
        .unwrap()
        .expect("test server starts");
    TestApp {
        server,
        cli: Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("envshield-test/1.0")
            .build()
            .unwrap(),
    }
}

/// A cookie-keeping client that does not follow redirects (a browser).
pub fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The body of a GET of `url` by `client`, as text (a page).
pub async fn get_text(client: &Client, url: impl reqwest::IntoUrl) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

/// The body of a GET of `url` by `client`, as JSON.
pub async fn get_json<T: serde::de::DeserializeOwned>(
    client: &Client,
    url: impl reqwest::IntoUrl,
) -> T {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

/// The value of the hidden `csrf_token` input in a page.
pub fn csrf_from(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).expect("page has a CSRF token") + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_owned()
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.address)
    }

    pub fn origin(&self) -> String {
        self.server.config.app_origin()
    }

    pub async fn start(&self, body: Value) -> Response {
        self.cli
            .post(self.url("/api/v1/cli/auth/device/start"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn start_ok(&self) -> StartDeviceResponse {
        let r = self.start(json!({ "tokenName": "test laptop" })).await;
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    pub async fn poll(&self, device_code: &str) -> Response {
        self.cli
            .post(self.url("/api/v1/cli/auth/device/poll"))
            .json(&json!({ "deviceCode": device_code }))
            .send()
            .await
            .unwrap()
    }

    pub async fn create_user(&self, email: &str, admin: bool) -> User {
        let url = self.server.db.url.clone();
        let email = email.to_owned();
        tokio::task::spawn_blocking(move || {
            use diesel::Connection;
            let mut conn = PgConnection::establish(&url).unwrap();
            accounts::create_user(
                &mut conn,
                &Email::parse(&email).unwrap(),
                &SecretString::from(PASSWORD.to_owned()),
                if admin { "admin" } else { "user" },
                4,
            )
            .unwrap()
        })
        .await
        .unwrap()
    }

    /// Signs `client` in through the real form.
    pub async fn sign_in(&self, client: &Client, email: &str, password: &str) -> Response {
        let page = client.get(self.url("/login")).send().await.unwrap();
        let csrf = csrf_from(&page.text().await.unwrap());
        client
            .post(self.url("/login"))
            .form(&[
                ("email", email),
                ("password", password),
                ("csrf_token", &csrf),
            ])
            .send()
            .await
            .unwrap()
    }

    /// A new account and a browser signed in as it.
    pub async fn signed_in_browser(&self, email: &str, admin: bool) -> (User, Client) {
        let user = self.create_user(email, admin).await;
        let client = browser();
        let r = self.sign_in(&client, email, PASSWORD).await;
        assert_eq!(r.status(), 303, "sign-in redirects");
        (user, client)
    }

    pub async fn complete(&self, browser: &Client, body: Value) -> Response {
        browser
            .post(self.url("/api/v1/cli/auth/device/complete"))
            .header("Origin", self.origin())
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn approve(&self, browser: &Client, user_code: &str) -> Response {
        self.complete(
            browser,
            json!({ "userCode": user_code, "decision": "approve" }),
        )
        .await
    }

    /// A full login: start, approve as `email`, poll; returns the token.
    pub async fn login_token(&self, browser: &Client) -> Value {
        let started = self.start_ok().await;
        assert_eq!(
            self.approve(browser, &started.user_code).await.status(),
            200
        );
        let r = self.poll(&started.device_code).await;
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    pub async fn whoami(&self, token: &str) -> Response {
        self.cli
            .get(self.url("/api/v1/cli/whoami"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// whoami until it answers `status`: for changes made behind the
    /// server's back (SQL), which reach its token cache by notification.
    /// Fails if that takes a second or more (the documented bound).
    pub async fn whoami_settles(&self, token: &str, status: u16) -> Response {
        let since = std::time::Instant::now();
        loop {
            let r = self.whoami(token).await;
            if r.status().as_u16() == status {
                return r;
            }
            assert!(
                since.elapsed() < std::time::Duration::from_secs(1),
                "whoami still answered {} after a second",
                r.status()
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Waits until `count(table, condition)` is `expected`: for what the
    /// server writes off the request path. Fails if it never gets there
    /// within ten seconds (far past any schedule it follows).
    pub async fn count_settles(&self, table: &str, condition: &str, expected: i64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let n = self.count(table, condition).await;
            if n == expected {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{table} WHERE {condition}: still {n} rows, not {expected}, after ten seconds"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Runs `work` on a connection of its own to the test database, off the
    /// async workers.
    pub async fn on_db<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut PgConnection) -> T + Send + 'static,
    ) -> T {
        let url = self.server.db.url.clone();
        tokio::task::spawn_blocking(move || {
            use diesel::Connection;
            work(&mut PgConnection::establish(&url).unwrap())
        })
        .await
        .unwrap()
    }

    /// Runs SQL against the test database.
    pub async fn sql(&self, sql: &str) {
        let url = self.server.db.url.clone();
        let sql = sql.to_owned();
        tokio::task::spawn_blocking(move || {
            use diesel::Connection;
            let mut conn = PgConnection::establish(&url).unwrap();
            diesel::sql_query(sql).execute(&mut conn).unwrap();
        })
        .await
        .unwrap();
    }

    /// Runs SQL on the cluster's `postgres` database (for what must not
    /// depend on the test database being reachable).
    pub async fn admin_sql(&self, sql: &str) {
        let name = &self.server.db.name;
        let url = self
            .server
            .db
            .url
            .replace(&format!("/{name}?"), "/postgres?");
        assert_ne!(url, self.server.db.url);
        let sql = sql.to_owned();
        tokio::task::spawn_blocking(move || {
            use diesel::Connection;
            let mut conn = PgConnection::establish(&url).unwrap();
            diesel::sql_query(sql).execute(&mut conn).unwrap();
        })
        .await
        .unwrap();
    }

    /// Counts rows matching a SQL condition.
    pub async fn count(&self, table: &str, condition: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let url = self.server.db.url.clone();
        let sql = format!("SELECT count(*) AS n FROM {table} WHERE {condition}");
        tokio::task::spawn_blocking(move || {
            use diesel::Connection;
            let mut conn = PgConnection::establish(&url).unwrap();
            diesel::sql_query(sql).get_result::<N>(&mut conn).unwrap().n
        })
        .await
        .unwrap()
    }

    /// The one text value `sql` selects.
    pub async fn scalar(&self, sql: &str) -> String {
        #[derive(diesel::QueryableByName)]
        struct V {
            #[diesel(sql_type = diesel::sql_types::Text)]
            v: String,
        }
        let url = self.server.db.url.clone();
        let sql = format!("SELECT ({sql}) AS v");
        tokio::task::spawn_blocking(move || {
            use diesel::Connection;
            let mut conn = PgConnection::establish(&url).unwrap();
            diesel::sql_query(sql).get_result::<V>(&mut conn).unwrap().v
        })
        .await
        .unwrap()
    }
}

/// A fresh folder `target/<name>` for a test that runs its own cluster or
/// server (emptied first).
pub fn fresh_target_dir(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "target"))
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = target.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A token with `scopes`, approved by `browser`'s account.
pub async fn token_with_scopes(app: &TestApp, browser: &Client, scopes: &[&str]) -> String {
    let s: Value = app
        .start(json!({ "scopes": scopes }))
        .await
        .json()
        .await
        .unwrap();
    let code = s["userCode"].as_str().unwrap();
    assert_eq!(app.approve(browser, code).await.status(), 200);
    let r: Value = app
        .poll(s["deviceCode"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    r["token"].as_str().unwrap().to_owned()
}
