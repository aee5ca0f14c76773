//! `DEVICE_CONFIRMATION` (how an approved device login's token is
//! collected) and `DEVICE_LOGIN_POLICY` (or `DEVICE_LOGIN_POLICY_FILE`):
//! per-role rules for device logins, checked when someone approves one.

use std::collections::HashMap;
use std::net::IpAddr;

use envshield_api_types::ConfirmationMode;
use ipnet::IpNet;
use serde::Deserialize;

use super::{env, err, ConfigError};
use crate::domain::Role;

/// `DEVICE_CONFIRMATION`: when the paste-back code is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceConfirmation {
    /// Only when the client asks for it (the default).
    Poll,
    /// Every v1 login; OAuth clients must be able to paste or be exempt.
    Paste,
    /// Decided at approval: when the approving browser is on another
    /// network than the requesting client, or a high-risk scope would be
    /// granted.
    Risk,
}

/// `DEVICE_CONFIRMATION`: the paste-back mode (`poll` or `paste`) and
/// whether `risk` decides at approval.
pub(super) fn confirmation(raw: Option<&str>) -> Result<(ConfirmationMode, bool), ConfigError> {
    match raw.unwrap_or("poll") {
        "poll" => Ok((ConfirmationMode::Poll, false)),
        "paste" => Ok((ConfirmationMode::Paste, false)),
        "risk" => Ok((ConfirmationMode::Poll, true)),
        other => Err(err(format!(
            "DEVICE_CONFIRMATION must be `poll`, `paste` or `risk`, not `{other}`"
        ))),
    }
}

impl super::Config {
    /// `DEVICE_CONFIRMATION` as one value (`paste` wins over `risk`).
    pub fn confirmation_mode(&self) -> DeviceConfirmation {
        match (self.device_confirmation, self.device_confirmation_risk) {
            (ConfirmationMode::Paste, _) => DeviceConfirmation::Paste,
            (ConfirmationMode::Poll, true) => DeviceConfirmation::Risk,
            (ConfirmationMode::Poll, false) => DeviceConfirmation::Poll,
        }
    }
}

/// The rules for approvers of one role. Every field left out of the
/// JSON imposes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolePolicy {
    /// `enabled` (default true): false turns device logins off for
    /// approvers of this role.
    pub enabled: bool,
    /// `requestNetworks`: the requesting client's address must be in one.
    pub request_networks: Option<Vec<IpNet>>,
    /// `approvalNetworks`: the approving browser's address must be in one.
    pub approval_networks: Option<Vec<IpNet>>,
    /// `scopes`: the most a device-login token of this role may carry.
    pub scopes: Option<Vec<String>>,
    /// `maxLifetimeDays`: the longest a device-login token (or refresh
    /// family) of this role may live.
    pub max_lifetime_days: Option<u32>,
    /// `stepUpScopes`: granting any of these always asks for a step-up.
    pub step_up_scopes: Vec<String>,
}

/// `DEVICE_LOGIN_POLICY`: rules per approver role; a role without an
/// entry has none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceLoginPolicy {
    roles: HashMap<Role, RolePolicy>,
}

/// One role's entry as written.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawRolePolicy {
    enabled: Option<bool>,
    request_networks: Option<Vec<String>>,
    approval_networks: Option<Vec<String>>,
    scopes: Option<Vec<String>>,
    max_lifetime_days: Option<u32>,
    step_up_scopes: Option<Vec<String>>,
}

/// Whether `net` contains `ip`, an IPv4-mapped IPv6 address counting as
/// its IPv4 address.
pub fn network_contains(net: &IpNet, ip: IpAddr) -> bool {
    net.contains(&ip.to_canonical())
}

impl RolePolicy {
    /// Whether `ip` is in one of `networks` (`None`: no restriction).
    pub fn admits(networks: Option<&[IpNet]>, ip: Option<IpAddr>) -> bool {
        match (networks, ip) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(nets), Some(ip)) => nets.iter().any(|n| network_contains(n, ip)),
        }
    }
}

impl DeviceLoginPolicy {
    /// The rules for approvers of `role`, if any.
    pub fn for_role(&self, role: Role) -> Option<&RolePolicy> {
        self.roles.get(&role)
    }

    /// Whether an approver of some role could approve a login requested
    /// from `ip`: device logins are on for that role and `ip` is in its
    /// `requestNetworks`. A role without an entry admits any address.
    pub fn some_role_admits(&self, ip: Option<IpAddr>) -> bool {
        Role::ALL.iter().any(|role| {
            self.for_role(*role)
                .is_none_or(|p| p.enabled && RolePolicy::admits(p.request_networks.as_deref(), ip))
        })
    }

    /// Parses the JSON object (`{"admin": {...}, "user": {...}}`), checking
    /// every role, key, network and scope; `name` is the variable named in
    /// errors.
    pub fn parse(name: &str, raw: &str, catalogue: &[String]) -> Result<Self, ConfigError> {
        let top: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(raw).map_err(|e| {
                err(format!(
                    "{name} must be a JSON object keyed by role (`user`, `admin`): {e}"
                ))
            })?;
        let mut roles = HashMap::new();
        for (key, value) in top {
            let role = Role::parse(&key).ok_or_else(|| {
                err(format!(
                    "{name}: `{key}` is not a role (roles are `user` and `admin`)"
                ))
            })?;
            let raw: RawRolePolicy = serde_json::from_value(value)
                .map_err(|e| err(format!("{name}: role `{key}`: {e}")))?;
            roles.insert(role, role_policy(name, &key, raw, catalogue)?);
        }
        Ok(Self { roles })
    }
}

fn role_policy(
    name: &str,
    role: &str,
    raw: RawRolePolicy,
    catalogue: &[String],
) -> Result<RolePolicy, ConfigError> {
    let at = |field: &str| format!("{name}: role `{role}`, `{field}`");
    let networks = |field: &str, list: Option<Vec<String>>| -> Result<_, ConfigError> {
        let Some(list) = list else { return Ok(None) };
        if list.is_empty() {
            return Err(err(format!(
                "{} is empty, which admits no address: leave it out to allow any, or set \"enabled\": false",
                at(field)
            )));
        }
        list.iter()
            .map(|s| parse_network(s).map_err(|m| err(format!("{}: {m}", at(field)))))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    };
    let scopes = |field: &str, list: Option<Vec<String>>, may_be_empty: bool| {
        let Some(list) = list else { return Ok(None) };
        if list.is_empty() && !may_be_empty {
            return Err(err(format!(
                "{} is empty, which allows no token: leave it out, or set \"enabled\": false",
                at(field)
            )));
        }
        if let Some(bad) = list.iter().find(|s| !catalogue.contains(s)) {
            return Err(err(format!(
                "{}: `{bad}` is not in API_TOKEN_SCOPES",
                at(field)
            )));
        }
        Ok(Some(list))
    };
    if raw
        .max_lifetime_days
        .is_some_and(|d| !(1..=36_500).contains(&d))
    {
        return Err(err(format!(
            "{} must be between 1 and 36500",
            at("maxLifetimeDays")
        )));
    }
    Ok(RolePolicy {
        enabled: raw.enabled.unwrap_or(true),
        request_networks: networks("requestNetworks", raw.request_networks)?,
        approval_networks: networks("approvalNetworks", raw.approval_networks)?,
        scopes: scopes("scopes", raw.scopes, false)?,
        max_lifetime_days: raw.max_lifetime_days,
        step_up_scopes: scopes("stepUpScopes", raw.step_up_scopes, true)?.unwrap_or_default(),
    })
}

/// A network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`) or a single
/// address; host bits must be zero, so a typo does not widen or shift it.
pub(super) fn parse_network(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(IpNet::from(ip.to_canonical()));
    }
    let net: IpNet = s
        .parse()
        .map_err(|_| format!("`{s}` is not a network like 10.0.0.0/8 or 2001:db8::/32"))?;
    if net.trunc() != net {
        return Err(format!(
            "`{s}` has bits set past its prefix length; did you mean {}?",
            net.trunc()
        ));
    }
    Ok(net)
}

/// `DEVICE_LOGIN_POLICY` or the file `DEVICE_LOGIN_POLICY_FILE` (not
/// both); unset, no rules.
pub(super) fn device_login_policy(
    vars: &HashMap<String, String>,
    catalogue: &[String],
) -> Result<DeviceLoginPolicy, ConfigError> {
    match (
        env::get(vars, "DEVICE_LOGIN_POLICY"),
        env::get(vars, "DEVICE_LOGIN_POLICY_FILE"),
    ) {
        (Some(_), Some(_)) => Err(err(
            "set DEVICE_LOGIN_POLICY or DEVICE_LOGIN_POLICY_FILE, not both",
        )),
        (Some(raw), None) => DeviceLoginPolicy::parse("DEVICE_LOGIN_POLICY", raw, catalogue),
        (None, Some(path)) => {
            let raw = std::fs::read_to_string(path).map_err(|e| {
                err(format!(
                    "DEVICE_LOGIN_POLICY_FILE {path} cannot be read: {e}"
                ))
            })?;
            DeviceLoginPolicy::parse(&format!("DEVICE_LOGIN_POLICY_FILE {path}"), &raw, catalogue)
        }
        (None, None) => Ok(DeviceLoginPolicy::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalogue() -> Vec<String> {
        ["envs:read", "envs:write", "tokens:read"]
            .map(str::to_owned)
            .to_vec()
    }

    fn parse(raw: &str) -> Result<DeviceLoginPolicy, ConfigError> {
        DeviceLoginPolicy::parse("DEVICE_LOGIN_POLICY", raw, &catalogue())
    }

    #[test]
    fn a_full_policy_parses() {
        let p = parse(
            r#"{
                "admin": {"requestNetworks": ["10.0.0.0/8", "2001:db8::/32"],
                          "approvalNetworks": ["192.0.2.7"],
                          "scopes": ["envs:read"], "maxLifetimeDays": 30,
                          "stepUpScopes": ["envs:read"]},
                "user": {"enabled": false}
            }"#,
        )
        .unwrap();
        let admin = p.for_role(Role::Admin).unwrap();
        assert!(admin.enabled);
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let req = admin.request_networks.as_deref();
        assert!(RolePolicy::admits(req, ip("10.1.2.3")));
        assert!(RolePolicy::admits(req, ip("::ffff:10.1.2.3")), "mapped");
        assert!(RolePolicy::admits(req, ip("2001:db8:5::1")));
        assert!(!RolePolicy::admits(req, ip("11.0.0.1")));
        assert!(!RolePolicy::admits(req, None), "unknown address");
        let appr = admin.approval_networks.as_deref();
        assert!(RolePolicy::admits(appr, ip("192.0.2.7")));
        assert!(!RolePolicy::admits(appr, ip("192.0.2.8")), "one address");
        assert_eq!(admin.max_lifetime_days, Some(30));
        assert_eq!(admin.step_up_scopes, ["envs:read"]);
        assert!(!p.for_role(Role::User).unwrap().enabled);
        assert!(RolePolicy::admits(None, None), "no rule");
    }

    #[test]
    fn mistakes_are_refused_naming_the_variable_and_what_is_wrong() {
        for (raw, needle) in [
            ("[]", "JSON object keyed by role"),
            (r#"{"root": {}}"#, "`root` is not a role"),
            (r#"{"admin": {"enable": false}}"#, "unknown field `enable`"),
            (
                r#"{"admin": {"requestNetworks": ["10.0.0.0/33"]}}"#,
                "10.0.0.0/33",
            ),
            (
                r#"{"admin": {"requestNetworks": ["10.0.0.1/8"]}}"#,
                "did you mean 10.0.0.0/8",
            ),
            (
                r#"{"admin": {"approvalNetworks": ["office"]}}"#,
                "`office` is not a network",
            ),
            (r#"{"admin": {"requestNetworks": []}}"#, "admits no address"),
            (
                r#"{"user": {"scopes": ["root:all"]}}"#,
                "`root:all` is not in API_TOKEN_SCOPES",
            ),
            (r#"{"user": {"scopes": []}}"#, "allows no token"),
            (
                r#"{"user": {"stepUpScopes": ["x"]}}"#,
                "`stepUpScopes`: `x`",
            ),
            (r#"{"user": {"maxLifetimeDays": 0}}"#, "maxLifetimeDays"),
            (r#"{"user": {"enabled": "no"}}"#, "role `user`"),
        ] {
            let e = parse(raw).unwrap_err();
            assert!(e.0.contains("DEVICE_LOGIN_POLICY"), "{raw}: {e}");
            assert!(e.0.contains(needle), "{raw}: {e}");
        }
    }

    #[test]
    fn starts_are_admitted_while_some_role_could_approve() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert!(DeviceLoginPolicy::default().some_role_admits(None));
        let admins_only_inside =
            parse(r#"{"user": {"enabled": false}, "admin": {"requestNetworks": ["10.0.0.0/8"]}}"#)
                .unwrap();
        assert!(admins_only_inside.some_role_admits(ip("10.9.9.9")));
        assert!(!admins_only_inside.some_role_admits(ip("203.0.113.9")));
        let users_unrestricted = parse(r#"{"admin": {"enabled": false}}"#).unwrap();
        assert!(users_unrestricted.some_role_admits(ip("203.0.113.9")));
    }

    #[test]
    fn the_variable_or_its_file_not_both() {
        let dir = std::env::temp_dir().join(format!(
            "envshield-device-policy-{}-{}",
            std::process::id(),
            hex::encode(crate::crypto::random_bytes::<4>())
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("policy.json");
        std::fs::write(&file, r#"{"user": {"maxLifetimeDays": 7}}"#).unwrap();
        let path = file.display().to_string();
        let vars = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let from_file = device_login_policy(
            &vars(&[("DEVICE_LOGIN_POLICY_FILE", path.as_str())]),
            &catalogue(),
        )
        .unwrap();
        assert_eq!(
            from_file.for_role(Role::User).unwrap().max_lifetime_days,
            Some(7)
        );
        let both = vars(&[
            ("DEVICE_LOGIN_POLICY_FILE", path.as_str()),
            ("DEVICE_LOGIN_POLICY", "{}"),
        ]);
        assert!(device_login_policy(&both, &catalogue())
            .unwrap_err()
            .0
            .contains("not both"));
        std::fs::write(&file, r#"{"user": {"scope": []}}"#).unwrap();
        let e = device_login_policy(
            &vars(&[("DEVICE_LOGIN_POLICY_FILE", path.as_str())]),
            &catalogue(),
        )
        .unwrap_err();
        assert!(e.0.contains("DEVICE_LOGIN_POLICY_FILE"), "{e}");
        let missing = vars(&[("DEVICE_LOGIN_POLICY_FILE", "/nonexistent/policy.json")]);
        assert!(device_login_policy(&missing, &catalogue())
            .unwrap_err()
            .0
            .contains("cannot be read"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
