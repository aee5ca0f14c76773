//! OAuth clients, the token policy each gets, and the scopes they may ask for:
//! `CLI_TOKEN_POLICY`, `CLI_OAUTH_TOKEN_POLICY`, `OAUTH_CLIENTS`,
//! `API_TOKEN_SCOPES*` and `API_TOKEN_SCOPE_ROLES`.

use std::collections::HashMap;

use envshield_api_types::ConfirmationMode;
use serde::Deserialize;

use crate::domain::Role;

use super::env::{parse_list, split_list};
use super::{err, ConfigError};

/// Scopes a token can carry unless `API_TOKEN_SCOPES` says otherwise.
pub const DEFAULT_SCOPE_CATALOGUE: &str =
    "envs:read,envs:write,tokens:read,tokens:write,tokens:introspect";
/// Scopes given when a CLI asks for none, unless `API_TOKEN_SCOPES_DEFAULT` says otherwise.
pub const DEFAULT_SCOPES: &str = "envs:read,envs:write,tokens:read,tokens:write";
/// Descriptions of the built-in scopes, shown on the approval page.
const BUILT_IN_SCOPE_DESCRIPTIONS: [(&str, &str); 5] = [
    ("envs:read", "Read environment variables and secrets"),
    (
        "envs:write",
        "Create, change and delete environment variables and secrets",
    ),
    ("tokens:read", "List your API tokens"),
    ("tokens:write", "Revoke your API tokens"),
    (
        "tokens:introspect",
        "Check whether any token is valid (OAuth introspection)",
    ),
];
/// The CLI's built-in OAuth client id.
pub const CLI_CLIENT_ID: &str = "envshield-cli";
/// RFC 8628 device-code grant type.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// RFC 6749 §4.1 authorization-code grant type (with PKCE, for native
/// clients on loopback redirects).
pub const AUTHORIZATION_CODE_GRANT: &str = "authorization_code";
/// RFC 6749 refresh grant type.
pub const REFRESH_TOKEN_GRANT: &str = "refresh_token";

/// What a client gets once a device login is approved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenPolicy {
    /// One long-lived API token (`API_TOKEN_TTL_DAYS`).
    ApiToken,
    /// A short-lived access token (`ACCESS_TOKEN_TTL_MIN`) and a rotating refresh token.
    AccessRefresh,
}

/// A registered public OAuth client.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OAuthClient {
    /// `client_id`.
    pub client_id: String,
    /// Grant types it may use.
    pub grants: Vec<String>,
    /// Scopes it may ask for (a subset of the catalogue).
    pub scopes: Vec<String>,
    /// What it gets.
    pub token_policy: TokenPolicy,
    /// Under `DEVICE_CONFIRMATION=paste`: `paste` if it can type the code
    /// shown in the browser back (through `device/exchange`), `poll` to
    /// exempt it; unset, it is refused. The CLI's own client can paste.
    #[serde(default)]
    pub confirmation: Option<ConfirmationMode>,
    /// Its tokens must be DPoP-bound (RFC 9449): a token request without a
    /// proof is refused, and so is an unbound token of this client.
    #[serde(default)]
    pub require_dpop: bool,
}

impl OAuthClient {
    /// Whether the client may use `grant`.
    pub fn allows_grant(&self, grant: &str) -> bool {
        self.grants.iter().any(|g| g == grant)
    }
}

/// `API_TOKEN_SCOPES` and `API_TOKEN_SCOPES_DEFAULT`: the scope catalogue and
/// the scopes given when a CLI asks for none (always within the catalogue).
pub(super) fn scopes(
    catalogue: Option<&str>,
    defaults: Option<&str>,
) -> Result<(Vec<String>, Vec<String>), ConfigError> {
    let scope_catalogue = parse_list("API_TOKEN_SCOPES", catalogue)?
        .unwrap_or_else(|| split_list(DEFAULT_SCOPE_CATALOGUE));
    if scope_catalogue.is_empty() {
        return Err(err("API_TOKEN_SCOPES must name at least one scope"));
    }
    let default_scopes = parse_list("API_TOKEN_SCOPES_DEFAULT", defaults)?.unwrap_or_else(|| {
        let builtin = split_list(DEFAULT_SCOPES);
        if builtin.iter().all(|s| scope_catalogue.contains(s)) {
            builtin
        } else {
            scope_catalogue.clone()
        }
    });
    if let Some(bad) = default_scopes.iter().find(|s| !scope_catalogue.contains(s)) {
        return Err(err(format!(
            "API_TOKEN_SCOPES_DEFAULT names `{bad}`, which is not in API_TOKEN_SCOPES"
        )));
    }
    Ok((scope_catalogue, default_scopes))
}

/// `CLI_TOKEN_POLICY` / `CLI_OAUTH_TOKEN_POLICY`.
pub(super) fn parse_policy(name: &str, value: &str) -> Result<TokenPolicy, ConfigError> {
    match value {
        "api_token" => Ok(TokenPolicy::ApiToken),
        "access_refresh" => Ok(TokenPolicy::AccessRefresh),
        other => Err(err(format!(
            "{name} must be `api_token` or `access_refresh`, not `{other}`"
        ))),
    }
}

/// The registered clients: `envshield-cli` with `cli_policy` first, then those
/// of `OAUTH_CLIENTS` (a JSON array), each checked against the catalogue and
/// the supported grants.
pub(super) fn clients(
    cli_policy: TokenPolicy,
    cli_requires_dpop: bool,
    scope_catalogue: &[String],
    oauth_clients_json: Option<&str>,
) -> Result<Vec<OAuthClient>, ConfigError> {
    let mut clients = vec![OAuthClient {
        client_id: CLI_CLIENT_ID.to_owned(),
        grants: vec![
            DEVICE_CODE_GRANT.to_owned(),
            AUTHORIZATION_CODE_GRANT.to_owned(),
            REFRESH_TOKEN_GRANT.to_owned(),
        ],
        scopes: scope_catalogue.to_vec(),
        token_policy: cli_policy,
        confirmation: Some(ConfirmationMode::Paste),
        require_dpop: cli_requires_dpop,
    }];
    let Some(json) = oauth_clients_json else {
        return Ok(clients);
    };
    let extra: Vec<OAuthClient> = serde_json::from_str(json)
        .map_err(|e| err(format!("OAUTH_CLIENTS is not a JSON array of clients: {e}")))?;
    for c in extra {
        if clients.iter().any(|k| k.client_id == c.client_id) {
            return Err(err(format!(
                "OAUTH_CLIENTS: duplicate client `{}`",
                c.client_id
            )));
        }
        if let Some(bad) = c.scopes.iter().find(|s| !scope_catalogue.contains(s)) {
            return Err(err(format!(
                "OAUTH_CLIENTS: client `{}` names scope `{bad}`, which is not in API_TOKEN_SCOPES",
                c.client_id
            )));
        }
        if let Some(bad) = c.grants.iter().find(|g| {
            ![
                DEVICE_CODE_GRANT,
                AUTHORIZATION_CODE_GRANT,
                REFRESH_TOKEN_GRANT,
            ]
            .contains(&g.as_str())
        }) {
            return Err(err(format!(
                "OAUTH_CLIENTS: client `{}` names unsupported grant `{bad}`",
                c.client_id
            )));
        }
        clients.push(c);
    }
    Ok(clients)
}

/// The built-in scope descriptions, overridden or extended by
/// `API_TOKEN_SCOPE_DESCRIPTIONS` (a JSON object).
pub(super) fn scope_descriptions(
    json: Option<&str>,
) -> Result<HashMap<String, String>, ConfigError> {
    let mut map: HashMap<String, String> = BUILT_IN_SCOPE_DESCRIPTIONS
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    if let Some(json) = json {
        let extra: HashMap<String, String> = serde_json::from_str(json).map_err(|e| {
            err(format!(
                "API_TOKEN_SCOPE_DESCRIPTIONS is not a JSON object of scope → description: {e}"
            ))
        })?;
        map.extend(extra);
    }
    Ok(map)
}

/// `scope=role|role,scope=role` → which roles may grant each listed scope.
pub(super) fn scope_roles(spec: &str) -> Result<HashMap<String, Vec<Role>>, ConfigError> {
    let mut map = HashMap::new();
    for item in split_list(spec) {
        let Some((scope, roles)) = item.split_once('=') else {
            return Err(err(format!(
                "API_TOKEN_SCOPE_ROLES: `{item}` should look like `scope=role|role`"
            )));
        };
        let roles = roles
            .split('|')
            .map(|r| parse_role("API_TOKEN_SCOPE_ROLES", r))
            .collect::<Result<Vec<_>, _>>()?;
        map.insert(scope.to_owned(), roles);
    }
    Ok(map)
}

/// A role named in variable `name`.
pub(super) fn parse_role(name: &str, text: &str) -> Result<Role, ConfigError> {
    Role::parse(text).ok_or_else(|| err(format!("{name}: `{text}` is not a role (user, admin)")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalogue() -> Vec<String> {
        split_list(DEFAULT_SCOPE_CATALOGUE)
    }

    #[test]
    fn the_cli_client_comes_first_and_extra_clients_are_checked() {
        let json = r#"[{"clientId":"ci","grants":["refresh_token"],"scopes":["envs:read"],"tokenPolicy":"access_refresh"}]"#;
        let c = clients(TokenPolicy::ApiToken, false, &catalogue(), Some(json)).unwrap();
        assert_eq!(c[0].client_id, CLI_CLIENT_ID);
        assert!(c[0].allows_grant(DEVICE_CODE_GRANT));
        assert_eq!(c[1].token_policy, TokenPolicy::AccessRefresh);
        assert!(!c[1].allows_grant(DEVICE_CODE_GRANT));

        for (json, needle) in [
            (
                r#"[{"clientId":"envshield-cli","grants":[],"scopes":[],"tokenPolicy":"api_token"}]"#,
                "duplicate client",
            ),
            (
                r#"[{"clientId":"x","grants":[],"scopes":["root"],"tokenPolicy":"api_token"}]"#,
                "`root`",
            ),
            (
                r#"[{"clientId":"x","grants":["password"],"scopes":[],"tokenPolicy":"api_token"}]"#,
                "unsupported grant `password`",
            ),
            ("{}", "OAUTH_CLIENTS is not a JSON array"),
        ] {
            let e = clients(TokenPolicy::ApiToken, false, &catalogue(), Some(json)).unwrap_err();
            assert!(e.0.contains(needle), "{json}: {e}");
        }
    }

    #[test]
    fn default_scopes_fall_back_to_the_catalogue_when_it_lacks_the_built_in_ones() {
        let (cat, def) = scopes(None, None).unwrap();
        assert_eq!(cat, catalogue());
        assert_eq!(def, split_list(DEFAULT_SCOPES));
        let (_, def) = scopes(Some("a:b"), None).unwrap();
        assert_eq!(def, ["a:b"]);
    }

    #[test]
    fn policies_and_scope_roles_parse() {
        assert_eq!(
            parse_policy("P", "access_refresh").unwrap(),
            TokenPolicy::AccessRefresh
        );
        assert!(parse_policy("P", "jwt")
            .unwrap_err()
            .0
            .starts_with("P must"));
        let roles = scope_roles("tokens:introspect=admin,envs:write=user|admin").unwrap();
        assert_eq!(roles["envs:write"], [Role::User, Role::Admin]);
        assert!(scope_roles("x=root").unwrap_err().0.contains("`root`"));
        assert!(scope_roles("x").unwrap_err().0.contains("scope=role"));
        let d = scope_descriptions(Some(r#"{"x":"y"}"#)).unwrap();
        assert_eq!(d["x"], "y");
        assert!(d.contains_key("envs:read"));
    }
}
