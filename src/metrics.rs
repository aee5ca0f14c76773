//! Counters and histograms an instance keeps about itself, and the
//! Prometheus text format they are rendered in. Served only on
//! `METRICS_BIND_ADDR`, a listener of its own, never the public one.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Request latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

/// Hits and misses of a cache.
#[derive(Debug, Default)]
pub struct HitsAndMisses {
    hits: AtomicU64,
    misses: AtomicU64,
}

impl HitsAndMisses {
    /// Counts `found` as a hit, else a miss; returns it.
    pub fn count<T>(&self, found: Option<T>) -> Option<T> {
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// (hits, misses) so far.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

#[derive(Default)]
struct RouteStats {
    /// Requests by (method, status).
    answered: BTreeMap<(String, u16), u64>,
    /// Cumulative counts per bucket of [`BUCKETS`].
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Requests by route pattern, method and status, with latency.
#[derive(Default)]
pub struct HttpMetrics {
    routes: Mutex<BTreeMap<String, RouteStats>>,
}

impl HttpMetrics {
    /// Records one answered request.
    pub fn observe(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let Ok(mut routes) = self.routes.lock() else {
            return;
        };
        if !routes.contains_key(route) {
            routes.insert(route.to_owned(), RouteStats::default());
        }
        let Some(stats) = routes.get_mut(route) else {
            return;
        };
        *stats
            .answered
            .entry((method_label(method).to_owned(), status))
            .or_insert(0) += 1;
        for (bucket, bound) in stats.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        stats.count += 1;
        stats.sum += seconds;
    }

    /// Renders `envshield_http_requests_total` and
    /// `envshield_http_request_duration_seconds`.
    pub fn render(&self, out: &mut Text) {
        let Ok(routes) = self.routes.lock() else {
            return;
        };
        out.help(
            "envshield_http_requests_total",
            "counter",
            "Requests answered, by route pattern, method and status.",
        );
        for (route, stats) in routes.iter() {
            for ((method, status), n) in &stats.answered {
                let status = status.to_string();
                out.sample(
                    "envshield_http_requests_total",
                    &[("route", route), ("method", method), ("status", &status)],
                    *n as f64,
                );
            }
        }
        out.help(
            "envshield_http_request_duration_seconds",
            "histogram",
            "Time to answer, by route pattern.",
        );
        for (route, stats) in routes.iter() {
            let name = "envshield_http_request_duration_seconds";
            for (bound, n) in BUCKETS.iter().zip(stats.buckets) {
                let le = bound.to_string();
                out.sample(
                    &format!("{name}_bucket"),
                    &[("route", route), ("le", &le)],
                    n as f64,
                );
            }
            out.sample(
                &format!("{name}_bucket"),
                &[("route", route), ("le", "+Inf")],
                stats.count as f64,
            );
            out.sample(&format!("{name}_sum"), &[("route", route)], stats.sum);
            out.sample(
                &format!("{name}_count"),
                &[("route", route)],
                stats.count as f64,
            );
        }
    }
}

/// A counter family: one count per set of label values, for the whole
/// process (every instance in it writes to the same audit table).
struct Family<const N: usize> {
    name: &'static str,
    help: &'static str,
    labels: [&'static str; N],
    counts: Mutex<BTreeMap<[&'static str; N], u64>>,
}

impl<const N: usize> Family<N> {
    const fn new(name: &'static str, help: &'static str, labels: [&'static str; N]) -> Self {
        Self {
            name,
            help,
            labels,
            counts: Mutex::new(BTreeMap::new()),
        }
    }

    fn add(&self, values: [&'static str; N]) {
        if let Ok(mut counts) = self.counts.lock() {
            *counts.entry(values).or_insert(0) += 1;
        }
    }

    fn render(&self, out: &mut Text) {
        out.help(self.name, "counter", self.help);
        if let Ok(counts) = self.counts.lock() {
            for (values, n) in counts.iter() {
                let labels: Vec<(&str, &str)> = self
                    .labels
                    .iter()
                    .copied()
                    .zip(values.iter().copied())
                    .collect();
                out.sample(self.name, &labels, *n as f64);
            }
        }
    }
}

static SECURITY_EVENTS: Family<1> = Family::new(
    "envshield_security_events_total",
    "Security events recorded, by kind.",
    ["kind"],
);
static SSO_REFUSALS: Family<1> = Family::new(
    "envshield_sso_refused_total",
    "Single sign-ons refused, by reason.",
    ["reason"],
);
static NOTICES: Family<2> = Family::new(
    "envshield_notices_total",
    "Security notice sends by channel and outcome (sent, retried, failed).",
    ["channel", "outcome"],
);

/// Counts a committed security event.
pub fn security_event(kind: &'static str) {
    SECURITY_EVENTS.add([kind]);
}

/// Counts a refused single sign-on by its reason (the `sso_refused`
/// event's `details.reason`).
pub fn sso_refused(reason: &'static str) {
    SSO_REFUSALS.add([reason]);
}

/// Counts a security notice attempt by channel (`mail`, `webhook`) and
/// outcome: `sent`, `retried` (failed, tried again later) or `failed`
/// (given up on after the last attempt).
pub fn notice(channel: &'static str, outcome: &'static str) {
    NOTICES.add([channel, outcome]);
}

/// Renders `envshield_security_events_total`,
/// `envshield_sso_refused_total` and `envshield_notices_total`.
pub fn render_security_events(out: &mut Text) {
    SECURITY_EVENTS.render(out);
    SSO_REFUSALS.render(out);
    NOTICES.render(out);
}

/// The Prometheus text exposition format (version 0.0.4), being written.
#[derive(Default)]
pub struct Text(String);

impl Text {
    /// `# HELP` and `# TYPE` lines of a metric.
    pub fn help(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    /// One sample line.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (label, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.0, "{label}=\"{v}\"");
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// A metric with one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.help(name, kind, help);
        self.sample(name, &[], value);
    }

    /// The finished text.
    pub fn finish(self) -> String {
        self.0
    }
}

/// A request method as a label: the standard ones by name, any other as
/// `other` (a client may send any token as a method, and every label value
/// is a series kept for the life of the process).
fn method_label(method: &str) -> &str {
    match method {
        "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method,
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_render_as_counters_and_a_cumulative_histogram() {
        let http = HttpMetrics::default();
        http.observe("/health", "GET", 200, 0.002);
        http.observe("/health", "GET", 200, 0.2);
        http.observe("/health", "GET", 503, 40.0);
        let mut text = Text::default();
        http.render(&mut text);
        let text = text.finish();
        for line in [
            "envshield_http_requests_total{route=\"/health\",method=\"GET\",status=\"200\"} 2",
            "envshield_http_requests_total{route=\"/health\",method=\"GET\",status=\"503\"} 1",
            "envshield_http_request_duration_seconds_bucket{route=\"/health\",le=\"0.001\"} 0",
            "envshield_http_request_duration_seconds_bucket{route=\"/health\",le=\"0.0025\"} 1",
            "envshield_http_request_duration_seconds_bucket{route=\"/health\",le=\"0.25\"} 2",
            "envshield_http_request_duration_seconds_bucket{route=\"/health\",le=\"30\"} 2",
            "envshield_http_request_duration_seconds_bucket{route=\"/health\",le=\"+Inf\"} 3",
            "envshield_http_request_duration_seconds_count{route=\"/health\"} 3",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }

    #[test]
    fn invented_methods_share_one_label() {
        let http = HttpMetrics::default();
        for method in ["GET", "BREW", "Z1", &"A".repeat(600)] {
            http.observe("unmatched", method, 405, 0.001);
        }
        let mut text = Text::default();
        http.render(&mut text);
        let text = text.finish();
        let totals: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("envshield_http_requests_total{"))
            .collect();
        assert_eq!(
            totals,
            [
                "envshield_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"405\"} 1",
                "envshield_http_requests_total{route=\"unmatched\",method=\"other\",status=\"405\"} 3",
            ],
            "{text}"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let mut text = Text::default();
        text.sample("m", &[("route", "a\"b\\c\nd")], 1.0);
        assert_eq!(text.finish(), "m{route=\"a\\\"b\\\\c\\nd\"} 1\n");
    }

    #[test]
    fn caches_count_hits_and_misses() {
        let c = HitsAndMisses::default();
        assert_eq!(c.count(Some(1)), Some(1));
        assert_eq!(c.count(None::<u8>), None);
        assert_eq!(c.count(None::<u8>), None);
        assert_eq!(c.totals(), (1, 2));
    }
}
