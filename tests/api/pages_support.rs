//! What the page tests share: reading pages and submitting their forms.

use reqwest::{Client, Response, StatusCode};

use crate::helpers::{csrf_from, TestApp};

/// A fetched page.
pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub headers: reqwest::header::HeaderMap,
    pub html: String,
}

impl Page {
    pub async fn from(r: Response) -> Self {
        let status = r.status();
        let headers = r.headers().clone();
        let location = headers
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        Self {
            status,
            location,
            headers,
            html: r.text().await.unwrap(),
        }
    }

    pub fn csrf(&self) -> String {
        csrf_from(&self.html)
    }

    /// Asserts the page contains every snippet.
    #[track_caller]
    pub fn assert_has(&self, snippets: &[&str]) {
        for s in snippets {
            assert!(self.html.contains(s), "missing {s:?} in:\n{}", self.html);
        }
    }

    #[track_caller]
    pub fn assert_lacks(&self, snippets: &[&str]) {
        for s in snippets {
            assert!(
                !self.html.contains(s),
                "unexpected {s:?} in:\n{}",
                self.html
            );
        }
    }

    /// Body rows of the first table.
    pub fn table_rows(&self) -> usize {
        self.html.matches("<tr>").count().saturating_sub(1)
    }
}

pub async fn get(client: &Client, app: &TestApp, path: &str) -> Page {
    Page::from(client.get(app.url(path)).send().await.unwrap()).await
}

pub async fn post(client: &Client, app: &TestApp, path: &str, form: &[(&str, &str)]) -> Page {
    Page::from(client.post(app.url(path)).form(form).send().await.unwrap()).await
}

/// The approval page of `code`.
pub async fn approval_page(app: &TestApp, client: &Client, code: &str) -> Page {
    Page::from(
        client
            .get(app.url("/cli/login"))
            .query(&[("code", code)])
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Submits the approval form as a browser would: the ticked scopes repeat.
pub async fn decide(
    app: &TestApp,
    client: &Client,
    code: &str,
    csrf: &str,
    decision: &str,
    scopes: &[&str],
    expires_in_days: &str,
) -> Page {
    let mut form = vec![
        ("csrf_token", csrf),
        ("code", code),
        ("decision", decision),
        ("expires_in_days", expires_in_days),
    ];
    form.extend(scopes.iter().map(|s| ("scopes", *s)));
    post(client, app, "/cli/login", &form).await
}

/// Opens the approval page and approves everything asked for.
pub async fn approve_via_form(app: &TestApp, client: &Client, code: &str) -> Page {
    let page = approval_page(app, client, code).await;
    assert_eq!(page.status, 200, "{}", page.html);
    let scopes = app.server.config.default_scopes.clone();
    let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
    decide(app, client, code, &page.csrf(), "approve", &scopes, "").await
}

/// The security headers every page carries.
#[track_caller]
pub fn assert_security_headers(page: &Page) {
    let h = &page.headers;
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    if page.status != 303 {
        assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
        // CSP forbids inline code and styles: none may be in the markup.
        // A script comes from this site's own /static/ only.
        for banned in [" style=", " onclick=", "javascript:"] {
            assert!(!page.html.contains(banned), "{banned} in page");
        }
        for script in page.html.split("<script").skip(1) {
            assert!(
                script.starts_with(" src=\"/static/js/") && script.contains("></script>"),
                "an inline script in page: <script{}",
                &script[..script.len().min(80)]
            );
        }
    }
}
