//! Rate limits declared in the route table: `.wrap(RateLimit::api(Limit::Start))`
//! on a resource answers 429 before its handler (or any extractor) runs.

use std::future::{ready, Ready};
use std::net::IpAddr;
use std::rc::Rc;

use actix_web::body::EitherBody;
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::Method;
use actix_web::{web, Error, ResponseError};
use futures_util::future::{Either, FutureExt, LocalBoxFuture, Map};

use crate::error::AppError;
use crate::rate_limit::{client_ip, Limit};
use crate::routes::html::PageError;
use crate::service::events::{self, Event, EventKind, Severity};
use crate::service::AppState;

/// How a refused request is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// The API's JSON error.
    Json,
    /// A styled HTML page.
    Page,
}

/// A per-client limit on a resource. A hit answers 429 with `Retry-After`
/// and is written to the audit log at most once a minute per client and
/// limit, naming the path that was hit.
#[derive(Debug, Clone)]
pub struct RateLimit {
    limit: Limit,
    answer: Answer,
    /// Only requests with this method count (a page's form post, say).
    only: Option<Method>,
}

impl RateLimit {
    /// Limits a JSON endpoint.
    pub fn api(limit: Limit) -> Self {
        Self {
            limit,
            answer: Answer::Json,
            only: None,
        }
    }

    /// Limits a page; a hit answers with the styled 429 page.
    pub fn page(limit: Limit) -> Self {
        Self {
            limit,
            answer: Answer::Page,
            only: None,
        }
    }

    /// Counts only form posts; showing the form is free.
    pub fn posts(mut self) -> Self {
        self.only = Some(Method::POST);
        self
    }
}

impl<S, B> Transform<S, ServiceRequest> for RateLimit
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = RateLimited<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RateLimited {
            service: Rc::new(service),
            rule: self.clone(),
        }))
    }
}

/// What an admitted request's response goes through: no allocation, so a
/// held long-poll costs no more than without the limit.
type Passed<B> =
    fn(Result<ServiceResponse<B>, Error>) -> Result<ServiceResponse<EitherBody<B>>, Error>;

/// The service [`RateLimit`] wraps around a resource.
pub struct RateLimited<S> {
    service: Rc<S>,
    rule: RateLimit,
}

impl<S, B> Service<ServiceRequest> for RateLimited<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future =
        Either<Map<S::Future, Passed<B>>, LocalBoxFuture<'static, Result<Self::Response, Error>>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
            let err = AppError::internal("application state is not registered");
            return Either::Right(Box::pin(ready(Err(err.into()))));
        };
        let limit = self.rule.limit;
        let ip = client_ip(req.request(), &state.config.trusted_proxies);
        let counted = self.rule.only.as_ref().is_none_or(|m| m == req.method());
        let answer = self.rule.answer;
        if counted && limit.is_shared() {
            // Kept in PostgreSQL for every instance: checked before the
            // handler, which then runs as usual.
            let service = self.service.clone();
            return Either::Right(Box::pin(async move {
                match crate::service::limits::check_client(&state, limit, ip).await {
                    Ok(()) => service
                        .call(req)
                        .await
                        .map(ServiceResponse::map_into_left_body),
                    Err(AppError::RateLimited { retry_after_secs }) => {
                        Ok(refuse(req, state, limit, ip, answer, retry_after_secs).await)
                    }
                    Err(e) => Ok(req.into_response(respond(answer, e)).map_into_right_body()),
                }
            }));
        }
        let checked = if counted {
            state.limiters.check(limit, ip)
        } else {
            Ok(())
        };
        let Err(retry_after_secs) = checked else {
            let passed: Passed<B> = |r| r.map(ServiceResponse::map_into_left_body);
            return Either::Left(self.service.call(req).map(passed));
        };
        Either::Right(Box::pin(async move {
            Ok(refuse(req, state, limit, ip, answer, retry_after_secs).await)
        }))
    }
}

/// The answer to a refused request, as JSON or a page.
fn respond(answer: Answer, err: AppError) -> actix_web::HttpResponse {
    match answer {
        Answer::Json => err.error_response(),
        Answer::Page => PageError(err).error_response(),
    }
}

/// 429 with `Retry-After`. Refused requests are rare and cheap to answer,
/// so the audit write (at most once a minute per client and limit) is
/// awaited: the event is stored before the client hears 429.
async fn refuse<B>(
    req: ServiceRequest,
    state: web::Data<AppState>,
    limit: Limit,
    ip: IpAddr,
    answer: Answer,
    retry_after_secs: u64,
) -> ServiceResponse<EitherBody<B>> {
    let path = req.path().to_owned();
    tracing::warn!(endpoint = %path, %ip, "rate limit exceeded");
    if state.limiters.should_audit(limit, ip) {
        record_limited(state, path, ip).await;
    }
    let response = respond(answer, AppError::RateLimited { retry_after_secs });
    req.into_response(response).map_into_right_body()
}

/// Writes the audit event of a rate-limit hit; a failure is only logged.
async fn record_limited(state: web::Data<AppState>, endpoint: String, ip: IpAddr) {
    let ip_text = ip.to_string();
    let recorded = crate::db::run(&state.pool, move |conn| {
        events::record(
            conn,
            Event::new(
                EventKind::CliRateLimitExceeded,
                Severity::Medium,
                Some(&ip_text),
            )
            .details(serde_json::json!({ "endpoint": endpoint })),
        )?;
        Ok(())
    })
    .await;
    if let Err(e) = recorded {
        tracing::warn!(error = ?e, "could not record the rate-limit event");
    }
}
