//! What the unit tests of the policy share.

use crate::config::{Config, OAuthClient};

pub fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

pub fn client(scopes: &[&str]) -> OAuthClient {
    OAuthClient {
        client_id: "envshield-cli".into(),
        grants: vec![],
        scopes: strings(scopes),
        token_policy: crate::config::TokenPolicy::ApiToken,
        confirmation: None,
        require_dpop: false,
    }
}

pub fn config(pairs: &[(&str, &str)]) -> Config {
    let dir = std::env::temp_dir().join(format!(
        "envshield-policy-{}-{}",
        std::process::id(),
        hex::encode(crate::crypto::random_bytes::<4>())
    ));
    let mut vars: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    vars.insert("ENVSHIELD_DATA_DIR".into(), dir.display().to_string());
    let config = Config::from_map(&vars).unwrap();
    let _ = std::fs::remove_dir_all(dir);
    config
}
