//! How an approved login's token is collected: polled, or released only
//! with the paste-back code shown in the approving browser; under
//! `DEVICE_CONFIRMATION=risk`, when the code is needed; and whether two
//! addresses are on one network.

use std::net::IpAddr;

use envshield_api_types::ConfirmationMode;

use crate::config::{Config, DeviceConfirmation, OAuthClient};
use crate::domain::{Confirmation, Flow};
use crate::error::AppError;

/// How a v1 login's token is collected: the server may require paste-back
/// for everyone, or decide at approval (`risk`), and a client may ask for
/// it.
pub fn confirmation(server: DeviceConfirmation, asked: Option<ConfirmationMode>) -> Confirmation {
    match (server, asked) {
        (DeviceConfirmation::Paste, _) | (_, Some(ConfirmationMode::Paste)) => Confirmation::Paste,
        (DeviceConfirmation::Risk, _) => Confirmation::Risk,
        (DeviceConfirmation::Poll, _) => Confirmation::Poll,
    }
}

/// How a login started at `/oauth/device_authorization` is confirmed. Under
/// a server-wide paste policy a client must be able to type the code back
/// (or be exempted by name); a policy that an OAuth client could skip would
/// protect nothing. Under `risk` a client exempted by name polls; any
/// other is decided at approval, and a client that cannot paste is then
/// refused when the code would be needed (see [`can_paste`]).
pub fn oauth_confirmation(
    server: DeviceConfirmation,
    client: &OAuthClient,
) -> Result<Confirmation, AppError> {
    match (server, client.confirmation) {
        (DeviceConfirmation::Poll, _) => Ok(Confirmation::Poll),
        (DeviceConfirmation::Paste | DeviceConfirmation::Risk, Some(ConfirmationMode::Poll)) => {
            Ok(Confirmation::Poll)
        }
        (DeviceConfirmation::Paste, Some(ConfirmationMode::Paste)) => Ok(Confirmation::Paste),
        (DeviceConfirmation::Risk, _) => Ok(Confirmation::Risk),
        (DeviceConfirmation::Paste, None) => Err(AppError::bad_request(
            "unauthorized_client",
            format!(
                "This server requires paste-back confirmation (DEVICE_CONFIRMATION=paste) and client `{}` cannot type a code back. An operator can allow it with \"confirmation\": \"poll\" in OAUTH_CLIENTS.",
                client.client_id
            ),
        )),
    }
}

/// Whether the client of a login can type the paste-back code: every v1
/// login can (`device/exchange`); an OAuth client only when registered
/// with `"confirmation": "paste"`.
pub fn can_paste(flow: Flow, client: Option<&OAuthClient>) -> bool {
    flow == Flow::V1 || client.is_some_and(|c| c.confirmation == Some(ConfirmationMode::Paste))
}

/// Why an approval releases the token only with the paste-back code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasteReason {
    /// `DEVICE_CONFIRMATION=paste`.
    Server,
    /// The client asked for it (`envshield login --paste`).
    Asked,
    /// `risk`: the approving browser is on another network.
    OtherNetwork {
        /// The requesting address, as stored (`None`: unknown).
        requested_from: Option<String>,
        /// The approver's browser.
        approver: String,
    },
    /// `risk`: the token would carry these high-risk scopes.
    HighRiskScopes(Vec<String>),
}

impl PasteReason {
    /// A stable code, for the audit log.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::Asked => "asked",
            Self::OtherNetwork { .. } => "other_network",
            Self::HighRiskScopes(_) => "high_risk_scope",
        }
    }

    /// The reason in words, for the person approving.
    pub fn sentence(&self) -> String {
        match self {
            Self::Server => "This server asks for it on every CLI login.".to_owned(),
            Self::Asked => "The tool that asked for the login chose to confirm with a code.".to_owned(),
            Self::OtherNetwork {
                requested_from,
                approver,
            } => format!(
                "The request came from another network ({}) than this browser ({approver}): the code proves that the person at that terminal is you.",
                requested_from.as_deref().unwrap_or("an unknown address")
            ),
            Self::HighRiskScopes(scopes) => format!(
                "The token would carry {}, which this server counts as high risk.",
                scopes.join(", ")
            ),
        }
    }
}

/// Why approving a login stored as `stored` (from `requested_from`, from
/// the browser at `approver_ip`, granting `scopes`) releases the token only
/// with the paste-back code; empty when the next poll takes it.
pub fn paste_reasons(
    config: &Config,
    stored: Confirmation,
    requested_from: Option<&str>,
    approver_ip: IpAddr,
    scopes: &[String],
) -> Vec<PasteReason> {
    match stored {
        Confirmation::Poll => Vec::new(),
        Confirmation::Paste if config.confirmation_mode() == DeviceConfirmation::Paste => {
            vec![PasteReason::Server]
        }
        Confirmation::Paste => vec![PasteReason::Asked],
        Confirmation::Risk => {
            let mut reasons = Vec::new();
            if !same_network(requested_from, approver_ip) {
                reasons.push(PasteReason::OtherNetwork {
                    requested_from: requested_from.map(str::to_owned),
                    approver: approver_ip.to_string(),
                });
            }
            let risky: Vec<String> = scopes
                .iter()
                .filter(|s| config.is_high_risk_scope(s))
                .cloned()
                .collect();
            if !risky.is_empty() {
                reasons.push(PasteReason::HighRiskScopes(risky));
            }
            reasons
        }
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

#[cfg(test)]
mod tests {
    use super::super::test_support::{client, config, strings};
    use super::*;

    #[test]
    fn a_paste_policy_admits_only_clients_that_can_paste_or_are_exempt() {
        use ConfirmationMode::{Paste, Poll};
        let mut c = client(&["envs:read"]);
        let (poll, paste) = (DeviceConfirmation::Poll, DeviceConfirmation::Paste);
        assert_eq!(oauth_confirmation(poll, &c).unwrap(), Confirmation::Poll);
        let err = oauth_confirmation(paste, &c).unwrap_err();
        assert_eq!(err.code(), "unauthorized_client");
        c.confirmation = Some(Paste);
        assert_eq!(oauth_confirmation(paste, &c).unwrap(), Confirmation::Paste);
        assert_eq!(
            oauth_confirmation(poll, &c).unwrap(),
            Confirmation::Poll,
            "only under the policy"
        );
        c.confirmation = Some(Poll);
        assert_eq!(
            oauth_confirmation(paste, &c).unwrap(),
            Confirmation::Poll,
            "exempted by name"
        );
    }

    #[test]
    fn under_risk_oauth_clients_are_decided_at_approval_unless_exempt() {
        use ConfirmationMode::{Paste, Poll};
        let risk = DeviceConfirmation::Risk;
        let mut c = client(&["envs:read"]);
        assert_eq!(oauth_confirmation(risk, &c).unwrap(), Confirmation::Risk);
        assert!(!can_paste(Flow::OAuth, Some(&c)), "cannot paste");
        c.confirmation = Some(Paste);
        assert_eq!(oauth_confirmation(risk, &c).unwrap(), Confirmation::Risk);
        assert!(can_paste(Flow::OAuth, Some(&c)));
        c.confirmation = Some(Poll);
        assert_eq!(
            oauth_confirmation(risk, &c).unwrap(),
            Confirmation::Poll,
            "exempted by name"
        );
        assert!(can_paste(Flow::V1, None), "v1 logins can always paste");
    }

    #[test]
    fn paste_is_required_by_the_server_or_asked_by_the_client() {
        use ConfirmationMode::{Paste, Poll};
        let (poll, paste, risk) = (
            DeviceConfirmation::Poll,
            DeviceConfirmation::Paste,
            DeviceConfirmation::Risk,
        );
        assert_eq!(confirmation(poll, None), Confirmation::Poll);
        assert_eq!(confirmation(poll, Some(Poll)), Confirmation::Poll);
        assert_eq!(confirmation(poll, Some(Paste)), Confirmation::Paste);
        assert_eq!(
            confirmation(paste, Some(Poll)),
            Confirmation::Paste,
            "the server's word wins"
        );
        assert_eq!(confirmation(risk, None), Confirmation::Risk);
        assert_eq!(confirmation(risk, Some(Poll)), Confirmation::Risk);
        assert_eq!(confirmation(risk, Some(Paste)), Confirmation::Paste);
    }

    #[test]
    fn risk_asks_for_the_code_from_another_network_or_for_high_risk_scopes() {
        let c = config(&[("DEVICE_CONFIRMATION", "risk")]);
        let here: IpAddr = "198.51.100.4".parse().unwrap();
        let read = strings(&["envs:read"]);
        let write = strings(&["envs:read", "envs:write"]);
        let risk = Confirmation::Risk;
        assert!(paste_reasons(&c, risk, Some("198.51.100.9"), here, &read).is_empty());
        let away = paste_reasons(&c, risk, Some("203.0.113.9"), here, &read);
        assert_eq!(away.len(), 1);
        assert_eq!(away[0].code(), "other_network");
        assert!(away[0].sentence().contains("(203.0.113.9)"), "{away:?}");
        let risky = paste_reasons(&c, risk, Some("198.51.100.9"), here, &write);
        assert_eq!(
            risky,
            [PasteReason::HighRiskScopes(strings(&["envs:write"]))]
        );
        assert_eq!(
            risky[0].sentence(),
            "The token would carry envs:write, which this server counts as high risk."
        );
        let both = paste_reasons(&c, risk, None, here, &write);
        let codes: Vec<&str> = both.iter().map(PasteReason::code).collect();
        assert_eq!(
            codes,
            ["other_network", "high_risk_scope"],
            "unknown address"
        );
        assert!(paste_reasons(&c, Confirmation::Poll, None, here, &write).is_empty());
        assert_eq!(
            paste_reasons(&c, Confirmation::Paste, None, here, &read),
            [PasteReason::Asked]
        );
        let server = config(&[("DEVICE_CONFIRMATION", "paste")]);
        assert_eq!(
            paste_reasons(&server, Confirmation::Paste, None, here, &read),
            [PasteReason::Server]
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
}
