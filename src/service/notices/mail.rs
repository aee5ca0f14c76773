//! The mail of a notice: subject and plain-text body built from the queued
//! payload, and its sending through `SMTP_URL`.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::config::Smtp;

/// How long one SMTP command may take before the attempt fails.
const SMTP_TIMEOUT: Duration = Duration::from_secs(15);

/// A subject and a plain-text body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    /// The subject line.
    pub subject: String,
    /// The body.
    pub body: String,
}

/// A string field of the payload (`details.` fields by their path).
fn text<'a>(payload: &'a Value, pointer: &str) -> Option<&'a str> {
    payload
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// A time as people read it: `2026-11-30 06:12 UTC`.
fn when(raw: Option<&str>) -> Option<String> {
    let t = chrono::DateTime::parse_from_rfc3339(raw?).ok()?;
    Some(
        t.with_timezone(&chrono::Utc)
            .format("%Y-%m-%d %H:%M UTC")
            .to_string(),
    )
}

/// Lines `label: value`, aligned, for the values that are there.
fn facts(rows: &[(&str, Option<String>)]) -> String {
    let width = rows
        .iter()
        .filter(|(_, v)| v.is_some())
        .map(|(l, _)| l.len() + 1)
        .max()
        .unwrap_or(0);
    rows.iter()
        .filter_map(|(label, value)| {
            value
                .as_ref()
                .map(|v| format!("  {label:<width$}  {v}\n", label = format!("{label}:")))
        })
        .collect()
}

/// The mail for a queued notice. `app_base` is `APP_URL` without a trailing
/// slash. Only what the payload holds is used, and the payload never holds
/// a token, code or password.
pub fn letter(payload: &Value, app_base: &str) -> Letter {
    let kind = text(payload, "/kind").unwrap_or("security_event");
    let email = text(payload, "/user/email").unwrap_or("your account");
    let at = when(text(payload, "/time"));
    let ip = text(payload, "/ip").map(str::to_owned);
    let tokens = format!("{app_base}/settings/tokens");
    let password = format!("{app_base}/settings/password");
    let sessions = format!("{app_base}/settings/sessions");
    let not_you = format!(
        "If this was not you:\n  change your password:     {password}\n  end your other sessions:  {sessions}\n  revoke unknown tokens:    {tokens}\n"
    );
    let (subject, intro, rows, advice) = match kind {
        "cli_token_created" => {
            let name = text(payload, "/details/token_name").unwrap_or("(unnamed)");
            let scopes = payload
                .pointer("/details/scopes")
                .and_then(Value::as_array)
                .map(|s| {
                    s.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(" ")
                });
            let client = text(payload, "/details/user_agent")
                .or_else(|| text(payload, "/details/client_id"))
                .map(str::to_owned);
            let expires = match text(payload, "/details/renewable_until")
                .or_else(|| text(payload, "/details/expires_at"))
            {
                Some(t) => when(Some(t)),
                None => Some("never".to_owned()),
            };
            let revoke = match text(payload, "/token_id") {
                Some(id) => format!("{app_base}/settings/tokens/{id}/revoke"),
                None => tokens.clone(),
            };
            (
                format!("New token \"{name}\" for your EnvShield account"),
                format!("A token was created for your EnvShield account {email}:\na command-line sign-in was approved. The token itself is never\nsent by mail.\n"),
                vec![
                    ("Token name", Some(name.to_owned())),
                    ("Scopes", scopes.filter(|s| !s.is_empty())),
                    ("Requested from", text(payload, "/details/requested_from").map(str::to_owned)),
                    ("Client", client),
                    ("Approved from", ip),
                    ("Expires", expires),
                    ("Created", at),
                ],
                format!("If this was you, there is nothing to do.\n\nIf it was not, revoke the token now:\n  {revoke}\nand review your tokens:\n  {tokens}\n"),
            )
        }
        "refresh_token_reused" => (
            "A sign-in to your EnvShield account was revoked".to_owned(),
            format!("A refresh token of your EnvShield account {email}\nwas used a second time. That happens when a copy of it is in\nsomeone else's hands, so that sign-in was revoked: the command-line\ntool using it must sign in again.\n"),
            vec![
                ("Client", text(payload, "/details/client_id").map(str::to_owned)),
                ("Presented from", ip),
                ("When", at),
            ],
            format!("If you did not copy this sign-in between machines yourself, the\ncomputer it was on may be compromised.\n\n{not_you}"),
        ),
        "password_changed" => (
            "Your EnvShield password was changed".to_owned(),
            format!("The password of your EnvShield account {email}\nwas changed, and your other browser sessions were ended.\n"),
            vec![("Changed from", ip), ("When", at)],
            format!("If this was you, there is nothing to do.\n\nIf it was not, someone has your account: ask an administrator to\nreset your password, and review your tokens at\n  {tokens}\n"),
        ),
        "password_reset" => (
            "Your EnvShield password was reset by an administrator".to_owned(),
            format!("An administrator set a new password for your EnvShield account\n{email}, and its browser sessions were ended.\n"),
            vec![("From", ip), ("When", at)],
            "If you did not ask for this, tell your administrator now.\n".to_owned(),
        ),
        "passkey_added" => (
            "A passkey was added to your EnvShield account".to_owned(),
            format!("A passkey was registered for your EnvShield account {email}.\nIt can sign in to the account from now on.\n"),
            vec![
                ("Passkey", text(payload, "/details/name").or_else(|| text(payload, "/details/passkey_name")).map(str::to_owned)),
                ("Added from", ip),
                ("When", at),
            ],
            format!("If this was you, there is nothing to do.\n\n{not_you}"),
        ),
        other => (
            "Security notice for your EnvShield account".to_owned(),
            format!("A security event ({other}) was recorded for your EnvShield\naccount {email}.\n"),
            vec![("From", ip), ("When", at)],
            not_you,
        ),
    };
    Letter {
        subject,
        body: format!(
            "{intro}\n{}\n{advice}\n-- \nEnvShield security notice ({kind}), sent for every\nsuch event; there is nothing to reply to.\n",
            facts(&rows)
        ),
    }
}

/// Sends notices through the relay of `SMTP_URL`.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// For logs: `scheme://host:port (mode)`.
    pub server: String,
}

impl Mailer {
    /// The transport for `smtp` (already checked when the config was read).
    pub fn new(smtp: &Smtp) -> anyhow::Result<Self> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp.url.expose_secret())
            .map_err(|e| anyhow::anyhow!("SMTP_URL for {} cannot be used: {e}", smtp.server))?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        Ok(Self {
            transport,
            from: smtp.from.clone(),
            server: smtp.server.clone(),
        })
    }

    /// Sends `letter` to `recipient`. `Err` says why, without secrets;
    /// `permanent` errors are not worth trying again.
    pub async fn send(&self, recipient: &str, letter: &Letter) -> Result<(), SendError> {
        let to: Mailbox = recipient.parse().map_err(|e| SendError {
            message: format!("the account's email is no mail address: {e}"),
            permanent: true,
        })?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&letter.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(letter.body.clone())
            .map_err(|e| SendError {
                message: format!("the mail could not be built: {e}"),
                permanent: true,
            })?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| SendError {
                message: format!("{}: {e}", self.server),
                permanent: false,
            })
    }
}

/// Why a notice was not sent.
#[derive(Debug)]
pub struct SendError {
    /// What went wrong (no secrets).
    pub message: String,
    /// Trying again would fail the same way.
    pub permanent: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn token_created() -> Value {
        json!({
            "id": "0b7f2a52-7c1e-4e0e-9a57-1f6c1b1e0c01",
            "kind": "cli_token_created",
            "time": "2026-11-30T06:12:30Z",
            "user": { "id": "6f1d1f3e-0000-4000-8000-000000000001", "email": "ada@example.com" },
            "ip": "198.51.100.7",
            "token_id": "5d5e6f70-0000-4000-8000-000000000002",
            "details": {
                "token_name": "laptop",
                "scopes": ["core:read", "core:write"],
                "requested_from": "203.0.113.9",
                "user_agent": "envshield/0.1 (linux)",
                "client_id": "envshield-cli",
                "expires_at": "2027-11-30T06:12:30Z"
            }
        })
    }

    #[test]
    fn a_new_token_mail_says_what_from_where_and_how_to_revoke_it() {
        let l = letter(&token_created(), "https://auth.example.com");
        assert_eq!(l.subject, "New token \"laptop\" for your EnvShield account");
        for needle in [
            "ada@example.com",
            "Token name:      laptop",
            "Scopes:          core:read core:write",
            "Requested from:  203.0.113.9",
            "Client:          envshield/0.1 (linux)",
            "Approved from:   198.51.100.7",
            "Expires:         2027-11-30 06:12 UTC",
            "https://auth.example.com/settings/tokens/5d5e6f70-0000-4000-8000-000000000002/revoke",
        ] {
            assert!(l.body.contains(needle), "missing {needle:?} in\n{}", l.body);
        }
        assert!(!l.body.contains("esh_"), "never a token");
    }

    #[test]
    fn a_token_without_expiry_says_never_and_falls_back_to_the_client_id() {
        let mut p = token_created();
        p["details"]["expires_at"] = Value::Null;
        p["details"]["user_agent"] = Value::Null;
        let l = letter(&p, "http://localhost:3000");
        assert!(l.body.contains("Expires:         never"), "{}", l.body);
        assert!(
            l.body.contains("Client:          envshield-cli"),
            "{}",
            l.body
        );
    }

    #[test]
    fn each_kind_has_its_own_subject() {
        for (kind, subject) in [
            (
                "refresh_token_reused",
                "A sign-in to your EnvShield account was revoked",
            ),
            ("password_changed", "Your EnvShield password was changed"),
            (
                "password_reset",
                "Your EnvShield password was reset by an administrator",
            ),
            (
                "passkey_added",
                "A passkey was added to your EnvShield account",
            ),
            (
                "something_new",
                "Security notice for your EnvShield account",
            ),
        ] {
            let p = json!({
                "kind": kind,
                "time": "2026-11-30T06:12:30Z",
                "user": { "email": "ada@example.com" },
                "ip": "192.0.2.1",
                "details": { "name": "YubiKey 5" }
            });
            let l = letter(&p, "https://auth.example.com");
            assert_eq!(l.subject, subject);
            assert!(l.body.contains("ada@example.com"), "{}", l.body);
            assert!(l.body.contains("192.0.2.1"), "{}", l.body);
            assert!(l.body.contains("2026-11-30 06:12 UTC"), "{}", l.body);
        }
        let passkey = letter(
            &json!({ "kind": "passkey_added", "user": { "email": "a@b.c" }, "details": { "name": "YubiKey 5" } }),
            "https://auth.example.com",
        );
        assert!(passkey.body.contains("YubiKey 5"), "{}", passkey.body);
    }
}
