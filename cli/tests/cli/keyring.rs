//! The system keyring, for real: a GNOME Keyring (Secret Service) on a
//! D-Bus session bus of the test's own, started by the test itself, with
//! the real `envshield` binary talking to it. Plus the file fallback when
//! there is no bus, and `--insecure-storage`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use envshield_api_types::dpop::DpopKey;
use serde_json::Value;

use crate::helpers::{Browser, Finished, Running, TestEnv};
use crate::refresh::{access_refresh_server, wait_until_expired};

/// A private D-Bus session with an unlocked GNOME Keyring on it. The bus,
/// and the keyring daemon with it, end when this is dropped.
struct SessionKeyring {
    session: Child,
    /// Closing it ends the session (its shell waits for end of input).
    hold: Option<ChildStdin>,
    address: String,
    _dir: tempfile::TempDir,
}

/// Fails, naming the Debian package, when a program the keyring tests need
/// is missing: these tests never skip.
fn require(program: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{program}` is not installed: the keyring tests need the Debian package `{package}` (.ci/run installs it)"
    );
}

impl SessionKeyring {
    fn start() -> Self {
        require("dbus-run-session", "dbus-daemon");
        require("gnome-keyring-daemon", "gnome-keyring");
        require("secret-tool", "libsecret-tools");
        let dir = tempfile::tempdir().expect("temp dir");
        let runtime = dir.path().join("run");
        std::fs::create_dir(&runtime).expect("runtime dir");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700))
                .expect("chmod runtime dir");
        }
        // The daemon creates the `login` keyring, unlocked with this
        // password, and becomes the session's Secret Service; the shell
        // then says the bus address and waits for its input to end.
        let script = r#"echo envshield-test | gnome-keyring-daemon --unlock --components=secrets >/dev/null || exit 1
echo "$DBUS_SESSION_BUS_ADDRESS"
exec cat >/dev/null"#;
        let mut session = Command::new("dbus-run-session")
            .args(["--", "sh", "-c", script])
            .env("HOME", dir.path())
            .env("XDG_RUNTIME_DIR", &runtime)
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env_remove("DISPLAY")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-run-session");
        let hold = session.stdin.take();
        let stdout = session.stdout.take().expect("stdout is piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let address = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_default()
            .trim()
            .to_string();
        assert!(
            address.starts_with("unix:"),
            "the session bus with GNOME Keyring did not start (got {address:?})"
        );
        Self {
            session,
            hold,
            address,
            _dir: dir,
        }
    }

    /// Lets `cmd` use this keyring, in the default (auto) mode.
    fn apply(&self, mut cmd: Command) -> Command {
        cmd.env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .env_remove("ENVSHIELD_CREDENTIAL_STORE");
        cmd
    }

    /// The secret `name` of keyring account `account`, read with
    /// `secret-tool`; `None` when there is no such entry.
    fn lookup(&self, account: &str, name: &str) -> Option<String> {
        let out = Command::new("secret-tool")
            .args(["lookup", "service", "envshield", "username"])
            .arg(format!("{account}/{name}"))
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .stdin(Stdio::null())
            .output()
            .expect("run secret-tool");
        if out.status.success() {
            Some(String::from_utf8(out.stdout).expect("UTF-8 secret"))
        } else {
            None
        }
    }

    /// How many entries the CLI filed in this keyring.
    fn entries(&self) -> usize {
        let out = Command::new("secret-tool")
            .args(["search", "--all", "service", "envshield"])
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .stdin(Stdio::null())
            .output()
            .expect("run secret-tool");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .chain(String::from_utf8_lossy(&out.stderr).lines())
            .filter(|l| l.starts_with("secret = "))
            .count()
    }
}

impl Drop for SessionKeyring {
    fn drop(&mut self) {
        self.hold = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.session.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.session.kill();
        let _ = self.session.wait();
    }
}

/// Signs in through `browser` with `cmd` (`login --json --no-browser` and
/// more); returns the finished run.
fn sign_in(browser: &Browser, cmd: Command) -> Finished {
    let mut login = Running::spawn(cmd, None);
    let started = login.json_event("device_started");
    browser.approve(started["userCode"].as_str().expect("userCode"));
    login.finish()
}

/// The keyring account the default profile names.
fn account(env: &TestEnv) -> String {
    let profile = env.saved_profile();
    assert_eq!(profile["keyring"]["service"], "envshield", "{profile}");
    profile["keyring"]["account"]
        .as_str()
        .unwrap_or_else(|| panic!("no keyring account in {profile}"))
        .to_owned()
}

fn assert_no_secret_in_file(path: &Path, secret: &str) {
    let text = std::fs::read_to_string(path).expect("config file");
    assert!(
        !text.contains(secret),
        "the secret is in {}",
        path.display()
    );
}

#[test]
fn the_token_lives_in_the_keyring_and_logout_deletes_it() {
    let keyring = SessionKeyring::start();
    let env = TestEnv::spawn();
    let browser = env.signed_in_browser("dev@example.com");

    let done = sign_in(
        &browser,
        keyring.apply(env.cli(&["--json", "login", "--no-browser"])),
    );
    done.assert_code(0);
    assert_eq!(
        done.stderr, "",
        "no notice when the keyring works: {done:?}"
    );
    let signed_in = done.json_lines().pop().expect("signed_in");
    assert_eq!(signed_in["credentials"]["store"], "keyring", "{signed_in}");
    assert_eq!(
        signed_in["credentials"]["location"],
        "system keyring (Secret Service)"
    );

    // In the keyring, not in the file; the file says where it is.
    let account = account(&env);
    assert!(account.starts_with("default-"), "{account}");
    let token = keyring
        .lookup(&account, "access_token")
        .expect("the token is in the keyring");
    assert!(token.starts_with("esh_"), "{token}");
    let profile = env.saved_profile();
    assert!(profile.get("token").is_none(), "{profile}");
    assert!(profile.get("refreshToken").is_none(), "{profile}");
    assert_eq!(profile["tokenId"], signed_in["token"]["id"]);
    assert_no_secret_in_file(&env.config_path(), &token);
    // Bound to the key kept next to it in the keyring.
    assert_eq!(profile["tokenType"], "DPoP", "{profile}");
    let key = keyring_key(&keyring, &account);
    assert_no_secret_in_file(&env.config_path(), &key.to_stored());
    assert_eq!(env.bearer_whoami(&token).0, 401);
    let (status, _) = env.whoami_with(&token, Some(&key));
    assert_eq!(status, 200);

    // whoami and token read it from there, and say so.
    let whoami = Running::spawn(keyring.apply(env.cli(&["whoami"])), None).finish();
    whoami.assert_code(0);
    assert!(
        whoami
            .stdout
            .contains("Credentials: system keyring (Secret Service)"),
        "{whoami:?}"
    );
    let whoami = Running::spawn(keyring.apply(env.cli(&["--json", "whoami"])), None).finish();
    whoami.assert_code(0);
    let status: Value = whoami.json();
    assert_eq!(status["credentials"]["store"], "keyring", "{status}");
    let printed = Running::spawn(keyring.apply(env.cli(&["token"])), None).finish();
    printed.assert_code(0);
    assert_eq!(printed.stdout.trim(), token);

    // Without the keyring, the token cannot be read: a clear error, and
    // the file still has no token to fall back on.
    let mut cmd = env.cli(&["whoami"]);
    let missing = format!("unix:path={}", env.home().join("no-bus").display());
    cmd.env("DBUS_SESSION_BUS_ADDRESS", missing);
    let locked_out = Running::spawn(cmd, None).finish();
    locked_out.assert_code(1);
    let error = locked_out.error_line();
    assert!(
        error.starts_with("error: could not read the credentials of profile 'default' from the system keyring (Secret Service: "),
        "{locked_out:?}"
    );
    assert!(
        error.contains("envshield login --insecure-storage"),
        "{locked_out:?}"
    );

    // Logout revokes it and deletes the entry.
    let logout = Running::spawn(keyring.apply(env.cli(&["logout"])), None).finish();
    logout.assert_code(0);
    assert!(
        logout.stdout.contains("(system keyring (Secret Service))"),
        "{logout:?}"
    );
    assert_eq!(keyring.lookup(&account, "access_token"), None);
    assert_eq!(keyring.entries(), 0);
    let profile = env.saved_profile();
    assert!(profile.get("keyring").is_none(), "{profile}");
    assert!(profile.get("tokenId").is_none(), "{profile}");
    let (status, _) = env.bearer_whoami(&token);
    assert_eq!(status, 401);
}

#[test]
fn a_new_sign_in_replaces_the_old_keyring_entry() {
    let keyring = SessionKeyring::start();
    let env = TestEnv::spawn();
    let browser = env.signed_in_browser("dev@example.com");
    sign_in(
        &browser,
        keyring.apply(env.cli(&["--json", "login", "--no-browser"])),
    )
    .assert_code(0);
    let first = account(&env);
    sign_in(
        &browser,
        keyring.apply(env.cli(&["--json", "login", "--no-browser"])),
    )
    .assert_code(0);
    let second = account(&env);
    assert_ne!(first, second);
    assert_eq!(keyring.lookup(&first, "access_token"), None);
    assert_eq!(keyring.lookup(&first, "dpop_private_key"), None);
    assert!(keyring.lookup(&second, "access_token").is_some());
    assert!(keyring.lookup(&second, "dpop_private_key").is_some());
    // The new sign-in's token and its DPoP key, nothing of the old one.
    assert_eq!(keyring.entries(), 2);
}

#[test]
fn a_renewed_pair_replaces_the_old_one_in_the_keyring() {
    let keyring = SessionKeyring::start();
    let env = access_refresh_server();
    let browser = env.signed_in_browser("dev@example.com");
    sign_in(
        &browser,
        keyring.apply(env.cli(&["--json", "login", "--no-browser"])),
    )
    .assert_code(0);
    let account = account(&env);
    let old_access = keyring.lookup(&account, "access_token").expect("access");
    let old_refresh = keyring.lookup(&account, "refresh_token").expect("refresh");
    assert!(old_refresh.starts_with("eshr_"), "{old_refresh}");
    assert_no_secret_in_file(&env.config_path(), &old_refresh);

    let key = keyring_key(&keyring, &account);
    wait_until_expired(&env, &old_access, Some(&key));
    let whoami = Running::spawn(keyring.apply(env.cli(&["whoami"])), None).finish();
    whoami.assert_code(0);

    let new_access = keyring.lookup(&account, "access_token").expect("access");
    let new_refresh = keyring.lookup(&account, "refresh_token").expect("refresh");
    assert_ne!(new_access, old_access);
    assert_ne!(new_refresh, old_refresh);
    assert_eq!(env.whoami_with(&new_access, Some(&key)).0, 200);
    let profile = env.saved_profile();
    assert!(profile.get("token").is_none(), "{profile}");
    assert!(profile.get("refreshToken").is_none(), "{profile}");
    assert_no_secret_in_file(&env.config_path(), &new_access);
    assert_no_secret_in_file(&env.config_path(), &new_refresh);
}

#[test]
fn without_a_session_bus_the_token_goes_to_the_file_with_a_notice() {
    let env = TestEnv::spawn();
    let browser = env.signed_in_browser("dev@example.com");
    let mut cmd = env.cli(&["--json", "login", "--no-browser"]);
    // A bus that is not there: the same as no D-Bus session at all.
    let missing = format!("unix:path={}", env.home().join("no-bus").display());
    cmd.env("DBUS_SESSION_BUS_ADDRESS", missing)
        .env_remove("ENVSHIELD_CREDENTIAL_STORE");
    let done = sign_in(&browser, cmd);
    done.assert_code(0);
    let notices: Vec<&str> = done.stderr.lines().collect();
    assert_eq!(notices.len(), 1, "one notice line: {done:?}");
    assert!(
        notices[0].starts_with("warning: no usable system keyring (Secret Service: "),
        "{done:?}"
    );
    assert!(
        notices[0].contains(&env.config_path().display().to_string()),
        "{done:?}"
    );
    let signed_in = done.json_lines().pop().expect("signed_in");
    assert_eq!(signed_in["credentials"]["store"], "file", "{signed_in}");
    let profile = env.saved_profile();
    assert!(profile["token"].as_str().is_some(), "{profile}");
    assert!(profile.get("keyring").is_none(), "{profile}");

    let whoami = env.run(&["whoami"]);
    whoami.assert_code(0);
    assert!(
        whoami.stdout.contains(&format!(
            "Credentials: file {}",
            env.config_path().display()
        )),
        "{whoami:?}"
    );
}

#[test]
fn insecure_storage_keeps_the_token_in_the_file_without_the_keyring() {
    let keyring = SessionKeyring::start();
    let env = TestEnv::spawn();
    let browser = env.signed_in_browser("dev@example.com");
    let done = sign_in(
        &browser,
        keyring.apply(env.cli(&["--json", "login", "--no-browser", "--insecure-storage"])),
    );
    done.assert_code(0);
    assert_eq!(done.stderr, "", "{done:?}");
    assert!(env.saved_profile()["token"].as_str().is_some());
    assert_eq!(keyring.entries(), 0);
    let whoami = Running::spawn(keyring.apply(env.cli(&["whoami"])), None).finish();
    whoami.assert_code(0);
    assert!(
        whoami.stdout.contains(&format!(
            "Credentials: file {}",
            env.config_path().display()
        )),
        "{whoami:?}"
    );

    // The environment variable does the same.
    let mut cmd = keyring.apply(env.cli(&["--json", "login", "--no-browser"]));
    cmd.env("ENVSHIELD_CREDENTIAL_STORE", "file");
    sign_in(&browser, cmd).assert_code(0);
    assert!(env.saved_profile()["token"].as_str().is_some());
    assert_eq!(keyring.entries(), 0);
}

#[test]
fn a_required_keyring_that_is_missing_fails_and_keeps_nothing() {
    let env = TestEnv::spawn();
    let browser = env.signed_in_browser("dev@example.com");
    let mut cmd = env.cli(&["--json", "login", "--no-browser"]);
    let missing = format!("unix:path={}", env.home().join("no-bus").display());
    cmd.env("DBUS_SESSION_BUS_ADDRESS", missing)
        .env("ENVSHIELD_CREDENTIAL_STORE", "keyring");
    let done = sign_in(&browser, cmd);
    done.assert_code(1);
    let error = done.json_lines().pop().expect("error");
    assert_eq!(error["error"], "keyring_unavailable", "{error}");
    let message = error["message"].as_str().expect("message");
    assert!(
        message.contains("ENVSHIELD_CREDENTIAL_STORE=file"),
        "{message}"
    );
    assert!(message.contains("revoked"), "{message}");
    assert!(env.saved_profile().get("tokenId").is_none());

    let bad = env.run_with_env(&["whoami"], "ENVSHIELD_CREDENTIAL_STORE", "vault");
    bad.assert_code(1);
    assert!(
        bad.error_line().contains(
            "ENVSHIELD_CREDENTIAL_STORE is 'vault', but it must be auto, keyring or file"
        ),
        "{bad:?}"
    );
}

/// The DPoP key kept in the keyring entry `account`.
fn keyring_key(keyring: &SessionKeyring, account: &str) -> DpopKey {
    let stored = keyring
        .lookup(account, "dpop_private_key")
        .expect("the DPoP key is in the keyring");
    DpopKey::from_stored(&stored).expect("a readable DPoP key")
}
