//! Security notices outside the browser: mail through `SMTP_URL` from
//! `MAIL_FROM`, and a signed webhook at `SECURITY_WEBHOOK_URL` with the key
//! `SECURITY_WEBHOOK_SECRET` (or the file `SECURITY_WEBHOOK_SECRET_FILE`).

use std::collections::HashMap;

use secrecy::{ExposeSecret, SecretString};

use super::env::get;
use super::{err, ConfigError, Environment};

/// The shortest webhook key accepted, in bytes.
const MIN_WEBHOOK_SECRET: usize = 16;

/// Where and how notices are mailed.
#[derive(Clone)]
pub struct Smtp {
    /// `SMTP_URL`, which may carry the relay's password: never logged.
    pub url: SecretString,
    /// `scheme://host:port` and the TLS mode, for logs and errors.
    pub server: String,
    /// `MAIL_FROM`: the sender (`Name <addr>` or `addr`).
    pub from: lettre::message::Mailbox,
}

crate::crypto::redacted_debug!(Smtp { server, from });

impl Smtp {
    /// Reads `SMTP_URL` and `MAIL_FROM` (unset: `noreply@` the host of
    /// `app_url`), as the configuration does.
    pub fn parse(raw: &str, from: Option<&str>, app_url: &url::Url) -> Result<Self, ConfigError> {
        smtp(raw, from, app_url)
    }
}

/// Where the signed webhook posts.
#[derive(Clone)]
pub struct Webhook {
    /// `SECURITY_WEBHOOK_URL`; some receivers put a key in the path, so it
    /// is not logged either.
    pub url: SecretString,
    /// The host, for logs.
    pub host: String,
    /// `SECURITY_WEBHOOK_SECRET`: the HMAC-SHA256 key of the signature.
    pub secret: SecretString,
}

crate::crypto::redacted_debug!(Webhook { host });

impl Webhook {
    /// Reads `SECURITY_WEBHOOK_URL` with its key, as the configuration does.
    pub fn parse(
        raw: &str,
        secret: SecretString,
        environment: Environment,
    ) -> Result<Self, ConfigError> {
        webhook(raw, secret, environment)
    }
}

/// Mail and webhook settings; each is off when unset.
#[derive(Clone, Debug, Default)]
pub struct Notices {
    /// Mail, when `SMTP_URL` is set.
    pub smtp: Option<Smtp>,
    /// The webhook, when `SECURITY_WEBHOOK_URL` is set.
    pub webhook: Option<Webhook>,
}

impl Notices {
    /// Whether any channel is on.
    pub fn enabled(&self) -> bool {
        self.smtp.is_some() || self.webhook.is_some()
    }
}

/// Reads and checks the notice variables.
pub(super) fn notices(
    vars: &HashMap<String, String>,
    environment: Environment,
    app_url: &url::Url,
) -> Result<Notices, ConfigError> {
    let smtp = match get(vars, "SMTP_URL") {
        None => None,
        Some(raw) => Some(smtp(raw, get(vars, "MAIL_FROM"), app_url)?),
    };
    let secret = match (
        get(vars, "SECURITY_WEBHOOK_SECRET"),
        get(vars, "SECURITY_WEBHOOK_SECRET_FILE"),
    ) {
        (Some(_), Some(_)) => {
            return Err(err(
                "set SECURITY_WEBHOOK_SECRET or SECURITY_WEBHOOK_SECRET_FILE, not both",
            ))
        }
        (Some(s), None) => Some(SecretString::from(s.to_owned())),
        (None, Some(path)) => Some(SecretString::from(
            std::fs::read_to_string(path)
                .map_err(|e| {
                    err(format!(
                        "SECURITY_WEBHOOK_SECRET_FILE {path} cannot be read: {e}"
                    ))
                })?
                .trim()
                .to_owned(),
        )),
        (None, None) => None,
    };
    let webhook = match (get(vars, "SECURITY_WEBHOOK_URL"), secret) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(err(
                "SECURITY_WEBHOOK_SECRET is set but SECURITY_WEBHOOK_URL is not",
            ))
        }
        (Some(_), None) => {
            return Err(err(
                "SECURITY_WEBHOOK_URL needs SECURITY_WEBHOOK_SECRET (or SECURITY_WEBHOOK_SECRET_FILE): the key its requests are signed with",
            ))
        }
        (Some(raw), Some(secret)) => Some(webhook(raw, secret, environment)?),
    };
    Ok(Notices { smtp, webhook })
}

fn smtp(raw: &str, from: Option<&str>, app_url: &url::Url) -> Result<Smtp, ConfigError> {
    // The message never quotes the URL: it may hold a password.
    let url = url::Url::parse(raw)
        .map_err(|e| err(format!("SMTP_URL is not a URL ({e}); e.g. smtp://mail.example.com:25 or smtps://user:password@mail.example.com:465")))?;
    let host = url
        .host_str()
        .ok_or_else(|| err("SMTP_URL has no host"))?
        .to_owned();
    let tls = url
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    let (mode, default_port) = match (url.scheme(), tls.as_deref()) {
        ("smtp", None) => ("plain", 25),
        ("smtp", Some("required")) => ("STARTTLS required", 587),
        ("smtp", Some("opportunistic")) => ("STARTTLS if offered", 587),
        ("smtps", None) => ("TLS", 465),
        (scheme, tls) => {
            return Err(err(format!(
                "SMTP_URL must be smtp://HOST[:PORT] (plain), smtp://HOST:587?tls=required (STARTTLS), smtp://HOST:587?tls=opportunistic or smtps://HOST:465 (TLS), not scheme `{scheme}` with tls={}",
                tls.unwrap_or("(none)")
            )))
        }
    };
    let port = url.port().unwrap_or(default_port);
    // lettre reads the URL the same way; a check here fails at start-up
    // instead of at the first notice.
    lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(raw).map_err(|e| {
        err(format!(
            "SMTP_URL for {host}:{port} cannot be used: {}",
            e.to_string().replace(raw, "SMTP_URL")
        ))
    })?;
    let from = match from {
        Some(f) => f.parse().map_err(|e| {
            err(format!(
                "MAIL_FROM `{f}` is not a mail address (`addr@example.com` or `Name <addr@example.com>`): {e}"
            ))
        })?,
        None => format!(
            "EnvShield <noreply@{}>",
            app_url.host_str().unwrap_or("localhost")
        )
        .parse()
        .map_err(|e| {
            err(format!(
                "MAIL_FROM is unset and noreply@ the APP_URL host is no mail address ({e}); set MAIL_FROM"
            ))
        })?,
    };
    Ok(Smtp {
        url: SecretString::from(raw.to_owned()),
        server: format!("{}://{host}:{port} ({mode})", url.scheme()),
        from,
    })
}

fn webhook(
    raw: &str,
    secret: SecretString,
    environment: Environment,
) -> Result<Webhook, ConfigError> {
    let url =
        url::Url::parse(raw).map_err(|e| err(format!("SECURITY_WEBHOOK_URL is not a URL: {e}")))?;
    let host = url
        .host_str()
        .ok_or_else(|| err("SECURITY_WEBHOOK_URL has no host"))?
        .to_owned();
    match url.scheme() {
        "https" => {}
        "http" if environment == Environment::Local => {}
        "http" => {
            return Err(err(
                "SECURITY_WEBHOOK_URL must use https in production (the notices name accounts and addresses)",
            ))
        }
        other => {
            return Err(err(format!(
                "SECURITY_WEBHOOK_URL must be an http(s) URL, not `{other}:`"
            )))
        }
    }
    if secret.expose_secret().len() < MIN_WEBHOOK_SECRET {
        return Err(err(format!(
            "SECURITY_WEBHOOK_SECRET must be at least {MIN_WEBHOOK_SECRET} characters (e.g. `openssl rand -hex 32`)"
        )));
    }
    Ok(Webhook {
        url: SecretString::from(raw.to_owned()),
        host,
        secret,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn app() -> url::Url {
        url::Url::parse("https://auth.example.com").unwrap()
    }

    #[test]
    fn unset_means_off() {
        let n = notices(&vars(&[]), Environment::Production, &app()).unwrap();
        assert!(!n.enabled());
    }

    #[test]
    fn smtp_urls_of_each_form_are_read_and_the_password_never_shows() {
        for (raw, server) in [
            ("smtp://127.0.0.1:2525", "smtp://127.0.0.1:2525 (plain)"),
            (
                "smtp://mail.example.com",
                "smtp://mail.example.com:25 (plain)",
            ),
            (
                "smtp://u:hunter2secret@mail.example.com?tls=required",
                "smtp://mail.example.com:587 (STARTTLS required)",
            ),
            (
                "smtps://u:hunter2secret@mail.example.com",
                "smtps://mail.example.com:465 (TLS)",
            ),
        ] {
            let n = notices(&vars(&[("SMTP_URL", raw)]), Environment::Production, &app()).unwrap();
            let smtp = n.smtp.unwrap();
            assert_eq!(smtp.server, server);
            assert_eq!(smtp.from.email.to_string(), "noreply@auth.example.com");
            assert!(!format!("{smtp:?}").contains("hunter2"));
        }
        for bad in [
            "http://mail.example.com",
            "smtp://u:hunter2secret@mail.example.com?tls=sometimes",
            "not a url hunter2secret",
        ] {
            let e = notices(&vars(&[("SMTP_URL", bad)]), Environment::Local, &app()).unwrap_err();
            assert!(e.0.contains("SMTP_URL"), "{e}");
            assert!(!e.0.contains("hunter2"), "{e}");
        }
        let e = notices(
            &vars(&[("SMTP_URL", "smtp://h"), ("MAIL_FROM", "not an address")]),
            Environment::Local,
            &app(),
        )
        .unwrap_err();
        assert!(e.0.contains("MAIL_FROM"), "{e}");
    }

    #[test]
    fn the_webhook_needs_a_long_key_and_https_in_production() {
        let url = ("SECURITY_WEBHOOK_URL", "http://127.0.0.1:9/hook");
        let key = ("SECURITY_WEBHOOK_SECRET", "0123456789abcdef0123");
        assert!(notices(&vars(&[url, key]), Environment::Local, &app())
            .unwrap()
            .webhook
            .is_some());
        for (pairs, needle) in [
            (vec![url], "SECURITY_WEBHOOK_SECRET"),
            (vec![key], "SECURITY_WEBHOOK_URL"),
            (
                vec![url, ("SECURITY_WEBHOOK_SECRET", "short")],
                "at least 16",
            ),
        ] {
            let e = notices(&vars(&pairs), Environment::Local, &app()).unwrap_err();
            assert!(e.0.contains(needle), "{e}");
        }
        let e = notices(&vars(&[url, key]), Environment::Production, &app()).unwrap_err();
        assert!(e.0.contains("https"), "{e}");
    }
}
