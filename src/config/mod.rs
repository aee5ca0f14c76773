//! Typed configuration from the environment (and an optional `.env`),
//! validated once at start-up. Reading single variables lives in `env`, keys
//! in `keys`, OAuth clients, token policies and scopes in `clients`.

mod clients;
mod device_policy;
mod env;
mod keys;
mod notices;
mod oidc;
mod variables;

use ipnet::IpNet;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use crate::domain::{Flow, Role};

pub use clients::{
    OAuthClient, TokenPolicy, AUTHORIZATION_CODE_GRANT, CLI_CLIENT_ID, DEFAULT_SCOPES,
    DEFAULT_SCOPE_CATALOGUE, DEVICE_CODE_GRANT, REFRESH_TOKEN_GRANT,
};
pub use device_policy::{network_contains, DeviceConfirmation, DeviceLoginPolicy, RolePolicy};
pub use keys::{generate_env_lines, Keys};
pub use notices::{Notices, Smtp, Webhook};
pub use oidc::{OidcProvider, DEFAULT_GROUPS_CLAIM, DEFAULT_OIDC_SCOPES};
pub use variables::VARIABLES;

use env::{parse_app_url, parse_bool, parse_num, split_list, valid_prefix};

/// `BIND_ADDR` when unset.
pub const DEFAULT_BIND_ADDR: &str = "127.0.0.1:3000";

/// Where the server runs: local development or production.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// Defaults and generated keys allowed.
    Local,
    /// Explicit keys and an https `APP_URL` required.
    Production,
}

/// `APPROVAL_STEP_UP`: when approving a CLI login asks the approver to prove
/// it is them again (a fresh passkey assertion, or the password).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalStepUp {
    /// Never (the default).
    Never,
    /// When the request comes from another network than the approver's
    /// browser, asks for a high-risk scope, or for a long lifetime.
    HighRisk,
    /// Every approval.
    Always,
}

/// Requests per minute per client IP for each limited endpoint; `0` is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// `device/start`.
    pub start_per_min: u32,
    /// `RATE_LIMIT_START_GLOBAL_PER_MIN`: starts from every client together
    /// (each writes a row and an audit event; addresses are cheap).
    pub start_global_per_min: u32,
    /// `device/poll`.
    pub poll_per_min: u32,
    /// `device/complete` and `device/cancel`.
    pub complete_per_min: u32,
    /// `POST /login` and `POST /signup`.
    pub login_per_min: u32,
    /// `POST /login` attempts per account (email) per hour.
    pub login_per_account_per_hour: u32,
    /// `RATE_LIMIT_CODE_ENTRY_PER_ACCOUNT_PER_HOUR`: user codes one
    /// signed-in account may look up or decide, from every address
    /// together (approval page, code entry, `device/complete`).
    pub code_entry_per_account_per_hour: u32,
    /// `RATE_LIMIT_IPV6_PREFIX`: IPv6 clients are limited per network of
    /// this prefix length (one /64 is one subscriber's, with any number of
    /// addresses).
    pub ipv6_prefix: u8,
}

/// Everything the server needs to run, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// `ENVSHIELD_ENV`: `local` (default) or `production`.
    pub environment: Environment,
    /// `DATABASE_URL`; `None` runs the private local PostgreSQL.
    pub database_url: Option<SecretString>,
    /// `ENVSHIELD_DATA_DIR` (default `./data`): local keys and the local cluster.
    pub data_dir: PathBuf,
    /// `BIND_ADDR` (default `127.0.0.1:3000`); port 0 picks a free port.
    pub bind_addr: String,
    /// `METRICS_BIND_ADDR` (default: none, off): where `/metrics` is served,
    /// on a listener of its own, so it is never public by accident.
    pub metrics_bind_addr: Option<String>,
    /// `APP_URL` (default `http://localhost:3000`), without a trailing slash.
    pub app_url: url::Url,
    /// `DEVICE_CODE_TTL_MIN` (default 10).
    pub device_code_ttl: Duration,
    /// `DEVICE_CODE_INTERVAL_SEC` (default 5).
    pub device_code_interval_secs: u32,
    /// `POLL_CACHE_SEC` (default 30; 0 turns it off): how long a session read
    /// as pending may answer polls from memory.
    pub poll_cache: Duration,
    /// `BEARER_CACHE_MS` (default 1000, at most 1000; 0 turns it off): how
    /// long an authenticated Bearer token may be served from memory.
    pub bearer_cache: Duration,
    /// `API_TOKEN_TTL_DAYS` (default 365; empty means tokens never expire).
    pub api_token_ttl_days: Option<u32>,
    /// `API_TOKEN_PREFIX` (default `esh_`).
    pub api_token_prefix: String,
    /// `API_TOKEN_SCOPES`: every scope a token may carry.
    pub scope_catalogue: Vec<String>,
    /// `API_TOKEN_SCOPES_DEFAULT`: scopes given when a CLI asks for none.
    pub default_scopes: Vec<String>,
    /// `API_TOKEN_SCOPE_DESCRIPTIONS` (JSON object) over the built-in ones.
    pub scope_descriptions: HashMap<String, String>,
    /// `API_TOKEN_SCOPE_ROLES` (`scope=role|role,...`): scopes only some roles
    /// may grant; default `tokens:introspect=admin`.
    pub scope_roles: HashMap<String, Vec<Role>>,
    /// `CLI_TOKEN_ROLES` (default `user,admin`): roles that may mint tokens at all.
    pub token_roles: Vec<Role>,
    /// Registered clients: `envshield-cli` (policy from `CLI_TOKEN_POLICY`)
    /// first, then `OAUTH_CLIENTS` (JSON array).
    pub clients: Vec<OAuthClient>,
    /// `CLI_OAUTH_TOKEN_POLICY` (default `access_refresh`): what
    /// `envshield-cli` gets over `/oauth/*` (its `token_policy` applies to v1).
    pub cli_oauth_token_policy: TokenPolicy,
    /// `ACCESS_TOKEN_TTL_MIN` (default 60).
    pub access_token_ttl: Duration,
    /// `REFRESH_TOKEN_IDLE_DAYS` (default 30): a refresh token unused this long expires.
    pub refresh_token_idle: Duration,
    /// `REFRESH_TOKEN_ABSOLUTE_DAYS` (default 90): a refresh family ends this long after login.
    pub refresh_token_absolute: Duration,
    /// `REFRESH_TOKEN_REUSE_GRACE_SEC` (default 5, 0 to 60): for this long
    /// after a rotation, presenting the spent refresh token again returns
    /// the same successor pair (a retry) instead of revoking the family.
    pub refresh_reuse_grace: Duration,
    /// `REFRESH_TOKEN_PREFIX` (default `eshr_`).
    pub refresh_token_prefix: String,
    /// `DEVICE_CONFIRMATION` (`poll` default, or `paste` to require paste-back for v1 logins).
    pub device_confirmation: envshield_api_types::ConfirmationMode,
    /// `DEVICE_CONFIRMATION=risk`: paste-back only when the approving
    /// browser is on another network or a high-risk scope is granted,
    /// decided at approval (see [`Config::confirmation_mode`]).
    pub device_confirmation_risk: bool,
    /// `DEVICE_LOGIN_POLICY` (or `DEVICE_LOGIN_POLICY_FILE`): per-role rules
    /// checked when someone approves a device login.
    pub device_login_policy: DeviceLoginPolicy,
    /// `APPROVAL_STEP_UP` (`never` default, `high_risk`, `always`).
    pub approval_step_up: ApprovalStepUp,
    /// `DPOP_NONCE` (default false): DPoP proofs must carry a nonce this
    /// server issued (`DPoP-Nonce`, RFC 9449 §8).
    pub dpop_nonce: bool,
    /// `API_TOKEN_SCOPES_HIGH_RISK`: scopes whose grant counts as high risk
    /// (default: every `*:write` scope of the catalogue, and
    /// `tokens:introspect`; set and empty: none).
    pub high_risk_scopes: Vec<String>,
    /// `APPROVAL_STEP_UP_MAX_DAYS` (default 90; 0 turns the rule off): a
    /// token living longer than this (or for ever) counts as high risk.
    pub step_up_max_days: Option<u32>,
    /// `MAX_API_TOKENS_PER_USER` (default 10) active tokens per account.
    pub max_api_tokens_per_user: u32,
    /// `RATE_LIMIT_*_PER_MIN`.
    pub rate_limits: RateLimits,
    /// `TRUSTED_PROXIES`: peers whose `X-Forwarded-For` is believed
    /// (networks; a single address is a /32 or /128).
    pub trusted_proxies: Vec<IpNet>,
    /// `DATABASE_POOL_SIZE` (default 10).
    pub db_pool_size: u32,
    /// `DATABASE_TIMEOUT_SEC` (default 5): wait for a pooled connection.
    pub db_timeout: Duration,
    /// `WORKERS` (default: one per core).
    pub workers: usize,
    /// `BCRYPT_COST` (default 12).
    pub bcrypt_cost: u32,
    /// `ALLOW_SIGNUP` (default false): whether `/signup` lets anyone create an account.
    pub allow_signup: bool,
    /// `PASSWORD_LOGIN` (default true): whether `/login` takes a password.
    /// Off, only `OIDC_PROVIDERS` sign people in (the `users` command still
    /// works, for break-glass admins).
    pub password_login: bool,
    /// `OIDC_PROVIDERS` (JSON list): upstream OpenID Connect providers
    /// offered on the sign-in page.
    pub oidc_providers: Vec<OidcProvider>,
    /// `SESSION_TTL_HOURS` (default 12): a browser sign-in lasts this long.
    pub session_ttl: Duration,
    /// `SECURITY_EVENT_RETENTION_DAYS` (default 90; 0 keeps them forever):
    /// audit events older than this are deleted by the purge task.
    pub security_event_retention_days: Option<u32>,
    /// Security notices: mail (`SMTP_URL`, `MAIL_FROM`) and the signed
    /// webhook (`SECURITY_WEBHOOK_URL`, `SECURITY_WEBHOOK_SECRET`).
    pub notices: Notices,
    /// Keys from `TOKEN_SEAL_KEY`, `TOKEN_SEAL_KEYS_PREVIOUS`, `CODE_HMAC_KEY`,
    /// `SESSION_KEY`, or generated and kept in the data folder locally.
    pub keys: Keys,
}

/// A configuration value is missing or wrong; the message names the variable.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

fn err(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

impl Config {
    /// Reads `.env` (if present) and the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        // A missing .env is normal; a malformed one is reported.
        if let Err(e) = dotenvy::dotenv() {
            if !e.not_found() {
                return Err(err(format!(".env could not be read: {e}")));
            }
        }
        Self::from_map(&std::env::vars().collect())
    }

    /// `BIND_ADDR` alone (with `.env`), for `healthcheck`, which must not
    /// need the keys or touch the data folder.
    pub fn bind_addr_from_env() -> Result<String, ConfigError> {
        if let Err(e) = dotenvy::dotenv() {
            if !e.not_found() {
                return Err(err(format!(".env could not be read: {e}")));
            }
        }
        let vars = std::env::vars().collect();
        Ok(env::get(&vars, "BIND_ADDR")
            .unwrap_or(DEFAULT_BIND_ADDR)
            .to_owned())
    }

    /// Builds the configuration from a map of variables (tests pass their own).
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |k: &str| env::get(vars, k);

        let environment = match get("ENVSHIELD_ENV").unwrap_or("local") {
            "local" | "development" | "dev" | "test" => Environment::Local,
            "production" | "prod" => Environment::Production,
            other => {
                return Err(err(format!(
                    "ENVSHIELD_ENV must be `local` or `production`, not `{other}`"
                )))
            }
        };
        let data_dir = PathBuf::from(get("ENVSHIELD_DATA_DIR").unwrap_or("./data"));
        let app_url = parse_app_url(get("APP_URL").unwrap_or("http://localhost:3000"))?;
        if environment == Environment::Production && app_url.scheme() != "https" {
            return Err(err(format!(
                "APP_URL must use https in production (got `{app_url}`)"
            )));
        }

        let (scope_catalogue, default_scopes) =
            clients::scopes(get("API_TOKEN_SCOPES"), get("API_TOKEN_SCOPES_DEFAULT"))?;

        let api_token_prefix = get("API_TOKEN_PREFIX").unwrap_or("esh_").to_owned();
        if !valid_prefix(&api_token_prefix) {
            return Err(err(
                "API_TOKEN_PREFIX must be 2 to 16 characters of a-z, 0-9 and _",
            ));
        }

        let api_token_ttl_days = match vars.get("API_TOKEN_TTL_DAYS").map(|v| v.trim()) {
            None => Some(365),
            Some("") => None,
            Some(v) => Some(parse_num::<u32>("API_TOKEN_TTL_DAYS", v, 1, 36_500)?),
        };

        let keys = keys::load_keys(vars, environment, &data_dir)?;
        let scope_descriptions = clients::scope_descriptions(get("API_TOKEN_SCOPE_DESCRIPTIONS"))?;
        let scope_roles = clients::scope_roles(
            get("API_TOKEN_SCOPE_ROLES").unwrap_or("tokens:introspect=admin"),
        )?;
        let token_roles = split_list(get("CLI_TOKEN_ROLES").unwrap_or("user,admin"))
            .iter()
            .map(|r| clients::parse_role("CLI_TOKEN_ROLES", r))
            .collect::<Result<Vec<_>, _>>()?;
        let cli_policy = clients::parse_policy(
            "CLI_TOKEN_POLICY",
            get("CLI_TOKEN_POLICY").unwrap_or("api_token"),
        )?;
        let cli_oauth_token_policy = clients::parse_policy(
            "CLI_OAUTH_TOKEN_POLICY",
            get("CLI_OAUTH_TOKEN_POLICY").unwrap_or("access_refresh"),
        )?;
        let cli_requires_dpop = parse_bool("REQUIRE_DPOP", get("REQUIRE_DPOP"))?;
        let clients = clients::clients(
            cli_policy,
            cli_requires_dpop,
            &scope_catalogue,
            get("OAUTH_CLIENTS"),
        )?;
        let (device_confirmation, device_confirmation_risk) =
            device_policy::confirmation(get("DEVICE_CONFIRMATION"))?;
        let device_login_policy = device_policy::device_login_policy(vars, &scope_catalogue)?;
        let approval_step_up = match get("APPROVAL_STEP_UP").unwrap_or("never") {
            "never" => ApprovalStepUp::Never,
            "high_risk" => ApprovalStepUp::HighRisk,
            "always" => ApprovalStepUp::Always,
            other => {
                return Err(err(format!(
                    "APPROVAL_STEP_UP must be `never`, `high_risk` or `always`, not `{other}`"
                )))
            }
        };
        let high_risk_scopes = high_risk_scopes(
            vars.get("API_TOKEN_SCOPES_HIGH_RISK").map(|v| v.trim()),
            &scope_catalogue,
        )?;
        let refresh_token_prefix = get("REFRESH_TOKEN_PREFIX").unwrap_or("eshr_").to_owned();
        if !valid_prefix(&refresh_token_prefix) || refresh_token_prefix == api_token_prefix {
            return Err(err(
                "REFRESH_TOKEN_PREFIX must be 2 to 16 characters of a-z, 0-9 and _, and differ from API_TOKEN_PREFIX",
            ));
        }

        let trusted_proxies = match get("TRUSTED_PROXIES") {
            None => Vec::new(),
            Some(list) => split_list(list)
                .iter()
                .map(|net| {
                    device_policy::parse_network(net)
                        .map_err(|e| err(format!("TRUSTED_PROXIES: {e}")))
                })
                .collect::<Result<_, _>>()?,
        };

        let notices = notices::notices(vars, environment, &app_url)?;
        let oidc_providers = oidc::providers(get("OIDC_PROVIDERS"), environment)?;
        let password_login = match get("PASSWORD_LOGIN") {
            None => true,
            v => parse_bool("PASSWORD_LOGIN", v)?,
        };
        if !password_login && oidc_providers.is_empty() {
            return Err(err(
                "PASSWORD_LOGIN=false needs at least one provider in OIDC_PROVIDERS, or nobody could sign in",
            ));
        }

        let num = |k: &str, default: u32, min: u32, max: u32| -> Result<u32, ConfigError> {
            get(k).map_or(Ok(default), |v| parse_num(k, v, min, max))
        };
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        // The private local cluster is for a laptop: a production instance
        // that quietly started its own database would lose its data with the
        // container and share nothing with its peers.
        if environment == Environment::Production && get("DATABASE_URL").is_none() {
            return Err(err(
                "production requires DATABASE_URL (postgres://USER:PASSWORD@HOST:5432/DB); the private local PostgreSQL is for development only",
            ));
        }

        Ok(Self {
            environment,
            database_url: get("DATABASE_URL").map(|s| SecretString::from(s.to_owned())),
            data_dir,
            bind_addr: get("BIND_ADDR").unwrap_or(DEFAULT_BIND_ADDR).to_owned(),
            metrics_bind_addr: get("METRICS_BIND_ADDR")
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_owned),
            app_url,
            device_code_ttl: Duration::from_secs(
                u64::from(num("DEVICE_CODE_TTL_MIN", 10, 1, 60)?) * 60,
            ),
            device_code_interval_secs: num("DEVICE_CODE_INTERVAL_SEC", 5, 1, 60)?,
            poll_cache: Duration::from_secs(u64::from(num("POLL_CACHE_SEC", 30, 0, 300)?)),
            bearer_cache: Duration::from_millis(u64::from(num("BEARER_CACHE_MS", 1000, 0, 1000)?)),
            api_token_ttl_days,
            api_token_prefix,
            scope_catalogue,
            default_scopes,
            scope_descriptions,
            scope_roles,
            token_roles,
            clients,
            access_token_ttl: Duration::from_secs(
                u64::from(num("ACCESS_TOKEN_TTL_MIN", 60, 1, 1440)?) * 60,
            ),
            refresh_token_idle: Duration::from_secs(
                u64::from(num("REFRESH_TOKEN_IDLE_DAYS", 30, 1, 3650)?) * 86_400,
            ),
            refresh_reuse_grace: Duration::from_secs(u64::from(num(
                "REFRESH_TOKEN_REUSE_GRACE_SEC",
                5,
                0,
                60,
            )?)),
            refresh_token_absolute: Duration::from_secs(
                u64::from(num("REFRESH_TOKEN_ABSOLUTE_DAYS", 90, 1, 3650)?) * 86_400,
            ),
            refresh_token_prefix,
            device_confirmation,
            device_confirmation_risk,
            device_login_policy,
            approval_step_up,
            dpop_nonce: parse_bool("DPOP_NONCE", get("DPOP_NONCE"))?,
            high_risk_scopes,
            step_up_max_days: Some(num("APPROVAL_STEP_UP_MAX_DAYS", 90, 0, 36_500)?)
                .filter(|d| *d > 0),
            cli_oauth_token_policy,
            max_api_tokens_per_user: num("MAX_API_TOKENS_PER_USER", 10, 1, 10_000)?,
            rate_limits: RateLimits {
                code_entry_per_account_per_hour: num(
                    "RATE_LIMIT_CODE_ENTRY_PER_ACCOUNT_PER_HOUR",
                    60,
                    0,
                    1_000_000,
                )?,
                start_per_min: num("RATE_LIMIT_START_PER_MIN", 30, 0, 1_000_000)?,
                start_global_per_min: num("RATE_LIMIT_START_GLOBAL_PER_MIN", 600, 0, 10_000_000)?,
                poll_per_min: num("RATE_LIMIT_POLL_PER_MIN", 120, 0, 1_000_000)?,
                complete_per_min: num("RATE_LIMIT_COMPLETE_PER_MIN", 30, 0, 1_000_000)?,
                login_per_min: num("RATE_LIMIT_LOGIN_PER_MIN", 10, 0, 1_000_000)?,
                login_per_account_per_hour: num(
                    "RATE_LIMIT_LOGIN_PER_ACCOUNT_PER_HOUR",
                    20,
                    0,
                    1_000_000,
                )?,
                ipv6_prefix: get("RATE_LIMIT_IPV6_PREFIX").map_or(Ok(64), |v| {
                    parse_num::<u8>("RATE_LIMIT_IPV6_PREFIX", v, 32, 128)
                })?,
            },
            trusted_proxies,
            db_pool_size: num("DATABASE_POOL_SIZE", 10, 1, 1000)?,
            db_timeout: Duration::from_secs(u64::from(num("DATABASE_TIMEOUT_SEC", 5, 1, 120)?)),
            workers: num("WORKERS", u32::try_from(cores).unwrap_or(2), 1, 512)? as usize,
            bcrypt_cost: num("BCRYPT_COST", 12, 4, 31)?,
            allow_signup: parse_bool("ALLOW_SIGNUP", get("ALLOW_SIGNUP"))?,
            password_login,
            oidc_providers,
            session_ttl: Duration::from_secs(
                u64::from(num("SESSION_TTL_HOURS", 12, 1, 720)?) * 3600,
            ),
            security_event_retention_days: Some(num(
                "SECURITY_EVENT_RETENTION_DAYS",
                90,
                0,
                36_500,
            )?)
            .filter(|d| *d > 0),
            notices,
            keys,
        })
    }

    /// Whether granting `scope` counts as high risk for step-up.
    pub fn is_high_risk_scope(&self, scope: &str) -> bool {
        self.high_risk_scopes.iter().any(|s| s == scope)
    }

    /// The registered client with this id.
    pub fn client(&self, client_id: &str) -> Option<&OAuthClient> {
        self.clients.iter().find(|c| c.client_id == client_id)
    }

    /// The token policy for a session of `client` started through `flow`
    /// (`v1` or `oauth`).
    pub fn token_policy(&self, client: &OAuthClient, flow: Flow) -> TokenPolicy {
        if flow == Flow::OAuth && client.client_id == CLI_CLIENT_ID {
            self.cli_oauth_token_policy
        } else {
            client.token_policy
        }
    }

    /// The OpenID Connect provider with this id.
    pub fn oidc_provider(&self, id: &str) -> Option<&OidcProvider> {
        self.oidc_providers.iter().find(|p| p.id == id)
    }

    /// The description of a scope, if any.
    pub fn scope_description(&self, scope: &str) -> Option<&str> {
        self.scope_descriptions.get(scope).map(String::as_str)
    }

    /// Whether an account with `role` may grant `scope`.
    pub fn role_may_grant(&self, role: Role, scope: &str) -> bool {
        self.scope_roles
            .get(scope)
            .is_none_or(|roles| roles.contains(&role))
    }

    /// Whether an account with `role` may create tokens at all.
    pub fn role_may_create_tokens(&self, role: Role) -> bool {
        self.token_roles.contains(&role)
    }

    /// Whether cookies must carry `Secure`: everywhere except plain-http localhost.
    pub fn secure_cookies(&self) -> bool {
        let local = matches!(
            self.app_url.host_str(),
            Some("localhost" | "127.0.0.1" | "[::1]")
        );
        self.app_url.scheme() == "https" || !local
    }

    /// `APP_URL` as a string without a trailing slash.
    pub fn app_base(&self) -> String {
        self.app_url.as_str().trim_end_matches('/').to_owned()
    }

    /// The origin (`scheme://host[:port]`) browsers send in `Origin`.
    pub fn app_origin(&self) -> String {
        self.app_url.origin().ascii_serialization()
    }
}

/// `API_TOKEN_SCOPES_HIGH_RISK`: unset, the catalogue's `*:write` scopes and
/// `tokens:introspect`; set and empty, none; otherwise a comma list (or
/// JSON array) of catalogue scopes.
fn high_risk_scopes(raw: Option<&str>, catalogue: &[String]) -> Result<Vec<String>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(catalogue
            .iter()
            .filter(|s| s.ends_with(":write") || *s == "tokens:introspect")
            .cloned()
            .collect());
    };
    let list = env::parse_list("API_TOKEN_SCOPES_HIGH_RISK", Some(raw))?.unwrap_or_default();
    if let Some(unknown) = list.iter().find(|s| !catalogue.contains(s)) {
        return Err(err(format!(
            "API_TOKEN_SCOPES_HIGH_RISK: `{unknown}` is not in API_TOKEN_SCOPES"
        )));
    }
    Ok(list)
}

#[cfg(test)]
mod tests;
