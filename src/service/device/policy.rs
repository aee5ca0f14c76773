//! The rules of a device login that need no database: token names, the
//! scopes asked for and granted, lifetimes, who may approve what, the
//! per-account token cap, and when an approval needs a step-up. Pure
//! functions, unit-tested here.

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use envshield_api_types::ConfirmationMode;

use crate::config::{ApprovalStepUp, Config, OAuthClient, TokenPolicy};
use crate::domain::{is_format_char, Role, Scopes, TokenName};
use crate::error::AppError;

/// Shorter lifetimes an approver may pick, in days.
const SHORTER_LIFETIMES_DAYS: [u32; 4] = [7, 30, 90, 365];

/// The lifetimes offered besides the configured one: those shorter than
/// `max_days` (all of them when tokens never expire).
pub fn shorter_lifetimes(max_days: Option<u32>) -> impl Iterator<Item = u32> {
    SHORTER_LIFETIMES_DAYS
        .into_iter()
        .filter(move |d| max_days.is_none_or(|m| *d < m))
}

/// Longest user agent kept.
pub const MAX_USER_AGENT_CHARS: usize = 256;

/// The token name asked for, or `CLI Token - <date>`.
pub fn token_name(asked: Option<&str>, now: DateTime<Utc>) -> Result<TokenName, AppError> {
    let default;
    let name = match asked {
        Some(n) => n,
        None => {
            default = format!("CLI Token - {}", now.format("%Y-%m-%d"));
            &default
        }
    };
    TokenName::parse(name).map_err(|m| AppError::bad_request("invalid_token_name", m))
}

/// The scopes a login asks for: those named, or the configured defaults the
/// client may have. Every one must be among the client's.
pub fn requested_scopes(
    asked: Option<&[String]>,
    default_scopes: &[String],
    client: &OAuthClient,
) -> Result<Scopes, AppError> {
    let requested: Vec<String> = match asked {
        Some(s) => s.to_vec(),
        None => default_scopes
            .iter()
            .filter(|s| client.scopes.contains(s))
            .cloned()
            .collect(),
    };
    Scopes::parse(&requested, &client.scopes).map_err(|m| AppError::bad_request("invalid_scope", m))
}

/// The scopes an approval grants: all that were asked for, or the subset
/// the approver kept. Never more than asked.
pub fn granted_scopes(
    requested: &Scopes,
    chosen: Option<&[String]>,
    catalogue: &[String],
) -> Result<Scopes, AppError> {
    let Some(chosen) = chosen else {
        return Ok(requested.clone());
    };
    let chosen =
        Scopes::parse(chosen, catalogue).map_err(|m| AppError::bad_request("invalid_scope", m))?;
    if !chosen.is_subset_of(requested) {
        return Err(AppError::bad_request(
            "invalid_scope",
            format!(
                "You can only remove scopes from this request, not add them. It asked for: {}.",
                requested.as_slice().join(", ")
            ),
        ));
    }
    Ok(chosen)
}

/// When an approved API token expires: after the days the approver chose
/// (one of [`shorter_lifetimes`], or `max_days` itself), else after
/// `max_days`; `None` when tokens never expire and none was chosen.
pub fn token_expiry(
    chosen_days: Option<u32>,
    max_days: Option<u32>,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, AppError> {
    let days = match (chosen_days, max_days) {
        (Some(0), _) => {
            return Err(AppError::bad_request(
                "invalid_expiry",
                "The token must live at least one day.",
            ))
        }
        (Some(d), Some(max)) if d > max => {
            return Err(AppError::bad_request(
                "invalid_expiry",
                format!("The token can live at most {max} days."),
            ))
        }
        (Some(d), max) if max != Some(d) && !shorter_lifetimes(max).any(|offered| offered == d) => {
            let offered: Vec<String> = shorter_lifetimes(max).map(|o| o.to_string()).collect();
            return Err(AppError::bad_request(
                "invalid_expiry",
                format!(
                    "Pick one of the offered lifetimes ({} days), or leave it out for the default.",
                    offered.join(", ")
                ),
            ));
        }
        (Some(d), _) => Some(d),
        (None, max) => max,
    };
    days.map(|d| {
        Duration::try_days(i64::from(d))
            .and_then(|lifetime| now.checked_add_signed(lifetime))
            .ok_or_else(|| AppError::bad_request("invalid_expiry", "Pick an expiry from the list."))
    })
    .transpose()
}

/// Whether an account with `role` may approve a token with `scopes`: its
/// role may create tokens at all, and grant each scope.
pub fn check_approver(config: &Config, role: Role, scopes: &Scopes) -> Result<(), AppError> {
    if !config.role_may_create_tokens(role) {
        return Err(AppError::forbidden(
            "role_not_allowed",
            format!("Accounts with the `{role}` role may not create API tokens."),
        ));
    }
    if let Some(scope) = scopes
        .as_slice()
        .iter()
        .find(|s| !config.role_may_grant(role, s))
    {
        return Err(AppError::forbidden(
            "scope_not_allowed",
            format!(
                "Your account may not grant the `{scope}` scope. Untick it, or ask an admin to approve."
            ),
        ));
    }
    Ok(())
}

/// Refuses a new token when the account already holds `active` of at most
/// `max` (a refresh family counts as one).
pub fn check_token_cap(active: i64, max: u32) -> Result<(), AppError> {
    if active >= i64::from(max) {
        return Err(AppError::conflict(
            "token_limit_reached",
            format!(
                "You already have {max} active tokens, the most allowed. Revoke one in your token settings (/settings/tokens) or with `envshield tokens revoke <id>`, then approve again."
            ),
        ));
    }
    Ok(())
}

/// The user agent as stored: control and invisible formatting characters
/// dropped, length capped.
pub fn user_agent(raw: Option<String>) -> Option<String> {
    raw.map(|ua| {
        ua.chars()
            .filter(|c| !c.is_control() && !is_format_char(*c))
            .take(MAX_USER_AGENT_CHARS)
            .collect()
    })
}

/// How a v1 login's token is collected: the server may require paste-back
/// for everyone, and a client may ask for it.
pub fn confirmation(server: ConfirmationMode, asked: Option<ConfirmationMode>) -> ConfirmationMode {
    match (server, asked) {
        (ConfirmationMode::Paste, _) | (_, Some(ConfirmationMode::Paste)) => {
            ConfirmationMode::Paste
        }
        _ => ConfirmationMode::Poll,
    }
}

/// How a login started at `/oauth/device_authorization` is confirmed. Under
/// a server-wide paste policy a client must be able to type the code back
/// (or be exempted by name); a policy that an OAuth client could skip would
/// protect nothing.
pub fn oauth_confirmation(
    server: ConfirmationMode,
    client: &OAuthClient,
) -> Result<ConfirmationMode, AppError> {
    match (server, client.confirmation) {
        (ConfirmationMode::Poll, _) => Ok(ConfirmationMode::Poll),
        (ConfirmationMode::Paste, Some(mode)) => Ok(mode),
        (ConfirmationMode::Paste, None) => Err(AppError::bad_request(
            "unauthorized_client",
            format!(
                "This server requires paste-back confirmation (DEVICE_CONFIRMATION=paste) and client `{}` cannot type a code back. An operator can allow it with \"confirmation\": \"poll\" in OAUTH_CLIENTS.",
                client.client_id
            ),
        )),
    }
}

/// Whether a request's address (as stored) is on the approver's network:
/// the same IPv4 /24, or the same IPv6 /64 (one site's addresses, and
/// privacy addresses that change within a prefix). IPv4-mapped IPv6
/// addresses count as IPv4. An unreadable or unknown address counts as
/// another network.
pub fn same_network(requester: Option<&str>, approver: IpAddr) -> bool {
    let Some(requester) = requester.and_then(|r| r.parse::<IpAddr>().ok()) else {
        return false;
    };
    let canonical = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match (canonical(requester), canonical(approver)) {
        (IpAddr::V4(a), IpAddr::V4(b)) => a.octets()[..3] == b.octets()[..3],
        (IpAddr::V6(a), IpAddr::V6(b)) => a.segments()[..4] == b.segments()[..4],
        _ => false,
    }
}

/// How long the tokens of an approval live, in days (`None`: for ever): a
/// long-lived API token lives what the approver chose, else the configured
/// lifetime; a refresh family lives `REFRESH_TOKEN_ABSOLUTE_DAYS`.
pub fn granted_lifetime_days(
    config: &Config,
    policy: TokenPolicy,
    chosen_days: Option<u32>,
) -> Option<u32> {
    match policy {
        TokenPolicy::ApiToken => chosen_days.or(config.api_token_ttl_days),
        TokenPolicy::AccessRefresh => {
            let days = config.refresh_token_absolute.as_secs().div_ceil(86_400);
            Some(u32::try_from(days).unwrap_or(u32::MAX))
        }
    }
}

/// Why an approval asks the approver to prove it is them again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepUpReason {
    /// `APPROVAL_STEP_UP=always`.
    Always,
    /// The request came from another network than the approver's browser.
    OtherNetwork {
        /// The requesting address, as stored (`None`: unknown).
        requested_from: Option<String>,
        /// The approver's browser.
        approver: String,
    },
    /// The token would carry scopes in `API_TOKEN_SCOPES_HIGH_RISK`.
    HighRiskScopes(Vec<String>),
    /// The token would live longer than `APPROVAL_STEP_UP_MAX_DAYS`.
    LongLifetime {
        /// Its lifetime in days; `None` for ever.
        days: Option<u32>,
        /// The limit.
        max_days: u32,
    },
}

impl StepUpReason {
    /// A stable code, for the audit log and the JSON API.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Always => "always",
            Self::OtherNetwork { .. } => "other_network",
            Self::HighRiskScopes(_) => "high_risk_scope",
            Self::LongLifetime { .. } => "long_lifetime",
        }
    }

    /// The reason in words, for the person approving.
    pub fn sentence(&self) -> String {
        match self {
            Self::Always => "This server asks for it on every approval.".to_owned(),
            Self::OtherNetwork {
                requested_from,
                approver,
            } => format!(
                "The request came from another network ({}) than this browser ({approver}).",
                requested_from.as_deref().unwrap_or("an unknown address")
            ),
            Self::HighRiskScopes(scopes) => {
                let noun = if scopes.len() == 1 {
                    "a high-risk scope"
                } else {
                    "high-risk scopes"
                };
                format!(
                    "It asks for {}, {noun}. Untick what the tool does not need to avoid this.",
                    scopes.join(", ")
                )
            }
            Self::LongLifetime {
                days: Some(days),
                max_days,
            } => format!(
                "The token would live {days} days, longer than {max_days} days. A shorter expiry avoids this."
            ),
            Self::LongLifetime {
                days: None,
                max_days,
            } => format!(
                "The token would never expire (the limit without a step-up is {max_days} days). A shorter expiry avoids this."
            ),
        }
    }
}

/// What an approval would grant, as far as step-up cares.
#[derive(Debug, Clone, Copy)]
pub struct Approval<'a> {
    /// Where the request came from, as stored.
    pub requested_from: Option<&'a str>,
    /// The approver's browser.
    pub approver_ip: IpAddr,
    /// The scopes the token would carry.
    pub scopes: &'a [String],
    /// How long it would live, in days (`None`: for ever).
    pub lifetime_days: Option<u32>,
}

/// Why this approval needs a step-up under `APPROVAL_STEP_UP`; empty when
/// it does not. Denying never does: this is asked of approvals only.
pub fn step_up_reasons(config: &Config, approval: &Approval<'_>) -> Vec<StepUpReason> {
    match config.approval_step_up {
        ApprovalStepUp::Never => return Vec::new(),
        ApprovalStepUp::Always => return vec![StepUpReason::Always],
        ApprovalStepUp::HighRisk => {}
    }
    let mut reasons = Vec::new();
    if !same_network(approval.requested_from, approval.approver_ip) {
        reasons.push(StepUpReason::OtherNetwork {
            requested_from: approval.requested_from.map(str::to_owned),
            approver: approval.approver_ip.to_string(),
        });
    }
    let risky: Vec<String> = approval
        .scopes
        .iter()
        .filter(|s| config.is_high_risk_scope(s))
        .cloned()
        .collect();
    if !risky.is_empty() {
        reasons.push(StepUpReason::HighRiskScopes(risky));
    }
    if let Some(max_days) = config.step_up_max_days {
        if approval.lifetime_days.is_none_or(|d| d > max_days) {
            reasons.push(StepUpReason::LongLifetime {
                days: approval.lifetime_days,
                max_days,
            });
        }
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    fn client(scopes: &[&str]) -> OAuthClient {
        OAuthClient {
            client_id: "envshield-cli".into(),
            grants: vec![],
            scopes: strings(scopes),
            token_policy: crate::config::TokenPolicy::ApiToken,
            confirmation: None,
            require_dpop: false,
        }
    }

    #[test]
    fn a_missing_token_name_is_dated() {
        let now = at("2026-11-29T10:00:00Z");
        assert_eq!(
            token_name(None, now).unwrap().as_str(),
            "CLI Token - 2026-11-29"
        );
        assert_eq!(token_name(Some("laptop"), now).unwrap().as_str(), "laptop");
        assert_eq!(
            token_name(Some(""), now).unwrap_err().code(),
            "invalid_token_name"
        );
    }

    #[test]
    fn defaults_are_limited_to_the_client_and_asked_scopes_must_be_its_own() {
        let c = client(&["envs:read", "tokens:read"]);
        let defaults = strings(&["envs:read", "envs:write"]);
        let s = requested_scopes(None, &defaults, &c).unwrap();
        assert_eq!(s.as_slice(), ["envs:read"]);
        let asked = strings(&["envs:write"]);
        let err = requested_scopes(Some(&asked), &defaults, &c).unwrap_err();
        assert_eq!(err.code(), "invalid_scope");
    }

    #[test]
    fn an_approval_may_narrow_scopes_but_never_widen_them() {
        let cat = strings(&["a", "b", "c"]);
        let requested = Scopes::parse(&strings(&["a", "b"]), &cat).unwrap();
        assert_eq!(granted_scopes(&requested, None, &cat).unwrap(), requested);
        let narrowed = granted_scopes(&requested, Some(&strings(&["b"])), &cat).unwrap();
        assert_eq!(narrowed.as_slice(), ["b"]);
        let widened = granted_scopes(&requested, Some(&strings(&["a", "c"])), &cat);
        assert_eq!(widened.unwrap_err().code(), "invalid_scope");
        assert!(
            granted_scopes(&requested, Some(&[]), &cat).is_err(),
            "none kept"
        );
    }

    #[test]
    fn expiry_is_bounded_by_the_configured_lifetime_and_never_overflows() {
        let now = at("2026-01-01T00:00:00Z");
        assert_eq!(
            token_expiry(Some(30), Some(365), now).unwrap(),
            Some(at("2026-01-31T00:00:00Z"))
        );
        assert_eq!(
            token_expiry(None, Some(7), now).unwrap(),
            Some(at("2026-01-08T00:00:00Z"))
        );
        assert_eq!(
            token_expiry(None, None, now).unwrap(),
            None,
            "never expires"
        );
        for bad in [Some(0), Some(366)] {
            let err = token_expiry(bad, Some(365), now).unwrap_err();
            assert_eq!(err.code(), "invalid_expiry", "{bad:?}");
        }
        let huge = token_expiry(Some(u32::MAX), None, now).unwrap_err();
        assert_eq!(huge.code(), "invalid_expiry");
        let not_offered = token_expiry(Some(45), Some(365), now).unwrap_err();
        assert!(not_offered.public_message().contains("7, 30, 90"));
        assert!(
            token_expiry(Some(365), Some(365), now).is_ok(),
            "the default itself"
        );
    }

    #[test]
    fn shorter_lifetimes_stay_below_the_configured_one() {
        assert_eq!(shorter_lifetimes(Some(90)).collect::<Vec<_>>(), [7, 30]);
        assert_eq!(shorter_lifetimes(None).count(), 4, "never expires: all");
        assert_eq!(shorter_lifetimes(Some(7)).count(), 0);
    }

    fn config(pairs: &[(&str, &str)]) -> Config {
        let dir = std::env::temp_dir().join(format!(
            "envshield-policy-{}-{}",
            std::process::id(),
            hex::encode(crate::crypto::random_bytes::<4>())
        ));
        let mut vars: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        vars.insert("ENVSHIELD_DATA_DIR".into(), dir.display().to_string());
        let config = Config::from_map(&vars).unwrap();
        let _ = std::fs::remove_dir_all(dir);
        config
    }

    #[test]
    fn roles_decide_who_may_create_tokens_and_grant_which_scopes() {
        let cat = strings(&["envs:read", "tokens:introspect"]);
        let read = Scopes::parse(&strings(&["envs:read"]), &cat).unwrap();
        let introspect = Scopes::parse(&strings(&["tokens:introspect"]), &cat).unwrap();
        let c = config(&[("API_TOKEN_SCOPES", "envs:read,tokens:introspect")]);
        assert!(check_approver(&c, Role::User, &read).is_ok());
        let err = check_approver(&c, Role::User, &introspect).unwrap_err();
        assert_eq!(err.code(), "scope_not_allowed", "admins only, by default");
        assert!(check_approver(&c, Role::Admin, &introspect).is_ok());
        let admins = config(&[
            ("API_TOKEN_SCOPES", "envs:read,tokens:introspect"),
            ("CLI_TOKEN_ROLES", "admin"),
        ]);
        let err = check_approver(&admins, Role::User, &read).unwrap_err();
        assert_eq!(err.code(), "role_not_allowed");
        assert!(err.public_message().contains("`user` role"));
    }

    #[test]
    fn the_cap_counts_every_active_token() {
        assert!(check_token_cap(9, 10).is_ok());
        let err = check_token_cap(10, 10).unwrap_err();
        assert_eq!(err.code(), "token_limit_reached");
        assert!(err.public_message().contains("10 active tokens"));
    }

    #[test]
    fn user_agents_lose_control_characters_and_are_capped() {
        assert_eq!(
            user_agent(Some("cli/1\n\u{7}x".into())).as_deref(),
            Some("cli/1x")
        );
        assert_eq!(
            user_agent(Some("curl\u{202E}1.8\u{200B}".into())).as_deref(),
            Some("curl1.8"),
            "finding 13: invisible formatting is dropped"
        );
        let long = "a".repeat(1000);
        assert_eq!(user_agent(Some(long)).unwrap().len(), MAX_USER_AGENT_CHARS);
        assert_eq!(user_agent(None), None);
    }

    #[test]
    fn a_paste_policy_admits_only_clients_that_can_paste_or_are_exempt() {
        use ConfirmationMode::{Paste, Poll};
        let mut c = client(&["envs:read"]);
        assert_eq!(oauth_confirmation(Poll, &c).unwrap(), Poll);
        let err = oauth_confirmation(Paste, &c).unwrap_err();
        assert_eq!(err.code(), "unauthorized_client");
        c.confirmation = Some(Paste);
        assert_eq!(oauth_confirmation(Paste, &c).unwrap(), Paste);
        assert_eq!(
            oauth_confirmation(Poll, &c).unwrap(),
            Poll,
            "only under the policy"
        );
        c.confirmation = Some(Poll);
        assert_eq!(
            oauth_confirmation(Paste, &c).unwrap(),
            Poll,
            "exempted by name"
        );
    }

    #[test]
    fn paste_is_required_by_the_server_or_asked_by_the_client() {
        use ConfirmationMode::{Paste, Poll};
        assert_eq!(confirmation(Poll, None), Poll);
        assert_eq!(confirmation(Poll, Some(Poll)), Poll);
        assert_eq!(confirmation(Poll, Some(Paste)), Paste);
        assert_eq!(
            confirmation(Paste, Some(Poll)),
            Paste,
            "the server's word wins"
        );
    }

    #[test]
    fn networks_compare_by_ipv4_24_or_ipv6_64() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(same_network(Some("127.0.0.1"), ip("127.0.0.1")));
        assert!(same_network(Some("198.51.100.4"), ip("198.51.100.200")));
        assert!(same_network(
            Some("::ffff:198.51.100.4"),
            ip("198.51.100.9")
        ));
        assert!(!same_network(Some("198.51.101.4"), ip("198.51.100.4")));
        assert!(!same_network(Some("203.0.113.7"), ip("127.0.0.1")));
        assert!(same_network(
            Some("2001:db8:1:2:aaaa::1"),
            ip("2001:db8:1:2:bbbb::2")
        ));
        assert!(!same_network(
            Some("2001:db8:1:3::1"),
            ip("2001:db8:1:2::1")
        ));
        assert!(!same_network(Some("198.51.100.4"), ip("2001:db8::1")));
        assert!(!same_network(Some("not an ip"), ip("127.0.0.1")));
        assert!(!same_network(None, ip("127.0.0.1")));
    }

    #[test]
    fn step_up_reasons_follow_the_policy() {
        let dir = std::env::temp_dir().join(format!("envshield-step-up-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut vars: std::collections::HashMap<String, String> = [
            ("ENVSHIELD_DATA_DIR", dir.to_str().unwrap()),
            ("APPROVAL_STEP_UP", "high_risk"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let config = Config::from_map(&vars).unwrap();
        let here: IpAddr = "198.51.100.4".parse().unwrap();
        let read = vec!["envs:read".to_owned()];
        let quiet = Approval {
            requested_from: Some("198.51.100.7"),
            approver_ip: here,
            scopes: &read,
            lifetime_days: Some(30),
        };
        assert!(step_up_reasons(&config, &quiet).is_empty());
        let write = vec!["envs:read".to_owned(), "envs:write".to_owned()];
        let loud = Approval {
            requested_from: Some("203.0.113.9"),
            scopes: &write,
            lifetime_days: None,
            ..quiet
        };
        let reasons = step_up_reasons(&config, &loud);
        let codes: Vec<&str> = reasons.iter().map(StepUpReason::code).collect();
        assert_eq!(codes, ["other_network", "high_risk_scope", "long_lifetime"]);
        assert_eq!(
            reasons[0].sentence(),
            "The request came from another network (203.0.113.9) than this browser (198.51.100.4)."
        );
        assert_eq!(
            reasons[1].sentence(),
            "It asks for envs:write, a high-risk scope. Untick what the tool does not need to avoid this."
        );
        assert!(
            reasons[2].sentence().contains("never expire"),
            "{reasons:?}"
        );
        let long = Approval {
            lifetime_days: Some(365),
            ..quiet
        };
        assert_eq!(
            step_up_reasons(&config, &long)[0].sentence(),
            "The token would live 365 days, longer than 90 days. A shorter expiry avoids this."
        );
        let at_limit = Approval {
            lifetime_days: Some(90),
            ..quiet
        };
        assert!(
            step_up_reasons(&config, &at_limit).is_empty(),
            "90 is not over 90"
        );

        vars.insert("APPROVAL_STEP_UP".into(), "always".into());
        let always = Config::from_map(&vars).unwrap();
        assert_eq!(step_up_reasons(&always, &quiet), [StepUpReason::Always]);
        vars.insert("APPROVAL_STEP_UP".into(), "never".into());
        let never = Config::from_map(&vars).unwrap();
        assert!(step_up_reasons(&never, &loud).is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn refresh_families_live_their_absolute_lifetime() {
        let dir = std::env::temp_dir().join(format!("envshield-lifetime-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let vars = [("ENVSHIELD_DATA_DIR", dir.to_str().unwrap())]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let config = Config::from_map(&vars).unwrap();
        assert_eq!(
            granted_lifetime_days(&config, TokenPolicy::ApiToken, None),
            Some(365)
        );
        assert_eq!(
            granted_lifetime_days(&config, TokenPolicy::ApiToken, Some(7)),
            Some(7)
        );
        assert_eq!(
            granted_lifetime_days(&config, TokenPolicy::AccessRefresh, Some(7)),
            Some(90)
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
