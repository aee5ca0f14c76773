//! Bearer tokens: whoami, scopes, listing, revocation, logout.

use envshield_api_types::{ErrorBody, TokenListResponse, WhoamiResponse};
use envshield_server::domain::PlainToken;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with};

fn assert_bearer_challenge(r: &reqwest::Response) {
    let challenge = r.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
}

#[tokio::test]
async fn whoami_with_a_valid_token() {
    let app = spawn_app().await;
    let (user, b) = app.signed_in_browser("dev@example.com", false).await;
    let p = app.login_token(&b).await;
    let r = app.whoami(p["token"].as_str().unwrap()).await;
    assert_eq!(r.status(), 200);
    let w: WhoamiResponse = r.json().await.unwrap();
    assert_eq!(w.user.id, user.id);
    assert_eq!(w.user.email, "dev@example.com");
    assert_eq!(w.user.role, "user");
    assert_eq!(w.token.id.to_string(), p["tokenId"].as_str().unwrap());
    assert_eq!(w.token.name, "test laptop");
    assert!(w.token.last_used_at.is_some());
}

#[tokio::test]
async fn whoami_rejects_missing_malformed_unknown_revoked_and_expired_tokens() {
    let app = spawn_app().await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;

    let r = app
        .cli
        .get(app.url("/api/v1/cli/whoami"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_bearer_challenge(&r);
    assert_eq!(r.json::<ErrorBody>().await.unwrap().error, "missing_token");

    let valid_shape_unknown = PlainToken::generate("esh_");
    for bad in [
        "esh_short",
        "not-a-token",
        &format!("{}x", &valid_shape_unknown.expose()[..52]),
        valid_shape_unknown.expose(),
    ] {
        let r = app.whoami(bad).await;
        assert_eq!(r.status(), 401, "{bad}");
        assert_bearer_challenge(&r);
        assert_eq!(r.json::<ErrorBody>().await.unwrap().error, "invalid_token");
    }
    let r = app
        .cli
        .get(app.url("/api/v1/cli/whoami"))
        .header(
            "Authorization",
            format!("Basic {}", valid_shape_unknown.expose()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let revoked = app.login_token(&b).await;
    let token = revoked["token"].as_str().unwrap();
    app.sql(&format!(
        "UPDATE api_tokens SET revoked_at = now() WHERE id = '{}'",
        revoked["tokenId"].as_str().unwrap()
    ))
    .await;
    assert_eq!(app.whoami(token).await.status(), 401);

    let expired = app.login_token(&b).await;
    let token = expired["token"].as_str().unwrap();
    assert_eq!(app.whoami(token).await.status(), 200);
    app.sql(&format!(
        "UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = '{}'",
        expired["tokenId"].as_str().unwrap()
    ))
    .await;
    let r = app.whoami_settles(token, 401).await;
    assert_bearer_challenge(&r);

    let disabled = app.login_token(&b).await;
    app.sql("UPDATE users SET disabled_at = now()").await;
    assert_eq!(
        app.whoami(disabled["token"].as_str().unwrap())
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn last_used_at_is_written_at_most_once_a_minute() {
    // The minute is faked in SQL, which a cached token would not see.
    let app = spawn_app_with(|c| c.bearer_cache = std::time::Duration::ZERO).await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let p = app.login_token(&b).await;
    let token = p["token"].as_str().unwrap();
    let first: WhoamiResponse = app.whoami(token).await.json().await.unwrap();
    let second: WhoamiResponse = app.whoami(token).await.json().await.unwrap();
    assert_eq!(first.token.last_used_at, second.token.last_used_at);
    app.sql("UPDATE api_tokens SET last_used_at = now() - interval '2 minutes'")
        .await;
    let third: WhoamiResponse = app.whoami(token).await.json().await.unwrap();
    assert!(third.token.last_used_at > first.token.last_used_at);
}

#[tokio::test]
async fn scopes_are_enforced_with_insufficient_scope() {
    let app = spawn_app().await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let s = app.start_ok().await;
    let r = app
        .complete(
            &b,
            json!({ "userCode": s.user_code, "decision": "approve", "scopes": ["envs:read"] }),
        )
        .await;
    assert_eq!(r.status(), 200);
    let p: Value = app.poll(&s.device_code).await.json().await.unwrap();
    let token = p["token"].as_str().unwrap();
    assert_eq!(
        app.whoami(token).await.status(),
        200,
        "whoami needs no scope"
    );
    let r = app
        .cli
        .get(app.url("/api/v1/cli/tokens"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"tokens:read\""), "{challenge}");
    assert_eq!(
        r.json::<ErrorBody>().await.unwrap().error,
        "insufficient_scope"
    );
}

#[tokio::test]
async fn list_shows_own_tokens_and_revoke_then_bearer_gets_401() {
    let app = spawn_app().await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let one = app.login_token(&b).await;
    let two = app.login_token(&b).await;
    let (_, other) = app.signed_in_browser("other@example.com", false).await;
    let theirs = app.login_token(&other).await;

    let token = one["token"].as_str().unwrap();
    let list: TokenListResponse = app
        .cli
        .get(app.url("/api/v1/cli/tokens"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.tokens.len(), 2);
    let mine = list.tokens.iter().find(|t| t.current).unwrap();
    assert_eq!(mine.id.to_string(), one["tokenId"].as_str().unwrap());
    assert!(mine.hint.starts_with("esh_…"));
    assert!(token.ends_with(&mine.hint[mine.hint.len() - 4..]));

    let revoke = |t: &str, id: &Value| {
        app.cli
            .post(app.url("/api/v1/cli/tokens/revoke"))
            .bearer_auth(t.to_owned())
            .json(&json!({ "tokenId": id }))
            .send()
    };
    assert_eq!(
        revoke(token, &theirs["tokenId"]).await.unwrap().status(),
        404,
        "not yours"
    );
    assert_eq!(revoke(token, &two["tokenId"]).await.unwrap().status(), 204);
    assert_eq!(
        revoke(token, &two["tokenId"]).await.unwrap().status(),
        204,
        "idempotent"
    );
    assert_eq!(
        app.whoami(two["token"].as_str().unwrap()).await.status(),
        401
    );
    assert_eq!(
        app.count("security_events", "kind = 'cli_token_revoked'")
            .await,
        1
    );
    let r = app
        .cli
        .post(app.url("/api/v1/cli/tokens/revoke"))
        .bearer_auth(token)
        .json(&json!({ "tokenId": "nope" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let all = app
        .cli
        .get(app.url("/api/v1/cli/tokens?all=true"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(all.status(), 403, "only admins list everyone");
}

#[tokio::test]
async fn admins_can_list_and_revoke_any_token() {
    let app = spawn_app().await;
    let (_, admin) = app.signed_in_browser("admin@example.com", true).await;
    let (_, user) = app.signed_in_browser("user@example.com", false).await;
    let admin_token = app.login_token(&admin).await;
    let user_token = app.login_token(&user).await;
    let t = admin_token["token"].as_str().unwrap();
    let all: TokenListResponse = app
        .cli
        .get(app.url("/api/v1/cli/tokens?all=true"))
        .bearer_auth(t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all.tokens.len(), 2);
    let r = app
        .cli
        .post(app.url("/api/v1/cli/tokens/revoke"))
        .bearer_auth(t)
        .json(&json!({ "tokenId": user_token["tokenId"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        app.whoami(user_token["token"].as_str().unwrap())
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn logout_revokes_the_presented_token() {
    let app = spawn_app().await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let p = app.login_token(&b).await;
    let token = p["token"].as_str().unwrap();
    let r = app
        .cli
        .post(app.url("/api/v1/cli/auth/logout"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(app.whoami(token).await.status(), 401);
    let r = app
        .cli
        .post(app.url("/api/v1/cli/auth/logout"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn a_revocation_made_in_sql_reaches_a_cached_token_within_a_second() {
    let app = spawn_app().await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let p = app.login_token(&b).await;
    let token = p["token"].as_str().unwrap();
    assert_eq!(app.whoami(token).await.status(), 200);
    assert_eq!(
        app.whoami(token).await.status(),
        200,
        "served from the cache"
    );
    app.sql("UPDATE api_tokens SET revoked_at = now()").await;
    app.whoami_settles(token, 401).await;
    // Disabling the account is heard the same way.
    let other = app.login_token(&b).await;
    let other = other["token"].as_str().unwrap();
    assert_eq!(app.whoami(other).await.status(), 200);
    app.sql("UPDATE users SET disabled_at = now()").await;
    app.whoami_settles(other, 401).await;
}

/// A token used once (so cached), on a server whose database no longer
/// notifies token changes: only the server's own bookkeeping and the
/// cache lifetime can end it.
async fn cached_token_without_notifications() -> (crate::helpers::TestApp, String) {
    let app = spawn_app().await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let p = app.login_token(&b).await;
    let token = p["token"].as_str().unwrap().to_owned();
    app.sql("ALTER TABLE api_tokens DISABLE TRIGGER api_tokens_notify_change")
        .await;
    assert_eq!(app.whoami(&token).await.status(), 200);
    (app, token)
}

#[tokio::test]
async fn without_notifications_a_cached_token_still_ends_within_its_lifetime() {
    let (app, token) = cached_token_without_notifications().await;
    let token = token.as_str();
    app.sql("UPDATE api_tokens SET revoked_at = now()").await;
    assert_eq!(
        app.whoami(token).await.status(),
        200,
        "nothing told the server: the cached answer stands"
    );
    app.whoami_settles(token, 401).await;
}

#[tokio::test]
async fn a_revocation_through_the_server_takes_effect_at_once() {
    let (app, token) = cached_token_without_notifications().await;
    let token = token.as_str();
    let r = app
        .cli
        .post(app.url("/api/v1/cli/auth/logout"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        app.whoami(token).await.status(),
        401,
        "the revoking instance forgets cached tokens right after its commit"
    );
}
