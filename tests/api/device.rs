//! The device flow: start, poll, complete, cancel.

use envshield_api_types::{ErrorBody, PollDeviceResponse, StartDeviceResponse};
use serde_json::{json, Value};

use crate::helpers::{browser, spawn_app, spawn_app_with};

#[tokio::test]
async fn start_creates_a_pending_row_and_returns_every_field() {
    let app = spawn_app().await;
    let r = app
        .start(json!({ "tokenName": "ci box", "scopes": ["envs:read"] }))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let s: StartDeviceResponse = r.json().await.unwrap();
    assert_eq!(s.device_code.len(), 43);
    assert!(regex_like_user_code(&s.user_code), "{}", s.user_code);
    assert_eq!(
        s.verification_url,
        format!("{}/cli/login?code={}", app.server.address, s.user_code)
    );
    assert_eq!(
        s.verification_uri,
        format!("{}/cli/device", app.server.address)
    );
    assert_eq!(s.expires_in, 600);
    assert_eq!(s.poll_interval, 5);
    assert_eq!(s.token_name, "ci box");
    assert_eq!(s.scopes, ["envs:read"]);
    assert_eq!(
        app.count(
            "cli_device_sessions",
            "status = 'PENDING' AND token_name = 'ci box' AND client_ip = '127.0.0.1' \
             AND user_agent = 'envshield-test/1.0' AND expires_at > now() + interval '9 minutes'"
        )
        .await,
        1
    );
    assert_eq!(
        app.count("security_events", "kind = 'cli_device_start'")
            .await,
        1
    );
}

fn regex_like_user_code(code: &str) -> bool {
    let b = code.as_bytes();
    b.len() == 9
        && b[4] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || b"BCDFGHJKLMNPQRSTVWXZ".contains(c))
}

#[tokio::test]
async fn start_defaults_name_and_scopes() {
    let app = spawn_app().await;
    let s: StartDeviceResponse = app.start(json!({})).await.json().await.unwrap();
    assert!(s.token_name.starts_with("CLI Token - "), "{}", s.token_name);
    assert_eq!(s.scopes, app.server.config.default_scopes);
}

#[tokio::test]
async fn start_rejects_bad_input_with_clear_4xx() {
    let app = spawn_app().await;
    let cases = [
        (json!({ "scopes": ["root"] }), 400, "invalid_scope"),
        (
            json!({ "tokenName": "x".repeat(129) }),
            400,
            "invalid_token_name",
        ),
        (json!({ "tokenName": "  " }), 400, "invalid_token_name"),
        (json!({ "bogus": true }), 400, "invalid_body"),
        (json!({ "scopes": "envs:read" }), 400, "invalid_body"),
    ];
    for (body, status, code) in cases {
        let r = app.start(body.clone()).await;
        assert_eq!(r.status(), status, "{body}");
        let e: ErrorBody = r.json().await.unwrap();
        assert_eq!(e.error, code, "{body}");
        assert!(!e.message.is_empty());
    }
    let url = app.url("/api/v1/cli/auth/device/start");
    let r = app
        .cli
        .post(&url)
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = app
        .cli
        .post(&url)
        .body("tokenName=x")
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let e: ErrorBody = r.json().await.unwrap();
    assert_eq!(e.error, "unsupported_media_type");
    let big = json!({ "tokenName": "x".repeat(20_000) });
    let r = app.cli.post(&url).json(&big).send().await.unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(
        app.count("cli_device_sessions", "true").await,
        0,
        "nothing was stored"
    );
}

#[tokio::test]
async fn poll_answers_pending_by_post_and_get() {
    let app = spawn_app().await;
    let s = app.start_ok().await;
    let r = app.poll(&s.device_code).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({ "status": "pending", "pollInterval": 5 })
    );

    let other = app.start_ok().await;
    let r = app
        .cli
        .get(app.url("/api/v1/cli/auth/device/poll"))
        .query(&[("deviceCode", &other.device_code)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let p: PollDeviceResponse = r.json().await.unwrap();
    assert_eq!(p, PollDeviceResponse::Pending { poll_interval: 5 });
}

#[tokio::test]
async fn polling_too_fast_answers_slow_down_and_raises_the_interval() {
    let app = spawn_app().await;
    let s = app.start_ok().await;
    assert_eq!(app.poll(&s.device_code).await.status(), 200);
    assert_eq!(
        app.count("cli_device_sessions", "last_polled_at IS NOT NULL")
            .await,
        0,
        "an on-time pending poll writes nothing"
    );
    let r = app.poll(&s.device_code).await;
    assert_eq!(r.status(), 429);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "slow_down");
    assert_eq!(body["error"], "slow_down");
    assert_eq!(body["pollInterval"], 10);
    let again: Value = app.poll(&s.device_code).await.json().await.unwrap();
    assert_eq!(again["pollInterval"], 15, "each early poll adds 5 s");
    // Stored off the request path, for every instance, with when it grew.
    app.count_settles(
        "cli_device_sessions",
        "poll_interval_sec = 15 AND last_polled_at IS NOT NULL",
        1,
    )
    .await;
}

#[tokio::test]
async fn a_flood_of_early_polls_is_slowed_down_and_its_last_interval_is_stored() {
    let app = spawn_app().await;
    let s = app.start_ok().await;
    app.start_ok().await;
    assert_eq!(app.poll(&s.device_code).await.status(), 200);
    let mut told = Vec::new();
    for _ in 0..14 {
        let r = app.poll(&s.device_code).await;
        assert_eq!(r.status(), 429);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["status"], "slow_down");
        told.push(body["pollInterval"].as_i64().unwrap());
    }
    assert_eq!(
        told,
        [10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 60, 60, 60],
        "each early poll adds 5 s, up to a minute"
    );
    app.count_settles("cli_device_sessions", "poll_interval_sec = 60", 1)
        .await;
    assert_eq!(
        app.count("cli_device_sessions", "poll_interval_sec = 5")
            .await,
        1,
        "the other session keeps its interval"
    );
}

#[tokio::test]
async fn approved_token_is_handed_out_once_then_the_code_is_expired() {
    let app = spawn_app().await;
    let (user, b) = app.signed_in_browser("dev@example.com", false).await;
    let s = app.start_ok().await;
    let r = app.approve(&b, &s.user_code).await;
    let status = r.status();
    let msg: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{msg}");
    assert_eq!(msg["status"], "ok");
    assert_eq!(
        msg["message"],
        "CLI login approved. You can return to your terminal."
    );

    let r = app.poll(&s.device_code).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let PollDeviceResponse::Approved {
        token,
        token_id,
        token_name,
        scopes,
        expires_at,
        refresh_token,
        token_type,
        sealed_token,
    } = r.json().await.unwrap()
    else {
        panic!("expected approved");
    };
    assert!(sealed_token.is_none(), "no handoff key, nothing sealed");
    let token = token.expect("the token in the clear");
    assert_eq!(token_type.as_deref(), Some("Bearer"));
    assert!(token.starts_with("esh_"));
    assert_eq!(
        refresh_token, None,
        "long-lived API tokens come without a refresh token"
    );
    assert_eq!(token_name, "test laptop");
    assert_eq!(scopes, app.server.config.default_scopes);
    let days = (expires_at.unwrap() - chrono::Utc::now()).num_days();
    assert!((364..=365).contains(&days), "{days}");
    assert_eq!(
        app.count(
            "api_tokens",
            &format!("id = '{token_id}' AND user_id = '{}'", user.id)
        )
        .await,
        1
    );
    assert_eq!(
        app.count(
            "cli_device_sessions",
            "status = 'CONSUMED' AND encrypted_token IS NULL AND consumed_at IS NOT NULL"
        )
        .await,
        1
    );

    // A second pickup looks like any expired code, but is recorded.
    let r = app.poll(&s.device_code).await;
    assert_eq!(r.status(), 410);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "expired");
    assert_eq!(body["error"], "expired_token");
    assert_eq!(
        app.count(
            "security_events",
            "kind = 'cli_device_code_reused' AND severity = 'high'"
        )
        .await,
        1
    );
    // Late and losing polls of the same code add no more events.
    for _ in 0..5 {
        assert_eq!(app.poll(&s.device_code).await.status(), 410);
    }
    assert_eq!(
        app.count("security_events", "kind = 'cli_device_code_reused'")
            .await,
        1,
        "one event per leaked code, however often it is replayed"
    );
    assert_eq!(app.whoami(&token).await.status(), 200);
}

#[tokio::test]
async fn unknown_expired_cancelled_and_denied_sessions() {
    let app = spawn_app().await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;

    // Unknown (well-formed) device code.
    let unknown = "A".repeat(43);
    assert_eq!(app.poll(&unknown).await.status(), 410);
    // Malformed device code.
    let r = app.poll("nope").await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<ErrorBody>().await.unwrap().error,
        "invalid_device_code"
    );

    // Expired.
    let s = app.start_ok().await;
    app.sql("UPDATE cli_device_sessions SET expires_at = now() - interval '1 second'")
        .await;
    assert_eq!(app.poll(&s.device_code).await.status(), 410);
    let r = app.approve(&b, &s.user_code).await;
    assert_eq!(r.status(), 410, "an expired request cannot be approved");

    // Denied.
    let s = app.start_ok().await;
    let r = app
        .complete(
            &b,
            json!({ "userCode": s.user_code.to_lowercase().replace('-', ""), "decision": "deny" }),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = app.poll(&s.device_code).await;
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "denied");
    assert_eq!(body["error"], "access_denied");
    assert_eq!(
        app.count("security_events", "kind = 'cli_device_denied'")
            .await,
        1
    );
    assert_eq!(
        app.approve(&b, &s.user_code).await.status(),
        410,
        "denied is final"
    );

    // Cancelled.
    let s = app.start_ok().await;
    let r = app
        .cli
        .post(app.url("/api/v1/cli/auth/device/cancel"))
        .json(&json!({ "deviceCode": s.device_code }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(app.poll(&s.device_code).await.status(), 410);
    assert_eq!(app.approve(&b, &s.user_code).await.status(), 410);
    assert_eq!(app.count("api_tokens", "true").await, 0);
}

#[tokio::test]
async fn cancel_after_approval_revokes_the_undelivered_token() {
    let app = spawn_app().await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let s = app.start_ok().await;
    assert_eq!(app.approve(&b, &s.user_code).await.status(), 200);
    let r = app
        .cli
        .post(app.url("/api/v1/cli/auth/device/cancel"))
        .json(&json!({ "deviceCode": s.device_code }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(app.poll(&s.device_code).await.status(), 410);
    assert_eq!(app.count("api_tokens", "revoked_at IS NOT NULL").await, 1);
    assert_eq!(
        app.count("cli_device_sessions", "encrypted_token IS NOT NULL")
            .await,
        0
    );
}

#[tokio::test]
async fn complete_is_idempotent_and_refuses_another_account() {
    let app = spawn_app().await;
    let (_, alice) = app.signed_in_browser("alice@example.com", false).await;
    let (_, bob) = app.signed_in_browser("bob@example.com", false).await;
    let s = app.start_ok().await;
    assert_eq!(app.approve(&alice, &s.user_code).await.status(), 200);
    let again = app.approve(&alice, &s.user_code).await;
    assert_eq!(again.status(), 200);
    assert_eq!(
        again.json::<Value>().await.unwrap()["message"],
        "CLI login already approved. You can return to your terminal."
    );
    let r = app.approve(&bob, &s.user_code).await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<ErrorBody>().await.unwrap().error,
        "approved_by_another_account"
    );
    assert_eq!(app.count("api_tokens", "true").await, 1, "one token");
}

#[tokio::test]
async fn complete_requires_a_signed_in_same_origin_browser() {
    let app = spawn_app().await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let s = app.start_ok().await;
    let url = app.url("/api/v1/cli/auth/device/complete");
    let body = json!({ "userCode": s.user_code, "decision": "approve" });

    let r = browser()
        .post(&url)
        .header("Origin", app.origin())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "no session");
    let r = b
        .post(&url)
        .header("Origin", "https://evil.example")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<ErrorBody>().await.unwrap().error,
        "cross_origin_request"
    );
    let r = b.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 403, "no Origin or Referer");
    let r = b
        .post(&url)
        .header("Referer", format!("{}/cli/login?code=x", app.origin()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "same-origin Referer is enough");

    for (code, status, error) in [
        ("BCDF", 400, "invalid_user_code"),
        ("BCDF-GHJK", 410, "expired_token"),
    ] {
        let r = app
            .complete(&b, json!({ "userCode": code, "decision": "approve" }))
            .await;
        assert_eq!(r.status(), status, "{code}");
        assert_eq!(r.json::<ErrorBody>().await.unwrap().error, error);
    }
    let r = app
        .complete(&b, json!({ "userCode": "BCDF-GHJK", "decision": "maybe" }))
        .await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn the_approver_may_narrow_scopes_and_expiry_but_not_widen_them() {
    let app = spawn_app().await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let s: StartDeviceResponse = app
        .start(json!({ "scopes": ["envs:read", "tokens:read"] }))
        .await
        .json()
        .await
        .unwrap();
    for (body, error) in [
        (
            json!({ "userCode": s.user_code, "decision": "approve", "scopes": ["envs:write"] }),
            "invalid_scope",
        ),
        (
            json!({ "userCode": s.user_code, "decision": "approve", "expiresInDays": 400 }),
            "invalid_expiry",
        ),
        (
            json!({ "userCode": s.user_code, "decision": "approve", "expiresInDays": 0 }),
            "invalid_expiry",
        ),
    ] {
        let r = app.complete(&b, body).await;
        assert_eq!(r.status(), 400);
        assert_eq!(r.json::<ErrorBody>().await.unwrap().error, error);
    }
    let r = app
        .complete(&b, json!({ "userCode": s.user_code, "decision": "approve", "scopes": ["envs:read"], "expiresInDays": 7 }))
        .await;
    assert_eq!(r.status(), 200);
    let p: Value = app.poll(&s.device_code).await.json().await.unwrap();
    assert_eq!(p["scopes"], json!(["envs:read"]));
    let exp: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(p["expiresAt"].clone()).unwrap();
    assert_eq!((exp - chrono::Utc::now()).num_days(), 6);
}

#[tokio::test]
async fn finding_4_an_uncollected_approval_frees_its_token_slot_at_expiry() {
    let app = spawn_app_with(|c| {
        c.clients[0].token_policy = envshield_server::config::TokenPolicy::AccessRefresh;
        c.max_api_tokens_per_user = 1;
    })
    .await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let s = app.start_ok().await;
    assert_eq!(app.approve(&b, &s.user_code).await.status(), 200);
    // Nobody polls; the request expires and the purge runs.
    app.sql("UPDATE cli_device_sessions SET expires_at = now() - interval '1 second'")
        .await;
    purge(&app).await;
    assert_eq!(
        app.count("refresh_tokens", "revoked_at IS NULL").await,
        0,
        "the family of the uncollected approval is revoked"
    );
    let again = app.start_ok().await;
    assert_eq!(
        app.approve(&b, &again.user_code).await.status(),
        200,
        "the slot is free again"
    );
}

#[tokio::test]
async fn finding_8_an_expiry_outside_the_offered_choices_is_a_400() {
    // Tokens that never expire by default leave only the chosen lifetime
    // to bound the date arithmetic.
    let app = spawn_app_with(|c| c.api_token_ttl_days = None).await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let s = app.start_ok().await;
    for days in [u64::from(u32::MAX), 45, 366] {
        let r = app
            .complete(
                &b,
                json!({ "userCode": s.user_code, "decision": "approve", "expiresInDays": days }),
            )
            .await;
        assert_eq!(r.status(), 400, "{days}");
        let e: ErrorBody = r.json().await.unwrap();
        assert_eq!(e.error, "invalid_expiry", "{days}");
    }
    let r = app
        .complete(
            &b,
            json!({ "userCode": s.user_code, "decision": "approve", "expiresInDays": 90 }),
        )
        .await;
    assert_eq!(r.status(), 200, "an offered choice");
}

#[tokio::test]
async fn the_per_user_token_limit_says_how_to_free_a_slot() {
    let app = spawn_app_with(|c| c.max_api_tokens_per_user = 2).await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let first = app.login_token(&b).await;
    app.login_token(&b).await;
    let s = app.start_ok().await;
    let r = app.approve(&b, &s.user_code).await;
    assert_eq!(r.status(), 409);
    let e: ErrorBody = r.json().await.unwrap();
    assert_eq!(e.error, "token_limit_reached");
    assert!(
        e.message.contains("envshield tokens revoke"),
        "{}",
        e.message
    );
    assert_eq!(
        app.poll(&s.device_code).await.status(),
        200,
        "still pending"
    );

    // Revoking one frees a slot.
    let r = app
        .cli
        .post(app.url("/api/v1/cli/tokens/revoke"))
        .bearer_auth(first["token"].as_str().unwrap())
        .json(&json!({ "tokenId": first["tokenId"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(app.approve(&b, &s.user_code).await.status(), 200);
}

#[tokio::test]
async fn fifty_concurrent_polls_of_an_approved_session_yield_exactly_one_token() {
    let app = spawn_app().await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let s = app.start_ok().await;
    assert_eq!(app.approve(&b, &s.user_code).await.status(), 200);
    let polls = (0..50).map(|_| app.poll(&s.device_code));
    let responses = futures::future::join_all(polls).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 410).count(),
        49,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn ten_concurrent_approvals_mint_exactly_one_token() {
    let app = spawn_app().await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let s = app.start_ok().await;
    let approvals = (0..10).map(|_| app.approve(&b, &s.user_code));
    let responses = futures::future::join_all(approvals).await;
    assert!(responses.iter().all(|r| r.status() == 200));
    assert_eq!(app.count("api_tokens", "true").await, 1);
    assert_eq!(
        app.count("security_events", "kind = 'cli_token_created'")
            .await,
        1
    );
}

#[tokio::test]
async fn no_plaintext_token_or_code_is_stored() {
    let app = spawn_app().await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let s = app.start_ok().await;
    // Before pickup: the sealed token is in the row, but not readable.
    assert_eq!(app.approve(&b, &s.user_code).await.status(), 200);
    let dump_before = dump_all(&app).await;
    let p: Value = app.poll(&s.device_code).await.json().await.unwrap();
    let token = p["token"].as_str().unwrap().to_owned();
    let dump_after = dump_all(&app).await;
    let compact_code = s.user_code.replace('-', "");
    for dump in [&dump_before, &dump_after] {
        for secret in [
            token.as_str(),
            &token[4..],
            &s.device_code,
            &s.user_code,
            &compact_code,
        ] {
            assert!(!dump.contains(secret), "found a secret in the database");
        }
        assert!(
            !dump.contains(&hex_of(&token)),
            "found the token hex-encoded"
        );
    }
}

fn hex_of(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Every row of every table, as text (bytea rendered as hex).
async fn dump_all(app: &crate::helpers::TestApp) -> String {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        t: String,
    }
    let url = app.server.db.url.clone();
    tokio::task::spawn_blocking(move || {
        use diesel::{Connection, RunQueryDsl};
        let mut conn = diesel::PgConnection::establish(&url).unwrap();
        let mut all = String::new();
        for table in [
            "users",
            "cli_device_sessions",
            "api_tokens",
            "security_events",
        ] {
            let rows: Vec<Row> =
                diesel::sql_query(format!("SELECT row_to_json(x)::text AS t FROM {table} x"))
                    .load(&mut conn)
                    .unwrap();
            for r in rows {
                all.push_str(&r.t);
                all.push('\n');
            }
        }
        assert!(all.contains("cli_token_created"), "the dump saw the tables");
        all
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn rate_limit_events_name_the_endpoint_that_was_hit() {
    let app = spawn_app_with(|c| c.rate_limits.complete_per_min = 1).await;
    for path in ["cancel", "cancel", "exchange"] {
        app.cli
            .post(app.url(&format!("/api/v1/cli/auth/device/{path}")))
            .json(&json!({ "deviceCode": "x", "confirmationCode": "x" }))
            .send()
            .await
            .unwrap();
    }
    let named = |path: &str| {
        format!(
            "kind = 'cli_rate_limit_exceeded' AND details->>'endpoint' = '/api/v1/cli/auth/device/{path}'"
        )
    };
    assert_eq!(app.count("security_events", &named("cancel")).await, 1);
    assert_eq!(
        app.count("security_events", &named("complete")).await,
        0,
        "not filed under another endpoint"
    );
}

#[tokio::test]
async fn start_is_rate_limited_per_ip_with_retry_after_and_an_event() {
    let app = spawn_app_with(|c| c.rate_limits.start_per_min = 2).await;
    assert_eq!(app.start(json!({})).await.status(), 200);
    assert_eq!(app.start(json!({})).await.status(), 200);
    let r = app.start(json!({})).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    let e: ErrorBody = r.json().await.unwrap();
    assert_eq!(e.error, "rate_limited");
    assert_eq!(app.start(json!({})).await.status(), 429);
    assert_eq!(
        app.count("security_events", "kind = 'cli_rate_limit_exceeded' AND details->>'endpoint' = '/api/v1/cli/auth/device/start'").await,
        1,
        "recorded once, not per rejected request"
    );
}

#[tokio::test]
async fn poll_has_its_own_rate_limit() {
    let app = spawn_app_with(|c| c.rate_limits.poll_per_min = 1).await;
    let s = app.start_ok().await;
    assert_eq!(app.poll(&s.device_code).await.status(), 200);
    assert_eq!(
        app.count("cli_device_sessions", "last_polled_at IS NOT NULL")
            .await,
        0,
        "an on-time pending poll writes nothing"
    );
    let r = app.poll(&s.device_code).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.json::<ErrorBody>().await.unwrap().error, "rate_limited");
    assert_eq!(
        app.start(json!({})).await.status(),
        200,
        "start is unaffected"
    );
}

#[tokio::test]
async fn purge_expires_sessions_wipes_sealed_tokens_and_revokes_orphans() {
    let app = spawn_app().await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let s = app.start_ok().await;
    app.start_ok().await;
    assert_eq!(app.approve(&b, &s.user_code).await.status(), 200);
    app.sql("UPDATE cli_device_sessions SET expires_at = now() - interval '1 second'")
        .await;
    let (expired, deleted) = purge(&app).await;
    assert_eq!((expired, deleted), (2, 0));
    assert_eq!(
        app.count(
            "cli_device_sessions",
            "status = 'EXPIRED' AND encrypted_token IS NULL"
        )
        .await,
        2
    );
    assert_eq!(app.count("api_tokens", "revoked_at IS NOT NULL").await, 1);
}

/// `start`'s one statement is prepared once per connection and reused
/// whatever the number of sessions it inserts; each session gets its audit
/// event, and a session whose user code is taken is skipped (to draw
/// again) without failing the others.
#[tokio::test]
async fn start_statement_is_prepared_once_and_skips_only_a_taken_user_code() {
    use diesel::prelude::*;
    use envshield_server::db::models::device_sessions::{self, NewDeviceSession};
    use envshield_server::domain::{Confirmation, Flow};

    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }

    let app = spawn_app().await;
    let url = app.server.db.url.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = PgConnection::establish(&url).unwrap();
        let now = chrono::Utc::now();
        let scopes = vec!["envs:read".to_owned(), "tokens:read".to_owned()];
        let hashes: Vec<[u8; 32]> = (0u8..8).map(|i| [i; 32]).collect();
        let session = |i: usize, user_code: usize| NewDeviceSession {
            id: uuid::Uuid::new_v4(),
            device_code_hash: &hashes[i],
            user_code_hash: &hashes[user_code],
            token_name: "prepared",
            scopes: &scopes,
            created_at: now,
            expires_at: now + chrono::Duration::minutes(10),
            client_ip: Some("127.0.0.1"),
            user_agent: None,
            poll_interval_sec: 5,
            client_id: "envshield-cli",
            confirmation: Confirmation::Poll,
            flow: Flow::V1,
            dpop_jkt: None,
            handoff_key: None,
        };
        let count = |conn: &mut PgConnection, sql: &str| {
            diesel::sql_query(sql).get_result::<N>(conn).unwrap().n
        };

        let one = [session(0, 1)];
        let ids =
            device_sessions::insert_started(&mut conn, &one, "cli_device_start", "low").unwrap();
        assert_eq!(ids, [one[0].id]);
        // Device codes 2 and 4 are new; the middle one reuses user code 1.
        let three = [session(2, 3), session(4, 1), session(5, 6)];
        let mut ids =
            device_sessions::insert_started(&mut conn, &three, "cli_device_start", "low").unwrap();
        ids.sort();
        let mut expected = vec![three[0].id, three[2].id];
        expected.sort();
        assert_eq!(
            ids, expected,
            "only the session with a taken user code is left out"
        );

        assert_eq!(
            count(
                &mut conn,
                "SELECT count(*) AS n FROM pg_prepared_statements \
                 WHERE statement LIKE 'WITH s AS (INSERT INTO cli_device_sessions%'"
            ),
            1,
            "one prepared statement, reused for every batch size"
        );
        assert_eq!(
            count(
                &mut conn,
                "SELECT count(*) AS n FROM security_events e JOIN cli_device_sessions s \
                 ON e.details->>'session_id' = s.id::text \
                 AND e.details->>'token_name' = s.token_name AND e.ip = s.client_ip \
                 WHERE s.token_name = 'prepared' AND e.kind = 'cli_device_start' \
                 AND e.severity = 'low'"
            ),
            3,
            "each inserted session has its audit event"
        );
        assert_eq!(
            count(&mut conn, "SELECT count(*) AS n FROM security_events"),
            3,
            "and the skipped one has none"
        );
        assert_eq!(
            count(
                &mut conn,
                "SELECT count(*) AS n FROM cli_device_sessions \
                 WHERE scopes = '{envs:read,tokens:read}' AND status = 'PENDING'"
            ),
            3,
            "the scopes are stored in order"
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn finding_3_security_events_past_retention_are_deleted() {
    use envshield_server::db::models::security_events;
    let app = spawn_app().await;
    app.sql(
        "INSERT INTO security_events (kind, severity, details, created_at) VALUES \
         ('login_failed', 'low', '{}', now() - interval '91 days'), \
         ('login_failed', 'low', '{}', now() - interval '89 days')",
    )
    .await;
    let config = envshield_server::testing::test_config(0);
    assert_eq!(
        config.security_event_retention_days,
        Some(90),
        "the default"
    );
    let url = app.server.db.url.clone();
    // What the purge task runs; the server's own purge may have got there
    // first, so the rows left are what counts.
    let deleted = tokio::task::spawn_blocking(move || {
        use diesel::Connection;
        let mut conn = diesel::PgConnection::establish(&url).unwrap();
        let cutoff = chrono::Utc::now() - chrono::Duration::days(90);
        security_events::delete_before(&mut conn, cutoff).unwrap()
    })
    .await
    .unwrap();
    assert!(deleted <= 1, "{deleted}");
    assert_eq!(
        app.count(
            "security_events",
            "kind = 'login_failed' AND created_at < now() - interval '90 days'"
        )
        .await,
        0,
        "past retention: deleted"
    );
    assert_eq!(
        app.count("security_events", "kind = 'login_failed'").await,
        1,
        "within retention: kept"
    );
}

#[tokio::test]
async fn finding_3_unauthenticated_starts_have_a_global_cap() {
    let app = spawn_app_with(|c| c.rate_limits.start_global_per_min = 2).await;
    let mut statuses = Vec::new();
    for last in 1..=3u8 {
        let from = reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, last]))
            .build()
            .unwrap();
        let r = from
            .post(app.url("/api/v1/cli/auth/device/start"))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 429], "three addresses, one cap");
}

/// What the purge task runs (the server's own may get there first); how
/// many sessions expired and were deleted.
async fn purge(app: &crate::helpers::TestApp) -> (usize, usize) {
    app.on_db(|conn| {
        envshield_server::service::device::purge_due(
            &mut envshield_server::db::Db::new(conn),
            &std::sync::Arc::default(),
            chrono::Utc::now(),
            chrono::Duration::days(7),
        )
        .unwrap()
    })
    .await
}
