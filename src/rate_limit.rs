//! Per-client-IP rate limits (governor), built from configuration and
//! injected, and how the client IP is determined.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use actix_web::HttpRequest;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::RateLimits;

/// An account's sign-in attempts from all networks together may reach this
/// many times the per-network limit before they are slowed.
const ACCOUNT_CEILING_NETWORKS: u32 = 5;
/// The longest an attempt over the account's ceiling is held.
const MAX_SIGN_IN_SLOWDOWN: Duration = Duration::from_secs(10);

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

/// One keyed limiter per endpoint (`None` when set to 0), plus a limiter
/// that keeps the audit log from being flooded by one noisy client.
pub struct RateLimiters {
    start: Option<DefaultKeyedRateLimiter<IpAddr>>,
    poll: Option<DefaultKeyedRateLimiter<IpAddr>>,
    complete: Option<DefaultKeyedRateLimiter<IpAddr>>,
    login: Option<DefaultKeyedRateLimiter<IpAddr>>,
    login_account: Option<DefaultKeyedRateLimiter<(String, IpAddr)>>,
    login_account_all: Option<DefaultKeyedRateLimiter<String>>,
    start_global: Option<DefaultDirectRateLimiter>,
    code_entry_account: Option<DefaultKeyedRateLimiter<uuid::Uuid>>,
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

    fn of(limit: Limit) -> Self {
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
            complete: per_minute(limits.complete_per_min),
            login: per_minute(limits.login_per_min),
            login_account: NonZeroU32::new(limits.login_per_account_per_hour)
                .map(|n| RateLimiter::keyed(Quota::per_hour(n))),
            login_account_all: NonZeroU32::new(
                limits
                    .login_per_account_per_hour
                    .saturating_mul(ACCOUNT_CEILING_NETWORKS),
            )
            .map(|n| RateLimiter::keyed(Quota::per_hour(n))),
            start_global: NonZeroU32::new(limits.start_global_per_min)
                .map(|n| RateLimiter::direct(Quota::per_minute(n))),
            code_entry_account: NonZeroU32::new(limits.code_entry_per_account_per_hour)
                .map(|n| RateLimiter::keyed(Quota::per_hour(n))),
            audit: RateLimiter::keyed(Quota::per_minute(NonZeroU32::MIN)),
            ipv6_prefix: limits.ipv6_prefix.min(128),
            refused: Default::default(),
        }
    }

    /// What a client is counted as: its IPv4 address, or its IPv6 network
    /// (one subscriber holds a whole /64, so per-address buckets would be
    /// unlimited).
    fn key(&self, ip: IpAddr) -> IpAddr {
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

    /// `Ok` if `ip` may call `limit` now, else the seconds to wait.
    pub fn check(&self, limit: Limit, ip: IpAddr) -> Result<(), u64> {
        let limiter = match limit {
            Limit::Start => &self.start,
            Limit::Poll => &self.poll,
            Limit::Complete => &self.complete,
            Limit::Login => &self.login,
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

    /// Whether another sign-in attempt for this account (email, any case)
    /// from this client's network may go ahead: `Err` with the seconds to
    /// wait when this network used up the account's attempts (a hard limit,
    /// so failures elsewhere never lock the owner out), else `Ok` with how
    /// long to hold the attempt first: when attempts from every network
    /// together pass the account's ceiling, each is slowed, never refused.
    pub fn check_login_account(&self, email: &str, ip: IpAddr) -> Result<Duration, u64> {
        let account = email.trim().to_lowercase();
        if let Some(limiter) = &self.login_account {
            limiter
                .check_key(&(account.clone(), self.key(ip)))
                .map_err(|not_until| {
                    let wait = not_until.wait_time_from(DefaultClock::default().now());
                    let wait = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                    self.refuse(Refused::LoginAccount, wait)
                })?;
        }
        let Some(ceiling) = &self.login_account_all else {
            return Ok(Duration::ZERO);
        };
        Ok(ceiling
            .check_key(&account)
            .err()
            .map_or(Duration::ZERO, |not_until| {
                not_until
                    .wait_time_from(DefaultClock::default().now())
                    .min(MAX_SIGN_IN_SLOWDOWN)
            }))
    }

    /// `Ok` if this signed-in account may look up or decide another user
    /// code now, from whichever address; else the seconds to wait. Bounds
    /// code guessing by one account spread over many addresses.
    pub fn check_code_entry(&self, account: uuid::Uuid) -> Result<(), u64> {
        let Some(limiter) = &self.code_entry_account else {
            return Ok(());
        };
        limiter.check_key(&account).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let wait = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            self.refuse(Refused::CodeEntryAccount, wait)
        })
    }

    /// Counts a refusal; passes the wait through.
    fn refuse(&self, which: Refused, wait: u64) -> u64 {
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
        for l in [&self.start, &self.poll, &self.complete, &self.login]
            .into_iter()
            .flatten()
        {
            l.retain_recent();
        }
        if let Some(l) = &self.login_account {
            l.retain_recent();
        }
        if let Some(l) = &self.login_account_all {
            l.retain_recent();
        }
        if let Some(l) = &self.code_entry_account {
            l.retain_recent();
        }
        self.audit.retain_recent();
    }
}

/// The client's IP: the direct peer, unless the peer is a trusted proxy, in
/// which case the right-most `X-Forwarded-For` entry that is not itself a
/// trusted proxy. Entries may carry a port (`ip:port`, `[v6]:port`). When
/// that entry cannot be read, the peer's address answers: an entry further
/// left was written by whoever sent the request, so it proves nothing.
pub fn client_ip(req: &HttpRequest, trusted_proxies: &[IpAddr]) -> IpAddr {
    let peer = req
        .peer_addr()
        .map_or(IpAddr::from([127, 0, 0, 1]), |a| a.ip());
    if !trusted_proxies.contains(&peer) {
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
        match forwarded_address(entry) {
            Some(ip) if trusted_proxies.contains(&ip) => continue,
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
        let home: IpAddr = "198.51.100.7".parse().unwrap();
        let away: IpAddr = "203.0.113.9".parse().unwrap();
        assert!(l.check_login_account("A@x.io", away).is_ok());
        assert!(l.check_login_account("a@X.io ", away).is_ok());
        assert!(
            l.check_login_account("a@x.io", away).is_err(),
            "per account and network, any case"
        );
        assert!(
            l.check_login_account("a@x.io", home).is_ok(),
            "another network"
        );
        assert!(l.check_login_account("b@x.io", away).is_ok());
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
        let via = |entries: &str| client_ip(&forwarded("10.0.0.5:1234", entries), &[proxy]);
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
            client_ip(&req, &[proxy]),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(&req, &[]), proxy);
        let direct = forwarded("198.51.100.1:1", "1.2.3.4");
        assert_eq!(
            client_ip(&direct, &[proxy]),
            "198.51.100.1".parse::<IpAddr>().unwrap()
        );
    }
}
