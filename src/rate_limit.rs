//! Per-client-IP rate limits (governor), built from configuration and
//! injected, and how the client IP is determined.

use std::net::IpAddr;
use std::num::NonZeroU32;

use actix_web::HttpRequest;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;

use crate::config::{network_contains, RateLimits};

/// The limited endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// Starting a login: `device/start`, `/oauth/device_authorization`.
    Start,
    /// Polling and refreshing: `device/poll`, `/oauth/token`, `auth/refresh`.
    Poll,
    /// Anything that names a code or a token: `device/complete`, `cancel`,
    /// `exchange`, the approval pages, code entry, `/oauth/revoke`.
    Complete,
    /// Signing in and up.
    Login,
}

impl Limit {
    /// Whether the limit is kept in PostgreSQL and shared by every
    /// instance (`service::limits`): the ones that bound guessing. Starts
    /// and polls are limited per instance, in memory.
    pub fn is_shared(self) -> bool {
        matches!(self, Self::Complete | Self::Login)
    }
}

/// The in-memory limits of this instance (`None` when set to 0), plus a
/// limiter that keeps the audit log from being flooded by one noisy client,
/// and the count of refusals of every limit, shared ones included.
pub struct RateLimiters {
    start: Option<DefaultKeyedRateLimiter<IpAddr>>,
    poll: Option<DefaultKeyedRateLimiter<IpAddr>>,
    start_global: Option<DefaultDirectRateLimiter>,
    audit: DefaultKeyedRateLimiter<(IpAddr, Limit)>,
    ipv6_prefix: u8,
    /// Refusals so far, by [`Refused`].
    refused: [std::sync::atomic::AtomicU64; Refused::ALL.len()],
}

/// Which limit refused a request, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// A per-client limit of [`Limit::Start`].
    Start,
    /// A per-client limit of [`Limit::Poll`].
    Poll,
    /// A per-client limit of [`Limit::Complete`].
    Complete,
    /// A per-client limit of [`Limit::Login`].
    Login,
    /// The cap on starts from everyone together.
    StartGlobal,
    /// Sign-in attempts per account and network.
    LoginAccount,
    /// Code entries per account.
    CodeEntryAccount,
}

impl Refused {
    /// Every one, in the order of the counters.
    pub const ALL: [Refused; 7] = [
        Self::Start,
        Self::Poll,
        Self::Complete,
        Self::Login,
        Self::StartGlobal,
        Self::LoginAccount,
        Self::CodeEntryAccount,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Poll => "poll",
            Self::Complete => "complete",
            Self::Login => "login",
            Self::StartGlobal => "start_global",
            Self::LoginAccount => "login_account",
            Self::CodeEntryAccount => "code_entry_account",
        }
    }

    /// The refusal of a per-client limit.
    pub fn of(limit: Limit) -> Self {
        match limit {
            Limit::Start => Self::Start,
            Limit::Poll => Self::Poll,
            Limit::Complete => Self::Complete,
            Limit::Login => Self::Login,
        }
    }
}

fn per_minute(n: u32) -> Option<DefaultKeyedRateLimiter<IpAddr>> {
    NonZeroU32::new(n).map(|n| RateLimiter::keyed(Quota::per_minute(n)))
}

impl RateLimiters {
    /// Builds the limiters from configuration.
    pub fn new(limits: &RateLimits) -> Self {
        Self {
            start: per_minute(limits.start_per_min),
            poll: per_minute(limits.poll_per_min),
            start_global: NonZeroU32::new(limits.start_global_per_min)
                .map(|n| RateLimiter::direct(Quota::per_minute(n))),
            audit: RateLimiter::keyed(Quota::per_minute(NonZeroU32::MIN)),
            ipv6_prefix: limits.ipv6_prefix.min(128),
            refused: Default::default(),
        }
    }

    /// What a client is counted as: its IPv4 address, or its IPv6 network
    /// (one subscriber holds a whole /64, so per-address buckets would be
    /// unlimited).
    pub fn key(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(_) => ip,
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let bits = u128::from(v6);
                    let mask = u128::MAX
                        .checked_shl(128 - u32::from(self.ipv6_prefix))
                        .unwrap_or(0);
                    IpAddr::V6(std::net::Ipv6Addr::from(bits & mask))
                }
            },
        }
    }

    /// `Ok` if `ip` may call `limit` now, else the seconds to wait. Only
    /// the in-memory limits: a shared limit ([`Limit::is_shared`]) always
    /// passes here and is checked by `service::limits`.
    pub fn check(&self, limit: Limit, ip: IpAddr) -> Result<(), u64> {
        let limiter = match limit {
            Limit::Start => &self.start,
            Limit::Poll => &self.poll,
            Limit::Complete | Limit::Login => &None,
        };
        let seconds = |not_until: governor::NotUntil<_>| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        };
        if let Some(limiter) = limiter {
            limiter
                .check_key(&self.key(ip))
                .map_err(seconds)
                .map_err(|wait| self.refuse(Refused::of(limit), wait))?;
        }
        match (limit, &self.start_global) {
            (Limit::Start, Some(all)) => all
                .check()
                .map_err(seconds)
                .map_err(|wait| self.refuse(Refused::StartGlobal, wait)),
            _ => Ok(()),
        }
    }

    /// Counts a refusal; passes the wait through.
    pub fn refuse(&self, which: Refused, wait: u64) -> u64 {
        if let Some(i) = Refused::ALL.iter().position(|r| *r == which) {
            self.refused[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        wait
    }

    /// Refusals so far, by limit.
    pub fn refusals(&self) -> impl Iterator<Item = (Refused, u64)> + '_ {
        Refused::ALL
            .iter()
            .zip(&self.refused)
            .map(|(r, n)| (*r, n.load(std::sync::atomic::Ordering::Relaxed)))
    }

    /// Whether this rate-limit hit should be written to the audit log (at
    /// most once a minute per client and endpoint).
    pub fn should_audit(&self, limit: Limit, ip: IpAddr) -> bool {
        self.audit.check_key(&(self.key(ip), limit)).is_ok()
    }

    /// Forgets clients whose buckets are full again, bounding memory.
    pub fn retain_recent(&self) {
        for l in [&self.start, &self.poll].into_iter().flatten() {
            l.retain_recent();
        }
        self.audit.retain_recent();
    }
}

/// The client's IP: the direct peer, unless the peer is in a trusted proxy
/// network, in which case the right-most `X-Forwarded-For` entry that is
/// not itself a trusted proxy. Entries may carry a port (`ip:port`,
/// `[v6]:port`). When that entry cannot be read, the peer's address
/// answers: an entry further left was written by whoever sent the request,
/// so it proves nothing. An IPv4-mapped IPv6 address (a dual-stack
/// listener's view of an IPv4 peer) is its IPv4 address throughout.
pub fn client_ip(req: &HttpRequest, trusted_proxies: &[IpNet]) -> IpAddr {
    let peer = req
        .peer_addr()
        .map_or(IpAddr::from([127, 0, 0, 1]), |a| a.ip().to_canonical());
    let trusted = |ip: IpAddr| trusted_proxies.iter().any(|n| network_contains(n, ip));
    if !trusted(peer) {
        return peer;
    }
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for entry in forwarded.iter().rev() {
        match forwarded_address(entry).map(|ip| ip.to_canonical()) {
            Some(ip) if trusted(ip) => continue,
            Some(ip) => return ip,
            None => return peer,
        }
    }
    peer
}

/// One `X-Forwarded-For` entry: `ip`, `ip:port`, `[v6]` or `[v6]:port`.
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = entry.parse::<std::net::SocketAddr>() {
        return Some(addr.ip());
    }
    entry
        .strip_prefix('[')
        .and_then(|e| e.strip_suffix(']'))
        .and_then(|v6| v6.parse::<std::net::Ipv6Addr>().ok())
        .map(IpAddr::V6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn limits_per_ip_and_off_when_zero() {
        let l = RateLimiters::new(&RateLimits {
            start_per_min: 2,
            start_global_per_min: 0,
            poll_per_min: 0,
            complete_per_min: 1,
            login_per_min: 1,
            login_per_account_per_hour: 2,
            code_entry_per_account_per_hour: 0,
            ipv6_prefix: 64,
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(l.check(Limit::Start, a).is_ok());
        assert!(l.check(Limit::Start, a).is_ok());
        let wait = l.check(Limit::Start, a).unwrap_err();
        assert!((1..=60).contains(&wait), "{wait}");
        assert!(l.check(Limit::Start, b).is_ok());
        for _ in 0..1000 {
            assert!(l.check(Limit::Poll, a).is_ok());
        }
        assert!(l.should_audit(Limit::Start, a));
        assert!(!l.should_audit(Limit::Start, a));
    }

    #[test]
    fn finding_3_an_ipv6_network_shares_one_bucket() {
        let l = RateLimiters::new(&RateLimits {
            start_per_min: 1,
            start_global_per_min: 0,
            poll_per_min: 0,
            complete_per_min: 0,
            login_per_min: 0,
            login_per_account_per_hour: 0,
            code_entry_per_account_per_hour: 0,
            ipv6_prefix: 64,
        });
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(l.check(Limit::Start, ip("2001:db8:1:2::1")).is_ok());
        assert!(
            l.check(Limit::Start, ip("2001:db8:1:2:ffff::9")).is_err(),
            "another address of the same /64"
        );
        assert!(
            l.check(Limit::Start, ip("2001:db8:1:3::1")).is_ok(),
            "another /64"
        );
        assert!(l.check(Limit::Start, ip("192.0.2.1")).is_ok());
        assert!(
            l.check(Limit::Start, ip("::ffff:192.0.2.1")).is_err(),
            "an IPv4-mapped address is its IPv4 address"
        );
    }

    /// A request from `peer` (`address:port`) with `X-Forwarded-For: forwarded`.
    fn forwarded(peer: &str, forwarded: &str) -> actix_web::HttpRequest {
        TestRequest::default()
            .peer_addr(peer.parse().unwrap())
            .insert_header(("x-forwarded-for", forwarded))
            .to_http_request()
    }

    #[test]
    fn finding_12_forwarded_entries_with_a_port_are_read_and_a_bad_one_is_not_skipped() {
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let via = |entries: &str| client_ip(&forwarded("10.0.0.5:1234", entries), &[proxy.into()]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(via("198.51.100.9, 203.0.113.7:4711"), ip("203.0.113.7"));
        assert_eq!(via("198.51.100.9, [2001:db8::7]:443"), ip("2001:db8::7"));
        assert_eq!(via("[2001:db8::8]"), ip("2001:db8::8"));
        // The right-most untrusted entry cannot be read: the proxy's own
        // address answers, never an entry a client could have written.
        assert_eq!(via("198.51.100.9, not-an-address"), proxy);
        assert_eq!(via("198.51.100.9, 203.0.113.7:port"), proxy);
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let req = forwarded("10.0.0.5:1234", "198.51.100.9, 203.0.113.7");
        assert_eq!(
            client_ip(&req, &[proxy.into()]),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(&req, &[]), proxy);
        let direct = forwarded("198.51.100.1:1", "1.2.3.4");
        assert_eq!(
            client_ip(&direct, &[proxy.into()]),
            "198.51.100.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn proxies_are_trusted_by_network_and_mapped_addresses_count_as_ipv4() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let pods: IpNet = "10.244.0.0/16".parse().unwrap();
        // Any proxy pod of the network, and a chain of them.
        let req = forwarded("10.244.3.7:1234", "203.0.113.7, 10.244.9.1");
        assert_eq!(client_ip(&req, &[pods]), ip("203.0.113.7"));
        // A dual-stack listener sees the IPv4 proxy as ::ffff:10.244.3.7.
        let mapped = forwarded("[::ffff:10.244.3.7]:1234", "::ffff:203.0.113.8");
        assert_eq!(client_ip(&mapped, &[pods]), ip("203.0.113.8"));
        // Outside the network, the peer answers, as its IPv4 address.
        let outside = forwarded("[::ffff:198.51.100.1]:1", "1.2.3.4");
        assert_eq!(client_ip(&outside, &[pods]), ip("198.51.100.1"));
    }
}
