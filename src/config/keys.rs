//! The server's keys: from `TOKEN_SEAL_KEY`, `TOKEN_SEAL_KEYS_PREVIOUS`,
//! `CODE_HMAC_KEY` and `SESSION_KEY`, or generated once for local use and kept
//! in `data/keys.json` (0600).

use std::collections::HashMap;
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use secrecy::{ExposeSecret, SecretBox};
use serde::{Deserialize, Serialize};

use super::env::{get, split_list};
use super::{err, ConfigError, Environment};
use crate::crypto::{self, SealKey, SealKeyring};

/// File, inside the data folder, holding locally generated keys.
const LOCAL_KEYS_FILE: &str = "keys.json";

/// The server's secrets. `Debug` shows key ids only.
pub struct Keys {
    /// Seals minted tokens while they wait for the CLI.
    pub seal: SealKeyring,
    /// Keys the HMAC of device and user codes.
    pub code_hmac: SecretBox<[u8; 32]>,
    /// Signs and encrypts session cookies (64 bytes).
    pub session: SecretBox<[u8; 64]>,
}

crypto::redacted_debug!(Keys { seal });

impl Clone for Keys {
    fn clone(&self) -> Self {
        Self {
            seal: self.seal.clone(),
            code_hmac: SecretBox::new(Box::new(*self.code_hmac.expose_secret())),
            session: SecretBox::new(Box::new(*self.session.expose_secret())),
        }
    }
}

/// Keys generated for local use, persisted 0600 in the data folder.
#[derive(Serialize, Deserialize)]
struct LocalKeys {
    token_seal_key: String,
    code_hmac_key: String,
    session_key: String,
}

fn decode_key<const N: usize>(name: &str, value: &str) -> Result<[u8; N], ConfigError> {
    let bytes = STANDARD
        .decode(value)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(value))
        .map_err(|_| err(format!("{name} must be base64")))?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| {
        err(format!(
            "{name} must decode to exactly {N} bytes (got {}); generate one with `openssl rand -base64 {N}`",
            bytes.len()
        ))
    })
}

/// Three fresh keys as `NAME=base64` lines (`envshield-server keys
/// generate`), ready for an env file or a Kubernetes Secret.
pub fn generate_env_lines() -> String {
    format!(
        "TOKEN_SEAL_KEY={}\nCODE_HMAC_KEY={}\nSESSION_KEY={}\n",
        STANDARD.encode(crypto::random_bytes::<32>()),
        STANDARD.encode(crypto::random_bytes::<32>()),
        STANDARD.encode(crypto::random_bytes::<64>()),
    )
}

/// The keys from the environment; locally, any that are missing come from
/// (or are generated into) the keys file in `data_dir`.
pub(super) fn load_keys(
    vars: &HashMap<String, String>,
    environment: Environment,
    data_dir: &Path,
) -> Result<Keys, ConfigError> {
    let get = |k: &str| get(vars, k);
    let names = ["TOKEN_SEAL_KEY", "CODE_HMAC_KEY", "SESSION_KEY"];
    let missing: Vec<&str> = names.iter().copied().filter(|k| get(k).is_none()).collect();
    if environment == Environment::Production && !missing.is_empty() {
        return Err(err(format!(
            "production requires explicit keys; missing: {}. Generate each with `openssl rand -base64 32` (SESSION_KEY: 64)",
            missing.join(", ")
        )));
    }
    let local = if missing.is_empty() {
        None
    } else {
        Some(local_keys(data_dir)?)
    };
    let pick = |name: &str, local_value: Option<&String>| -> Result<String, ConfigError> {
        get(name)
            .map(str::to_owned)
            .or_else(|| local_value.cloned())
            .ok_or_else(|| err(format!("{name} is missing")))
    };
    let seal = decode_key::<32>(
        "TOKEN_SEAL_KEY",
        &pick("TOKEN_SEAL_KEY", local.as_ref().map(|l| &l.token_seal_key))?,
    )?;
    let code = decode_key::<32>(
        "CODE_HMAC_KEY",
        &pick("CODE_HMAC_KEY", local.as_ref().map(|l| &l.code_hmac_key))?,
    )?;
    let session = decode_key::<64>(
        "SESSION_KEY",
        &pick("SESSION_KEY", local.as_ref().map(|l| &l.session_key))?,
    )?;
    let previous = match get("TOKEN_SEAL_KEYS_PREVIOUS") {
        None => Vec::new(),
        Some(list) => split_list(list)
            .iter()
            .map(|k| decode_key::<32>("TOKEN_SEAL_KEYS_PREVIOUS", k).map(SealKey::new))
            .collect::<Result<_, _>>()?,
    };
    Ok(Keys {
        seal: SealKeyring::new(SealKey::new(seal), previous),
        code_hmac: SecretBox::new(Box::new(code)),
        session: SecretBox::new(Box::new(session)),
    })
}

/// Reads the local keys file, creating it (0600) with fresh keys the first time.
fn local_keys(data_dir: &Path) -> Result<LocalKeys, ConfigError> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

    let path = data_dir.join(LOCAL_KEYS_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            // Anyone who can read these keys can forge sessions and open
            // sealed tokens: refuse to run on them rather than widen the leak.
            let mode = std::fs::metadata(&path)
                .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(err(format!(
                    "{} can be read by other users (mode {:o}); run `chmod 600 {}` and consider the keys leaked: rotate them if others had access",
                    path.display(),
                    mode & 0o777,
                    path.display()
                )));
            }
            return serde_json::from_str(&text).map_err(|e| {
                err(format!(
                    "{} is not a valid keys file ({e}); restore it or delete it to generate new keys (pending logins will be lost)",
                    path.display()
                ))
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(format!("cannot read {}: {e}", path.display()))),
    }
    std::fs::create_dir_all(data_dir)
        .map_err(|e| err(format!("cannot create {}: {e}", data_dir.display())))?;
    // The local PostgreSQL runs as another user when we are root and must be
    // able to traverse this folder; the keys file itself stays 0600.
    let _ = std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o711));
    let keys = LocalKeys {
        token_seal_key: STANDARD.encode(crypto::random_bytes::<32>()),
        code_hmac_key: STANDARD.encode(crypto::random_bytes::<32>()),
        session_key: STANDARD.encode(crypto::random_bytes::<64>()),
    };
    let json = serde_json::to_string_pretty(&keys).map_err(|e| err(e.to_string()))?;
    let tmp = data_dir.join(format!(".{LOCAL_KEYS_FILE}.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(json.as_bytes())?;
        f.sync_all()?;
        // Another process may have created the file meanwhile: keep theirs.
        std::fs::hard_link(&tmp, &path)
    };
    let result = write();
    let _ = std::fs::remove_file(&tmp);
    match result {
        Ok(()) => {
            tracing::info!(path = %path.display(), "generated local keys");
            Ok(keys)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => local_keys(data_dir),
        Err(e) => Err(err(format!("cannot write {}: {e}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::tmp_dir;

    #[test]
    fn keys_decode_from_either_base64_alphabet_and_check_length() {
        let std32 = STANDARD.encode([0xfbu8; 32]);
        let url32 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xfbu8; 32]);
        assert_eq!(decode_key::<32>("K", &std32).unwrap(), [0xfb; 32]);
        assert_eq!(decode_key::<32>("K", &url32).unwrap(), [0xfb; 32]);
        let e = decode_key::<64>("K", &std32).unwrap_err();
        assert!(e.0.contains("exactly 64 bytes (got 32)"), "{e}");
        assert_eq!(
            decode_key::<32>("K", "!!").unwrap_err().0,
            "K must be base64"
        );
    }

    #[test]
    fn generated_lines_are_keys_production_accepts_and_fresh_each_time() {
        let text = generate_env_lines();
        let vars: HashMap<String, String> = text
            .lines()
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap();
                (k.to_owned(), v.to_owned())
            })
            .collect();
        assert_eq!(vars.len(), 3, "{text}");
        let dir = tmp_dir("keys-generated");
        let keys = load_keys(&vars, Environment::Production, &dir).unwrap();
        assert_eq!(
            STANDARD.encode(keys.code_hmac.expose_secret()),
            vars["CODE_HMAC_KEY"]
        );
        assert_eq!(keys.session.expose_secret().len(), 64);
        assert!(!dir.join(LOCAL_KEYS_FILE).exists(), "nothing written");
        assert_ne!(generate_env_lines(), text);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn finding_13_a_keys_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tmp_dir("keys-open");
        local_keys(&dir).unwrap();
        let path = dir.join(LOCAL_KEYS_FILE);
        for mode in [0o640, 0o604, 0o644] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = local_keys(&dir).err().unwrap();
            assert!(e.0.contains("chmod 600"), "{mode:o}: {e}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(local_keys(&dir).is_ok());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_corrupt_keys_file_is_reported_not_replaced() {
        let dir = tmp_dir("keys-corrupt");
        std::fs::write(dir.join(LOCAL_KEYS_FILE), "not json").unwrap();
        use std::os::unix::fs::PermissionsExt;
        let private = std::fs::Permissions::from_mode(0o600);
        std::fs::set_permissions(dir.join(LOCAL_KEYS_FILE), private).unwrap();
        let e = local_keys(&dir).err().unwrap();
        assert!(e.0.contains("is not a valid keys file"), "{e}");
        assert_eq!(
            std::fs::read_to_string(dir.join(LOCAL_KEYS_FILE)).unwrap(),
            "not json"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
