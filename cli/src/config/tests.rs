//! The config store against a real temporary folder.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use uuid::Uuid;

use super::*;

fn store() -> (tempfile::TempDir, ConfigStore) {
    let tmp = tempfile::tempdir().unwrap();
    let store = ConfigStore::new(tmp.path().join("cfg"));
    (tmp, store)
}

/// A store whose config file already holds `contents`.
fn store_holding(contents: &str) -> (tempfile::TempDir, ConfigStore) {
    let (tmp, store) = store();
    fs::create_dir_all(store.dir()).unwrap();
    fs::write(store.path(), contents).unwrap();
    (tmp, store)
}

fn profile(url: &str, token: &str) -> Profile {
    Profile {
        api_url: Some(url.into()),
        token: Some(token.into()),
        token_id: Some(Uuid::nil()),
        token_name: Some("CLI Token".into()),
        expires_at: None,
        refresh_token: None,
        token_type: None,
        secrets: Default::default(),
        keyring: None,
        other: Default::default(),
    }
}

fn no_warn() -> impl FnMut(String) {
    |w| panic!("unexpected warning: {w}")
}

#[test]
fn missing_file_is_an_empty_config() {
    let (_tmp, store) = store();
    let config = store.load(&mut no_warn()).unwrap();
    assert!(config.profiles.is_empty());
    assert!(!store.dir().exists(), "loading must not create anything");
}

/// A config whose default profile is signed in to `url` with `token`.
fn signed_in(url: &str, token: &str) -> Config {
    let mut config = Config::default();
    config
        .profiles
        .insert("default".into(), profile(url, token));
    config
}

#[test]
fn save_then_load_round_trips_with_camel_case_keys() {
    let (_tmp, store) = store();
    let config = signed_in("http://x/api/v1", "esh_abc");
    store.save(&config, &mut no_warn()).unwrap();

    let text = fs::read_to_string(store.path()).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["profiles"]["default"]["apiUrl"], "http://x/api/v1");
    assert_eq!(json["profiles"]["default"]["token"], "esh_abc");
    assert_eq!(
        json["profiles"]["default"]["tokenId"],
        Uuid::nil().to_string()
    );
    assert_eq!(json["profiles"]["default"]["tokenName"], "CLI Token");
    assert_eq!(store.load(&mut no_warn()).unwrap(), config);
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[test]
fn new_folder_is_0700_and_file_is_0600() {
    let (_tmp, store) = store();
    store.save(&Config::default(), &mut no_warn()).unwrap();
    assert_eq!(mode(store.dir()), 0o700);
    assert_eq!(mode(&store.path()), 0o600);
}

#[test]
fn save_leaves_no_temporary_file_behind() {
    let (_tmp, store) = store();
    store.save(&Config::default(), &mut no_warn()).unwrap();
    store.save(&Config::default(), &mut no_warn()).unwrap();
    let names: Vec<_> = fs::read_dir(store.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec![CONFIG_FILE.to_string()]);
}

#[test]
fn failed_save_keeps_the_old_file_and_cleans_up() {
    let (_tmp, store) = store();
    let config = signed_in("http://x", "esh_old");
    store.save(&config, &mut no_warn()).unwrap();
    // A folder where the file should be makes the rename fail after the
    // temporary file was written: the old content must survive.
    let blocked = ConfigStore::new(store.dir().join("blocked"));
    fs::create_dir_all(blocked.path()).unwrap();
    let err = blocked.save(&config, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("could not replace"), "{err}");
    let leftovers: Vec<_> = fs::read_dir(blocked.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, vec![OsString::from(CONFIG_FILE)]);
    assert_eq!(store.load(&mut no_warn()).unwrap(), config);
}

#[cfg(unix)]
#[test]
fn looser_permissions_are_tightened_with_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let (_tmp, store) = store();
    store.save(&Config::default(), &mut no_warn()).unwrap();
    fs::set_permissions(store.dir(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(store.path(), fs::Permissions::from_mode(0o644)).unwrap();

    let mut warnings = Vec::new();
    store.load(&mut |w| warnings.push(w)).unwrap();
    assert_eq!(mode(store.dir()), 0o700);
    assert_eq!(mode(&store.path()), 0o600);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("mode 755"), "{warnings:?}");
    assert!(warnings[1].contains("mode 644"), "{warnings:?}");

    // Once tight, no more warnings.
    store.load(&mut no_warn()).unwrap();
}

#[cfg(unix)]
#[test]
fn an_existing_loose_folder_is_tightened_on_save() {
    use std::os::unix::fs::PermissionsExt;
    let (_tmp, store) = store();
    fs::create_dir_all(store.dir()).unwrap();
    fs::set_permissions(store.dir(), fs::Permissions::from_mode(0o777)).unwrap();
    let mut warnings = Vec::new();
    store
        .save(&Config::default(), &mut |w| warnings.push(w))
        .unwrap();
    assert_eq!(mode(store.dir()), 0o700);
    assert_eq!(warnings.len(), 1);
}

#[test]
fn corrupt_file_is_a_clear_error_and_is_not_overwritten() {
    let (_tmp, store) = store_holding("{\"profiles\": {");

    let err = store.load(&mut |_| {}).unwrap_err();
    let message = err.to_string();
    assert!(message.contains(&store.path().display().to_string()));
    assert!(message.contains("Fix it or delete it"), "{message}");
    assert!(!message.contains('\n'));

    let err = store.update(&mut |_| {}, |_| {}).unwrap_err();
    assert!(matches!(err, ConfigError::Corrupt { .. }));
    assert_eq!(
        fs::read_to_string(store.path()).unwrap(),
        "{\"profiles\": {"
    );
}

#[test]
fn wrong_shape_is_corrupt_too() {
    let (_tmp, store) = store_holding(r#"{"profiles": {"default": {"token": 5}}}"#);
    assert!(matches!(
        store.load(&mut |_| {}),
        Err(ConfigError::Corrupt { .. })
    ));
}

#[test]
fn saving_a_profile_keeps_the_others_and_unknown_keys() {
    let (_tmp, store) = store_holding(
        r#"{"profiles": {"work": {"apiUrl": "http://w", "token": "esh_w", "color": "blue"}}, "telemetry": false}"#,
    );

    store
        .update(&mut |_| {}, |c| {
            c.profiles
                .insert("default".into(), profile("http://d", "esh_d"));
        })
        .unwrap();

    let config = store.load(&mut |_| {}).unwrap();
    assert_eq!(config.profiles.len(), 2);
    assert_eq!(config.profiles["work"].token.as_deref(), Some("esh_w"));
    assert_eq!(config.profiles["work"].other["color"], "blue");
    assert_eq!(config.other["telemetry"], false);
    assert_eq!(config.profiles["default"].token.as_deref(), Some("esh_d"));
}

#[test]
fn config_dir_comes_from_the_env_var_first() {
    let home = Some(PathBuf::from("/home/me"));
    assert_eq!(
        config_dir_from(Some("/tmp/es".into()), home.clone()).unwrap(),
        PathBuf::from("/tmp/es")
    );
    assert_eq!(
        config_dir_from(Some("".into()), home.clone()).unwrap(),
        PathBuf::from("/home/me/.envshield")
    );
    assert_eq!(
        config_dir_from(None, home).unwrap(),
        PathBuf::from("/home/me/.envshield")
    );
    assert!(matches!(
        config_dir_from(None, None),
        Err(ConfigError::NoHome)
    ));
}

#[test]
fn debug_output_hides_the_token() {
    let shown = format!("{:?}", profile("http://x", "esh_secret"));
    assert!(!shown.contains("esh_secret"));
    assert!(shown.contains("<redacted>"));
}

#[test]
fn refresh_token_is_saved_as_refresh_token_and_hidden_from_debug() {
    let (_tmp, store) = store();
    let mut p = profile("http://x", "esh_access");
    p.refresh_token = Some("eshr_secret".into());
    let mut config = Config::default();
    config.profiles.insert("default".into(), p.clone());
    store.save(&config, &mut no_warn()).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(store.path()).unwrap()).unwrap();
    assert_eq!(json["profiles"]["default"]["refreshToken"], "eshr_secret");
    assert_eq!(store.load(&mut no_warn()).unwrap(), config);
    assert!(!format!("{p:?}").contains("eshr_secret"));

    // A profile without one does not write the key at all.
    store.save(&Config::default(), &mut no_warn()).unwrap();
    store
        .save(&signed_in("http://x", "esh_t"), &mut no_warn())
        .unwrap();
    assert!(!fs::read_to_string(store.path())
        .unwrap()
        .contains("refreshToken"));
}

#[test]
fn the_lock_is_exclusive_and_released_on_drop() {
    let (_tmp, store) = store();
    let held = store.lock(&mut no_warn()).unwrap();
    let other = fs::OpenOptions::new()
        .write(true)
        .open(store.dir().join(LOCK_FILE))
        .unwrap();
    assert!(matches!(
        other.try_lock(),
        Err(fs::TryLockError::WouldBlock)
    ));
    drop(held);
    other.try_lock().unwrap();
    other.unlock().unwrap();
    drop(store.lock(&mut no_warn()).unwrap());
    #[cfg(unix)]
    assert_eq!(mode(&store.dir().join(LOCK_FILE)), 0o600);
}

#[test]
fn clear_token_keeps_the_server() {
    let mut p = profile("http://x", "esh_t");
    p.refresh_token = Some("eshr_r".into());
    p.clear_token();
    assert_eq!(p.refresh_token, None);
    assert_eq!(p.api_url.as_deref(), Some("http://x"));
    assert_eq!(p.token, None);
    assert_eq!(p.token_id, None);
}

#[test]
fn profile_names_are_checked() {
    for good in ["default", "work-2.eu_x"] {
        assert_eq!(parse_profile_name(good).as_deref(), Ok(good));
    }
    for bad in ["", "a b", "../x"] {
        assert!(parse_profile_name(bad).is_err(), "{bad}");
    }
}

#[test]
fn concurrent_updates_of_different_profiles_all_survive() {
    let (_tmp, store) = store();
    let writers: Vec<_> = ["work", "home"]
        .into_iter()
        .map(|who| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..20 {
                    store
                        .update(&mut |_| {}, |c| {
                            c.profiles
                                .insert(format!("{who}-{i}"), profile("http://x", "esh_t"));
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let config = store.load(&mut no_warn()).unwrap();
    assert_eq!(config.profiles.len(), 40, "{:?}", config.profiles.keys());
}

#[test]
fn update_waits_for_the_lock() {
    let (_tmp, store) = store();
    let held = store.lock(&mut no_warn()).unwrap();
    let other = store.clone();
    let writer = std::thread::spawn(move || {
        other
            .update(&mut |_| {}, |c| {
                c.profiles
                    .insert("default".into(), profile("http://x", "esh_t"));
            })
            .unwrap();
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(!writer.is_finished(), "update went ahead without the lock");
    assert!(!store.path().exists());
    drop(held);
    writer.join().unwrap();
    assert!(store
        .load(&mut no_warn())
        .unwrap()
        .profiles
        .contains_key("default"));
}

#[test]
fn a_file_written_before_the_keyring_still_loads_with_its_tokens() {
    let (_tmp, store) = store_holding(
        r#"{"profiles":{"default":{"apiUrl":"http://x/api/v1","token":"esh_old","tokenId":"00000000-0000-0000-0000-000000000000","tokenName":"CLI Token","refreshToken":"eshr_old"}}}"#,
    );
    let config = store.load(&mut |_| {}).unwrap();
    let profile = &config.profiles["default"];
    assert!(profile.has_credentials());
    assert_eq!(profile.keyring, None);
    assert_eq!(profile.token.as_deref(), Some("esh_old"));
    assert_eq!(profile.refresh_token.as_deref(), Some("eshr_old"));
}

#[test]
fn a_keyring_profile_names_its_entry_and_holds_no_secret() {
    let (_tmp, store) = store();
    let mut config = Config::default();
    let entry = KeyringRef::new("work");
    config.profiles.insert(
        "work".into(),
        Profile {
            api_url: Some("http://x/api/v1".into()),
            token_id: Some(Uuid::nil()),
            keyring: Some(entry.clone()),
            ..Default::default()
        },
    );
    store.save(&config, &mut no_warn()).unwrap();

    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(store.path()).unwrap()).unwrap();
    let saved = &json["profiles"]["work"];
    assert_eq!(saved["keyring"]["service"], "envshield");
    assert_eq!(saved["keyring"]["account"], entry.account.as_str());
    assert!(saved.get("token").is_none() && saved.get("secrets").is_none());
    assert!(entry.account.starts_with("work-") && entry.account.len() == 17);
    assert_ne!(KeyringRef::new("work"), entry);

    let loaded = store.load(&mut no_warn()).unwrap();
    assert!(loaded.profiles["work"].has_credentials());
    let mut cleared = loaded.profiles["work"].clone();
    cleared.clear_token();
    assert!(!cleared.has_credentials());
    assert_eq!(cleared.api_url.as_deref(), Some("http://x/api/v1"));
}
