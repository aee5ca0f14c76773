//! Security events: a row in `security_events` and a tracing event, never a secret.

use serde_json::Value;
use uuid::Uuid;

use crate::db::models::security_events::{self, NewSecurityEvent};
use crate::db::Db;

/// How serious an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Routine.
    Low,
    /// Worth a look.
    Medium,
    /// Likely an attack or a leak.
    High,
}

impl Severity {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

/// Kinds of event, stored by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A CLI started a device login.
    CliDeviceStart,
    /// A person approved one.
    CliDeviceApproved,
    /// A person denied one.
    CliDeviceDenied,
    /// The CLI cancelled one.
    CliDeviceCancelled,
    /// A token was minted (shown to its owner as an alert).
    CliTokenCreated,
    /// A token was revoked.
    CliTokenRevoked,
    /// A client hit a rate limit.
    CliRateLimitExceeded,
    /// A consumed device code was polled again: the code may have leaked.
    CliDeviceCodeReused,
    /// A spent refresh token was presented again; its family was revoked.
    RefreshTokenReused,
    /// A refresh token was rotated.
    TokenRefreshed,
    /// A wrong paste-back confirmation code was entered.
    ConfirmationFailed,
    /// A browser sign-in failed.
    LoginFailed,
    /// A browser sign-in succeeded.
    LoginSucceeded,
    /// Browser sessions were ended: signed out, or ended from elsewhere.
    SessionsEnded,
    /// A person changed their password.
    PasswordChanged,
    /// An admin or operator set a new password for an account.
    PasswordReset,
    /// An account was created by an admin or operator.
    AccountCreated,
    /// An account was disabled: sessions ended, tokens revoked.
    AccountDisabled,
    /// A disabled account was enabled again.
    AccountEnabled,
    /// An account's role changed.
    RoleChanged,
    /// A person signed in through an OpenID Connect provider.
    SsoSignIn,
    /// A provider identity was linked to an account (by verified email, or
    /// to the account created for it).
    SsoLink,
    /// A sign-in through a provider was refused; `details.reason` says why.
    SsoRefused,
    /// A person registered a passkey.
    PasskeyAdded,
    /// A passkey was removed, by its owner or by an admin.
    PasskeyRemoved,
    /// A person signed in with a passkey.
    PasskeySignIn,
    /// An approval asked for a fresh passkey assertion or password, and got it.
    StepUpPassed,
    /// An approval asked for a fresh passkey assertion or password, and did not get it.
    StepUpFailed,
    /// `DEVICE_LOGIN_POLICY` refused an approval (or it needed a paste-back
    /// code its client cannot type); details name the role and the rule.
    DeviceLoginRefused,
    /// A login started with a DPoP key was polled without a proof by that
    /// key: its device code is in other hands.
    DpopPickupRefused,
    /// A person approved an authorization-code request (consent page).
    OAuthAuthorized,
    /// A person denied one.
    OAuthDenied,
    /// An authorization code was presented again, or with a wrong PKCE
    /// verifier: what it issued was revoked.
    AuthorizationCodeReused,
}

impl EventKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CliDeviceStart => "cli_device_start",
            Self::CliDeviceApproved => "cli_device_approved",
            Self::CliDeviceDenied => "cli_device_denied",
            Self::CliDeviceCancelled => "cli_device_cancelled",
            Self::CliTokenCreated => "cli_token_created",
            Self::CliTokenRevoked => "cli_token_revoked",
            Self::CliRateLimitExceeded => "cli_rate_limit_exceeded",
            Self::CliDeviceCodeReused => "cli_device_code_reused",
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::TokenRefreshed => "token_refreshed",
            Self::ConfirmationFailed => "cli_confirmation_failed",
            Self::LoginFailed => "login_failed",
            Self::LoginSucceeded => "login_succeeded",
            Self::SessionsEnded => "sessions_ended",
            Self::PasswordChanged => "password_changed",
            Self::PasswordReset => "password_reset",
            Self::AccountCreated => "account_created",
            Self::AccountDisabled => "account_disabled",
            Self::AccountEnabled => "account_enabled",
            Self::RoleChanged => "role_changed",
            Self::SsoSignIn => "sso_sign_in",
            Self::SsoLink => "sso_link",
            Self::SsoRefused => "sso_refused",
            Self::PasskeyAdded => "passkey_added",
            Self::PasskeyRemoved => "passkey_removed",
            Self::PasskeySignIn => "passkey_sign_in",
            Self::StepUpPassed => "step_up_passed",
            Self::StepUpFailed => "step_up_failed",
            Self::DeviceLoginRefused => "device_login_refused",
            Self::DpopPickupRefused => "dpop_pickup_refused",
            Self::OAuthAuthorized => "oauth_authorized",
            Self::OAuthDenied => "oauth_denied",
            Self::AuthorizationCodeReused => "authorization_code_reused",
        }
    }
}

/// One event to record.
#[derive(Debug)]
pub struct Event<'a> {
    /// What happened.
    pub kind: EventKind,
    /// How serious.
    pub severity: Severity,
    /// Account concerned.
    pub user_id: Option<Uuid>,
    /// Token concerned.
    pub token_id: Option<Uuid>,
    /// Client IP.
    pub ip: Option<&'a str>,
    /// Extra facts; never a token, code, password or cookie.
    pub details: Value,
}

impl<'a> Event<'a> {
    /// An event with no account, token or details yet.
    pub fn new(kind: EventKind, severity: Severity, ip: Option<&'a str>) -> Self {
        Self {
            kind,
            severity,
            user_id: None,
            token_id: None,
            ip,
            details: Value::Object(Default::default()),
        }
    }

    /// Sets the account.
    pub fn user(mut self, id: Uuid) -> Self {
        self.user_id = Some(id);
        self
    }

    /// Sets the token.
    pub fn token(mut self, id: Uuid) -> Self {
        self.token_id = Some(id);
        self
    }

    /// Sets the account and token, when known.
    pub fn about(mut self, user_id: Option<Uuid>, token_id: Option<Uuid>) -> Self {
        self.user_id = user_id;
        self.token_id = token_id;
        self
    }

    /// Sets the details.
    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

/// Writes the event to the audit table, queues its notices (mail, webhook:
/// see [`crate::service::notices`]) in the same transaction, and logs it
/// once it is committed (an event rolled back with its transaction is
/// never logged, and its notices never leave).
pub fn record(conn: &mut Db<'_>, event: Event<'_>) -> diesel::QueryResult<()> {
    security_events::insert(conn, &row(&event))?;
    crate::service::notices::queue(conn, &event)?;
    committed(conn, &event);
    Ok(())
}

/// The row to store, for callers that store it in the same statement as
/// their own change; they call [`committed`] once that statement succeeds.
/// Such events queue no notice: kinds that are told to the account
/// ([`crate::service::notices::is_notice`]) go through [`record`].
pub fn row<'a>(event: &'a Event<'a>) -> NewSecurityEvent<'a> {
    NewSecurityEvent {
        kind: event.kind.as_str(),
        severity: event.severity.as_str(),
        user_id: event.user_id,
        token_id: event.token_id,
        ip: event.ip,
        details: event.details.clone(),
    }
}

/// Logs the event once the change that stored it is committed.
pub fn committed(conn: &mut Db<'_>, event: &Event<'_>) {
    conn.after_commit(announcement(event));
}

/// Logs an event whose row is already committed.
pub fn announce(event: &Event<'_>) {
    announcement(event)();
}

/// The log line and metric of an event, to emit once it is committed.
fn announcement(event: &Event<'_>) -> Box<dyn FnOnce() + Send> {
    let kind = event.kind.as_str();
    // Nothing to copy when the log would drop the line anyway.
    if !tracing::enabled!(target: "security", tracing::Level::INFO) {
        return Box::new(move || crate::metrics::security_event(kind));
    }
    let severity = event.severity.as_str();
    let (user_id, token_id) = (event.user_id, event.token_id);
    let ip = event.ip.map(str::to_owned);
    let details = event.details.to_string();
    Box::new(move || {
        crate::metrics::security_event(kind);
        tracing::info!(
            target: "security",
            kind,
            severity,
            user_id = ?user_id,
            token_id = ?token_id,
            ip = ip.as_deref(),
            details = %details,
            "security event"
        );
    })
}
