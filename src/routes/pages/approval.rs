//! What the two approval pages share (the device flow's `/cli/login` and the
//! consent page of `/oauth/authorize`): the scope checkboxes, the expiry
//! choices, and the step-up prompt with its form fields.

use std::future::Future;
use std::net::IpAddr;

use actix_web::http::StatusCode;
use secrecy::{ExposeSecret, SecretString};

use crate::config::Config;
use crate::error::AppError;
use crate::routes::extract::Viewer;
use crate::service::device::policy::{self, StepUpReason};
use crate::service::grants::Decision;
use crate::service::passkeys;
use crate::service::step_up::{self, StepUpRefused, Subject};
use crate::service::AppState;

use super::PageError;

/// One scope checkbox.
pub(super) struct ScopeChoice {
    /// The `id` of the input (scopes contain `:`, so an index is used).
    pub(super) id: String,
    /// The scope.
    pub(super) name: String,
    /// What it allows, from the catalogue.
    pub(super) description: Option<String>,
    /// Ticked.
    pub(super) checked: bool,
    /// The approver may grant it (`DEVICE_LOGIN_POLICY`'s `scopes`).
    pub(super) allowed: bool,
}

impl ScopeChoice {
    /// A checkbox per scope asked for, ticked unless a previous submission
    /// left it out.
    pub(super) fn list(asked: &[String], chosen: Option<&[String]>, config: &Config) -> Vec<Self> {
        asked
            .iter()
            .enumerate()
            .map(|(i, s)| Self {
                id: format!("scope-{i}"),
                name: s.clone(),
                description: config.scope_description(s).map(str::to_owned),
                checked: chosen.is_none_or(|c| c.contains(s)),
                allowed: true,
            })
            .collect()
    }
}

/// One option of the expiry select.
pub(super) struct ExpiryChoice {
    /// Days, or empty for the configured default.
    pub(super) value: String,
    /// What the person reads.
    pub(super) label: String,
    /// Pre-selected.
    pub(super) selected: bool,
}

fn days(d: u32) -> String {
    if d == 1 {
        "1 day".to_owned()
    } else {
        format!("{d} days")
    }
}

/// Lifetimes shorter than the configured one, then the configured default
/// (the empty value, which lets the server apply it).
pub(super) fn expiry_choices(max_days: Option<u32>, chosen: Option<u32>) -> Vec<ExpiryChoice> {
    let mut choices: Vec<ExpiryChoice> = policy::shorter_lifetimes(max_days)
        .map(|d| ExpiryChoice {
            value: d.to_string(),
            label: days(d),
            selected: chosen == Some(d),
        })
        .collect();
    let any_selected = choices.iter().any(|c| c.selected);
    choices.push(ExpiryChoice {
        value: String::new(),
        label: match max_days {
            Some(m) => format!("{} (default)", days(m)),
            None => "Never (default)".to_owned(),
        },
        selected: !any_selected,
    });
    choices
}

/// The expiry a form chose: days, or `None` for the default.
fn chosen_expiry(raw: Option<&str>) -> Result<Option<u32>, AppError> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(d) => d
            .parse::<u32>()
            .map(Some)
            .map_err(|_| AppError::bad_request("invalid_expiry", "Pick an expiry from the list.")),
    }
}

/// What an approval form chose: Approve or Deny, the scopes left ticked
/// (the field repeats, one per box), the lifetime, and the step-up fields.
#[derive(Debug, Default)]
pub(super) struct ApprovalChoice {
    decision: Option<String>,
    scopes: Vec<String>,
    expires_in_days: Option<String>,
    step_up: StepUpFields,
}

impl ApprovalChoice {
    /// Reads the fields of an approval form: the choice, and the CSRF token
    /// (returned beside it); each other field goes to `other`, the page's own.
    pub(super) fn read(
        pairs: Vec<(String, String)>,
        mut other: impl FnMut(String, String),
    ) -> (Self, String) {
        let mut choice = Self::default();
        let mut csrf_token = String::new();
        for (key, value) in pairs {
            match key.as_str() {
                "csrf_token" => csrf_token = value,
                "decision" => choice.decision = Some(value),
                "scopes" => choice.scopes.push(value),
                "expires_in_days" => choice.expires_in_days = Some(value),
                k if choice.step_up.take(k, &value) => {}
                _ => other(key, value),
            }
        }
        (choice, csrf_token)
    }

    /// The scopes left ticked.
    pub(super) fn scopes(&self) -> &[String] {
        &self.scopes
    }

    fn expires_in_days(&self) -> Result<Option<u32>, AppError> {
        chosen_expiry(self.expires_in_days.as_deref())
    }

    /// The lifetime to keep selected when the form comes back: `None` for
    /// the default, or for one that could not be read.
    pub(super) fn kept_expiry(&self) -> Option<u32> {
        self.expires_in_days().ok().flatten()
    }

    fn approve(&self) -> Result<bool, AppError> {
        match self.decision.as_deref() {
            Some("approve") if self.scopes.is_empty() => Err(AppError::bad_request(
                "invalid_scope",
                "Keep at least one scope ticked, or choose Deny.",
            )),
            Some("approve") => Ok(true),
            Some("deny") => Ok(false),
            _ => Err(AppError::bad_request(
                "invalid_decision",
                "Choose Approve or Deny.",
            )),
        }
    }

    /// What `viewer` decided about `request`. A choice that cannot be
    /// taken is a 400. An approval goes with the step-up proof the page's
    /// script earned with a passkey, or else with one earned now with the
    /// password typed into the form, for the approval of `subject` (awaited
    /// only then); a password the server does not take is a
    /// [`STEP_UP_FAILED`] 403 that says why. Denying spends no proof.
    pub(super) async fn decided<R>(
        &mut self,
        state: &AppState,
        viewer: &Viewer,
        request: R,
        subject: impl Future<Output = Result<Subject, AppError>>,
        ip: IpAddr,
    ) -> Result<Decision<R>, AppError> {
        let mut decision = Decision {
            request,
            approve: self.approve()?,
            scopes: None,
            expires_in_days: None,
            approver: viewer.user.clone(),
            approver_session: viewer.session_id,
            client_ip: ip,
            step_up_proof: None,
        };
        if !decision.approve {
            return Ok(decision);
        }
        decision.expires_in_days = self.expires_in_days()?;
        decision.scopes = Some(self.scopes.clone());
        decision.step_up_proof = match self.step_up.password_instead() {
            Some(password) => {
                let subject = subject.await?;
                Some(prove_with_password(state, viewer, subject, password, ip).await?)
            }
            None => self.step_up.proof.clone(),
        };
        Ok(decision)
    }
}

/// How the approver proves it is them, when `APPROVAL_STEP_UP` asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProveWith {
    /// A fresh assertion with one of the account's passkeys (the script).
    Passkey,
    /// The password again, typed into the form.
    Password,
    /// Neither is possible: no passkey, and `PASSWORD_LOGIN=false`.
    Nothing,
}

/// The step-up part of an approval page: why, and how.
pub(super) struct StepUpPrompt {
    /// Each reason, in words.
    pub(super) reasons: Vec<String>,
    /// How.
    with: ProveWith,
}

impl StepUpPrompt {
    pub(super) fn passkey(&self) -> bool {
        self.with == ProveWith::Passkey
    }

    pub(super) fn password(&self) -> bool {
        self.with == ProveWith::Password
    }

    /// The prompt for an approval that needs a step-up for `reasons`;
    /// `None` when there are none.
    pub(super) async fn for_reasons(
        state: &AppState,
        viewer: &Viewer,
        reasons: &[StepUpReason],
    ) -> Result<Option<Self>, PageError> {
        if reasons.is_empty() {
            return Ok(None);
        }
        let has_passkeys = passkeys::count(state, viewer.user.id).await? > 0;
        let with = if has_passkeys && passkeys::available(state) {
            ProveWith::Passkey
        } else if state.config.password_login {
            ProveWith::Password
        } else {
            ProveWith::Nothing
        };
        Ok(Some(Self {
            reasons: reasons.iter().map(StepUpReason::sentence).collect(),
            with,
        }))
    }
}

/// The step-up fields of an approval form.
#[derive(Debug, Default)]
struct StepUpFields {
    /// The proof a passkey step-up earned (set by the page's script).
    proof: Option<String>,
    /// The password, typed again (accounts without a passkey).
    password: Option<SecretString>,
}

impl StepUpFields {
    /// Takes `key` if it is a step-up field; `false` when it is not.
    fn take(&mut self, key: &str, value: &str) -> bool {
        match key {
            "step_up_proof" => self.proof = Some(value.to_owned()).filter(|v| !v.is_empty()),
            "step_up_password" => {
                self.password = Some(SecretString::from(value.to_owned()))
                    .filter(|p| !p.expose_secret().is_empty());
            }
            _ => return false,
        }
        true
    }

    /// The typed password, when no proof came with the form: a step-up
    /// is to be earned with it ([`prove_with_password`]).
    fn password_instead(&mut self) -> Option<SecretString> {
        let password = self.password.take();
        password.filter(|_| self.proof.is_none())
    }
}

/// The code of a step-up password the server did not take.
pub(super) const STEP_UP_FAILED: &str = "step_up_failed";

/// A proof for approving `subject`, earned with the typed `password`; a
/// refusal is a [`STEP_UP_FAILED`] 403 with the reason, for the page.
async fn prove_with_password(
    state: &AppState,
    viewer: &Viewer,
    subject: Subject,
    password: SecretString,
    ip: IpAddr,
) -> Result<String, AppError> {
    let proved = step_up::prove_with_password(
        state,
        &viewer.user,
        viewer.session_id,
        subject,
        password,
        ip,
    )
    .await?;
    proved.map_err(|StepUpRefused(message)| AppError::forbidden(STEP_UP_FAILED, message))
}

/// What the page says when an approval came without a fitting proof.
pub(super) fn step_up_refusal(problem: &str) -> (StatusCode, String) {
    let message = match problem {
        "missing" => "Confirm it is you before approving: the reasons are listed below.",
        "expired" => "Your confirmation has expired. Confirm it is you again, then approve.",
        _ => "Your confirmation was not for this request. Confirm it is you again, then approve.",
    };
    (StatusCode::FORBIDDEN, message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_offers_shorter_lifetimes_then_the_default() {
        let labels = |c: Vec<ExpiryChoice>| {
            c.into_iter()
                .map(|c| (c.value, c.label, c.selected))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            labels(expiry_choices(Some(365), None)),
            [
                ("7".into(), "7 days".into(), false),
                ("30".into(), "30 days".into(), false),
                ("90".into(), "90 days".into(), false),
                (String::new(), "365 days (default)".into(), true),
            ]
        );
        let never = labels(expiry_choices(None, Some(30)));
        assert_eq!(never.len(), 5);
        assert!(never[1].2, "30 stays selected");
        assert_eq!(never[4].1, "Never (default)");
        assert!(!never[4].2);
        assert_eq!(
            labels(expiry_choices(Some(1), None)),
            [(String::new(), "1 day (default)".into(), true)]
        );
    }

    #[test]
    fn approval_choice_reads_its_fields_and_hands_on_the_others() {
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        let mut others = Vec::new();
        let (choice, csrf_token) = ApprovalChoice::read(
            vec![
                pair("code", "BCDF-GHJK"),
                pair("decision", "approve"),
                pair("scopes", "envs:read"),
                pair("scopes", "tokens:read"),
                pair("expires_in_days", "30"),
                pair("step_up_proof", "p"),
                pair("csrf_token", "t"),
            ],
            |k, v| others.push((k, v)),
        );
        assert_eq!(csrf_token, "t");
        assert_eq!(others, [pair("code", "BCDF-GHJK")]);
        assert_eq!(choice.scopes(), ["envs:read", "tokens:read"]);
        assert!(choice.approve().unwrap());
        assert_eq!(choice.kept_expiry(), Some(30));
        assert_eq!(choice.step_up.proof.as_deref(), Some("p"));
        let read =
            |decision: &str| ApprovalChoice::read(vec![pair("decision", decision)], |_, _| {}).0;
        assert!(!read("deny").approve().unwrap());
        assert!(read("approve").approve().is_err(), "no scope ticked");
        assert!(read("maybe").approve().is_err());
    }

    #[test]
    fn step_up_fields_are_taken_and_empty_ones_dropped() {
        let mut f = StepUpFields::default();
        assert!(f.take("step_up_proof", ""));
        assert!(f.proof.is_none());
        assert!(f.take("step_up_proof", "p"));
        assert_eq!(f.proof.as_deref(), Some("p"));
        assert!(f.take("step_up_password", ""));
        assert!(f.password.is_none());
        assert!(!f.take("scopes", "envs:read"));
        assert_eq!(chosen_expiry(Some(" 30 ")).unwrap(), Some(30));
        assert_eq!(chosen_expiry(Some("")).unwrap(), None);
        assert!(chosen_expiry(Some("soon")).is_err());
    }
}
