//! The standard OAuth 2.0 surface: RFC 8414 discovery, RFC 8628 device
//! authorization and token endpoints (with RFC 6749 refresh), RFC 7009
//! revocation and RFC 7662 introspection. Same service code as `/api/v1`.

use std::collections::HashMap;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;

use crate::auth::dpop::Proof;
use crate::config::{
    OAuthClient, AUTHORIZATION_CODE_GRANT, DEVICE_CODE_GRANT, REFRESH_TOKEN_GRANT,
};
use crate::domain::{DeviceCode, Flow};
use crate::error::AppError;
use crate::rate_limit::Limit;
use crate::routes::api::v1::device::started_codes;
use crate::routes::extract::{user_agent, BearerAuth, ClientIp, DpopProof};
use crate::routes::limit::RateLimit;
#[allow(unused_imports)] // named by the OpenAPI annotations
use crate::routes::openapi::{
    ClientRefusals, DeviceAuthorizationForm, IntrospectForm, RevokeForm, TokenForm, Unauthenticated,
};
use crate::service::device::{self, policy, PollOutcome, StartInput};
use crate::service::grants::{GrantError, Issued};
use crate::service::AppState;
use crate::service::{authorize, grants, oauth};
use envshield_api_types::{
    AuthorizationServerMetadata, DeviceAuthorizationResponse, ErrorBody, IntrospectionResponse,
    OAuthErrorBody, TokenResponse,
};

/// Routes of the OAuth surface, with their rate limits.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let limited = |path: &str, limit: Limit| web::resource(path).wrap(RateLimit::api(limit));
    cfg.service(
        web::resource("/.well-known/oauth-authorization-server").route(web::get().to(discovery)),
    )
    .service(
        limited("/oauth/device_authorization", Limit::Start)
            .route(web::post().to(device_authorization)),
    )
    .service(limited("/oauth/token", Limit::Poll).route(web::post().to(token)))
    .service(limited("/oauth/revoke", Limit::Complete).route(web::post().to(revoke)))
    .service(web::resource("/oauth/introspect").route(web::post().to(introspect)));
}

/// An RFC 6749 §5.2 error: `{error, error_description}`, never cached.
struct OAuthError {
    status: StatusCode,
    error: String,
    description: String,
}

impl OAuthError {
    fn into_response(self) -> HttpResponse {
        HttpResponse::build(self.status)
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"))
            .json(OAuthErrorBody {
                error: self.error,
                error_description: Some(self.description),
            })
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> OAuthError {
    OAuthError {
        status,
        error: error.to_owned(),
        description: description.to_owned(),
    }
}

fn bad(error: &str, description: &str) -> OAuthError {
    oauth_error(StatusCode::BAD_REQUEST, error, description)
}

/// A 200 that must not be cached (tokens, codes).
fn no_store(body: impl serde::Serialize) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body)
}

/// Parses an `application/x-www-form-urlencoded` body; a parameter given
/// twice is an error (RFC 6749 §3.1).
fn form(req: &HttpRequest, body: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(bad(
            "invalid_request",
            "Send the parameters as application/x-www-form-urlencoded.",
        ));
    }
    let mut params = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        if params.insert(k.to_string(), v.to_string()).is_some() {
            return Err(bad(
                "invalid_request",
                &format!("The parameter `{k}` is given more than once."),
            ));
        }
    }
    Ok(params)
}

fn required<'a>(params: &'a HashMap<String, String>, name: &str) -> Result<&'a str, OAuthError> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            bad(
                "invalid_request",
                &format!("The `{name}` parameter is missing."),
            )
        })
}

/// The client: `client_id` in the body, or HTTP Basic with the client id as
/// user name and an empty password (how many OAuth libraries send public
/// clients, RFC 6749 §2.3.1).
fn client<'a>(
    req: &HttpRequest,
    state: &'a AppState,
    params: &HashMap<String, String>,
) -> Result<&'a OAuthClient, OAuthError> {
    let unknown = || {
        oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Unknown client_id.",
        )
    };
    let from_basic = basic_client_id(req)?;
    let id = match (
        params.get("client_id").filter(|v| !v.is_empty()),
        &from_basic,
    ) {
        (Some(body), Some(basic)) if body != basic => {
            return Err(bad(
                "invalid_request",
                "client_id differs between the body and the Authorization header.",
            ))
        }
        (Some(body), _) => body.clone(),
        (None, Some(basic)) => basic.clone(),
        (None, None) => {
            return Err(bad(
                "invalid_request",
                "The `client_id` parameter is missing.",
            ))
        }
    };
    state.config.client(&id).ok_or_else(unknown)
}

/// The client, if it may use `grant`; otherwise `unauthorized_client`
/// with `refusal`.
fn client_for<'a>(
    req: &HttpRequest,
    state: &'a AppState,
    params: &HashMap<String, String>,
    grant: &str,
    refusal: &str,
) -> Result<&'a OAuthClient, OAuthError> {
    let client = client(req, state, params)?;
    if !client.allows_grant(grant) {
        return Err(bad("unauthorized_client", refusal));
    }
    Ok(client)
}

fn basic_client_id(req: &HttpRequest) -> Result<Option<String>, OAuthError> {
    use base64::Engine;
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let invalid = || {
        oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The Authorization header is not valid Basic client authentication.",
        )
    };
    let value = value.to_str().map_err(|_| invalid())?;
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Err(invalid());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| invalid())?;
    let decoded = String::from_utf8(decoded).map_err(|_| invalid())?;
    let (id, secret) = decoded.split_once(':').unwrap_or((decoded.as_str(), ""));
    if !secret.is_empty() {
        return Err(oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Clients here are public: send no client secret.",
        ));
    }
    let id: String = url::form_urlencoded::parse(format!("i={id}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    Ok(Some(id))
}

fn scopes(params: &HashMap<String, String>) -> Option<Vec<String>> {
    params.get("scope").map(|s| {
        s.split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

/// The token a revocation or introspection names, and the hint of its type.
fn presented(params: &HashMap<String, String>) -> Result<(String, oauth::Hint), OAuthError> {
    let presented = required(params, "token")?.trim().to_owned();
    let hint = oauth::Hint::parse(params.get("token_type_hint").map(String::as_str));
    Ok((presented, hint))
}

/// A grant request's parameters and its DPoP proof, or the OAuth error for
/// a bad form or proof (RFC 9449 §5).
fn grant_request(
    req: &HttpRequest,
    body: &[u8],
) -> Result<(HashMap<String, String>, Option<Proof>), OAuthError> {
    let params = form(req, body)?;
    let proof = DpopProof::of(req).map_err(|invalid| bad(invalid.code(), invalid.0))?;
    Ok((params, proof))
}

/// Maps a service error to the OAuth error format where it is the client's
/// fault; outages and bugs keep the usual JSON answer.
fn service_error(e: AppError) -> Result<HttpResponse, AppError> {
    match e {
        AppError::BadRequest { code, message } => Ok(bad(code, &message).into_response()),
        other => Err(other),
    }
}

macro_rules! try_response {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return Ok(e.into_response()),
        }
    };
}

/// Authorization server metadata (RFC 8414)
#[utoipa::path(
    get,
    path = "/.well-known/oauth-authorization-server",
    operation_id = "discovery",
    responses((status = 200, description = "The metadata.", body = AuthorizationServerMetadata))
)]
pub async fn discovery(state: web::Data<AppState>) -> HttpResponse {
    let base = state.config.app_base();
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .json(AuthorizationServerMetadata {
            device_authorization_endpoint: format!("{base}/oauth/device_authorization"),
            token_endpoint: format!("{base}/oauth/token"),
            revocation_endpoint: format!("{base}/oauth/revoke"),
            introspection_endpoint: format!("{base}/oauth/introspect"),
            authorization_endpoint: format!("{base}/oauth/authorize"),
            grant_types_supported: vec![
                DEVICE_CODE_GRANT.to_owned(),
                AUTHORIZATION_CODE_GRANT.to_owned(),
                REFRESH_TOKEN_GRANT.to_owned(),
            ],
            code_challenge_methods_supported: vec!["S256".to_owned()],
            authorization_response_iss_parameter_supported: true,
            scopes_supported: state.config.scope_catalogue.clone(),
            token_endpoint_auth_methods_supported: vec!["none".to_owned()],
            revocation_endpoint_auth_methods_supported: vec!["none".to_owned()],
            introspection_endpoint_auth_methods_supported: vec!["bearer".to_owned()],
            response_types_supported: vec!["code".to_owned()],
            dpop_signing_alg_values_supported: crate::auth::dpop::ALGORITHMS
                .iter()
                .map(|a| (*a).to_owned())
                .collect(),
            service_documentation: format!("{base}/"),
            issuer: base,
        })
}

/// Device authorization request (RFC 8628 §3.1)
///
/// `client_id` in the form or as the HTTP Basic user name (public clients: no secret).
#[utoipa::path(
    post,
    path = "/oauth/device_authorization",
    operation_id = "deviceAuthorization",
    request_body(content = DeviceAuthorizationForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The codes (RFC 8628 §3.2).", body = DeviceAuthorizationResponse),
        (status = 400, description = "`invalid_request`, `invalid_scope`, `unauthorized_client`.", body = OAuthErrorBody),
        ClientRefusals,
    )
)]
pub async fn device_authorization(
    req: HttpRequest,
    ip: ClientIp,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let (params, proof) = try_response!(grant_request(&req, &body));
    let client = try_response!(client_for(
        &req,
        &state,
        &params,
        DEVICE_CODE_GRANT,
        "This client may not use the device flow.",
    ));
    let confirmation = match policy::oauth_confirmation(state.config.confirmation_mode(), client) {
        Ok(mode) => mode,
        Err(e) => return service_error(e),
    };
    let now = Utc::now();
    let input = StartInput {
        token_name: Some(format!("{} - {}", client.client_id, now.format("%Y-%m-%d"))),
        scopes: scopes(&params),
        client_ip: ip.to_string(),
        user_agent: user_agent(&req),
        client_id: client.client_id.clone(),
        confirmation,
        flow: Flow::OAuth,
        dpop_jkt: proof.map(|p| p.jkt),
        handoff_key: None,
    };
    let started = match device::start_session(&state, input, now).await {
        Ok(s) => s,
        Err(e) => return service_error(e),
    };
    Ok(no_store(started_codes(
        &state.config.app_base(),
        &started,
        now,
    )))
}

/// Token endpoint: device-code and refresh grants
///
/// While the person has not decided: 400 `authorization_pending` (or `slow_down`). Then the token, once; or `access_denied`, `expired_token`.
#[utoipa::path(
    post,
    path = "/oauth/token",
    operation_id = "token",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The tokens (RFC 6749 §5.1).", body = TokenResponse),
        (status = 400, description = "RFC 6749 §5.2 / RFC 8628 §3.5 errors.", body = OAuthErrorBody),
        ClientRefusals,
    )
)]
pub async fn token(
    req: HttpRequest,
    ip: ClientIp,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let (params, proof) = try_response!(grant_request(&req, &body));
    let grant_type = try_response!(required(&params, "grant_type")).to_owned();
    if ![
        DEVICE_CODE_GRANT,
        AUTHORIZATION_CODE_GRANT,
        REFRESH_TOKEN_GRANT,
    ]
    .contains(&grant_type.as_str())
    {
        return Ok(bad(
            "unsupported_grant_type",
            "Supported grant types: urn:ietf:params:oauth:grant-type:device_code, authorization_code and refresh_token.",
        ).into_response());
    }
    let client = try_response!(client_for(
        &req,
        &state,
        &params,
        &grant_type,
        "This client may not use this grant type.",
    ))
    .clone();
    let ip_text = ip.to_string();
    if grant_type == AUTHORIZATION_CODE_GRANT {
        let input = authorize::RedeemInput {
            code: try_response!(required(&params, "code")).to_owned(),
            redirect_uri: try_response!(required(&params, "redirect_uri")).to_owned(),
            verifier: try_response!(required(&params, "code_verifier")).to_owned(),
            client_id: client.client_id,
            proof,
            client_ip: ip_text,
        };
        return Ok(granted(authorize::redeem(&state, input).await?));
    }
    if grant_type == REFRESH_TOKEN_GRANT {
        let presented = try_response!(required(&params, "refresh_token")).to_owned();
        let asked = scopes(&params);
        let result = grants::refresh_grant(
            &state,
            Some(client.client_id),
            presented,
            asked,
            proof,
            ip_text,
        )
        .await?;
        return Ok(granted(result));
    }
    let raw = try_response!(required(&params, "device_code"));
    let Some(code) = DeviceCode::parse(raw) else {
        return Ok(bad("invalid_grant", "The device_code is not valid.").into_response());
    };
    let outcome =
        device::counted_poll(&state, code, Some(client.client_id), ip_text, proof).await?;
    let refused = match outcome {
        PollOutcome::Pending { .. } | PollOutcome::ConfirmationRequired => bad(
            "authorization_pending",
            "The user has not approved the request yet.",
        ),
        PollOutcome::SlowDown { interval_secs } => bad(
            "slow_down",
            &format!("Polling too fast; wait {interval_secs} seconds between requests."),
        ),
        PollOutcome::Denied => bad("access_denied", "The user denied the request."),
        PollOutcome::Expired | PollOutcome::AlreadyCollected => bad(
            "expired_token",
            "The device_code has expired or was already used; start again.",
        ),
        PollOutcome::Unknown => bad(
            "invalid_grant",
            "The device_code is not valid for this client.",
        ),
        PollOutcome::KeyRefused(invalid) => bad(invalid.code(), invalid.0),
        PollOutcome::Approved {
            token,
            expires_at,
            scopes,
            refresh,
            dpop_jkt,
            ..
        } => {
            return Ok(token_response(
                &token,
                expires_at,
                &scopes,
                refresh.as_ref(),
                grants::token_type(dpop_jkt.as_deref()),
            ))
        }
    };
    Ok(refused.into_response())
}

/// The answer to a code or refresh grant: the tokens, or the refusal.
fn granted(result: Result<Issued, GrantError>) -> HttpResponse {
    match result {
        Ok(issued) => token_response(
            &issued.access,
            issued.expires_at,
            &issued.scopes,
            issued.refresh.as_ref(),
            issued.token_type(),
        ),
        Err(e) => bad(e.code, &e.message).into_response(),
    }
}

fn token_response(
    access: &crate::domain::PlainToken,
    expires_at: Option<chrono::DateTime<Utc>>,
    scopes: &[String],
    refresh: Option<&crate::domain::PlainToken>,
    token_type: &str,
) -> HttpResponse {
    no_store(TokenResponse {
        access_token: access.expose().to_owned(),
        token_type: token_type.to_owned(),
        scope: scopes.join(" "),
        expires_in: expires_at.map(|exp| (exp - Utc::now()).num_seconds().max(0)),
        refresh_token: refresh.map(|r| r.expose().to_owned()),
    })
}

/// Token revocation (RFC 7009)
// 200 whether or not the token was known (RFC 7009 §2.2).
#[utoipa::path(
    post,
    path = "/oauth/revoke",
    operation_id = "revoke",
    request_body(content = RevokeForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Revoked, or not a live token (RFC 7009 §2.2)."),
        (status = 400, description = "`invalid_request`.", body = OAuthErrorBody),
        ClientRefusals,
    )
)]
pub async fn revoke(
    req: HttpRequest,
    ip: ClientIp,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let params = try_response!(form(&req, &body));
    let client = try_response!(client(&req, &state, &params))
        .client_id
        .clone();
    let (presented, hint) = try_response!(presented(&params));
    oauth::revoke_presented(&state, client, presented, hint, ip.to_string()).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// Token introspection (RFC 7662)
///
/// For callers whose Bearer token carries `tokens:introspect`.
// Only admins may grant `tokens:introspect` by default.
#[utoipa::path(
    post,
    path = "/oauth/introspect",
    operation_id = "introspect",
    security(("bearer" = ["tokens:introspect"])),
    request_body(content = IntrospectForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The token's claims, or only `active: false`.", body = IntrospectionResponse),
        (status = 400, description = "`invalid_request`.", body = OAuthErrorBody),
        (status = 401, response = Unauthenticated),
        (status = 403, description = "The caller's token lacks `tokens:introspect`.", body = ErrorBody),
    )
)]
pub async fn introspect(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: BearerAuth,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    // The scope for everyone, admins included: any admin token would
    // otherwise be a way to probe every token there is.
    caller.require_scope("tokens:introspect")?;
    let params = try_response!(form(&req, &body));
    let (presented, hint) = try_response!(presented(&params));
    let claims = oauth::introspect_presented(&state, presented, hint).await?;
    Ok(no_store(claims))
}
