//! `OIDC_PROVIDERS`: the upstream OpenID Connect providers people may sign
//! in with, read from a JSON list and checked once at start-up.

use secrecy::SecretString;
use serde::Deserialize;

use super::{err, ConfigError, Environment};

/// Scopes asked for when a provider names none.
pub const DEFAULT_OIDC_SCOPES: &str = "openid email profile";
/// The claim read for group membership when a provider names none.
pub const DEFAULT_GROUPS_CLAIM: &str = "groups";

/// One upstream OpenID Connect provider.
#[derive(Clone)]
pub struct OidcProvider {
    /// Short name in the callback path (`/auth/oidc/{id}/callback`):
    /// 1 to 32 characters of a-z, 0-9, `-` and `_`.
    pub id: String,
    /// The button label: "Sign in with {name}".
    pub name: String,
    /// The issuer, exactly as the provider spells it (a trailing slash
    /// matters): discovery reads `{issuer}/.well-known/openid-configuration`
    /// and the ID token's `iss` must equal it.
    pub issuer: String,
    /// This server's client id at the provider.
    pub client_id: String,
    /// Its client secret (`clientSecret`, or the file `clientSecretFile`);
    /// none for a public client.
    pub client_secret: Option<SecretString>,
    /// Scopes asked for; always holds `openid`.
    pub scopes: Vec<String>,
    /// Email domains allowed in (lower case); empty allows every domain.
    pub allowed_domains: Vec<String>,
    /// Groups whose members are admins here; empty leaves roles alone.
    pub admin_groups: Vec<String>,
    /// The claim that lists a person's groups (default `groups`).
    pub groups_claim: String,
    /// Whether a first sign-in with no matching account creates one.
    pub create_accounts: bool,
}

crate::crypto::redacted_debug!(OidcProvider {
    id,
    name,
    issuer,
    client_id,
    scopes,
    allowed_domains,
    admin_groups,
    groups_claim,
    create_accounts
});

impl OidcProvider {
    /// Whether an email's domain may sign in through this provider.
    pub fn domain_allowed(&self, email: &str) -> bool {
        if self.allowed_domains.is_empty() {
            return true;
        }
        email
            .rsplit_once('@')
            .is_some_and(|(_, domain)| self.allowed_domains.contains(&domain.to_ascii_lowercase()))
    }
}

/// Scopes as a space-separated string or a list.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scopes {
    Text(String),
    List(Vec<String>),
}

/// One entry of `OIDC_PROVIDERS`, as written.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawProvider {
    id: String,
    name: String,
    issuer: String,
    client_id: String,
    client_secret: Option<String>,
    client_secret_file: Option<String>,
    scopes: Option<Scopes>,
    #[serde(default)]
    allowed_domains: Vec<String>,
    #[serde(default)]
    admin_groups: Vec<String>,
    groups_claim: Option<String>,
    #[serde(default)]
    create_accounts: bool,
}

fn valid_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Parses `OIDC_PROVIDERS` (unset: no providers).
pub(super) fn providers(
    raw: Option<&str>,
    environment: Environment,
) -> Result<Vec<OidcProvider>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let list: Vec<RawProvider> = serde_json::from_str(raw).map_err(|e| {
        err(format!(
            "OIDC_PROVIDERS is not a JSON list of providers: {e}"
        ))
    })?;
    let mut out: Vec<OidcProvider> = Vec::with_capacity(list.len());
    for p in list {
        let id = p.id.trim().to_owned();
        let at = |what: &str| err(format!("OIDC_PROVIDERS: provider `{id}`: {what}"));
        if !valid_id(&id) {
            return Err(err(format!(
                "OIDC_PROVIDERS: `{id}` is not a valid provider id (1 to 32 characters of a-z, 0-9, - and _)"
            )));
        }
        if out.iter().any(|o| o.id == id) {
            return Err(at("the id is used twice"));
        }
        let name = p.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 64 {
            return Err(at("`name` must be 1 to 64 characters"));
        }
        let issuer_text = p.issuer.trim().to_owned();
        let issuer = url::Url::parse(&issuer_text)
            .map_err(|e| at(&format!("`issuer` is not a URL: {e}")))?;
        let local_http = issuer.scheme() == "http" && environment == Environment::Local;
        if !(issuer.scheme() == "https" || local_http)
            || issuer.host_str().is_none()
            || issuer.query().is_some()
            || issuer.fragment().is_some()
        {
            return Err(at(
                "`issuer` must be an https URL with a host and no query (http is allowed only when ENVSHIELD_ENV=local)",
            ));
        }
        let client_id = p.client_id.trim().to_owned();
        if client_id.is_empty() {
            return Err(at("`clientId` is empty"));
        }
        let client_secret = match (p.client_secret, p.client_secret_file) {
            (Some(_), Some(_)) => {
                return Err(at("set `clientSecret` or `clientSecretFile`, not both"))
            }
            (Some(s), None) => Some(s),
            (None, Some(path)) => Some(
                std::fs::read_to_string(&path)
                    .map_err(|e| at(&format!("`clientSecretFile` {path} cannot be read: {e}")))?,
            ),
            (None, None) => None,
        }
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .map(SecretString::from);
        let mut scopes: Vec<String> = match p.scopes {
            None => DEFAULT_OIDC_SCOPES.split(' ').map(str::to_owned).collect(),
            Some(Scopes::Text(s)) => s.split_whitespace().map(str::to_owned).collect(),
            Some(Scopes::List(l)) => l.iter().map(|s| s.trim().to_owned()).collect(),
        };
        scopes.retain(|s| !s.is_empty());
        if let Some(bad) = scopes.iter().find(|s| {
            s.chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\\')
        }) {
            return Err(at(&format!("scope `{bad}` is not valid")));
        }
        if !scopes.iter().any(|s| s == "openid") {
            scopes.insert(0, "openid".to_owned());
        }
        let allowed_domains = p
            .allowed_domains
            .iter()
            .map(|d| d.trim().trim_start_matches('@').to_ascii_lowercase())
            .filter(|d| !d.is_empty())
            .collect();
        let admin_groups = p
            .admin_groups
            .iter()
            .map(|g| g.trim().to_owned())
            .filter(|g| !g.is_empty())
            .collect();
        let groups_claim = p
            .groups_claim
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| DEFAULT_GROUPS_CLAIM.to_owned());
        out.push(OidcProvider {
            id,
            name,
            issuer: issuer_text,
            client_id,
            client_secret,
            scopes,
            allowed_domains,
            admin_groups,
            groups_claim,
            create_accounts: p.create_accounts,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn defaults_apply_and_scopes_always_hold_openid() {
        let list = providers(
            Some(r#"[{"id":"corp","name":"Corp SSO","issuer":"https://id.example.com","clientId":"envshield","clientSecret":"s3cret","scopes":"email profile groups","allowedDomains":["@Example.COM"]}]"#),
            Environment::Production,
        )
        .unwrap();
        let p = &list[0];
        assert_eq!(p.scopes, ["openid", "email", "profile", "groups"]);
        assert_eq!(p.allowed_domains, ["example.com"]);
        assert_eq!(p.groups_claim, "groups");
        assert!(!p.create_accounts);
        assert_eq!(p.client_secret.as_ref().unwrap().expose_secret(), "s3cret");
        assert!(p.domain_allowed("a@EXAMPLE.com"));
        assert!(!p.domain_allowed("a@example.com.evil.test"));
        assert!(
            !format!("{p:?}").contains("s3cret"),
            "the secret is never printed"
        );
        let defaults = providers(
            Some(r#"[{"id":"g","name":"G","issuer":"https://g.example","clientId":"c"}]"#),
            Environment::Production,
        )
        .unwrap();
        assert_eq!(defaults[0].scopes, ["openid", "email", "profile"]);
        assert!(defaults[0].domain_allowed("anyone@anywhere.test"));
    }

    #[test]
    fn bad_entries_name_the_provider_and_the_field() {
        for (json, needle) in [
            (r#"{"id":"x"}"#, "JSON list"),
            (
                r#"[{"id":"Bad Id","name":"n","issuer":"https://i.example","clientId":"c"}]"#,
                "provider id",
            ),
            (
                r#"[{"id":"x","name":"n","issuer":"http://i.example","clientId":"c"}]"#,
                "https",
            ),
            (
                r#"[{"id":"x","name":"n","issuer":"https://i.example","clientId":"c","clientSecret":"a","clientSecretFile":"/f"}]"#,
                "not both",
            ),
            (
                r#"[{"id":"x","name":"n","issuer":"https://i.example","clientId":"c","clientSecretFile":"/nonexistent/secret"}]"#,
                "cannot be read",
            ),
            (
                r#"[{"id":"x","name":"n","issuer":"https://i.example","clientId":"c","colour":"red"}]"#,
                "colour",
            ),
            (
                r#"[{"id":"x","name":"n","issuer":"https://i.example","clientId":"c"},{"id":"x","name":"n","issuer":"https://i.example","clientId":"c"}]"#,
                "twice",
            ),
        ] {
            let e = providers(Some(json), Environment::Production).unwrap_err();
            assert!(e.0.contains("OIDC_PROVIDERS"), "{e}");
            assert!(e.0.contains(needle), "{json}: {e}");
        }
        // A plain-http issuer is fine on a developer's machine.
        assert!(providers(
            Some(r#"[{"id":"x","name":"n","issuer":"http://127.0.0.1:9000","clientId":"c"}]"#),
            Environment::Local
        )
        .is_ok());
    }
}
