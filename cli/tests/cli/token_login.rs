//! `envshield login --token` and `--with-token`: save a token the person
//! already has, after the server has accepted it.

use crate::helpers::TestEnv;

#[test]
fn a_good_token_is_checked_and_saved() {
    let env = TestEnv::spawn();
    let browser = env.signed_in_browser("ci@example.com");
    let (token, token_id) = env.mint_token(&browser, "ci runner");

    let done = env.run(&["login", "--token", &token]);

    done.assert_code(0);
    assert!(
        done.stdout.contains("Signed in as ci@example.com"),
        "{done:?}"
    );
    let profile = env.saved_profile();
    assert_eq!(profile["token"], token.as_str());
    assert_eq!(profile["tokenId"], token_id.to_string());
    assert_eq!(profile["tokenName"], "ci runner");
    assert_eq!(profile["apiUrl"], env.api_url());
    let whoami = env.run(&["whoami"]);
    whoami.assert_code(0);
    assert!(
        whoami.stdout.contains("Signed in as ci@example.com"),
        "{whoami:?}"
    );
}

#[test]
fn a_refused_token_writes_nothing() {
    let env = TestEnv::spawn();
    let bad = "esh_thisTokenWasNeverIssuedByTheServer0000";

    // Nothing saved yet: nothing is created.
    let done = env.run(&["login", "--token", bad]);
    done.assert_code(1);
    let error = done.error_line();
    assert!(error.contains("refused the token"), "{done:?}");
    assert!(error.contains("nothing was saved"), "{done:?}");
    env.assert_nothing_written();

    // A malformed one is refused before asking the server.
    let done = env.run(&["--json", "login", "--token", "two words"]);
    done.assert_code(1);
    assert_eq!(done.json()["error"], "invalid_token_format", "{done:?}");
    env.assert_nothing_written();

    // Signed in already: the saved sign-in is left exactly as it was.
    let browser = env.signed_in_browser("ci@example.com");
    let (good, _) = env.mint_token(&browser, "ci runner");
    env.run(&["login", "--token", &good]).assert_code(0);
    let before = std::fs::read(env.config_path()).expect("config saved");

    let done = env.run(&["login", "--token", bad]);
    done.assert_code(1);
    done.error_line();
    assert_eq!(
        std::fs::read(env.config_path()).expect("config kept"),
        before
    );
    env.run(&["whoami"]).assert_code(0);
}

#[test]
fn with_token_reads_the_token_from_stdin() {
    let env = TestEnv::spawn();
    let browser = env.signed_in_browser("ci@example.com");
    let (token, token_id) = env.mint_token(&browser, "from stdin");

    // As `echo "$TOKEN" | envshield login --with-token`, with stray spaces.
    let done = env.run_with_stdin(
        &["--json", "login", "--with-token"],
        &format!("  {token}\n"),
    );

    done.assert_code(0);
    let signed_in = done.json();
    assert_eq!(signed_in["event"], "signed_in");
    assert_eq!(signed_in["user"]["email"], "ci@example.com");
    assert_eq!(signed_in["token"]["id"], token_id.to_string());
    assert!(!done.stdout.contains(&token) && !done.stderr.contains(&token));
    assert_eq!(env.saved_profile()["token"], token.as_str());
    env.run(&["whoami"]).assert_code(0);

    // Nothing on stdin: an error, and the saved sign-in is kept.
    let done = env.run_with_stdin(&["login", "--with-token"], "");
    done.assert_code(1);
    done.error_line();
    assert_eq!(env.saved_profile()["token"], token.as_str());
}
