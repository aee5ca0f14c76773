//! The OpenAPI 3.1 contract of the JSON API and the OAuth surface, built
//! from the handlers' `#[utoipa::path]` annotations and the `api-types`
//! schemas, served at `GET /api/v1/openapi.json`.

use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::HttpResponse;
use envshield_api_types::{ErrorBody, OAuthErrorBody, PollDeviceResponse};
use serde::Serialize;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, ObjectBuilder, OpenApi as Document, Ref, RefOr, Response,
    ResponseBuilder, Type,
};
use utoipa::{IntoResponses, Modify, OpenApi, ToResponse, ToSchema};

use crate::auth::session::SESSION_COOKIE;
use crate::routes::api::v1::{device, tokens};
use crate::routes::{health, oauth};

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "EnvShield Auth",
        description = "Browser-approved sign-in for command-line tools (RFC 8628) and scoped API tokens. \
Every error body is JSON with a stable `error` code and a `message` a person can act on; \
every operation may answer 503 with `Retry-After` while the database is unreachable.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    // An operation's tag is the module its handler is named through here
    // (`device::…` is tagged `device`); `openapi_json` names its own.
    paths(
        device::start_device_session,
        device::poll_by_body,
        device::poll_by_query,
        device::complete_device_session,
        device::exchange_device_session,
        device::cancel_device_session,
        device::refresh_access_token,
        tokens::whoami,
        tokens::list_api_tokens,
        tokens::revoke_api_token,
        tokens::logout_api_token,
        oauth::discovery,
        oauth::device_authorization,
        oauth::token,
        oauth::revoke,
        oauth::introspect,
        health::health,
        health::ready,
        openapi_json,
    ),
    components(
        schemas(envshield_api_types::ConfirmationMode, envshield_api_types::Decision),
        responses(RateLimited, Unauthenticated),
    ),
    modifiers(&Conventions),
    tags(
        (name = "device", description = "The CLI's device login (`envshield login`)."),
        (name = "tokens", description = "Bearer-token calls: whoami, list, revoke, logout."),
        (name = "oauth", description = "Standard OAuth 2.0: RFC 8414, 8628, 6749 refresh, 7009, 7662."),
        (name = "health", description = "Probes."),
    )
)]
struct ApiDoc;

/// Over a rate limit (per address or account): wait `Retry-After` seconds.
#[derive(ToResponse)]
#[response(headers(("Retry-After" = u64, description = "Seconds to wait.")))]
#[allow(dead_code)] // a response: documents the body
pub struct RateLimited(ErrorBody);

/// No token, or not a live one: `WWW-Authenticate` says why (RFC 6750).
#[derive(ToResponse)]
#[response(headers(("WWW-Authenticate" = String, description = "RFC 6750 challenge.")))]
#[allow(dead_code)] // a response: documents the body
pub struct Unauthenticated(ErrorBody);

/// Every answer of a poll, by query string or body.
#[derive(IntoResponses)]
#[allow(dead_code)] // responses: document the bodies
pub enum PollAnswers {
    /// `pending`, `approved` (with the token) or `confirmation_required`.
    #[response(status = 200)]
    Answered(PollDeviceResponse),
    /// Malformed device code, body, query or `wait`.
    #[response(status = 400)]
    Malformed(ErrorBody),
    /// `denied`: the person refused the request.
    #[response(status = 403)]
    Denied(ErrorBody),
    /// `expired`: unknown, expired, cancelled or already used (`error`
    /// `device_code_reused` when a sealed login's token was already collected
    /// with this device code, and so revoked).
    #[response(status = 410)]
    Expired(ErrorBody),
    /// `slow_down` (with the new `pollInterval`), or too many polls from this
    /// address (with `Retry-After`).
    #[response(status = 429)]
    TooFast(#[ref_response] RateLimited),
}

/// What the OAuth endpoints a client calls with its `client_id` (device
/// authorization, token, revocation) refuse alike.
#[derive(IntoResponses)]
#[allow(dead_code)] // responses: document the bodies
pub enum ClientRefusals {
    /// `invalid_client`.
    #[response(status = 401)]
    InvalidClient(OAuthErrorBody),
    /// Too many requests from this address (with `Retry-After`).
    #[response(status = 429)]
    TooMany(#[ref_response] RateLimited),
}

/// `POST /oauth/device_authorization` form (RFC 8628 §3.1).
#[derive(ToSchema)]
#[allow(dead_code)] // a schema: the handler parses the form by hand
pub struct DeviceAuthorizationForm {
    /// Registered public client; or send it as the HTTP Basic user name.
    client_id: Option<String>,
    /// Space-separated scopes; the client's default set when absent.
    scope: Option<String>,
}

/// `POST /oauth/token` form.
#[derive(ToSchema)]
#[allow(dead_code)] // a schema: the handler parses the form by hand
pub struct TokenForm {
    /// `urn:ietf:params:oauth:grant-type:device_code` or `refresh_token`.
    grant_type: String,
    /// The device code (device-code grant).
    device_code: Option<String>,
    /// The refresh token (refresh grant).
    refresh_token: Option<String>,
    /// Registered public client; or send it as the HTTP Basic user name.
    client_id: Option<String>,
    /// Refresh grant: a subset of the family's scopes.
    scope: Option<String>,
}

/// `POST /oauth/revoke` form (RFC 7009 §2.1).
#[derive(ToSchema)]
#[allow(dead_code)] // a schema: the handler parses the form by hand
pub struct RevokeForm {
    /// The access or refresh token to revoke.
    token: String,
    /// `access_token` or `refresh_token`.
    token_type_hint: Option<String>,
    /// Registered public client; or send it as the HTTP Basic user name.
    client_id: Option<String>,
}

/// `POST /oauth/introspect` form (RFC 7662 §2.1).
#[derive(ToSchema)]
#[allow(dead_code)] // a schema: the handler parses the form by hand
pub struct IntrospectForm {
    /// The token to describe.
    token: String,
    /// `access_token` or `refresh_token`.
    token_type_hint: Option<String>,
}

/// A probe's answer.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// `ok`, on `/health/ready`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
}

/// What every operation shares and the annotations leave out: the security
/// schemes, the answers the framework gives (413, 415, 503), and `no-store`.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("esh_ API token")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                SESSION_COOKIE,
                "The browser session set by signing in at /login.",
            ))),
        );
        for item in doc.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                add_common_responses(op);
            }
        }
    }
}

fn error_response(description: &str, retry_after: bool) -> RefOr<Response> {
    let mut response = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build(),
    );
    if retry_after {
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(0)),
                )
                .description(Some("Seconds to wait before trying again."))
                .build(),
        );
    }
    RefOr::T(response.build())
}

fn add_common_responses(op: &mut Operation) {
    let responses = &mut op.responses.responses;
    let mut add = |status: &str, response: RefOr<Response>| {
        responses.entry(status.to_owned()).or_insert(response);
    };
    add(
        "503",
        error_response(
            "The database is unreachable; try again after `Retry-After`.",
            true,
        ),
    );
    let Some(body) = &op.request_body else {
        return;
    };
    add(
        "413",
        error_response("The body is larger than 16 KiB.", false),
    );
    if body.content.contains_key("application/json") {
        add(
            "415",
            error_response("The body is not `application/json`.", false),
        );
    }
}

/// The document as JSON (built once). It names no server: paths are
/// relative to wherever it is served from.
pub fn document() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| ApiDoc::openapi().to_pretty_json().unwrap_or_default())
}

/// The document, for tests and tools.
pub fn openapi() -> Document {
    ApiDoc::openapi()
}

/// This document
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "health",
    operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document.", content_type = "application/json", body = Object))
)]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .content_type("application/json")
        .body(document())
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use actix_web::http::Method;
    use actix_web::{test as actix_test, web, App, HttpRequest};

    /// Every full path of the route table that is not a prefix, read from
    /// actix-web's resource map as it prints itself (the map has no
    /// iterator): each `patterns: Single("…")` with its `is_prefix`, nested
    /// by indentation.
    fn route_table(printed: &str) -> Vec<String> {
        let lines: Vec<&str> = printed.lines().collect();
        let mut prefixes: Vec<(usize, String)> = Vec::new();
        let mut leaves = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            if line.trim() != "patterns: Single(" {
                continue;
            }
            let indent = line.len() - line.trim_start().len();
            let pattern = lines[i + 1].trim().trim_end_matches(',').trim_matches('"');
            let is_prefix = lines[i + 2..]
                .iter()
                .find_map(|l| l.trim().strip_prefix("is_prefix: "))
                .is_some_and(|v| v.starts_with("true"));
            prefixes.retain(|(at, _)| *at < indent);
            let full = format!(
                "{}{pattern}",
                prefixes.last().map(|(_, p)| p.as_str()).unwrap_or("")
            );
            if is_prefix {
                prefixes.push((indent, full));
            } else {
                leaves.push(full);
            }
        }
        leaves
    }

    /// The methods the document gives each path.
    fn documented() -> BTreeMap<String, BTreeSet<String>> {
        let doc = serde_json::to_value(super::openapi()).unwrap_or_default();
        let mut out = BTreeMap::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            let methods = item
                .as_object()
                .into_iter()
                .flatten()
                .map(|(m, _)| m.to_ascii_uppercase())
                .filter(|m| Method::from_bytes(m.as_bytes()).is_ok() && m != "PARAMETERS")
                .collect();
            out.insert(path.clone(), methods);
        }
        out
    }

    /// A test fails when a JSON route is added without documenting it: each
    /// route of the table outside the HTML pages must be in the document.
    #[actix_web::test]
    async fn the_document_covers_every_api_route_in_the_route_table() {
        let app = actix_test::init_service(
            App::new()
                .route(
                    "/__route-table",
                    web::get()
                        .to(|req: HttpRequest| async move { format!("{:#?}", req.resource_map()) }),
                )
                .configure(crate::routes::configure),
        )
        .await;
        let printed = actix_test::call_and_read_body(
            &app,
            actix_test::TestRequest::get()
                .uri("/__route-table")
                .to_request(),
        )
        .await;
        let table = route_table(&String::from_utf8_lossy(&printed));
        assert!(
            table.iter().any(|p| p == "/api/v1/cli/auth/device/start"),
            "the route table could not be read: {table:?}"
        );
        let documented = documented();
        let json_routes: Vec<&String> = table
            .iter()
            .filter(|p| {
                ["/api/", "/oauth/", "/.well-known/", "/health"]
                    .iter()
                    .any(|start| p.starts_with(start))
                    // The consent page and its step-up ceremony: for a
                    // signed-in browser, like /cli/login, in docs/API.md.
                    && !p.starts_with("/oauth/authorize")
            })
            .collect();
        assert!(json_routes.len() >= 17, "{json_routes:?}");
        for path in json_routes {
            let Some(methods) = documented.get(path.as_str()) else {
                panic!("{path} is in the route table but not in the OpenAPI document");
            };
            // Each path's methods are compared with what the running server
            // answers in tests/api/openapi.rs.
            assert!(!methods.is_empty(), "{path}");
        }
        // And nothing documented is missing from the table.
        for path in documented.keys() {
            assert!(table.contains(path), "{path} is documented but not routed");
        }
    }

    /// Tags come from the module a handler is named through in `paths(…)`:
    /// each operation has exactly one, and it is one the document declares.
    #[test]
    fn every_operation_has_one_declared_tag() {
        let doc = serde_json::to_value(super::openapi()).unwrap_or_default();
        let declared: BTreeSet<&str> = doc["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|tag| tag["name"].as_str())
            .collect();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                let tags: Vec<&str> = op["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|tag| tag.as_str())
                    .collect();
                assert!(
                    tags.len() == 1 && declared.contains(tags[0]),
                    "{method} {path}: tags {tags:?}"
                );
            }
        }
    }

    #[test]
    fn the_document_is_openapi_3_1_and_every_operation_has_an_id() {
        let doc = serde_json::to_value(super::openapi()).unwrap_or_default();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut ids = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                let id = op["operationId"].as_str().unwrap_or_default().to_owned();
                assert!(!id.is_empty(), "{method} {path} has no operationId");
                assert!(ids.insert(id.clone()), "{id} is used twice");
                assert!(
                    op["responses"]["503"].is_object(),
                    "{method} {path}: no 503"
                );
            }
        }
    }
}
