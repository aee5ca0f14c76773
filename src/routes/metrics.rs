//! `GET /metrics` on `METRICS_BIND_ADDR`: this instance in the Prometheus
//! text format.

use std::future::Future;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::{web, HttpResponse};

use crate::metrics::{render_security_events, Text};
use crate::service::AppState;

/// The metrics listener's one route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics));
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(render(&state))
}

/// Every metric of this instance.
pub fn render(state: &AppState) -> String {
    let mut out = Text::default();
    state.http.render(&mut out);
    let realtime = &state.realtime;
    out.single(
        "envshield_polls_held",
        "gauge",
        "Long-polls waiting for a change right now.",
        realtime.waiting() as f64,
    );
    out.single(
        "envshield_poll_wakeups_total",
        "counter",
        "Held long-polls woken (a change, the listener's return, a drain).",
        realtime.wake_ups() as f64,
    );
    out.single(
        "envshield_listener_up",
        "gauge",
        "1 while the LISTEN connection hears notifications, else 0 (caches off, no long-polls).",
        f64::from(u8::from(realtime.is_listening())),
    );
    out.help(
        "envshield_cache_lookups_total",
        "counter",
        "Cache lookups by cache and result (hit: answered from memory).",
    );
    for (cache, lookups) in [
        ("pending", &realtime.pending.lookups),
        ("token", &realtime.tokens.lookups),
    ] {
        let (hits, misses) = lookups.totals();
        out.sample(
            "envshield_cache_lookups_total",
            &[("cache", cache), ("result", "hit")],
            hits as f64,
        );
        out.sample(
            "envshield_cache_lookups_total",
            &[("cache", cache), ("result", "miss")],
            misses as f64,
        );
    }
    let pool = state.pool.state();
    out.help(
        "envshield_db_pool_connections",
        "gauge",
        "Pooled PostgreSQL connections: open, in use, and the maximum.",
    );
    for (which, n) in [
        ("open", pool.open),
        ("in_use", pool.in_use),
        ("max", pool.max),
    ] {
        out.sample(
            "envshield_db_pool_connections",
            &[("state", which)],
            f64::from(n),
        );
    }
    out.single(
        "envshield_db_pool_waiting",
        "gauge",
        "Requests queued for a pooled connection right now.",
        pool.waiting as f64,
    );
    out.help(
        "envshield_rate_limited_total",
        "counter",
        "Requests refused by a rate limit, by limit.",
    );
    for (limit, n) in state.limiters.refusals() {
        out.sample(
            "envshield_rate_limited_total",
            &[("limit", limit.as_str())],
            n as f64,
        );
    }
    render_security_events(&mut out);
    out.finish()
}

/// Records every answered request of the public listener by route pattern
/// (never the raw path: ids and codes stay out of the labels).
pub fn observe<S: Chain<B>, B>(
    req: ServiceRequest,
    srv: &S,
) -> impl Future<Output = Result<ServiceResponse<B>, actix_web::Error>> + 'static {
    let started = std::time::Instant::now();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let method = req.method().clone();
    around(req, srv, move |res| {
        if let Some(state) = state {
            let route = res
                .request()
                .match_pattern()
                .unwrap_or_else(|| "unmatched".to_owned());
            state.http.observe(
                &route,
                method.as_str(),
                res.status().as_u16(),
                started.elapsed().as_secs_f64(),
            );
        }
    })
}

/// The rest of the public listener's chain, as its `wrap_fn` middlewares
/// (`observe`, `nonce::add_nonce`) call it.
pub trait Chain<B>:
    Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error, Future: 'static>
{
}

impl<S, B> Chain<B> for S where
    S: Service<
        ServiceRequest,
        Response = ServiceResponse<B>,
        Error = actix_web::Error,
        Future: 'static,
    >
{
}

/// Runs the rest of the chain on `req`, then `after` on its answer: the
/// body of a `wrap_fn` middleware that reads the request first and touches
/// the response last.
pub fn around<S: Chain<B>, B>(
    req: ServiceRequest,
    srv: &S,
    after: impl FnOnce(&mut ServiceResponse<B>) + 'static,
) -> impl Future<Output = Result<ServiceResponse<B>, actix_web::Error>> + 'static {
    let fut = srv.call(req);
    async move {
        let mut res = fut.await?;
        after(&mut res);
        Ok(res)
    }
}
