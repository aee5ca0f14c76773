//! `DEVICE_LOGIN_POLICY`: the per-role rules an approval must pass, and the
//! refusal that names the rule it broke.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{json, Value};

use crate::config::{DeviceLoginPolicy, RolePolicy};
use crate::domain::Role;
use crate::error::AppError;

use super::Approval;

/// The error code of every refusal by the policy.
pub const POLICY_ERROR: &str = "device_login_policy";

/// An approval the policy (or the confirmation it needs) refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The stable error code.
    pub code: &'static str,
    /// The approver's role.
    pub role: Role,
    /// The rule that refused: a key of the role's policy, or
    /// `DEVICE_CONFIRMATION`.
    pub rule: &'static str,
    /// What the approver reads.
    pub message: String,
    /// Facts for the audit event (never a secret).
    pub details: Value,
}

impl Refusal {
    /// The 403 the approver gets.
    pub fn error(&self) -> AppError {
        AppError::forbidden(self.code, self.message.clone())
    }
}

fn list(nets: &[IpNet]) -> String {
    nets.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn refuse(role: Role, rule: &'static str, message: String, details: Value) -> Refusal {
    Refusal {
        code: POLICY_ERROR,
        role,
        rule,
        message,
        details,
    }
}

/// The longest lifetime offered to an approver of a role: the configured
/// one, capped by the role's `maxLifetimeDays` (`None`: for ever).
pub fn capped_lifetime(configured: Option<u32>, cap: Option<u32>) -> Option<u32> {
    match (configured, cap) {
        (Some(days), Some(cap)) => Some(days.min(cap)),
        (days, None) => days,
        (None, cap) => cap,
    }
}

/// Checks an approval against the rules of the approver's role, in the
/// order `enabled`, `requestNetworks`, `approvalNetworks`, `scopes`,
/// `maxLifetimeDays`; the first broken rule refuses.
pub fn check_rules(policy: &DeviceLoginPolicy, facts: &Approval<'_>) -> Result<(), Refusal> {
    let Some(rules) = policy.for_role(facts.role) else {
        return Ok(());
    };
    let role = facts.role;
    let whom = format!("Your organisation's policy for accounts with the `{role}` role");
    if !rules.enabled {
        return Err(refuse(
            role,
            "enabled",
            format!("{whom} turns device logins off (rule enabled). Approve with another account, or ask an administrator."),
            json!({}),
        ));
    }
    if let Some(nets) = &rules.request_networks {
        let from = facts
            .requested_from
            .and_then(|ip| ip.parse::<IpAddr>().ok());
        if !RolePolicy::admits(Some(nets), from) {
            return Err(refuse(
                role,
                "requestNetworks",
                format!(
                    "{whom} allows device logins only from {}; this request came from {} (rule requestNetworks).",
                    list(nets),
                    facts.requested_from.unwrap_or("an unknown address")
                ),
                json!({ "requested_from": facts.requested_from }),
            ));
        }
    }
    if let Some(nets) = &rules.approval_networks {
        if !RolePolicy::admits(Some(nets), Some(facts.approver_ip)) {
            return Err(refuse(
                role,
                "approvalNetworks",
                format!(
                    "{whom} allows approving device logins only from {}; this browser is at {} (rule approvalNetworks).",
                    list(nets),
                    facts.approver_ip
                ),
                json!({}),
            ));
        }
    }
    if let Some(allowed) = &rules.scopes {
        let beyond: Vec<&String> = facts
            .scopes
            .iter()
            .filter(|s| !allowed.contains(s))
            .collect();
        if !beyond.is_empty() {
            let beyond: Vec<&str> = beyond.iter().map(|s| s.as_str()).collect();
            return Err(refuse(
                role,
                "scopes",
                format!(
                    "{whom} allows device-login tokens with at most these scopes: {}. Untick {} (rule scopes).",
                    allowed.join(", "),
                    beyond.join(", ")
                ),
                json!({ "scopes": beyond }),
            ));
        }
    }
    if let Some(cap) = rules.max_lifetime_days {
        if facts.lifetime_days.is_none_or(|d| d > cap) {
            let lives = facts
                .lifetime_days
                .map_or("never expire".to_owned(), |d| format!("live {d} days"));
            let fix = if facts.fixed_lifetime {
                "Sign-ins through this client last that long (REFRESH_TOKEN_ABSOLUTE_DAYS); ask an operator."
            } else {
                "Pick a shorter expiry."
            };
            return Err(refuse(
                role,
                "maxLifetimeDays",
                format!(
                    "{whom} allows device-login tokens to live at most {cap} days; this one would {lives} (rule maxLifetimeDays). {fix}"
                ),
                json!({ "lifetime_days": facts.lifetime_days, "max_lifetime_days": cap }),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DeviceLoginPolicy;

    fn policy(raw: &str) -> DeviceLoginPolicy {
        let catalogue = ["envs:read", "envs:write", "tokens:read"]
            .map(str::to_owned)
            .to_vec();
        DeviceLoginPolicy::parse("DEVICE_LOGIN_POLICY", raw, &catalogue).unwrap()
    }

    fn facts<'a>(role: Role, scopes: &'a [String]) -> Approval<'a> {
        Approval {
            role,
            requested_from: Some("10.1.2.3"),
            approver_ip: "10.9.9.9".parse().unwrap(),
            scopes,
            lifetime_days: Some(30),
            fixed_lifetime: false,
        }
    }

    fn rule(p: &DeviceLoginPolicy, f: &Approval<'_>) -> Option<&'static str> {
        check_rules(p, f).err().map(|r| r.rule)
    }

    #[test]
    fn a_role_without_rules_passes_everything() {
        let p = policy(r#"{"admin": {"enabled": false}}"#);
        let scopes = ["envs:write".to_owned()];
        let mut f = facts(Role::User, &scopes);
        f.requested_from = None;
        f.lifetime_days = None;
        assert_eq!(check_rules(&p, &f), Ok(()));
        assert_eq!(check_rules(&DeviceLoginPolicy::default(), &f), Ok(()));
    }

    #[test]
    fn each_rule_refuses_and_names_itself() {
        let read = ["envs:read".to_owned()];
        let off = policy(r#"{"admin": {"enabled": false}}"#);
        let refusal = check_rules(&off, &facts(Role::Admin, &read)).unwrap_err();
        assert_eq!(refusal.rule, "enabled");
        assert_eq!(refusal.error().code(), "device_login_policy");
        assert!(refusal
            .message
            .contains("`admin` role turns device logins off"));

        let inside = policy(r#"{"admin": {"requestNetworks": ["10.0.0.0/8"]}}"#);
        let mut f = facts(Role::Admin, &read);
        assert_eq!(check_rules(&inside, &f), Ok(()));
        f.requested_from = Some("203.0.113.9");
        let refusal = check_rules(&inside, &f).unwrap_err();
        assert_eq!(refusal.rule, "requestNetworks");
        assert_eq!(
            refusal.message,
            "Your organisation's policy for accounts with the `admin` role allows device logins only from 10.0.0.0/8; this request came from 203.0.113.9 (rule requestNetworks)."
        );
        f.requested_from = Some("garbage");
        assert_eq!(rule(&inside, &f), Some("requestNetworks"), "unreadable");

        let office = policy(r#"{"user": {"approvalNetworks": ["10.9.0.0/16", "2001:db8::/48"]}}"#);
        let mut f = facts(Role::User, &read);
        assert_eq!(rule(&office, &f), None);
        f.approver_ip = "::ffff:10.9.1.1".parse().unwrap();
        assert_eq!(rule(&office, &f), None, "IPv4-mapped");
        f.approver_ip = "2001:db8:0:1::5".parse().unwrap();
        assert_eq!(rule(&office, &f), None);
        f.approver_ip = "10.10.0.1".parse().unwrap();
        let refusal = check_rules(&office, &f).unwrap_err();
        assert_eq!(refusal.rule, "approvalNetworks");
        assert!(refusal.message.contains("10.9.0.0/16, 2001:db8::/48"));
        assert!(refusal.message.contains("this browser is at 10.10.0.1"));
    }

    #[test]
    fn scopes_and_lifetime_are_capped() {
        let p = policy(r#"{"user": {"scopes": ["envs:read"], "maxLifetimeDays": 30}}"#);
        let read = ["envs:read".to_owned()];
        let write = ["envs:read".to_owned(), "envs:write".to_owned()];
        assert_eq!(check_rules(&p, &facts(Role::User, &read)), Ok(()));
        let refusal = check_rules(&p, &facts(Role::User, &write)).unwrap_err();
        assert_eq!(refusal.rule, "scopes");
        assert!(refusal.message.contains("Untick envs:write"), "{refusal:?}");
        assert_eq!(refusal.details["scopes"], json!(["envs:write"]));

        let mut f = facts(Role::User, &read);
        f.lifetime_days = Some(31);
        let refusal = check_rules(&p, &f).unwrap_err();
        assert_eq!(refusal.rule, "maxLifetimeDays");
        assert!(refusal.message.contains("would live 31 days"));
        assert!(refusal.message.contains("Pick a shorter expiry"));
        f.lifetime_days = None;
        assert!(check_rules(&p, &f)
            .unwrap_err()
            .message
            .contains("would never expire"));
        f.lifetime_days = Some(90);
        f.fixed_lifetime = true;
        assert!(check_rules(&p, &f)
            .unwrap_err()
            .message
            .contains("REFRESH_TOKEN_ABSOLUTE_DAYS"));
    }

    #[test]
    fn the_offered_lifetime_is_the_shorter_of_configured_and_cap() {
        assert_eq!(capped_lifetime(Some(365), Some(30)), Some(30));
        assert_eq!(capped_lifetime(Some(7), Some(30)), Some(7));
        assert_eq!(capped_lifetime(None, Some(30)), Some(30), "never: the cap");
        assert_eq!(capped_lifetime(Some(365), None), Some(365));
        assert_eq!(capped_lifetime(None, None), None);
    }
}
