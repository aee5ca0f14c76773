//! Logging: a tracing subscriber, and request spans that never record a
//! query string (poll takes the device code in one).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{Error, HttpMessage};
use tracing::{Instrument, Span};
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpanBuilder};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber: JSON lines when `LOG_FORMAT=json`,
/// human-readable otherwise; level from `RUST_LOG` (default `info`).
pub fn init_subscriber() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v == "json");
    // One line per finished request span, with its duration.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(std::io::stderr);
    // A second init (tests) is harmless; ignore it.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Request spans with method, path (no query), client and request id.
pub struct RedactedRootSpan;

impl RootSpanBuilder for RedactedRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let request_id = request
            .extensions()
            .get::<tracing_actix_web::RequestId>()
            .map(ToString::to_string)
            .unwrap_or_default();
        let path = request.path();
        tracing::info_span!(
            "http_request",
            http.method = %request.method(),
            http.route = %request.match_pattern().unwrap_or_else(|| path.to_owned()),
            http.path = %path,
            http.status_code = tracing::field::Empty,
            request_id = %request_id,
            otel.status_code = tracing::field::Empty,
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

/// Runs blocking work (Diesel, bcrypt) on the blocking thread pool, inside
/// the caller's span, so its logs keep the request id. A panic in `f` is a
/// bug: it answers 500 and is logged as one, never 503.
pub async fn blocking<F, T>(f: F) -> Result<T, crate::error::AppError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let span = Span::current();
    actix_web::web::block(move || span.in_scope(f))
        .instrument(Span::current())
        .await
        .map_err(crate::error::AppError::from)
}

/// For tests: logs only when `TEST_LOG` is set, so runs stay quiet.
pub fn init_test_subscriber() {
    if std::env::var_os("TEST_LOG").is_some() {
        init_subscriber();
    }
}
