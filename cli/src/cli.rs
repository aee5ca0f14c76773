//! The command line: clap types only, no behaviour.

use std::fmt;

use clap::{Args, Parser, Subcommand};
use uuid::Uuid;

use crate::config::parse_profile_name;
use crate::text::redacted;

/// Sign in to EnvShield from the terminal through the browser, and manage
/// the API tokens that come out of it.
#[derive(Debug, Parser)]
#[command(
    name = "envshield",
    version,
    about,
    propagate_version = true,
    after_help = "Environment: ENVSHIELD_API_URL, ENVSHIELD_PROFILE, ENVSHIELD_TOKEN, ENVSHIELD_CONFIG_DIR, ENVSHIELD_CREDENTIAL_STORE, NO_COLOR.\nExit codes: 0 ok, 1 error, 2 usage error, 130 interrupted (Ctrl-C)."
)]
pub struct Cli {
    /// API base URL [default: the profile's saved URL, else
    /// http://localhost:3000/api/v1; env: ENVSHIELD_API_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub api_url: Option<String>,

    /// Profile to use; each profile keeps its own server and token
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        env = "ENVSHIELD_PROFILE",
        default_value = crate::config::DEFAULT_PROFILE,
        value_parser = parse_profile_name
    )]
    pub profile: String,

    /// Machine-readable output: JSON on stdout, errors included
    #[arg(long, global = true)]
    pub json: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sign in: approve in the browser (default), or save a token you have
    Login(LoginArgs),
    /// Show who you are signed in as, on which server, with which token
    #[command(visible_alias = "status")]
    Whoami,
    /// Revoke the token on the server and remove it from this machine
    Logout(LogoutArgs),
    /// List or revoke your API tokens (lists when no subcommand is given)
    Tokens(TokensArgs),
    /// Print the token in use on stdout, for scripts
    Token,
    /// Print a shell completion script
    Completions(CompletionsArgs),
}

/// `envshield login`.
#[derive(Args)]
pub struct LoginArgs {
    /// Name for the new token [default: "CLI Token - <date> - <hostname>"];
    /// skips the prompt
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Scopes to ask for, comma-separated [default: the server's]
    #[arg(long, value_name = "SCOPES", value_delimiter = ',')]
    pub scopes: Vec<String>,

    /// Do not open a browser; just print the address (implies --device)
    #[arg(long)]
    pub no_browser: bool,

    /// Sign in with a code you check in a browser on any device (the
    /// device flow), instead of the browser on this computer coming back
    /// to envshield by itself
    #[arg(long)]
    pub device: bool,

    /// Paste-back confirmation: after you approve, the browser shows a
    /// one-time code (like 482-193) that you type here; only then is the
    /// token released. Read from standard input when it is not a terminal
    #[arg(long)]
    pub paste: bool,

    /// Save this existing token instead of signing in through the browser
    /// (checked with the server first); prefer --with-token, which keeps it
    /// out of the process list
    #[arg(
        long,
        value_name = "TOKEN",
        conflicts_with_all = ["with_token", "name", "scopes", "no_browser", "paste", "device"]
    )]
    pub token: Option<String>,

    /// Read an existing token from standard input and save it (for CI)
    #[arg(long, conflicts_with_all = ["name", "scopes", "no_browser", "paste", "device"])]
    pub with_token: bool,

    /// Copy the code to the clipboard, to paste it in the browser
    #[arg(long, conflicts_with_all = ["token", "with_token"])]
    pub clipboard: bool,

    /// Also show the address as a QR code, to open it on a phone
    #[arg(long, conflicts_with_all = ["token", "with_token"])]
    pub qr: bool,

    /// Keep the token in the config file (0600) instead of the system
    /// keyring [env: ENVSHIELD_CREDENTIAL_STORE=file]
    #[arg(long)]
    pub insecure_storage: bool,
}

// A token given with --token never appears in debug output.
impl fmt::Debug for LoginArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginArgs")
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .field("no_browser", &self.no_browser)
            .field("device", &self.device)
            .field("paste", &self.paste)
            .field("token", &redacted(self.token.as_ref()))
            .field("with_token", &self.with_token)
            .field("clipboard", &self.clipboard)
            .field("qr", &self.qr)
            .field("insecure_storage", &self.insecure_storage)
            .finish()
    }
}

/// `envshield logout`.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Sign out of every profile
    #[arg(long)]
    pub all: bool,

    /// Remove the token from this machine even when the server cannot be
    /// reached to revoke it
    #[arg(long)]
    pub force: bool,
}

/// `envshield tokens`.
#[derive(Debug, Args)]
pub struct TokensArgs {
    /// list (default) or revoke.
    #[command(subcommand)]
    pub command: Option<TokensCommand>,
}

/// `envshield tokens <list|revoke>`.
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// List your tokens
    List {
        /// Every account's tokens (admins only)
        #[arg(long)]
        all: bool,
    },
    /// Revoke a token by id
    Revoke {
        /// Id of the token (see `envshield tokens list`)
        id: Uuid,
    },
}

/// `envshield completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// Shell to write the script for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn scopes_are_comma_separated() {
        let cli =
            Cli::try_parse_from(["envshield", "login", "--scopes", "a,b", "--no-browser"]).unwrap();
        let Command::Login(args) = cli.command else {
            panic!("not login")
        };
        assert_eq!(args.scopes, vec!["a", "b"]);
        assert!(args.no_browser);
    }

    #[test]
    fn token_conflicts_with_device_flow_flags() {
        let err =
            Cli::try_parse_from(["envshield", "login", "--token", "x", "--name", "n"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            Cli::try_parse_from(["envshield", "login", "--token", "x", "--with-token"]).is_err()
        );
    }

    #[test]
    fn paste_goes_with_the_device_flow_only() {
        let cli = Cli::try_parse_from(["envshield", "login", "--paste", "--no-browser"]).unwrap();
        let Command::Login(args) = cli.command else {
            panic!("not login")
        };
        assert!(args.paste);
        for other in [&["--token", "x"][..], &["--with-token"]] {
            let mut argv = vec!["envshield", "login", "--paste"];
            argv.extend_from_slice(other);
            let err = Cli::try_parse_from(argv).unwrap_err();
            assert_eq!(err.exit_code(), 2);
        }
    }

    #[test]
    fn debug_output_hides_a_token_given_on_the_command_line() {
        let cli = Cli::try_parse_from(["envshield", "login", "--token", "esh_secret"]).unwrap();
        let shown = format!("{cli:?}");
        assert!(!shown.contains("esh_secret"), "{shown}");
        assert!(shown.contains("token: Some(\"<redacted>\")"), "{shown}");
    }

    #[test]
    fn status_is_an_alias_of_whoami_and_globals_go_anywhere() {
        let cli =
            Cli::try_parse_from(["envshield", "status", "--json", "--profile", "work"]).unwrap();
        assert!(matches!(cli.command, Command::Whoami));
        assert!(cli.json);
        assert_eq!(cli.profile, "work");
    }

    #[test]
    fn bad_profile_and_token_id_are_usage_errors() {
        let err = Cli::try_parse_from(["envshield", "whoami", "--profile", "a b"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let err = Cli::try_parse_from(["envshield", "tokens", "revoke", "nope"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
