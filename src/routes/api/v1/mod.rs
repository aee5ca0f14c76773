//! `/api/v1/cli/...`: the CLI's JSON API.

pub mod device;
pub mod tokens;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderMap;
use actix_web::middleware::{from_fn, Next};
use actix_web::web;

use crate::rate_limit::Limit;
use crate::routes::limit::RateLimit;

/// Routes under `/api/v1/cli`, with their rate limits.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let limited = |path: &str, limit: Limit| web::resource(path).wrap(RateLimit::api(limit));
    cfg.service(
        limited("/auth/device/start", Limit::Start)
            .route(web::post().to(device::start_device_session)),
    )
    .service(
        limited("/auth/device/poll", Limit::Poll)
            .wrap(from_fn(compact_headers))
            .route(web::get().to(device::poll_by_query))
            .route(web::post().to(device::poll_by_body)),
    )
    .service(
        limited("/auth/device/complete", Limit::Complete)
            .route(web::post().to(device::complete_device_session)),
    )
    .service(
        limited("/auth/device/exchange", Limit::Complete)
            .route(web::post().to(device::exchange_device_session)),
    )
    .service(
        limited("/auth/refresh", Limit::Poll).route(web::post().to(device::refresh_access_token)),
    )
    .service(
        limited("/auth/device/cancel", Limit::Complete)
            .route(web::post().to(device::cancel_device_session)),
    )
    .service(web::resource("/auth/logout").route(web::post().to(tokens::logout_api_token)))
    .service(web::resource("/whoami").route(web::get().to(tokens::whoami)))
    .service(web::resource("/tokens").route(web::get().to(tokens::list_api_tokens)))
    .service(web::resource("/tokens/revoke").route(web::post().to(tokens::revoke_api_token)))
    .default_service(web::to(api_not_found));
}

/// Re-packs the request's header map to the headers it holds before a poll
/// runs. actix-http sizes every request's map for 16 headers (about 7 KB);
/// a held poll keeps its request for up to 30 s, and 10,000 may be held at
/// once, so the map is rebuilt at its real size (a CLI sends 3 to 6). Every
/// name and value is kept, in order.
///
/// `headers_mut` needs the only handle on the request; here, as in the
/// routing that ran just before (`match_info_mut`), actix-web guarantees it.
async fn compact_headers(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let headers = req.headers_mut();
    let received = std::mem::take(headers);
    let mut compact = HeaderMap::with_capacity(received.len_keys());
    for (name, value) in received {
        compact.append(name, value);
    }
    *headers = compact;
    next.call(req).await
}

async fn api_not_found() -> Result<actix_web::HttpResponse, crate::error::AppError> {
    Err(crate::error::AppError::NotFound(
        "This API route (check the method and path in docs/API.md)".to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{test, App, HttpRequest, HttpResponse};

    /// Every header as `name: value` lines (a name's values in order), and
    /// the map's capacity.
    async fn echo(req: HttpRequest) -> HttpResponse {
        let mut lines: Vec<String> = req
            .headers()
            .iter()
            .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap_or("?")))
            .collect();
        lines.push(format!("capacity {}", req.headers().capacity()));
        HttpResponse::Ok().body(lines.join("\n"))
    }

    #[actix_web::test]
    async fn compacted_headers_keep_every_value_and_shrink() {
        let app = test::init_service(
            App::new().service(
                web::resource("/poll")
                    .wrap(from_fn(compact_headers))
                    .to(echo),
            ),
        )
        .await;

        let few = test::TestRequest::get()
            .uri("/poll")
            .insert_header(("content-type", "application/json"))
            .insert_header(("user-agent", "envshield/1"))
            .to_request();
        let body = test::call_and_read_body(&app, few).await;
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("content-type: application/json"), "{text}");
        assert!(text.contains("user-agent: envshield/1"), "{text}");
        let capacity: usize = text
            .rsplit("capacity ")
            .next()
            .and_then(|c| c.parse().ok())
            .unwrap_or(usize::MAX);
        assert!(capacity < 16, "the map keeps its 16-header size: {text}");

        // More headers than the default size, with repeated names.
        let mut many = test::TestRequest::get().uri("/poll");
        for i in 0..20 {
            many = many.append_header((format!("x-h{i}"), format!("v{i}")));
        }
        many = many
            .append_header(("x-forwarded-for", "203.0.113.7"))
            .append_header(("x-forwarded-for", "10.0.0.1"));
        let body = test::call_and_read_body(&app, many.to_request()).await;
        let text = String::from_utf8_lossy(&body);
        for i in 0..20 {
            assert!(text.contains(&format!("x-h{i}: v{i}\n")), "x-h{i}: {text}");
        }
        let forwarded: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("x-forwarded-for"))
            .collect();
        assert_eq!(
            forwarded,
            ["x-forwarded-for: 203.0.113.7", "x-forwarded-for: 10.0.0.1"],
            "{text}"
        );
    }
}
