//! The device-login endpoints: each takes what it needs, makes one service
//! call, and renders the answer. Limits are in the route table.

use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use envshield_api_types::{
    CancelDeviceRequest, CompleteDeviceRequest, Decision, DeviceAuthorizationResponse, ErrorBody,
    ExchangeDeviceRequest, PollDeviceRequest, PollDeviceResponse, RefreshRequest, RefreshResponse,
    StartDeviceRequest, StartDeviceResponse, StatusMessage,
};
use serde::{Deserialize, Serialize};

use crate::config::CLI_CLIENT_ID;
use crate::domain::{ConfirmationCode, DeviceCode, Flow, UserCode};
use crate::error::AppError;
use crate::routes::extract::{
    user_agent, ClientIp, CodeEntry, DpopProof, JsonObject, SameOrigin, SignedInUser,
};
use crate::routes::openapi::{PollAnswers, RateLimited};
use crate::service::device::{
    self, policy, CompleteInput, CompleteOutcome, ExchangeOutcome, PollOutcome, StartInput, Started,
};
use crate::service::grants;
use crate::service::AppState;

/// Longest long-poll wait, in seconds.
pub const MAX_WAIT_SECS: u32 = 30;

/// A JSON answer that must not be cached (codes, tokens, decisions).
fn no_store(status: StatusCode, body: impl Serialize) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

/// A started login's codes, pages and lifetime in RFC 8628 §3.2's terms:
/// what both ways to start one (`start` and `/oauth/device_authorization`)
/// tell the client. `base` is the public base URL.
pub fn started_codes(
    base: &str,
    started: &Started,
    now: DateTime<Utc>,
) -> DeviceAuthorizationResponse {
    let user_code = started.user_code.display();
    DeviceAuthorizationResponse {
        device_code: started.device_code.expose().to_owned(),
        verification_uri: format!("{base}/cli/device"),
        verification_uri_complete: format!("{base}/cli/login?code={user_code}"),
        user_code,
        expires_in: (started.expires_at - now).num_seconds(),
        interval: started.interval_secs,
    }
}

fn parse_device_code(raw: &str) -> Result<DeviceCode, AppError> {
    DeviceCode::parse(raw.trim()).ok_or_else(|| {
        AppError::bad_request(
            "invalid_device_code",
            "deviceCode is malformed: send the deviceCode exactly as `start` returned it.",
        )
    })
}

/// Start a device login
///
/// Creates a pending login request. The CLI shows `userCode` and opens `verificationUrl`, then polls with `deviceCode`.
#[utoipa::path(
    post,
    path = "/api/v1/cli/auth/device/start",
    operation_id = "startDeviceSession",
    request_body = StartDeviceRequest,
    responses(
        (status = 200, description = "The codes for this login request.", body = StartDeviceResponse),
        (status = 400, description = "Unknown client, scope or token name, or a malformed body.", body = ErrorBody),
        (status = 429, response = RateLimited),
    )
)]
#[tracing::instrument(name = "start_device_session", skip_all)]
pub async fn start_device_session(
    req: HttpRequest,
    ip: ClientIp,
    proof: DpopProof,
    state: web::Data<AppState>,
    body: JsonObject<StartDeviceRequest>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let input = StartInput {
        token_name: body.token_name,
        scopes: body.scopes,
        client_id: body.client_id.unwrap_or_else(|| CLI_CLIENT_ID.to_owned()),
        confirmation: policy::confirmation(state.config.confirmation_mode(), body.confirmation),
        flow: Flow::V1,
        client_ip: ip.to_string(),
        user_agent: user_agent(&req),
        dpop_jkt: proof.jkt(),
        handoff_key: body.handoff_key,
    };
    let now = Utc::now();
    let started = device::start_session(&state, input, now).await?;
    let codes = started_codes(&state.config.app_base(), &started, now);
    Ok(no_store(
        StatusCode::OK,
        StartDeviceResponse {
            device_code: codes.device_code,
            verification_url: codes.verification_uri_complete,
            verification_uri: codes.verification_uri,
            user_code: codes.user_code,
            expires_in: codes.expires_in,
            expires_at: started.expires_at,
            poll_interval: u64::from(codes.interval),
            token_name: started.token_name,
            scopes: started.scopes,
            confirmation: started.confirmation,
            session_id: Some(started.id),
        },
    ))
}

/// Poll a device login
///
/// Asks whether the person has decided. `wait` holds the request until the session changes (long-poll). An approved token is handed out exactly once.
#[utoipa::path(
    post,
    path = "/api/v1/cli/auth/device/poll",
    operation_id = "pollDeviceSession",
    request_body = PollDeviceRequest,
    responses(PollAnswers)
)]
pub async fn poll_by_body(
    ip: ClientIp,
    proof: DpopProof,
    state: web::Data<AppState>,
    body: JsonObject<PollDeviceRequest>,
) -> Result<HttpResponse, AppError> {
    let PollDeviceRequest { device_code, wait } = body.into_inner();
    poll_device_session(ip, proof, state, &device_code, wait).await
}

/// The query-string form of a poll (where every value is text).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PollQuery {
    device_code: String,
    wait: Option<u32>,
}

/// Poll a device login (query string)
///
/// The same poll, with the parameters in the query string.
#[utoipa::path(
    get,
    path = "/api/v1/cli/auth/device/poll",
    operation_id = "pollDeviceSessionByQuery",
    params(
        ("deviceCode" = String, Query, pattern = "^[A-Za-z0-9_-]{43}$", description = "The device code from `start`."),
        ("wait" = Option<u32>, Query, maximum = 30, description = "Long-poll: hold the request up to this many seconds."),
    ),
    responses(PollAnswers)
)]
pub async fn poll_by_query(
    ip: ClientIp,
    proof: DpopProof,
    state: web::Data<AppState>,
    query: web::Query<PollQuery>,
) -> Result<HttpResponse, AppError> {
    let PollQuery { device_code, wait } = query.into_inner();
    poll_device_session(ip, proof, state, &device_code, wait).await
}

/// Both polls.
#[tracing::instrument(name = "poll_device_session", skip_all)]
async fn poll_device_session(
    ip: ClientIp,
    proof: DpopProof,
    state: web::Data<AppState>,
    device_code: &str,
    wait: Option<u32>,
) -> Result<HttpResponse, AppError> {
    let code = parse_device_code(device_code)?;
    let wait = match wait {
        Some(w) if w > MAX_WAIT_SECS => {
            return Err(AppError::bad_request(
                "invalid_wait",
                format!("wait is at most {MAX_WAIT_SECS} seconds."),
            ))
        }
        w => w.map(|w| Duration::from_secs(u64::from(w))),
    };
    let outcome = device::poll_and_wait(&state, code, ip.to_string(), proof.0, wait).await?;
    Ok(poll_response(outcome))
}

/// The HTTP answer for a poll outcome, per docs/API.md.
pub fn poll_response(outcome: PollOutcome) -> HttpResponse {
    let (status, body) = match outcome {
        PollOutcome::Pending { interval_secs } => (
            StatusCode::OK,
            PollDeviceResponse::Pending {
                poll_interval: u64::from(interval_secs),
            },
        ),
        PollOutcome::SlowDown { interval_secs } => (
            StatusCode::TOO_MANY_REQUESTS,
            PollDeviceResponse::SlowDown {
                error: "slow_down".to_owned(),
                message: format!(
                    "Polling too fast. Wait {interval_secs} seconds between polls from now on."
                ),
                poll_interval: u64::from(interval_secs),
            },
        ),
        PollOutcome::Approved {
            token,
            token_id,
            token_name,
            scopes,
            expires_at,
            refresh,
            dpop_jkt,
            sealed,
        } => {
            // Sealed to the CLI's handoff key: no token in the clear.
            let (token, refresh_token) = match sealed {
                Some(_) => (None, None),
                None => (
                    Some(token.expose().to_owned()),
                    refresh.map(|r| r.expose().to_owned()),
                ),
            };
            (
                StatusCode::OK,
                PollDeviceResponse::Approved {
                    token,
                    token_id,
                    token_name,
                    scopes,
                    expires_at,
                    refresh_token,
                    token_type: Some(grants::token_type(dpop_jkt.as_deref()).to_owned()),
                    sealed_token: sealed.map(|s| *s),
                },
            )
        }
        PollOutcome::KeyRefused(invalid) => {
            return no_store(
                StatusCode::BAD_REQUEST,
                ErrorBody {
                    error: invalid.code().to_owned(),
                    message: invalid.0.to_owned(),
                    status: None,
                },
            )
        }
        PollOutcome::ConfirmationRequired => (
            StatusCode::OK,
            PollDeviceResponse::ConfirmationRequired {
                message: "Approved. Type the confirmation code shown in the browser; polling will not release the token.".to_owned(),
            },
        ),
        PollOutcome::Denied => (
            StatusCode::FORBIDDEN,
            PollDeviceResponse::Denied {
                error: "access_denied".to_owned(),
                message: "The login request was denied in the browser.".to_owned(),
            },
        ),
        PollOutcome::AlreadyCollected => (
            StatusCode::GONE,
            PollDeviceResponse::Expired {
                error: "device_code_reused".to_owned(),
                message: "The token of this login was already collected with its device code, so it was revoked. If this client did not collect it, someone else holds the device code: run `envshield login` again.".to_owned(),
            },
        ),
        PollOutcome::Expired | PollOutcome::Unknown => (
            StatusCode::GONE,
            PollDeviceResponse::Expired {
                error: "expired_token".to_owned(),
                message: "This login request has expired or was already used. Run `envshield login` again.".to_owned(),
            },
        ),
    };
    no_store(status, body)
}

/// Approve or deny a device login
///
/// For the signed-in browser (session cookie), from this site's own origin (`Origin` header). Approving mints the token the CLI's next poll receives.
#[utoipa::path(
    post,
    path = "/api/v1/cli/auth/device/complete",
    operation_id = "completeDeviceSession",
    request_body = CompleteDeviceRequest,
    security(("session" = [])),
    responses(
        (status = 200, description = "Decided (or already approved).", body = StatusMessage),
        (status = 400, description = "Malformed user code or body, or scopes not asked for.", body = ErrorBody),
        (status = 401, description = "Not signed in.", body = ErrorBody),
        (status = 403, description = "Cross-origin request, the account may not grant these scopes, `step_up_required`: the server asks for a step-up (APPROVAL_STEP_UP) and no fitting `stepUpProof` came, `device_login_policy`: a rule of DEVICE_LOGIN_POLICY for the approver's role refused (the message names it), or `paste_back_unavailable`: the approval needs a paste-back code (DEVICE_CONFIRMATION=risk) and the client cannot type one.", body = ErrorBody),
        (status = 404, description = "No pending request has this code.", body = ErrorBody),
        (status = 409, description = "The request was already decided the other way.", body = ErrorBody),
        (status = 410, description = "The request expired or was cancelled.", body = ErrorBody),
        (status = 429, response = RateLimited),
    )
)]
#[tracing::instrument(name = "complete_device_session", skip_all, fields(user_id = %user.0.id))]
pub async fn complete_device_session(
    _origin: SameOrigin,
    CodeEntry(user): CodeEntry<SignedInUser>,
    ip: ClientIp,
    state: web::Data<AppState>,
    body: JsonObject<CompleteDeviceRequest>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let user_code = UserCode::parse(&body.user_code).ok_or_else(|| {
        AppError::bad_request(
            "invalid_user_code",
            "userCode must be the 8-letter code shown in the terminal, like BCDF-GHJK.",
        )
    })?;
    let input = CompleteInput {
        request: user_code,
        approve: body.decision == Decision::Approve,
        scopes: body.scopes,
        expires_in_days: body.expires_in_days,
        approver: user.0,
        approver_session: user.1,
        client_ip: ip.0,
        step_up_proof: body.step_up_proof,
    };
    let outcome = device::decide(&state, input).await?;
    let (message, confirmation_code) = match outcome {
        CompleteOutcome::Approved {
            already: false,
            confirmation_code: Some(code),
            paste_reasons,
            ..
        } => (
            format!(
                "CLI login approved. Type this confirmation code in your terminal. {}",
                paste_reasons.join(" ")
            )
            .trim_end()
            .to_owned(),
            Some(code),
        ),
        CompleteOutcome::Approved { already: false, .. } => (
            "CLI login approved. You can return to your terminal.".to_owned(),
            None,
        ),
        CompleteOutcome::Approved { already: true, .. } => (
            "CLI login already approved. You can return to your terminal.".to_owned(),
            None,
        ),
        CompleteOutcome::Denied => (
            "CLI login denied. The terminal will be told.".to_owned(),
            None,
        ),
        CompleteOutcome::StepUpRequired { reasons, problem } => {
            return Err(step_up_required(&reasons, problem))
        }
    };
    Ok(no_store(
        StatusCode::OK,
        StatusMessage {
            status: "ok".to_owned(),
            message,
            confirmation_code,
        },
    ))
}

/// The 403 for an approval that needs a step-up and came without a fitting
/// proof: each reason in words, and how to get a proof.
pub fn step_up_required(reasons: &[policy::StepUpReason], problem: &str) -> AppError {
    let why: Vec<String> = reasons.iter().map(policy::StepUpReason::sentence).collect();
    let proof = match problem {
        "missing" => "No step-up proof came with it",
        "expired" => "The step-up proof has expired",
        "not_for_this_approval" => "The step-up proof was made for another approval",
        _ => "The step-up proof is unknown or was already used",
    };
    AppError::forbidden(
        "step_up_required",
        format!(
            "Approving this request needs you to confirm it is you again (a passkey, or your password when you have none). {} {proof}: confirm on the approval page and approve there.",
            why.join(" ")
        ),
    )
}

/// Cancel a device login
///
/// The CLI gave up (Ctrl-C): the request can no longer be approved.
#[utoipa::path(
    post,
    path = "/api/v1/cli/auth/device/cancel",
    operation_id = "cancelDeviceSession",
    request_body = CancelDeviceRequest,
    responses(
        (status = 200, description = "Cancelled.", body = StatusMessage),
        (status = 400, description = "Malformed device code or body.", body = ErrorBody),
        (status = 410, description = "The request had already ended.", body = ErrorBody),
        (status = 429, response = RateLimited),
    )
)]
#[tracing::instrument(name = "cancel_device_session", skip_all)]
pub async fn cancel_device_session(
    ip: ClientIp,
    state: web::Data<AppState>,
    body: JsonObject<CancelDeviceRequest>,
) -> Result<HttpResponse, AppError> {
    let code = parse_device_code(&body.device_code)?;
    let cancelled = device::cancel_session(&state, code, ip.to_string()).await?;
    if cancelled {
        Ok(HttpResponse::Ok().json(StatusMessage {
            status: "ok".to_owned(),
            message: "The login request was cancelled.".to_owned(),
            confirmation_code: None,
        }))
    } else {
        Ok(HttpResponse::Gone().json(ErrorBody {
            error: "expired_token".to_owned(),
            message: "This login request has already ended; there is nothing to cancel.".to_owned(),
            status: Some("expired".to_owned()),
        }))
    }
}

/// Collect a token with the confirmation code (paste mode)
///
/// Paste mode's pickup: the confirmation code shown in the browser after approval releases the token, once.
#[utoipa::path(
    post,
    path = "/api/v1/cli/auth/device/exchange",
    operation_id = "exchangeDeviceSession",
    request_body = ExchangeDeviceRequest,
    responses(
        (status = 200, description = "`approved`, with the token.", body = PollDeviceResponse),
        (status = 400, description = "Wrong confirmation code (attempts left in the message), or a malformed body.", body = ErrorBody),
        (status = 403, description = "`denied`: the person refused the request.", body = ErrorBody),
        (status = 409, description = "Not approved yet.", body = ErrorBody),
        (status = 410, description = "Unknown, expired, used, or out of attempts.", body = ErrorBody),
        (status = 429, response = RateLimited),
    )
)]
#[tracing::instrument(name = "exchange_device_session", skip_all)]
pub async fn exchange_device_session(
    ip: ClientIp,
    proof: DpopProof,
    state: web::Data<AppState>,
    body: JsonObject<ExchangeDeviceRequest>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let code = parse_device_code(&body.device_code)?;
    let confirmation = ConfirmationCode::parse(&body.confirmation_code).ok_or_else(|| {
        AppError::bad_request(
            "invalid_confirmation_code",
            "confirmationCode must be the 6-digit code shown in the browser, like 123-456.",
        )
    })?;
    let outcome =
        device::exchange_code(&state, code, confirmation, ip.to_string(), proof.0).await?;
    let device_error = |status: StatusCode, error: &str, state: &str, message: String| {
        no_store(
            status,
            ErrorBody {
                error: error.to_owned(),
                message,
                status: Some(state.to_owned()),
            },
        )
    };
    Ok(match outcome {
        ExchangeOutcome::Delivered(delivered) => poll_response(delivered),
        ExchangeOutcome::Pending => device_error(
            StatusCode::CONFLICT,
            "authorization_pending",
            "pending",
            "The request has not been approved yet. Approve it in the browser first.".to_owned(),
        ),
        ExchangeOutcome::WrongCode { attempts_left } => device_error(
            StatusCode::BAD_REQUEST,
            "invalid_confirmation_code",
            "approved",
            format!(
                "That confirmation code is wrong. {attempts_left} attempt{} left.",
                if attempts_left == 1 { "" } else { "s" }
            ),
        ),
        ExchangeOutcome::Denied => poll_response(PollOutcome::Denied),
        ExchangeOutcome::Expired => poll_response(PollOutcome::Expired),
    })
}

/// Rotate a refresh token
///
/// Returns a new access token and a new refresh token. A spent refresh token presented again after the grace window revokes its whole family.
// The same service code as the OAuth `refresh_token` grant.
#[utoipa::path(
    post,
    path = "/api/v1/cli/auth/refresh",
    operation_id = "refreshAccessToken",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "The new pair.", body = RefreshResponse),
        (status = 400, description = "`invalid_grant`: unknown, expired, revoked or reused refresh token; or a malformed body.", body = ErrorBody),
        (status = 429, response = RateLimited),
    )
)]
#[tracing::instrument(name = "refresh_tokens", skip_all)]
pub async fn refresh_access_token(
    ip: ClientIp,
    proof: DpopProof,
    state: web::Data<AppState>,
    body: JsonObject<RefreshRequest>,
) -> Result<HttpResponse, AppError> {
    let presented = body.into_inner().refresh_token;
    let result =
        grants::refresh_grant(&state, None, presented, None, proof.0, ip.to_string()).await?;
    match result {
        Ok(issued) => Ok(no_store(
            StatusCode::OK,
            RefreshResponse {
                token_type: Some(issued.token_type().to_owned()),
                token: issued.access.expose().to_owned(),
                token_id: issued.access_id,
                scopes: issued.scopes,
                expires_at: issued.expires_at,
                refresh_token: issued
                    .refresh
                    .map(|r| r.expose().to_owned())
                    .unwrap_or_default(),
            },
        )),
        Err(e) => Err(AppError::bad_request(e.code, e.message)),
    }
}
