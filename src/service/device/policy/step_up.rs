//! When an approval asks the approver to prove it is them again
//! (`APPROVAL_STEP_UP`, and a role's `stepUpScopes` in
//! `DEVICE_LOGIN_POLICY`), and why, in words.

use crate::config::{ApprovalStepUp, Config};
use crate::domain::Role;

use super::confirmation::same_network;
use super::Approval;

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
    /// The token would carry scopes of the approver's role's
    /// `stepUpScopes` in `DEVICE_LOGIN_POLICY` (asked whatever
    /// `APPROVAL_STEP_UP` says).
    PolicyScopes {
        /// The approver's role.
        role: Role,
        /// Those scopes.
        scopes: Vec<String>,
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
            Self::PolicyScopes { .. } => "policy_step_up_scope",
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
            Self::PolicyScopes { role, scopes } => format!(
                "Your organisation's policy asks for it whenever an account with the `{role}` role grants {} (rule stepUpScopes).",
                scopes.join(", ")
            ),
        }
    }
}

/// Why this approval needs a step-up under `APPROVAL_STEP_UP` and the
/// approver's role's `stepUpScopes`; empty when it does not. Denying never
/// does: this is asked of approvals only.
pub fn step_up_reasons(config: &Config, approval: &Approval<'_>) -> Vec<StepUpReason> {
    let mut reasons = server_reasons(config, approval);
    let policy_scopes: Vec<String> = config
        .device_login_policy
        .for_role(approval.role)
        .map(|p| {
            approval
                .scopes
                .iter()
                .filter(|s| p.step_up_scopes.contains(s))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    if !policy_scopes.is_empty() {
        reasons.push(StepUpReason::PolicyScopes {
            role: approval.role,
            scopes: policy_scopes,
        });
    }
    reasons
}

/// The reasons `APPROVAL_STEP_UP` gives.
fn server_reasons(config: &Config, approval: &Approval<'_>) -> Vec<StepUpReason> {
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
    use std::net::IpAddr;

    use super::*;

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
            role: Role::User,
            requested_from: Some("198.51.100.7"),
            approver_ip: here,
            scopes: &read,
            lifetime_days: Some(30),
            fixed_lifetime: false,
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
}
