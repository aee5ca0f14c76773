//! Token names, the scopes asked for and granted, lifetimes, who may
//! approve what, the per-account token cap and the stored user agent.

use chrono::{DateTime, Duration, Utc};

use crate::config::{Config, OAuthClient, TokenPolicy};
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

#[cfg(test)]
mod tests {
    use super::super::test_support::{client, config, strings};
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
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
