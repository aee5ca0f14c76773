//! The one error type of the request paths, and how each case is answered.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use envshield_api_types::ErrorBody;

/// Seconds a client is told to wait when the database is unavailable.
const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 5;

/// Every failure a handler can answer with. The client sees `public_message`
/// only; `Debug` (logged) carries the cause chain.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 400: the request is malformed or names something invalid.
    #[error("bad request ({code}): {message}")]
    BadRequest {
        /// Stable code.
        code: &'static str,
        /// What to fix.
        message: String,
    },
    /// 401: no usable credential.
    #[error("unauthorized ({code})")]
    Unauthorized {
        /// Stable code.
        code: &'static str,
        /// What to do.
        message: String,
        /// `WWW-Authenticate` value for Bearer endpoints.
        challenge: Option<String>,
    },
    /// 403: authenticated but not allowed.
    #[error("forbidden ({code})")]
    Forbidden {
        /// Stable code.
        code: &'static str,
        /// Why, and what to do.
        message: String,
        /// `WWW-Authenticate` value (insufficient scope).
        challenge: Option<String>,
    },
    /// A page needs a signed-in account: pages answer with a 303 to the
    /// sign-in form that comes back to `back_to`; JSON calls with a 401.
    #[error("sign-in required")]
    SignInRequired {
        /// The path (and query) on this site to come back to.
        back_to: String,
    },
    /// 404: nothing there.
    #[error("not found: {0}")]
    NotFound(String),
    /// 409: the request conflicts with the current state.
    #[error("conflict ({code}): {message}")]
    Conflict {
        /// Stable code.
        code: &'static str,
        /// What to do about it.
        message: String,
    },
    /// 410: the thing existed once (or may have) and is gone for good.
    #[error("gone ({code})")]
    Gone {
        /// Stable code.
        code: &'static str,
        /// What to do now.
        message: String,
    },
    /// 405: the address exists, the method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 413: body over the cap.
    #[error("payload too large")]
    PayloadTooLarge {
        /// Largest accepted body in bytes.
        limit: usize,
    },
    /// 415: body not in the expected format.
    #[error("unsupported media type")]
    UnsupportedMediaType {
        /// What the endpoint accepts.
        expected: &'static str,
    },
    /// 429: a rate limit was hit.
    #[error("rate limited")]
    RateLimited {
        /// Seconds until a request will be accepted again.
        retry_after_secs: u64,
    },
    /// 502: an upstream sign-in provider is unreachable or answered nonsense.
    /// The message (public) names the provider and what to do; the cause
    /// is logged by the caller.
    #[error("upstream provider failed: {0}")]
    Upstream(String),
    /// 503: the database (or another dependency) is unreachable or timed out.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// 500: a bug or an unexpected failure; details go to the log only.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    /// A 400 with a code and a message.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// A 409 with a code and a message.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }

    /// A 403 without a challenge.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::Forbidden {
            code,
            message: message.into(),
            challenge: None,
        }
    }

    /// A 500 from anything displayable.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(anyhow::anyhow!("{cause}"))
    }

    /// The answer for a form body that could not be read (shared by the
    /// JSON API and the pages, which render it differently).
    pub fn from_form_error(err: &actix_web::error::UrlencodedError, limit: usize) -> Self {
        use actix_web::error::UrlencodedError;
        match err {
            UrlencodedError::ContentType => Self::UnsupportedMediaType {
                expected: "a form (application/x-www-form-urlencoded)",
            },
            UrlencodedError::Overflow { .. } => Self::PayloadTooLarge { limit },
            _ => Self::bad_request(
                "invalid_form",
                "The form could not be read. Reload the page and try again.",
            ),
        }
    }

    /// The stable error code clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. }
            | Self::Unauthorized { code, .. }
            | Self::Forbidden { code, .. }
            | Self::Conflict { code, .. }
            | Self::Gone { code, .. } => code,
            Self::SignInRequired { .. } => "not_signed_in",
            Self::NotFound(_) => "not_found",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::UnsupportedMediaType { .. } => "unsupported_media_type",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable(_) => "service_unavailable",
            Self::Upstream(_) => "provider_unavailable",
            Self::Internal(_) => "internal_error",
        }
    }

    /// The sentence shown to the person; never internal details.
    pub fn public_message(&self) -> String {
        match self {
            Self::BadRequest { message, .. }
            | Self::Unauthorized { message, .. }
            | Self::Forbidden { message, .. }
            | Self::Conflict { message, .. }
            | Self::Gone { message, .. } => message.clone(),
            Self::Upstream(message) => message.clone(),
            Self::SignInRequired { .. } => "Sign in at /login first.".to_owned(),
            Self::NotFound(what) => format!("{what} was not found."),
            Self::PayloadTooLarge { limit } => {
                format!("The request body is larger than {limit} bytes.")
            }
            Self::UnsupportedMediaType { expected } => {
                format!("Send the body as {expected} with a matching Content-Type header.")
            }
            Self::RateLimited { retry_after_secs } => format!(
                "Too many requests. Try again in {retry_after_secs} second{}.",
                if *retry_after_secs == 1 { "" } else { "s" }
            ),
            Self::Unavailable(_) => {
                "The service is temporarily unavailable. Try again in a few seconds.".to_owned()
            }
            Self::MethodNotAllowed => {
                "This address does not take that method. See the API reference for the ones it takes."
                    .to_owned()
            }
            Self::Internal(_) => {
                "Something went wrong on our side. It has been logged; try again.".to_owned()
            }
        }
    }

    /// The JSON body for this error.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.code().to_owned(),
            message: self.public_message(),
            status: None,
        }
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized { .. } | Self::SignInRequired { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Gone { .. } => StatusCode::GONE,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Upstream(_) => StatusCode::BAD_GATEWAY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(error = ?self, "request failed");
        }
        let mut response = HttpResponse::build(status);
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        match self {
            Self::Unauthorized {
                challenge: Some(c), ..
            }
            | Self::Forbidden {
                challenge: Some(c), ..
            } => {
                if let Ok(value) = HeaderValue::from_str(c) {
                    response.insert_header((header::WWW_AUTHENTICATE, value));
                }
            }
            Self::RateLimited { retry_after_secs } => {
                response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            Self::Unavailable(_) | Self::Upstream(_) => {
                response.insert_header((
                    header::RETRY_AFTER,
                    UNAVAILABLE_RETRY_AFTER_SECS.to_string(),
                ));
            }
            _ => {}
        }
        response.json(self.body())
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(err: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match err {
            Error::NotFound => Self::NotFound("The requested record".to_owned()),
            // The server went away mid-query, or the connection was already
            // dead when the query was sent ("no connection to the server").
            Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                info,
            ) => Self::Unavailable(info.message().to_owned()),
            Error::DatabaseError(DatabaseErrorKind::Unknown, ref info)
                if is_connection_failure(info.message()) =>
            {
                Self::Unavailable(info.message().to_owned())
            }
            other => Self::Internal(anyhow::Error::new(other)),
        }
    }
}

/// libpq reports a dropped server as an "unknown" error; recognise it so a
/// database outage answers 503 rather than 500.
fn is_connection_failure(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "server closed the connection",
        "terminating connection",
        "connection to server",
        "no connection to the server",
        "could not connect",
        "the database system is shutting down",
        "the database system is starting up",
        "does not allow connections",
        "ssl connection has been closed",
    ]
    .iter()
    .any(|needle| m.contains(needle))
}

impl From<diesel::r2d2::PoolError> for AppError {
    fn from(err: diesel::r2d2::PoolError) -> Self {
        Self::Unavailable(err.to_string())
    }
}

/// `web::block` fails only when the closure panicked (or the runtime is
/// shutting down): a bug, not an outage.
impl From<actix_web::error::BlockingError> for AppError {
    fn from(err: actix_web::error::BlockingError) -> Self {
        Self::Internal(anyhow::anyhow!(
            "blocking work panicked or was cancelled (a bug): {err}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let err = AppError::internal("relation \"users\" does not exist");
        assert!(!err.public_message().contains("users"));
        assert_eq!(err.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[actix_web::test]
    async fn a_panicking_blocking_closure_is_a_500_not_an_outage() {
        let err = actix_web::web::block(|| -> u8 { panic!("a bug in a database closure") })
            .await
            .unwrap_err();
        let err = AppError::from(err);
        assert_eq!(err.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(err.code(), "internal_error");
    }

    #[test]
    fn connection_failures_map_to_503() {
        assert!(is_connection_failure(
            "server closed the connection unexpectedly"
        ));
        assert!(!is_connection_failure("duplicate key value"));
        let err = AppError::Unavailable("pool timed out".into());
        assert_eq!(err.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(!err.public_message().contains("pool"));
    }
}
