//! The device-login endpoints: each takes what it needs, makes one service
//! call, and renders the answer. Limits are in the route table.

use std::ops::Deref;
use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use envshield_api_types::{
    CancelDeviceRequest, CompleteDeviceRequest, Decision, ErrorBody, ExchangeDeviceRequest,
    PollDeviceRequest, PollDeviceResponse, RefreshRequest, RefreshResponse, StartDeviceRequest,
    StartDeviceResponse, StatusMessage,
};

use crate::config::CLI_CLIENT_ID;
use crate::domain::{DeviceCode, Flow, UserCode};
use crate::error::AppError;
use crate::routes::extract::{user_agent, ClientIp, CodeEntry, SameOrigin, SignedInUser};
use crate::service::device::{
    self, policy, CompleteInput, CompleteOutcome, ExchangeOutcome, PollOutcome, StartInput,
};
use crate::service::grants;
use crate::state::AppState;

/// Longest long-poll wait, in seconds.
pub const MAX_WAIT_SECS: u32 = 30;

fn parse_device_code(raw: &str) -> Result<DeviceCode, AppError> {
    DeviceCode::parse(raw.trim()).ok_or_else(|| {
        AppError::bad_request(
            "invalid_device_code",
            "deviceCode is malformed: send the deviceCode exactly as `start` returned it.",
        )
    })
}

/// `POST /api/v1/cli/auth/device/start`.
#[tracing::instrument(name = "start_device_session", skip_all)]
pub async fn start_device_session(
    req: HttpRequest,
    ip: ClientIp,
    state: web::Data<AppState>,
    body: web::Json<StartDeviceRequest>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let input = StartInput {
        token_name: body.token_name,
        scopes: body.scopes,
        client_id: body.client_id.unwrap_or_else(|| CLI_CLIENT_ID.to_owned()),
        confirmation: policy::confirmation(state.config.device_confirmation, body.confirmation),
        flow: Flow::V1,
        client_ip: ip.to_string(),
        user_agent: user_agent(&req),
    };
    let now = Utc::now();
    let started = device::start_session(&state, input, now).await?;
    let base = state.config.app_base();
    let shown = started.user_code.display();
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(StartDeviceResponse {
            device_code: started.device_code.expose().to_owned(),
            verification_url: format!("{base}/cli/login?code={shown}"),
            verification_uri: format!("{base}/cli/device"),
            user_code: shown,
            expires_in: (started.expires_at - now).num_seconds(),
            expires_at: started.expires_at,
            poll_interval: u64::from(started.interval_secs),
            token_name: started.token_name,
            scopes: started.scopes,
            confirmation: started.confirmation,
        }))
}

/// `GET /api/v1/cli/auth/device/poll?deviceCode=...` (`B` is a
/// `web::Query`) and `POST` with `{deviceCode}` (`B` is a `web::Json`).
#[tracing::instrument(name = "poll_device_session", skip_all)]
pub async fn poll_device_session<B>(
    ip: ClientIp,
    state: web::Data<AppState>,
    body: B,
) -> Result<HttpResponse, AppError>
where
    B: Deref<Target = PollDeviceRequest>,
{
    let code = parse_device_code(&body.device_code)?;
    let wait = body.wait;
    drop(body);
    let wait = match wait {
        Some(w) if w > MAX_WAIT_SECS => {
            return Err(AppError::bad_request(
                "invalid_wait",
                format!("wait is at most {MAX_WAIT_SECS} seconds."),
            ))
        }
        w => w.map(|w| Duration::from_secs(u64::from(w))),
    };
    let outcome = device::poll_and_wait(&state, code, ip.to_string(), wait).await?;
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
        } => (
            StatusCode::OK,
            PollDeviceResponse::Approved {
                token: token.expose().to_owned(),
                token_id,
                token_name,
                scopes,
                expires_at,
                refresh_token: refresh.map(|r| r.expose().to_owned()),
            },
        ),
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
        PollOutcome::Expired | PollOutcome::Unknown => (
            StatusCode::GONE,
            PollDeviceResponse::Expired {
                error: "expired_token".to_owned(),
                message: "This login request has expired or was already used. Run `envshield login` again.".to_owned(),
            },
        ),
    };
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

/// `POST /api/v1/cli/auth/device/complete`: a signed-in browser approves or
/// denies, from this site's own origin.
#[tracing::instrument(name = "complete_device_session", skip_all, fields(user_id = %user.0.id))]
pub async fn complete_device_session(
    _origin: SameOrigin,
    CodeEntry(user): CodeEntry<SignedInUser>,
    ip: ClientIp,
    state: web::Data<AppState>,
    body: web::Json<CompleteDeviceRequest>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let user_code = UserCode::parse(&body.user_code).ok_or_else(|| {
        AppError::bad_request(
            "invalid_user_code",
            "userCode must be the 8-letter code shown in the terminal, like BCDF-GHJK.",
        )
    })?;
    let input = CompleteInput {
        user_code,
        approve: body.decision == Decision::Approve,
        scopes: body.scopes,
        expires_in_days: body.expires_in_days,
        approver: user.0,
        client_ip: ip.to_string(),
    };
    let outcome = device::decide(&state, input).await?;
    let (message, confirmation_code) = match outcome {
        CompleteOutcome::Approved {
            already: false,
            confirmation_code: Some(code),
            ..
        } => (
            "CLI login approved. Type this confirmation code in your terminal.",
            Some(code),
        ),
        CompleteOutcome::Approved { already: false, .. } => {
            ("CLI login approved. You can return to your terminal.", None)
        }
        CompleteOutcome::Approved { already: true, .. } => (
            "CLI login already approved. You can return to your terminal.",
            None,
        ),
        CompleteOutcome::Denied => ("CLI login denied. The terminal will be told.", None),
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(StatusMessage {
            status: "ok".to_owned(),
            message: message.to_owned(),
            confirmation_code,
        }))
}

/// `POST /api/v1/cli/auth/device/cancel`: the CLI gave up (Ctrl-C).
#[tracing::instrument(name = "cancel_device_session", skip_all)]
pub async fn cancel_device_session(
    ip: ClientIp,
    state: web::Data<AppState>,
    body: web::Json<CancelDeviceRequest>,
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

/// `POST /api/v1/cli/auth/device/exchange`: paste mode's pickup, with the
/// confirmation code shown in the browser.
#[tracing::instrument(name = "exchange_device_session", skip_all)]
pub async fn exchange_device_session(
    ip: ClientIp,
    state: web::Data<AppState>,
    body: web::Json<ExchangeDeviceRequest>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let code = parse_device_code(&body.device_code)?;
    let outcome =
        device::exchange_code(&state, code, body.confirmation_code, ip.to_string()).await?;
    let device_error = |status: StatusCode, error: &str, state: &str, message: String| {
        HttpResponse::build(status)
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(ErrorBody {
                error: error.to_owned(),
                message,
                status: Some(state.to_owned()),
            })
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

/// `POST /api/v1/cli/auth/refresh`: rotates a refresh token (same code as
/// the OAuth `refresh_token` grant).
#[tracing::instrument(name = "refresh_tokens", skip_all)]
pub async fn refresh_access_token(
    ip: ClientIp,
    state: web::Data<AppState>,
    body: web::Json<RefreshRequest>,
) -> Result<HttpResponse, AppError> {
    let presented = body.into_inner().refresh_token;
    let result = grants::refresh_grant(&state, None, presented, None, ip.to_string()).await?;
    match result {
        Ok(issued) => Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(RefreshResponse {
                token: issued.access.expose().to_owned(),
                token_id: issued.access_id,
                scopes: issued.scopes,
                expires_at: issued.expires_at,
                refresh_token: issued
                    .refresh
                    .map(|r| r.expose().to_owned())
                    .unwrap_or_default(),
            })),
        Err(e) => Err(AppError::bad_request(e.code, e.message)),
    }
}
