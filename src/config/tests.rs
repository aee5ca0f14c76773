//! Unit tests of the configuration as a whole.

use super::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use secrecy::ExposeSecret;

use crate::crypto;

fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A fresh, empty folder of its own for one test.
pub(crate) fn tmp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "envshield-config-{name}-{}-{}",
        std::process::id(),
        hex::encode(crypto::random_bytes::<4>())
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn defaults_apply_and_local_keys_are_generated_once_with_0600() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tmp_dir("defaults");
    let v = vars(&[("ENVSHIELD_DATA_DIR", dir.to_str().unwrap())]);
    let c = Config::from_map(&v).unwrap();
    assert_eq!(c.bind_addr, "127.0.0.1:3000");
    assert_eq!(c.app_base(), "http://localhost:3000");
    assert_eq!(c.device_code_ttl, Duration::from_secs(600));
    assert_eq!(c.device_code_interval_secs, 5);
    assert_eq!(c.api_token_ttl_days, Some(365));
    assert_eq!(c.api_token_prefix, "esh_");
    assert_eq!(c.max_api_tokens_per_user, 10);
    assert!(!c.secure_cookies());
    let mode = std::fs::metadata(dir.join("keys.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = Config::from_map(&v).unwrap();
    assert_eq!(
        again.keys.code_hmac.expose_secret(),
        c.keys.code_hmac.expose_secret()
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn production_requires_keys_and_https() {
    let dir = tmp_dir("prod");
    let d = dir.to_str().unwrap();
    let e = Config::from_map(&vars(&[
        ("ENVSHIELD_ENV", "production"),
        ("ENVSHIELD_DATA_DIR", d),
        ("APP_URL", "https://auth.example.com"),
    ]))
    .unwrap_err();
    assert!(e.0.contains("TOKEN_SEAL_KEY"), "{e}");
    let k32 = STANDARD.encode([1u8; 32]);
    let k64 = STANDARD.encode([2u8; 64]);
    let mut v = vars(&[
        ("ENVSHIELD_ENV", "production"),
        ("ENVSHIELD_DATA_DIR", d),
        ("APP_URL", "http://auth.example.com"),
        ("TOKEN_SEAL_KEY", &k32),
        ("CODE_HMAC_KEY", &k32),
        ("SESSION_KEY", &k64),
    ]);
    assert!(Config::from_map(&v).unwrap_err().0.contains("https"));
    v.insert("APP_URL".into(), "https://auth.example.com/".into());
    let e = Config::from_map(&v).unwrap_err();
    assert!(e.0.contains("production requires DATABASE_URL"), "{e}");
    v.insert(
        "DATABASE_URL".into(),
        "postgres://app@db.example/app".into(),
    );
    let c = Config::from_map(&v).unwrap();
    assert!(c.secure_cookies());
    assert_eq!(c.app_base(), "https://auth.example.com");
    assert_eq!(c.app_origin(), "https://auth.example.com");
    assert!(!dir.join("keys.json").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_values_name_their_variable() {
    let dir = tmp_dir("bad");
    let d = dir.to_str().unwrap();
    for (k, v, needle) in [
        ("DEVICE_CODE_TTL_MIN", "0", "DEVICE_CODE_TTL_MIN"),
        (
            "DEVICE_CODE_INTERVAL_SEC",
            "abc",
            "DEVICE_CODE_INTERVAL_SEC",
        ),
        ("APP_URL", "ftp://x", "APP_URL"),
        ("API_TOKEN_PREFIX", "ESH-", "API_TOKEN_PREFIX"),
        ("API_TOKEN_SCOPES_DEFAULT", "root", "root"),
        ("TRUSTED_PROXIES", "10.0.0.x", "TRUSTED_PROXIES"),
        ("SESSION_KEY", "c2hvcnQ=", "SESSION_KEY"),
        ("ENVSHIELD_ENV", "staging", "ENVSHIELD_ENV"),
        ("ALLOW_SIGNUP", "maybe", "ALLOW_SIGNUP"),
        ("PASSWORD_LOGIN", "false", "OIDC_PROVIDERS"),
        ("OIDC_PROVIDERS", "[{}]", "OIDC_PROVIDERS"),
        ("APPROVAL_STEP_UP", "sometimes", "APPROVAL_STEP_UP"),
        ("DEVICE_CONFIRMATION", "maybe", "DEVICE_CONFIRMATION"),
        (
            "DEVICE_LOGIN_POLICY",
            r#"{"admin": {"requestNetworks": ["10.0.0.0/40"]}}"#,
            "DEVICE_LOGIN_POLICY: role `admin`, `requestNetworks`",
        ),
        ("API_TOKEN_SCOPES_HIGH_RISK", "root:all", "root:all"),
        (
            "APPROVAL_STEP_UP_MAX_DAYS",
            "-1",
            "APPROVAL_STEP_UP_MAX_DAYS",
        ),
    ] {
        let e = Config::from_map(&vars(&[("ENVSHIELD_DATA_DIR", d), (k, v)])).unwrap_err();
        assert!(e.0.contains(needle), "{k}={v}: {e}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn step_up_defaults_to_never_with_write_scopes_and_90_days() {
    let dir = tmp_dir("step-up");
    let d = dir.to_str().unwrap();
    let c = Config::from_map(&vars(&[("ENVSHIELD_DATA_DIR", d)])).unwrap();
    assert_eq!(c.approval_step_up, ApprovalStepUp::Never);
    assert_eq!(
        c.high_risk_scopes,
        ["envs:write", "tokens:write", "tokens:introspect"]
    );
    assert_eq!(c.step_up_max_days, Some(90));
    let c = Config::from_map(&vars(&[
        ("ENVSHIELD_DATA_DIR", d),
        ("APPROVAL_STEP_UP", "high_risk"),
        ("API_TOKEN_SCOPES_HIGH_RISK", ""),
        ("APPROVAL_STEP_UP_MAX_DAYS", "0"),
    ]))
    .unwrap();
    assert_eq!(c.approval_step_up, ApprovalStepUp::HighRisk);
    assert!(c.high_risk_scopes.is_empty(), "set and empty: none");
    assert_eq!(c.step_up_max_days, None, "0 turns the rule off");
    let c = Config::from_map(&vars(&[
        ("ENVSHIELD_DATA_DIR", d),
        ("APPROVAL_STEP_UP", "always"),
        ("API_TOKEN_SCOPES_HIGH_RISK", "envs:read"),
    ]))
    .unwrap();
    assert_eq!(c.approval_step_up, ApprovalStepUp::Always);
    assert!(c.is_high_risk_scope("envs:read"));
    assert!(!c.is_high_risk_scope("envs:write"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn token_ttl_empty_means_no_expiry_and_scopes_accept_json() {
    let dir = tmp_dir("ttl");
    let c = Config::from_map(&vars(&[
        ("ENVSHIELD_DATA_DIR", dir.to_str().unwrap()),
        ("API_TOKEN_TTL_DAYS", ""),
        ("API_TOKEN_SCOPES", "core:read,core:write"),
        ("API_TOKEN_SCOPES_DEFAULT", r#"["core:read"]"#),
    ]))
    .unwrap();
    assert_eq!(c.api_token_ttl_days, None);
    assert_eq!(c.default_scopes, ["core:read"]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn trusted_proxies_take_networks_and_single_addresses() {
    let dir = tmp_dir("proxies");
    let d = dir.to_str().unwrap();
    let with = |list: &str| {
        Config::from_map(&vars(&[
            ("ENVSHIELD_DATA_DIR", d),
            ("TRUSTED_PROXIES", list),
        ]))
    };
    let c = with("10.244.0.0/16, 192.0.2.7, ::ffff:198.51.100.1, 2001:db8::/48").unwrap();
    let listed: Vec<String> = c.trusted_proxies.iter().map(ToString::to_string).collect();
    assert_eq!(
        listed,
        [
            "10.244.0.0/16",
            "192.0.2.7/32",
            "198.51.100.1/32",
            "2001:db8::/48"
        ]
    );
    let e = with("10.244.3.0/16").unwrap_err().to_string();
    assert!(
        e.contains("TRUSTED_PROXIES") && e.contains("10.244.0.0/16"),
        "{e}"
    );
}
