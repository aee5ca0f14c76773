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
    use tracing_subscriber::prelude::*;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v == "json");
    // One line per finished request span, with its duration.
    let lines = tracing_subscriber::fmt::layer()
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(std::io::stderr);
    let lines = if json {
        lines.json().boxed()
    } else {
        lines.boxed()
    };
    // A second init (tests) is harmless; ignore it.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(lines.with_filter(ClientParseErrors))
        .try_init();
}

/// Drops the ERROR line actix-http writes for every malformed request it
/// answers 400 (`stream error: request parse error: …`): the client's
/// mistake, not the server's, and a flood of them would bury real errors.
/// `RUST_LOG=actix_http=trace` still shows each parse error.
pub struct ClientParseErrors;

impl<S> tracing_subscriber::layer::Filter<S> for ClientParseErrors {
    fn enabled(
        &self,
        _: &tracing::Metadata<'_>,
        _: &tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        true
    }

    fn event_enabled(
        &self,
        event: &tracing::Event<'_>,
        _: &tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        if event.metadata().target() != "actix_http::h1::dispatcher" {
            return true;
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        !message.0.starts_with("stream error: request parse error")
    }
}

/// An event's `message` field, as text.
struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::prelude::*;

    use super::ClientParseErrors;

    #[test]
    fn malformed_requests_are_not_logged_as_server_errors() {
        let out = Captured::default();
        let lines = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(out.writer())
            .with_filter(ClientParseErrors);
        let subscriber = tracing_subscriber::registry().with(lines);
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(
                target: "actix_http::h1::dispatcher",
                "stream error: request parse error: invalid Header provided"
            );
            tracing::error!(target: "actix_http::h1::dispatcher", "write zero; closing");
            tracing::error!("a real failure");
        });
        let text = out.text();
        assert!(!text.contains("request parse error"), "{text}");
        assert!(text.contains("write zero; closing"), "{text}");
        assert!(text.contains("a real failure"), "{text}");
    }

    #[test]
    fn request_spans_never_record_the_query_of_a_sign_in_callback() {
        use tracing_actix_web::RootSpanBuilder;
        let out = Captured::default();
        let lines = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .with_writer(out.writer());
        let subscriber = tracing_subscriber::registry().with(lines);
        tracing::subscriber::with_default(subscriber, || {
            let req = actix_web::test::TestRequest::with_uri(
                "/auth/oidc/corp/callback?code=SECRET-CODE&state=SECRET-STATE&iss=x",
            )
            .to_srv_request();
            let span = super::RedactedRootSpan::on_request_start(&req);
            drop(span.enter());
            drop(span);
        });
        let text = out.text();
        assert!(text.contains("/auth/oidc/corp/callback"), "{text}");
        assert!(!text.contains("SECRET"), "{text}");
    }

    /// Log lines written by a test's subscriber.
    #[derive(Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Captured {
        fn writer(&self) -> impl Fn() -> Sink {
            let out = self.0.clone();
            move || Sink(out.clone())
        }

        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
