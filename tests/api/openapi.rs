//! The OpenAPI document: served, and true to the methods each path answers.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::Value;

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_document_is_served_and_each_path_answers_exactly_its_documented_methods() {
    let app = spawn_app().await;
    let r = app
        .cli
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 17, "{:?}", paths.keys());

    for (path, item) in paths {
        let documented: BTreeSet<String> = item
            .as_object()
            .unwrap()
            .keys()
            .map(|m| m.to_ascii_uppercase())
            .collect();
        // A method no route takes: the 405 lists the methods the route
        // table gives this path.
        let r = app
            .cli
            .request(Method::from_bytes(b"TRACE").unwrap(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{path}");
        let allowed: BTreeSet<String> = r
            .headers()
            .get("allow")
            .unwrap_or_else(|| panic!("{path}: 405 without Allow"))
            .to_str()
            .unwrap()
            .split(',')
            .map(|m| m.trim().to_owned())
            .collect();
        assert_eq!(
            allowed, documented,
            "{path}: answered vs documented methods"
        );
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "method_not_allowed", "{path}");
    }
}
