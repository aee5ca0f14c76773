//! The list of environment variables the server reads.

/// Every environment variable the server reads, in the order of the
/// README's configuration table. Deployment files are checked against it.
pub const VARIABLES: &[&str] = &[
    "ENVSHIELD_ENV",
    "DATABASE_URL",
    "ENVSHIELD_DATA_DIR",
    "BIND_ADDR",
    "APP_URL",
    "DEVICE_CODE_TTL_MIN",
    "DEVICE_CODE_INTERVAL_SEC",
    "BEARER_CACHE_MS",
    "POLL_CACHE_SEC",
    "API_TOKEN_TTL_DAYS",
    "API_TOKEN_PREFIX",
    "API_TOKEN_SCOPES",
    "API_TOKEN_SCOPES_DEFAULT",
    "MAX_API_TOKENS_PER_USER",
    "API_TOKEN_SCOPE_DESCRIPTIONS",
    "API_TOKEN_SCOPE_ROLES",
    "CLI_TOKEN_ROLES",
    "CLI_TOKEN_POLICY",
    "CLI_OAUTH_TOKEN_POLICY",
    "OAUTH_CLIENTS",
    "ACCESS_TOKEN_TTL_MIN",
    "REFRESH_TOKEN_IDLE_DAYS",
    "REFRESH_TOKEN_ABSOLUTE_DAYS",
    "REFRESH_TOKEN_REUSE_GRACE_SEC",
    "REFRESH_TOKEN_PREFIX",
    "DEVICE_CONFIRMATION",
    "DEVICE_LOGIN_POLICY",
    "DEVICE_LOGIN_POLICY_FILE",
    "REQUIRE_DPOP",
    "DPOP_NONCE",
    "APPROVAL_STEP_UP",
    "API_TOKEN_SCOPES_HIGH_RISK",
    "APPROVAL_STEP_UP_MAX_DAYS",
    "TOKEN_SEAL_KEY",
    "TOKEN_SEAL_KEYS_PREVIOUS",
    "CODE_HMAC_KEY",
    "SESSION_KEY",
    "RATE_LIMIT_START_PER_MIN",
    "RATE_LIMIT_CODE_ENTRY_PER_ACCOUNT_PER_HOUR",
    "RATE_LIMIT_START_GLOBAL_PER_MIN",
    "RATE_LIMIT_POLL_PER_MIN",
    "RATE_LIMIT_COMPLETE_PER_MIN",
    "RATE_LIMIT_LOGIN_PER_MIN",
    "RATE_LIMIT_LOGIN_PER_ACCOUNT_PER_HOUR",
    "RATE_LIMIT_IPV6_PREFIX",
    "SECURITY_EVENT_RETENTION_DAYS",
    "SMTP_URL",
    "MAIL_FROM",
    "SECURITY_WEBHOOK_URL",
    "SECURITY_WEBHOOK_SECRET",
    "SECURITY_WEBHOOK_SECRET_FILE",
    "ALLOW_SIGNUP",
    "OIDC_PROVIDERS",
    "PASSWORD_LOGIN",
    "TRUSTED_PROXIES",
    "DATABASE_POOL_SIZE",
    "DATABASE_TIMEOUT_SEC",
    "WORKERS",
    "BCRYPT_COST",
    "SESSION_TTL_HOURS",
    "METRICS_BIND_ADDR",
    "RUST_LOG",
    "LOG_FORMAT",
];

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::VARIABLES;
    use tracing_subscriber::EnvFilter;

    #[test]
    fn variables_are_the_readme_table_and_each_is_read_by_the_code() {
        let readme = include_str!("../../README.md");
        let table = readme
            .split("## Configuration")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .unwrap();
        let mut documented = Vec::new();
        for line in table.lines().filter(|l| l.starts_with("| `")) {
            let first = line.split('|').nth(1).unwrap();
            documented.extend(first.split('`').skip(1).step_by(2).map(str::to_owned));
        }
        assert_eq!(documented, VARIABLES, "README table vs config::VARIABLES");
        // The non-test code of every file that reads the environment.
        let outside: String = [
            include_str!("mod.rs"),
            include_str!("oidc.rs"),
            include_str!("notices.rs"),
            include_str!("keys.rs"),
            include_str!("clients.rs"),
            include_str!("device_policy.rs"),
            include_str!("../telemetry.rs"),
        ]
        .map(|file| file.split("#[cfg(test)]").next().unwrap())
        .concat();
        // That code must name each variable, except RUST_LOG, which
        // tracing-subscriber's EnvFilter reads.
        assert_eq!(EnvFilter::DEFAULT_ENV, "RUST_LOG");
        for name in VARIABLES.iter().filter(|n| **n != "RUST_LOG") {
            assert!(
                outside.contains(&format!("\"{name}\"")),
                "{name} is listed but never read"
            );
        }
    }
}
