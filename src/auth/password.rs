//! bcrypt password hashing, always on the blocking pool.

use secrecy::{ExposeSecret, SecretString};

use crate::error::AppError;

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// bcrypt ignores bytes past 72; longer passwords are refused rather than truncated.
pub const MAX_PASSWORD_BYTES: usize = 72;

/// Checks length rules before anything is hashed.
pub fn validate_new_password(password: &SecretString) -> Result<(), String> {
    let p = password.expose_secret();
    if p.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "The password must be at least {MIN_PASSWORD_CHARS} characters."
        ));
    }
    if p.len() > MAX_PASSWORD_BYTES {
        return Err(format!(
            "The password must be at most {MAX_PASSWORD_BYTES} bytes."
        ));
    }
    Ok(())
}

/// Hashes a password (slow by design: call from `web::block` or a CLI command).
pub fn hash_password(password: &SecretString, cost: u32) -> Result<String, AppError> {
    bcrypt::hash(password.expose_secret(), cost).map_err(AppError::internal)
}

/// Verifies a password against a hash; a malformed hash is simply a mismatch.
pub fn verify_password(password: &SecretString, hash: &str) -> bool {
    bcrypt::verify(password.expose_secret(), hash).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_reject() {
        let pw = SecretString::from("correct horse battery".to_owned());
        let hash = hash_password(&pw, 4).unwrap();
        assert!(hash.starts_with("$2"));
        assert!(verify_password(&pw, &hash));
        assert!(!verify_password(
            &SecretString::from("wrong".to_owned()),
            &hash
        ));
        assert!(!verify_password(&pw, "not-a-hash"));
    }

    #[test]
    fn length_rules() {
        assert!(validate_new_password(&SecretString::from("short".to_owned())).is_err());
        assert!(validate_new_password(&SecretString::from("x".repeat(73))).is_err());
        assert!(validate_new_password(&SecretString::from("long enough pw".to_owned())).is_ok());
    }
}
