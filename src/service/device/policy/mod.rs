//! The rules of a device login that need no database, unit-tested where
//! they live: token names, the scopes asked for and granted, lifetimes, who
//! may approve what and the per-account token cap (`scopes`); how the
//! token is collected and when the paste-back code is needed
//! (`confirmation`); when an approval needs a step-up (`step_up`); and the
//! per-role rules of `DEVICE_LOGIN_POLICY` (`rules`).

mod confirmation;
pub mod rules;
mod scopes;
mod step_up;
#[cfg(test)]
pub(crate) mod test_support;

pub use confirmation::{
    can_paste, confirmation, oauth_confirmation, paste_reasons, same_network, PasteReason,
};
pub use rules::{capped_lifetime, check_rules, Refusal, POLICY_ERROR};
pub use scopes::{
    check_approver, check_token_cap, granted_lifetime_days, granted_scopes, requested_scopes,
    shorter_lifetimes, token_expiry, token_name, user_agent, MAX_USER_AGENT_CHARS,
};
pub use step_up::{step_up_reasons, StepUpReason};

use std::net::IpAddr;

use crate::domain::Role;

/// What an approval would grant, as the policy rules and step-up see it.
#[derive(Debug, Clone, Copy)]
pub struct Approval<'a> {
    /// The approver's role.
    pub role: Role,
    /// Where the request came from, as stored.
    pub requested_from: Option<&'a str>,
    /// The approver's browser.
    pub approver_ip: IpAddr,
    /// The scopes the token would carry.
    pub scopes: &'a [String],
    /// How long it would live, in days (`None`: for ever).
    pub lifetime_days: Option<u32>,
    /// The lifetime is the client's (a refresh family), not the approver's
    /// choice.
    pub fixed_lifetime: bool,
}
