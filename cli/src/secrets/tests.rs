//! The file side of the secret store, and the choice of store. The keyring
//! side runs against a real Secret Service in the CLI's integration tests.

use super::*;

#[test]
fn file_profiles_keep_the_token_fields_older_versions_wrote() {
    let mut profile = Profile::default();
    write(&mut profile, SecretName::AccessToken, Some("esh_a")).unwrap();
    write(&mut profile, SecretName::RefreshToken, Some("eshr_b")).unwrap();
    write(&mut profile, SecretName::DpopPrivateKey, Some("key")).unwrap();
    assert_eq!(profile.token.as_deref(), Some("esh_a"));
    assert_eq!(profile.refresh_token.as_deref(), Some("eshr_b"));
    assert_eq!(profile.secrets["dpop_private_key"], "key");
    assert_eq!(
        read(&profile, SecretName::DpopPrivateKey)
            .unwrap()
            .as_deref(),
        Some("key")
    );

    write(&mut profile, SecretName::RefreshToken, None).unwrap();
    write(&mut profile, SecretName::DpopPrivateKey, None).unwrap();
    assert_eq!(read(&profile, SecretName::RefreshToken).unwrap(), None);
    assert!(profile.secrets.is_empty());
    assert_eq!(
        read(&profile, SecretName::AccessToken).unwrap().as_deref(),
        Some("esh_a")
    );
}

#[test]
fn the_store_is_chosen_by_one_environment_variable() {
    assert_eq!(StorePreference::parse(None), Ok(StorePreference::Auto));
    assert_eq!(StorePreference::parse(Some(" ")), Ok(StorePreference::Auto));
    assert_eq!(
        StorePreference::parse(Some("File")),
        Ok(StorePreference::File)
    );
    assert_eq!(
        StorePreference::parse(Some("keyring")),
        Ok(StorePreference::Keyring)
    );
    let err = StorePreference::parse(Some("vault\n")).unwrap_err();
    assert_eq!(
        err,
        "ENVSHIELD_CREDENTIAL_STORE is 'vault', but it must be auto, keyring or file. Fix or unset it."
    );
}

#[test]
fn where_a_credential_lives_is_said_plainly() {
    let file = std::path::Path::new("/home/me/.envshield/config.json");
    let at = StoredAt::of(&Profile::default(), file);
    assert_eq!(at.store, StoreKind::File);
    assert_eq!(at.to_string(), "file /home/me/.envshield/config.json");
    let profile = Profile {
        keyring: Some(KeyringRef::new("default")),
        ..Default::default()
    };
    let at = StoredAt::of(&profile, file);
    assert_eq!(at.store, StoreKind::Keyring);
    assert_eq!(
        at.to_string(),
        format!("system keyring ({})", Keyring::backend())
    );
}
