//! Failures a person must be able to act on: a broken config file, not
//! being signed in, no server.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::helpers::{closed_port_api_url, Sandbox, TestEnv};

#[test]
fn a_corrupt_config_is_named_and_left_alone() {
    let env = TestEnv::spawn();
    let corrupt = b"{\"profiles\": {\"default\": {\"token\": \"esh_abc\"";
    fs::create_dir(env.config_dir()).expect("config dir");
    fs::set_permissions(env.config_dir(), fs::Permissions::from_mode(0o700)).expect("chmod");
    fs::write(env.config_path(), corrupt).expect("write config");
    fs::set_permissions(env.config_path(), fs::Permissions::from_mode(0o600)).expect("chmod");
    let path = env.config_path().display().to_string();

    for args in [
        &["whoami"][..],
        &["tokens", "list"],
        &["logout"],
        &["token"],
        &["login", "--no-browser"],
        &["login", "--token", "esh_whatever"],
    ] {
        let done = env.run(args);
        done.assert_code(1);
        let error = done.error_line();
        assert!(error.contains(&path), "{args:?}: {done:?}");
        assert!(error.contains("is not valid"), "{args:?}: {done:?}");
        assert!(error.contains("Fix it or delete it"), "{args:?}: {done:?}");
        assert_eq!(fs::read(env.config_path()).expect("config"), corrupt);
    }

    let done = env.run(&["--json", "whoami"]);
    done.assert_code(1);
    assert_eq!(done.json()["error"], "config_error");

    // `login` read the file before starting anything on the server.
    assert!(env.device_sessions().is_empty());
    // And nothing else appeared next to it.
    assert_eq!(fs::read_dir(env.config_dir()).expect("dir").count(), 1);
}

#[test]
fn whoami_when_not_signed_in_says_to_log_in() {
    let env = TestEnv::spawn();

    let done = env.run(&["whoami"]);
    done.assert_code(1);
    let error = done.error_line();
    assert!(error.contains("not signed in"), "{done:?}");
    assert!(error.contains("Run `envshield login`"), "{done:?}");

    let done = env.run(&["--json", "whoami"]);
    done.assert_code(1);
    assert_eq!(done.json()["error"], "not_signed_in");
    env.assert_nothing_written();
}

#[test]
fn an_unreachable_server_is_a_one_line_error() {
    let sandbox = Sandbox::new();
    let url = closed_port_api_url();

    let mut whoami = sandbox.command(&["--api-url", &url, "whoami"]);
    whoami.env("ENVSHIELD_TOKEN", "esh_some_token");
    let runs = [
        crate::helpers::Running::spawn(whoami, None).finish(),
        sandbox.run(&["--api-url", &url, "login", "--token", "esh_some_token"]),
        sandbox.run(&["--api-url", &url, "login", "--no-browser"]),
    ];
    for done in runs {
        done.assert_code(1);
        let error = done.error_line();
        assert!(error.contains("could not reach"), "{done:?}");
        assert!(error.contains(&url), "{done:?}");
    }
    sandbox.assert_nothing_written();
}
