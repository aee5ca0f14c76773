//! `envshield login`: the device flow (start, show the code, open the
//! browser, poll until approved), or saving a token given with `--token` /
//! `--with-token` after checking it with the server.

use std::io::{self, BufRead, IsTerminal, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use envshield_api_types::{
    PollDeviceResponse, StartDeviceRequest, StartDeviceResponse, UserInfo, WhoamiResponse,
};
use serde::Serialize;
use uuid::Uuid;

use super::{with_server_message, Context};
use crate::api::{self, ApiClient, ApiError};
use crate::browser;
use crate::cli::LoginArgs;
use crate::config::Profile;
use crate::error::{one_line, profile_flag, CliError};
use crate::output::when;
use crate::spinner::Spinner;

/// How long `login` waits for approval at most, whatever the server says.
pub const HARD_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Retries after network or server errors while polling, each waiting twice
/// as long as the one before (1 s, 2 s, 4 s, 8 s, 16 s).
pub const MAX_RETRIES: u32 = 5;
/// Longest token name the CLI proposes.
const MAX_DEFAULT_NAME: usize = 128;

/// Runs `envshield login`.
pub fn run(ctx: &Context, args: &LoginArgs) -> Result<(), CliError> {
    // Read the config first: a broken file must stop us before a token is
    // minted that could not be saved.
    let config = ctx.load_config()?;
    let previous = config.profiles.get(&ctx.profile).cloned();
    let api_url = ctx.api_url(previous.as_ref().and_then(|p| p.api_url.as_deref()))?;
    let client = ctx.client(&api_url)?;

    let signed_in = if let Some(token) = &args.token {
        login_with_token(ctx, &client, token.trim())?
    } else if args.with_token {
        let token = read_token_from_stdin()?;
        login_with_token(ctx, &client, &token)?
    } else {
        login_with_browser(ctx, &client, args)?
    };

    report(ctx, &signed_in, previous.as_ref());
    Ok(())
}

/// A token that was saved, and what is known about it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct SignedIn {
    event: &'static str,
    profile: String,
    api_url: String,
    config_path: String,
    user: Option<UserInfo>,
    token: SavedToken,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct SavedToken {
    id: Uuid,
    name: String,
    scopes: Vec<String>,
    expires_at: Option<DateTime<Utc>>,
}

fn report(ctx: &Context, signed_in: &SignedIn, previous: Option<&Profile>) {
    if ctx.out.is_json() {
        ctx.out.json_line(signed_in);
        return;
    }
    let who = signed_in
        .user
        .as_ref()
        .map(|u| format!(" as {}", one_line(&u.email)))
        .unwrap_or_default();
    ctx.out.result(&format!(
        "Signed in{who} to {} (profile '{}').",
        signed_in.api_url, signed_in.profile
    ));
    ctx.out.result(&format!(
        "Token \"{}\" saved to {}; it expires: {}.",
        one_line(&signed_in.token.name),
        signed_in.config_path,
        when(signed_in.token.expires_at, Utc::now(), "never")
    ));
    if let Some(old) = previous.and_then(|p| p.token_id.filter(|_| p.token.is_some())) {
        if old != signed_in.token.id {
            ctx.out.note(&format!(
                "The profile's previous token ({old}) was replaced but still works until it expires; revoke it with `envshield tokens revoke {old}{}` if you no longer need it.",
                profile_flag(&signed_in.profile)
            ));
        }
    }
}

// ---------------------------------------------------------------------------
// --token / --with-token

fn read_token_from_stdin() -> Result<String, CliError> {
    let stdin = io::stdin();
    let mut text = String::new();
    let read = if stdin.is_terminal() {
        eprint!("Paste the token and press Enter: ");
        stdin.lock().read_line(&mut text)
    } else {
        stdin.lock().take(64 * 1024).read_to_string(&mut text)
    };
    read.map_err(|e| {
        CliError::new(
            "stdin_error",
            format!("could not read the token from standard input ({e}). Pipe the token in, e.g. `echo \"$TOKEN\" | envshield login --with-token`."),
        )
    })?;
    Ok(text.trim().to_string())
}

fn login_with_token(ctx: &Context, client: &ApiClient, token: &str) -> Result<SignedIn, CliError> {
    api::check_token_format(token).map_err(|reason| {
        CliError::new(
            "invalid_token_format",
            format!("that is not a valid token ({reason}). Pass the token exactly as it was shown when it was created; nothing was saved."),
        )
    })?;
    let who: WhoamiResponse = client.whoami(token).map_err(|err| {
        if err.is_unauthorized() {
            let ours = format!("the server at {} refused the token", client.base_url());
            CliError::new(
                err.code(),
                format!(
                    "{}. Check the token, or run `envshield login` to sign in through the browser; nothing was saved.",
                    with_server_message(&ours, &err)
                ),
            )
        } else {
            CliError::from(err).with_hint("Nothing was saved.")
        }
    })?;
    let saved = SavedToken {
        id: who.token.id,
        name: who.token.name.clone(),
        scopes: who.token.scopes.clone(),
        expires_at: who.token.expires_at,
    };
    save(ctx, client.base_url(), token, &saved)?;
    Ok(signed_in(ctx, client.base_url(), Some(who.user), saved))
}

fn save(ctx: &Context, api_url: &str, token: &str, saved: &SavedToken) -> Result<(), CliError> {
    ctx.update_config(|config| {
        let profile = config.profiles.entry(ctx.profile.clone()).or_default();
        profile.api_url = Some(api_url.to_string());
        profile.token = Some(token.to_string());
        profile.token_id = Some(saved.id);
        profile.token_name = Some(saved.name.clone());
        profile.expires_at = saved.expires_at;
    })?;
    Ok(())
}

fn signed_in(ctx: &Context, api_url: &str, user: Option<UserInfo>, token: SavedToken) -> SignedIn {
    SignedIn {
        event: "signed_in",
        profile: ctx.profile.clone(),
        api_url: api_url.to_string(),
        config_path: ctx.store.path().display().to_string(),
        user,
        token,
    }
}

// ---------------------------------------------------------------------------
// The device flow

/// The default token name: `CLI Token - <YYYY-MM-DD> - <hostname>`, at most
/// 128 characters.
pub fn default_token_name(date: NaiveDate, hostname: &str) -> String {
    let host = one_line(hostname);
    let host = if host.is_empty() {
        "unknown-host"
    } else {
        &host
    };
    let name = format!("CLI Token - {} - {host}", date.format("%Y-%m-%d"));
    name.chars().take(MAX_DEFAULT_NAME).collect()
}

fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// `--name`, else an answer to the prompt (only when stdin is a terminal),
/// else the default.
fn token_name(args: &LoginArgs) -> Result<String, CliError> {
    if let Some(name) = &args.name {
        let name = name.trim();
        if name.is_empty() {
            return Err(CliError::new(
                "invalid_name",
                "the token name is empty. Pass a name with --name, or leave --name out for the default.",
            ));
        }
        return Ok(name.to_string());
    }
    let default = default_token_name(chrono::Local::now().date_naive(), &hostname());
    if !io::stdin().is_terminal() {
        return Ok(default);
    }
    eprint!("Token name [{default}]: ");
    let mut answer = String::new();
    io::stdin().lock().read_line(&mut answer).map_err(|e| {
        CliError::new(
            "stdin_error",
            format!("could not read the token name ({e}). Pass it with --name."),
        )
    })?;
    let answer = answer.trim();
    Ok(if answer.is_empty() {
        default
    } else {
        answer.to_string()
    })
}

fn scopes(args: &LoginArgs) -> Option<Vec<String>> {
    let scopes: Vec<String> = args
        .scopes
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    (!scopes.is_empty()).then_some(scopes)
}

fn login_with_browser(
    ctx: &Context,
    client: &ApiClient,
    args: &LoginArgs,
) -> Result<SignedIn, CliError> {
    let request = StartDeviceRequest {
        token_name: Some(token_name(args)?),
        scopes: scopes(args),
    };

    // Installed before the session starts (but after the name prompt, which
    // Ctrl-C must still be able to end): a Ctrl-C as soon as the code is
    // shown, or during `start` itself, must cancel the request on the
    // server, not kill the process and leave the request pending.
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = Arc::clone(&interrupted);
        // A second Ctrl-C leaves at once, even in the middle of a request.
        let installed = ctrlc::set_handler(move || {
            if flag.swap(true, Ordering::SeqCst) {
                std::process::exit(i32::from(crate::error::EXIT_INTERRUPTED));
            }
        });
        if let Err(e) = installed {
            ctx.out.warn(&format!(
                "Ctrl-C will not cancel the request on the server ({e})."
            ));
        }
    }

    let start = client.start_device(&request)?;
    announce(ctx, &start);

    if args.no_browser {
        ctx.out
            .note("Open the address above in a browser where you are signed in.");
    } else if !browser::can_open_here() {
        ctx.out.note("No browser here (no display, or an SSH session): open the address above on any device where you are signed in.");
    } else if let Err(reason) = browser::open(&start.verification_url) {
        ctx.out.note(&format!(
            "Could not open a browser ({}); open the address above by hand.",
            one_line(&reason)
        ));
    } else {
        ctx.out
            .note("Opened your browser. If nothing appeared, open the address above by hand.");
    }

    let waiting = "Waiting for approval in the browser (Ctrl-C to cancel)";
    let spinner = Spinner::start(waiting);
    if spinner.is_none() {
        ctx.out.note(&format!("{waiting}..."));
    }
    let outcome = wait_for_approval(
        client,
        &start,
        &WaitOptions::default(),
        &interrupted,
        &mut |progress| {
            if let Some(s) = &spinner {
                s.set_message(&progress.describe());
            } else if let Progress::Retrying { .. } = progress {
                ctx.out.note(&progress.describe());
            }
        },
    );
    if let Some(s) = spinner {
        s.stop();
    }

    match outcome {
        Ok(approved) => finish(ctx, client, approved),
        Err(end) => {
            if matches!(end, WaitEnd::Interrupted | WaitEnd::TimedOut) {
                // Best effort: the request is useless now, tell the server.
                let _ = client.cancel_device(&start.device_code);
            }
            Err(end.into_error(ctx))
        }
    }
}

fn announce(ctx: &Context, start: &StartDeviceResponse) {
    let url = one_line(&start.verification_url);
    let code = one_line(&start.user_code);
    if ctx.out.is_json() {
        ctx.out.json_line(&serde_json::json!({
            "event": "device_started",
            "verificationUrl": url,
            "verificationUri": one_line(&start.verification_uri),
            "userCode": code,
            "expiresAt": start.expires_at,
            "pollInterval": start.poll_interval,
        }));
        return;
    }
    let out = &ctx.out;
    out.note("");
    out.note(
        "To sign in, open this address in your browser and check that it shows the same code:",
    );
    out.note("");
    out.note(&format!("    {url}"));
    out.note("");
    out.note(&format!("    Code:  {}", out.bold(&code)));
    out.note("");
    out.note(&format!(
        "Or go to {} and type the code. The request expires in {} minutes.",
        one_line(&start.verification_uri),
        (start.expires_in.max(0) + 59) / 60
    ));
}

fn finish(ctx: &Context, client: &ApiClient, approved: Approved) -> Result<SignedIn, CliError> {
    let saved = SavedToken {
        id: approved.token_id,
        name: approved.token_name,
        scopes: approved.scopes,
        expires_at: approved.expires_at,
    };
    if let Err(err) = save(ctx, client.base_url(), &approved.token, &saved) {
        // A token nobody holds must not linger on the server.
        let revoked = client.logout(&approved.token).is_ok();
        let hint = if revoked {
            "The new token was revoked on the server; fix this and run `envshield login` again."
        } else {
            "The new token could not be revoked either; revoke it in the web UI."
        };
        return Err(err.with_hint(hint));
    }
    // Who approved it, for the message; the sign-in stands without it.
    let user = client.whoami(&approved.token).ok().map(|w| w.user);
    Ok(signed_in(ctx, client.base_url(), user, saved))
}

/// The token handed out on approval.
#[derive(Clone, PartialEq, Eq)]
pub struct Approved {
    /// The token in plaintext.
    pub token: String,
    /// Its id.
    pub token_id: Uuid,
    /// Its name.
    pub token_name: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for Approved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Approved")
            .field("token", &"<redacted>")
            .field("token_id", &self.token_id)
            .field("token_name", &self.token_name)
            .finish_non_exhaustive()
    }
}

/// Why waiting ended without a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitEnd {
    /// The person denied the request; the server's message.
    Denied(String),
    /// The request expired or is unknown; the server's message.
    Expired(String),
    /// [`HARD_TIMEOUT`] passed.
    TimedOut,
    /// Ctrl-C.
    Interrupted,
    /// The server or network failed for good.
    Failed(ApiError),
}

impl WaitEnd {
    fn into_error(self, ctx: &Context) -> CliError {
        let again = format!(
            "Run `envshield login{}` to try again.",
            profile_flag(&ctx.profile)
        );
        let said = |m: &str| {
            let m = crate::error::clause(m);
            if m.is_empty() {
                String::new()
            } else {
                format!(" ({m})")
            }
        };
        match self {
            Self::Denied(m) => CliError::new(
                "access_denied",
                format!(
                    "the sign-in request was denied in the browser{}. {again}",
                    said(&m)
                ),
            ),
            Self::Expired(m) => CliError::new(
                "expired_token",
                format!(
                    "the sign-in request expired before it was approved{}. {again}",
                    said(&m)
                ),
            ),
            Self::TimedOut => CliError::new(
                "login_timeout",
                format!(
                    "gave up after waiting {} minutes for approval. {again}",
                    HARD_TIMEOUT.as_secs() / 60
                ),
            ),
            Self::Interrupted => CliError::interrupted("sign-in cancelled; nothing was saved."),
            Self::Failed(err) => {
                let transient = err.is_transient();
                let e = CliError::from(err);
                if transient {
                    CliError::new(
                        e.code,
                        format!("lost the server while waiting for approval, after {MAX_RETRIES} retries: {}", e.message),
                    )
                } else {
                    e
                }
            }
        }
    }
}

/// Something worth showing while waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The server asked to poll less often.
    SlowDown {
        /// The new interval.
        interval: Duration,
    },
    /// A poll failed; trying again after `delay`.
    Retrying {
        /// Which retry this is (1-based).
        attempt: u32,
        /// How long until it.
        delay: Duration,
    },
    /// Polling works again after a failure.
    Recovered,
}

impl Progress {
    /// A short line for the spinner.
    pub fn describe(&self) -> String {
        match self {
            Self::SlowDown { interval } => format!(
                "Waiting for approval in the browser (checking every {} s; Ctrl-C to cancel)",
                interval.as_secs()
            ),
            Self::Retrying { attempt, delay } => format!(
                "Cannot reach the server; retry {attempt} of {MAX_RETRIES} in {} s (Ctrl-C to cancel)",
                delay.as_secs().max(1)
            ),
            Self::Recovered => {
                "Waiting for approval in the browser (Ctrl-C to cancel)".to_string()
            }
        }
    }
}

/// Timing knobs of [`wait_for_approval`]; tests shrink them.
#[derive(Debug, Clone)]
pub struct WaitOptions {
    /// Give up after this long.
    pub hard_timeout: Duration,
    /// Never poll more often than this, whatever the server says.
    pub min_interval: Duration,
    /// Pause before the first retry; doubles each time.
    pub backoff_base: Duration,
    /// Sleep granularity, so Ctrl-C is noticed quickly.
    pub slice: Duration,
}

impl Default for WaitOptions {
    fn default() -> Self {
        Self {
            hard_timeout: HARD_TIMEOUT,
            min_interval: Duration::from_secs(1),
            backoff_base: Duration::from_secs(1),
            slice: Duration::from_millis(100),
        }
    }
}

/// Polls until the request is approved, denied or expired, the hard timeout
/// passes, or `interrupted` is set. Waits the server's interval between
/// polls (longer after `slow_down`), and retries network and server errors
/// with exponential backoff, at most [`MAX_RETRIES`] times in a row.
pub fn wait_for_approval(
    client: &ApiClient,
    start: &StartDeviceResponse,
    options: &WaitOptions,
    interrupted: &AtomicBool,
    progress: &mut dyn FnMut(Progress),
) -> Result<Approved, WaitEnd> {
    let deadline = Instant::now() + options.hard_timeout;
    let mut interval = Duration::from_secs(start.poll_interval).max(options.min_interval);
    let mut failures = 0u32;
    // The first poll waits one interval too: nobody approves in 0 s.
    let mut next_wait = interval;

    loop {
        pause(next_wait, deadline, options.slice, interrupted)?;
        match client.poll_device(&start.device_code) {
            Ok(answer) => {
                if failures > 0 {
                    failures = 0;
                    progress(Progress::Recovered);
                }
                match answer {
                    PollDeviceResponse::Pending { poll_interval } => {
                        interval = Duration::from_secs(poll_interval).max(options.min_interval);
                    }
                    PollDeviceResponse::SlowDown { poll_interval, .. } => {
                        interval = Duration::from_secs(poll_interval)
                            .max(options.min_interval)
                            .max(interval);
                        progress(Progress::SlowDown { interval });
                    }
                    PollDeviceResponse::Approved {
                        token,
                        token_id,
                        token_name,
                        scopes,
                        expires_at,
                    } => {
                        return Ok(Approved {
                            token,
                            token_id,
                            token_name,
                            scopes,
                            expires_at,
                        })
                    }
                    PollDeviceResponse::Denied { message, .. } => {
                        return Err(WaitEnd::Denied(message))
                    }
                    PollDeviceResponse::Expired { message, .. } => {
                        return Err(WaitEnd::Expired(message))
                    }
                }
                next_wait = interval;
            }
            // A generic rate limiter in front of the poll endpoint: back off
            // as if told to slow down.
            Err(ApiError::Api {
                status: 429,
                retry_after,
                ..
            }) => {
                let asked = retry_after.map_or(interval * 2, Duration::from_secs);
                interval = asked.max(interval).max(options.min_interval);
                progress(Progress::SlowDown { interval });
                next_wait = interval;
            }
            Err(err) if err.is_transient() && failures < MAX_RETRIES => {
                failures += 1;
                let delay = options.backoff_base * 2u32.pow(failures - 1);
                progress(Progress::Retrying {
                    attempt: failures,
                    delay,
                });
                next_wait = delay;
            }
            Err(err) => return Err(WaitEnd::Failed(err)),
        }
    }
}

/// Sleeps `duration` in short slices; ends early on Ctrl-C or the deadline.
fn pause(
    duration: Duration,
    deadline: Instant,
    slice: Duration,
    interrupted: &AtomicBool,
) -> Result<(), WaitEnd> {
    let until = Instant::now() + duration;
    loop {
        if interrupted.load(Ordering::SeqCst) {
            return Err(WaitEnd::Interrupted);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(WaitEnd::TimedOut);
        }
        if now >= until {
            return Ok(());
        }
        std::thread::sleep(slice.min(until - now).min(deadline - now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::tests::{canned_server, http};

    fn start(poll_interval: u64) -> StartDeviceResponse {
        StartDeviceResponse {
            device_code: "dev-secret".into(),
            user_code: "BCDF-GHJK".into(),
            verification_url: "http://localhost:3000/cli/login?code=BCDF-GHJK".into(),
            verification_uri: "http://localhost:3000/cli/device".into(),
            expires_at: Utc::now(),
            expires_in: 600,
            poll_interval,
            token_name: "n".into(),
            scopes: vec![],
        }
    }

    fn fast() -> WaitOptions {
        WaitOptions {
            hard_timeout: Duration::from_secs(20),
            min_interval: Duration::ZERO,
            backoff_base: Duration::from_millis(5),
            slice: Duration::from_millis(5),
        }
    }

    fn json(status: &str, body: &str) -> String {
        http(status, "application/json", body)
    }

    const APPROVED: &str = r#"{"status":"approved","token":"esh_tok","tokenId":"00000000-0000-0000-0000-000000000001","tokenName":"n","scopes":["read"],"expiresAt":null}"#;

    #[test]
    fn default_token_name_has_date_and_host() {
        let date = NaiveDate::from_ymd_opt(2025, 3, 7).unwrap();
        assert_eq!(
            default_token_name(date, "laptop"),
            "CLI Token - 2025-03-07 - laptop"
        );
        assert_eq!(
            default_token_name(date, ""),
            "CLI Token - 2025-03-07 - unknown-host"
        );
        assert_eq!(
            default_token_name(date, &"h".repeat(300)).chars().count(),
            128
        );
        assert_eq!(
            default_token_name(date, "evil\n\x1b[31mhost"),
            "CLI Token - 2025-03-07 - evil [31mhost"
        );
    }

    #[test]
    fn pending_slow_down_then_approved() {
        let (base, server) = canned_server(vec![
            json("200 OK", r#"{"status":"pending","pollInterval":0}"#),
            json(
                "429 Too Many Requests",
                r#"{"status":"slow_down","error":"slow_down","message":"m","pollInterval":0}"#,
            ),
            json("200 OK", APPROVED),
        ]);
        let client = ApiClient::new(&base).unwrap();
        let mut seen = Vec::new();
        let approved = wait_for_approval(
            &client,
            &start(0),
            &fast(),
            &AtomicBool::new(false),
            &mut |p| seen.push(p),
        )
        .unwrap();
        let requests = server.join().unwrap();
        assert_eq!(approved.token, "esh_tok");
        assert_eq!(approved.scopes, vec!["read"]);
        assert_eq!(requests.len(), 3);
        assert!(requests
            .iter()
            .all(|r| r.starts_with("POST /api/v1/cli/auth/device/poll ")));
        assert!(matches!(seen[0], Progress::SlowDown { .. }));
    }

    #[test]
    fn slow_down_never_shortens_the_interval() {
        // Interval 1 s from start, slow_down says 2 s: the wait grows.
        let (base, server) = canned_server(vec![
            json(
                "429 Too Many Requests",
                r#"{"status":"slow_down","error":"slow_down","message":"m","pollInterval":2}"#,
            ),
            json("200 OK", APPROVED),
        ]);
        let client = ApiClient::new(&base).unwrap();
        let mut seen = Vec::new();
        let began = Instant::now();
        wait_for_approval(
            &client,
            &start(1),
            &fast(),
            &AtomicBool::new(false),
            &mut |p| seen.push(p),
        )
        .unwrap();
        server.join().unwrap();
        assert!(began.elapsed() >= Duration::from_secs(3));
        assert_eq!(
            seen,
            vec![Progress::SlowDown {
                interval: Duration::from_secs(2)
            }]
        );
    }

    #[test]
    fn denied_and_expired_end_the_wait() {
        let (base, server) = canned_server(vec![
            json(
                "403 Forbidden",
                r#"{"status":"denied","error":"access_denied","message":"Denied by you."}"#,
            ),
            json(
                "410 Gone",
                r#"{"status":"expired","error":"expired_token","message":"Gone."}"#,
            ),
        ]);
        let client = ApiClient::new(&base).unwrap();
        let flag = AtomicBool::new(false);
        assert_eq!(
            wait_for_approval(&client, &start(0), &fast(), &flag, &mut |_| {}).unwrap_err(),
            WaitEnd::Denied("Denied by you.".into())
        );
        assert_eq!(
            wait_for_approval(&client, &start(0), &fast(), &flag, &mut |_| {}).unwrap_err(),
            WaitEnd::Expired("Gone.".into())
        );
        server.join().unwrap();
    }

    #[test]
    fn brief_server_errors_are_retried_with_backoff() {
        let (base, server) = canned_server(vec![
            json(
                "503 Service Unavailable",
                r#"{"error":"unavailable","message":"busy"}"#,
            ),
            http("502 Bad Gateway", "text/html", "<html></html>"),
            json("200 OK", APPROVED),
        ]);
        let client = ApiClient::new(&base).unwrap();
        let mut seen = Vec::new();
        let approved = wait_for_approval(
            &client,
            &start(0),
            &fast(),
            &AtomicBool::new(false),
            &mut |p| seen.push(p),
        );
        server.join().unwrap();
        assert!(approved.is_ok());
        assert_eq!(
            seen,
            vec![
                Progress::Retrying {
                    attempt: 1,
                    delay: Duration::from_millis(5)
                },
                Progress::Retrying {
                    attempt: 2,
                    delay: Duration::from_millis(10)
                },
                Progress::Recovered,
            ]
        );
    }

    #[test]
    fn gives_up_after_max_retries() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}/api/v1", listener.local_addr().unwrap());
        drop(listener);
        let client = ApiClient::new(&base).unwrap();
        let mut retries = 0;
        let end = wait_for_approval(
            &client,
            &start(0),
            &fast(),
            &AtomicBool::new(false),
            &mut |p| {
                if let Progress::Retrying { .. } = p {
                    retries += 1;
                }
            },
        )
        .unwrap_err();
        assert_eq!(retries, MAX_RETRIES);
        let WaitEnd::Failed(err) = &end else {
            panic!("{end:?}")
        };
        assert_eq!(err.code(), "unreachable");
    }

    #[test]
    fn ctrl_c_and_timeout_stop_the_wait() {
        let client = ApiClient::new("http://127.0.0.1:9/api/v1").unwrap();
        let end = wait_for_approval(
            &client,
            &start(5),
            &fast(),
            &AtomicBool::new(true),
            &mut |_| {},
        )
        .unwrap_err();
        assert_eq!(end, WaitEnd::Interrupted);

        let options = WaitOptions {
            hard_timeout: Duration::from_millis(30),
            ..fast()
        };
        let end = wait_for_approval(
            &client,
            &start(5),
            &options,
            &AtomicBool::new(false),
            &mut |_| {},
        )
        .unwrap_err();
        assert_eq!(end, WaitEnd::TimedOut);
    }

    #[test]
    fn wait_ends_become_clear_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = crate::commands::tests::context(tmp.path());
        let e = WaitEnd::Interrupted.into_error(&ctx);
        assert_eq!(e.exit_code, 130);
        let e = WaitEnd::Denied("Denied.".into()).into_error(&ctx);
        assert_eq!(e.code, "access_denied");
        assert_eq!(
            e.message,
            "the sign-in request was denied in the browser (Denied). Run `envshield login` to try again."
        );
        assert_eq!(WaitEnd::TimedOut.into_error(&ctx).code, "login_timeout");
        assert_eq!(
            WaitEnd::Expired(String::new()).into_error(&ctx).code,
            "expired_token"
        );
    }
}
