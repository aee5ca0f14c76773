//! `envshield login`: the device flow (start, show the code, open the
//! browser, poll until approved; or, in paste mode, read the confirmation
//! code the browser shows and exchange it for the token), or saving a token
//! given with `--token` / `--with-token` after checking it with the server.

use std::io::{self, BufRead, IsTerminal, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use envshield_api_types::{
    ConfirmationMode, PollDeviceResponse, StartDeviceRequest, StartDeviceResponse, UserInfo,
    WhoamiResponse,
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
    /// A refresh token was saved with it: the CLI renews it by itself.
    refreshable: bool,
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
        "Token \"{}\" saved to {}; it expires: {}{}.",
        one_line(&signed_in.token.name),
        signed_in.config_path,
        when(signed_in.token.expires_at, Utc::now(), "never"),
        if signed_in.token.refreshable {
            ", and is renewed automatically with the refresh token saved next to it"
        } else {
            ""
        }
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
        refreshable: false,
    };
    save(ctx, client.base_url(), token, None, &saved)?;
    Ok(signed_in(ctx, client.base_url(), Some(who.user), saved))
}

/// Saves the token, and its refresh token or the absence of one, in one
/// atomic write (an older profile's refresh token never survives a new
/// sign-in).
fn save(
    ctx: &Context,
    api_url: &str,
    token: &str,
    refresh_token: Option<&str>,
    saved: &SavedToken,
) -> Result<(), CliError> {
    ctx.update_config(|config| {
        let profile = config.profiles.entry(ctx.profile.clone()).or_default();
        profile.api_url = Some(api_url.to_string());
        profile.token = Some(token.to_string());
        profile.token_id = Some(saved.id);
        profile.token_name = Some(saved.name.clone());
        profile.expires_at = saved.expires_at;
        profile.refresh_token = refresh_token.map(str::to_string);
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
        client_id: None,
        confirmation: args.paste.then_some(ConfirmationMode::Paste),
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
    // When the request stops being usable, by this machine's clock.
    let session_end = Instant::now() + Duration::from_secs(start.expires_in.max(0).unsigned_abs());
    // The server may require paste mode for every sign-in.
    let paste = args.paste || start.confirmation == ConfirmationMode::Paste;
    announce(ctx, &start, paste);

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

    let options = WaitOptions::default();
    let setup = |told| PasteSetup {
        start: &start,
        session_end,
        asked_for_paste: args.paste,
        told,
    };
    let outcome = if paste {
        paste_code(ctx, client, &setup(None), &options, &interrupted)
    } else {
        match poll(ctx, client, &start, &options, &interrupted) {
            Err(WaitEnd::ConfirmationRequired(message)) => {
                paste_code(ctx, client, &setup(Some(&message)), &options, &interrupted)
            }
            other => other,
        }
    };

    match outcome {
        Ok(approved) => finish(ctx, client, approved),
        Err(end) => {
            if matches!(
                end,
                WaitEnd::Interrupted | WaitEnd::TimedOut | WaitEnd::NoCode { .. }
            ) {
                // Best effort: the request is useless now, tell the server.
                let _ = client.cancel_device(&start.device_code);
            }
            Err(end.into_error(ctx, paste))
        }
    }
}

/// Polls with a spinner (or a note when stderr is not a terminal).
fn poll(
    ctx: &Context,
    client: &ApiClient,
    start: &StartDeviceResponse,
    options: &WaitOptions,
    interrupted: &AtomicBool,
) -> Result<Approved, WaitEnd> {
    let waiting = "Waiting for approval in the browser (Ctrl-C to cancel)";
    let spinner = Spinner::start(waiting);
    if spinner.is_none() {
        ctx.out.note(&format!("{waiting}..."));
    }
    let outcome = wait_for_approval(client, start, options, interrupted, &mut |progress| {
        if let Some(s) = &spinner {
            s.set_message(&progress.describe());
        } else if let Progress::Retrying { .. } = progress {
            ctx.out.note(&progress.describe());
        }
    });
    if let Some(s) = spinner {
        s.stop();
    }
    outcome
}

/// What paste mode needs to know about the sign-in.
struct PasteSetup<'a> {
    /// The session.
    start: &'a StartDeviceResponse,
    /// When the session stops being usable, by this machine's clock.
    session_end: Instant,
    /// `--paste` was given (else the server required paste mode).
    asked_for_paste: bool,
    /// The server's message, when a poll said a code is required.
    told: Option<&'a str>,
}

/// Paste mode in the terminal: prompts for the confirmation code (or reads
/// lines from stdin when it is not a terminal), with the `--json`
/// `confirmation_required` events.
fn paste_code(
    ctx: &Context,
    client: &ApiClient,
    setup: &PasteSetup<'_>,
    options: &WaitOptions,
    interrupted: &AtomicBool,
) -> Result<Approved, WaitEnd> {
    let (start, session_end, told) = (setup.start, setup.session_end, setup.told);
    let tty = io::stdin().is_terminal();
    let out = &ctx.out;
    if let Some(message) = told {
        out.note(&format!(
            "The server requires a confirmation code: {}",
            one_line(message)
        ));
    }
    out.note("After you approve, the browser shows a one-time confirmation code; type it here (Ctrl-C to cancel).");
    let lines = stdin_lines();
    let mut prompted = false;
    let outcome = confirm_with_code(
        client,
        start,
        session_end,
        options,
        interrupted,
        &lines,
        &mut |event| match event {
            PasteEvent::Prompt { rejected } => {
                if out.is_json() {
                    let mut doc = serde_json::json!({ "event": "confirmation_required" });
                    if let Some(r) = &rejected {
                        doc["error"] = r.code.clone().into();
                        doc["message"] = one_line(&r.message).into();
                    } else if let Some(message) = told {
                        doc["message"] = one_line(message).into();
                    }
                    out.json_line(&doc);
                } else if let Some(r) = &rejected {
                    out.note(&one_line(&r.message));
                }
                if tty {
                    out.prompt(CODE_PROMPT);
                    prompted = true;
                } else {
                    out.note(CODE_PROMPT.trim_end());
                }
            }
            PasteEvent::Retrying { attempt, delay } => {
                out.note(&Progress::Retrying { attempt, delay }.describe())
            }
        },
    );
    if prompted && matches!(outcome, Err(WaitEnd::Interrupted | WaitEnd::TimedOut)) {
        // The cursor is still after the prompt.
        out.prompt("\n");
    }
    match outcome {
        Err(WaitEnd::NoCode { .. }) => Err(WaitEnd::NoCode {
            required_by_server: !setup.asked_for_paste,
        }),
        other => other,
    }
}

/// The confirmation code prompt.
pub const CODE_PROMPT: &str = "Enter the confirmation code shown in your browser: ";

fn announce(ctx: &Context, start: &StartDeviceResponse, paste: bool) {
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
            "confirmation": if paste { ConfirmationMode::Paste } else { ConfirmationMode::Poll },
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
        refreshable: approved.refresh_token.is_some(),
    };
    let stored = save(
        ctx,
        client.base_url(),
        &approved.token,
        approved.refresh_token.as_deref(),
        &saved,
    );
    if let Err(err) = stored {
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
    /// The refresh token, for short-lived access tokens.
    pub refresh_token: Option<String>,
}

impl Approved {
    /// The token of an `Approved` answer; the other answers back as `Err`.
    fn from_answer(answer: PollDeviceResponse) -> Result<Self, Box<PollDeviceResponse>> {
        match answer {
            PollDeviceResponse::Approved {
                token,
                token_id,
                token_name,
                scopes,
                expires_at,
                refresh_token,
            } => Ok(Self {
                token,
                token_id,
                token_name,
                scopes,
                expires_at,
                refresh_token,
            }),
            other => Err(Box::new(other)),
        }
    }
}

impl std::fmt::Debug for Approved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Approved")
            .field("token", &"<redacted>")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
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
    /// Paste mode: the request ended before the token was exchanged (too
    /// many wrong codes, expired, cancelled); the server's message.
    Ended(String),
    /// The request was approved, but the token is only released for the
    /// confirmation code shown in the browser; the server's message.
    ConfirmationRequired(String),
    /// Paste mode: standard input ended without a code.
    NoCode {
        /// The server required paste mode (`--paste` was not given).
        required_by_server: bool,
    },
    /// [`HARD_TIMEOUT`] passed.
    TimedOut,
    /// Ctrl-C.
    Interrupted,
    /// The server or network failed for good.
    Failed(ApiError),
}

impl WaitEnd {
    fn into_error(self, ctx: &Context, paste: bool) -> CliError {
        let flag = profile_flag(&ctx.profile);
        let paste_flag = if paste { " --paste" } else { "" };
        let again = format!("Run `envshield login{paste_flag}{flag}` to try again.");
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
            Self::Ended(m) => CliError::new(
                "expired_token",
                format!(
                    "the sign-in request is no longer valid{}. {again}",
                    said(&m)
                ),
            ),
            Self::ConfirmationRequired(m) => CliError::new(
                "confirmation_required",
                format!(
                    "the request was approved, but the server releases the token only for the confirmation code shown in the browser{}. Run `envshield login --paste{flag}` and type the code.",
                    said(&m)
                ),
            ),
            Self::NoCode { required_by_server: true } => CliError::new(
                "confirmation_required",
                format!(
                    "the server requires the confirmation code shown in the browser, but standard input is not a terminal and held no code. Rerun with `envshield login --paste{flag}` in a terminal, or write the code to its standard input after approving (e.g. a pipe); the request was cancelled."
                ),
            ),
            Self::NoCode { required_by_server: false } => CliError::new(
                "confirmation_required",
                format!(
                    "standard input ended before a confirmation code was read; the request was cancelled. Run `envshield login --paste{flag}` in a terminal, or write the code shown in the browser to its standard input after approving."
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
    // Long-poll: the server holds each poll for up to one interval and
    // answers the moment the request is approved or denied.
    let mut next_wait = Duration::ZERO;

    loop {
        pause(next_wait, deadline, options.slice, interrupted)?;
        let asked_at = Instant::now();
        let hold = u32::try_from(interval.as_secs().min(30)).unwrap_or(30);
        match client.poll_device(&start.device_code, Some(hold)) {
            Ok(answer) => {
                if failures > 0 {
                    failures = 0;
                    progress(Progress::Recovered);
                }
                match answer {
                    PollDeviceResponse::Pending { poll_interval } => {
                        interval = Duration::from_secs(poll_interval).max(options.min_interval);
                        // The server may have held the request that long
                        // already; wait only for what is left.
                        next_wait = interval.saturating_sub(asked_at.elapsed());
                        continue;
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
                        refresh_token,
                    } => {
                        return Ok(Approved {
                            token,
                            token_id,
                            token_name,
                            scopes,
                            expires_at,
                            refresh_token,
                        })
                    }
                    PollDeviceResponse::ConfirmationRequired { message } => {
                        return Err(WaitEnd::ConfirmationRequired(message))
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

// ---------------------------------------------------------------------------
// Paste mode

/// Most wrong-looking answers in a row that are refused locally, without
/// asking the server, before giving up (a stream of garbage on stdin).
const MAX_MALFORMED: u32 = 20;

/// A line of standard input, or its end.
#[derive(Debug)]
pub enum Line {
    /// One line, as read (with its newline).
    Text(String),
    /// End of input (or a read error: nothing more will come).
    End,
}

/// Reads standard input line by line on a thread of its own, so that the
/// waiting side notices Ctrl-C and deadlines while the person types.
fn stdin_lines() -> Receiver<Line> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || loop {
        let mut line = String::new();
        // No line of interest is longer; a longer one is cut and refused.
        let read = io::stdin().lock().take(1024).read_line(&mut line);
        let message = match read {
            Ok(0) | Err(_) => Line::End,
            Ok(_) => Line::Text(line),
        };
        let last = matches!(message, Line::End);
        if tx.send(message).is_err() || last {
            break;
        }
    });
    rx
}

/// A confirmation code as typed, without spaces and dashes: `482-193`,
/// `482 193` and `482193` are the same code. `None` when what is left is
/// not a plausible code (1 to 32 letters and digits).
pub fn normalize_code(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    let plausible =
        !code.is_empty() && code.len() <= 32 && code.chars().all(|c| c.is_ascii_alphanumeric());
    plausible.then_some(code)
}

/// Why the last answer was not accepted, shown with the next prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// `invalid_confirmation_code`, `authorization_pending`,
    /// `invalid_format`, or the server's code.
    pub code: String,
    /// For the person.
    pub message: String,
}

/// What the person should see while [`confirm_with_code`] runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasteEvent {
    /// Ask for a code (again, after `rejected`).
    Prompt {
        /// Why the previous answer was refused; `None` the first time.
        rejected: Option<Rejection>,
    },
    /// The server could not be reached; trying the same code again.
    Retrying {
        /// Which retry (1-based).
        attempt: u32,
        /// How long until it.
        delay: Duration,
    },
}

/// Paste mode: asks for the confirmation code (through `progress`), reads
/// it from `lines`, and exchanges it for the token
/// (`POST /cli/auth/device/exchange`). A wrong code, or one sent before the
/// request was approved, asks again with the server's message (which
/// counts the attempts left). Ends on approval, denial, the request ending
/// (410: expired, or too many wrong codes), the end of input, Ctrl-C, the
/// hard timeout, or `session_end`. Does not poll while waiting.
pub fn confirm_with_code(
    client: &ApiClient,
    start: &StartDeviceResponse,
    session_end: Instant,
    options: &WaitOptions,
    interrupted: &AtomicBool,
    lines: &Receiver<Line>,
    progress: &mut dyn FnMut(PasteEvent),
) -> Result<Approved, WaitEnd> {
    let hard_deadline = Instant::now() + options.hard_timeout;
    let mut rejected = None;
    let mut malformed = 0u32;
    loop {
        progress(PasteEvent::Prompt {
            rejected: rejected.take(),
        });
        let typed = next_line(
            lines,
            hard_deadline,
            session_end,
            options.slice,
            interrupted,
        )?;
        let Some(code) = normalize_code(&typed) else {
            if typed.trim().is_empty() {
                // Enter alone: ask again, quietly.
                continue;
            }
            malformed += 1;
            if malformed > MAX_MALFORMED {
                return Err(WaitEnd::NoCode {
                    required_by_server: false,
                });
            }
            rejected = Some(Rejection {
                code: "invalid_format".into(),
                message: "That is not a confirmation code: it is the code the browser shows after you approve, like 482-193.".into(),
            });
            continue;
        };
        match exchange(client, start, &code, options, interrupted, progress)? {
            Ok(approved) => return Ok(approved),
            Err(why) => rejected = Some(why),
        }
    }
}

/// One exchange of `code`, retrying network and server failures. The
/// inner `Err` is a refusal worth asking again for.
fn exchange(
    client: &ApiClient,
    start: &StartDeviceResponse,
    code: &str,
    options: &WaitOptions,
    interrupted: &AtomicBool,
    progress: &mut dyn FnMut(PasteEvent),
) -> Result<Result<Approved, Rejection>, WaitEnd> {
    let mut failures = 0u32;
    let far = Instant::now() + options.hard_timeout;
    loop {
        if interrupted.load(Ordering::SeqCst) {
            return Err(WaitEnd::Interrupted);
        }
        let answer = match client.exchange_device(&start.device_code, code) {
            Ok(answer) => answer,
            Err(ApiError::Api { status, body, .. }) => {
                let message = if body.message.trim().is_empty() {
                    format!("The server refused the code (HTTP {status}).")
                } else {
                    one_line(&body.message)
                };
                return match (status, body.error.as_str()) {
                    (403, _) => Err(WaitEnd::Denied(message)),
                    (410, _) => Err(WaitEnd::Ended(message)),
                    (409, _) | (_, "authorization_pending") => Ok(Err(Rejection {
                        code: "authorization_pending".into(),
                        message: "The request has not been approved yet: approve it in the browser first; the browser then shows the code.".into(),
                    })),
                    (400, "invalid_confirmation_code") | (429, _) => Ok(Err(Rejection {
                        code: body.error.clone(),
                        message: format!("That code was not accepted: {message}"),
                    })),
                    _ => Err(WaitEnd::Failed(ApiError::Api {
                        status,
                        body,
                        retry_after: None,
                    })),
                };
            }
            Err(err) if err.is_transient() && failures < MAX_RETRIES => {
                failures += 1;
                let delay = options.backoff_base * 2u32.pow(failures - 1);
                progress(PasteEvent::Retrying {
                    attempt: failures,
                    delay,
                });
                pause(delay, far, options.slice, interrupted)?;
                continue;
            }
            Err(err) => return Err(WaitEnd::Failed(err)),
        };
        return match Approved::from_answer(answer).map_err(|other| *other) {
            Ok(approved) => Ok(Ok(approved)),
            Err(PollDeviceResponse::Denied { message, .. }) => Err(WaitEnd::Denied(message)),
            Err(PollDeviceResponse::Expired { message, .. }) => Err(WaitEnd::Ended(message)),
            Err(_) => Ok(Err(Rejection {
                code: "authorization_pending".into(),
                message: "The request has not been approved yet: approve it in the browser first; the browser then shows the code.".into(),
            })),
        };
    }
}

/// The next line of input; ends early on Ctrl-C, the hard deadline, or
/// when the request expires.
fn next_line(
    lines: &Receiver<Line>,
    hard_deadline: Instant,
    session_end: Instant,
    slice: Duration,
    interrupted: &AtomicBool,
) -> Result<String, WaitEnd> {
    loop {
        if interrupted.load(Ordering::SeqCst) {
            return Err(WaitEnd::Interrupted);
        }
        let now = Instant::now();
        if now >= session_end {
            return Err(WaitEnd::Ended(
                "it expired while waiting for the confirmation code".into(),
            ));
        }
        if now >= hard_deadline {
            return Err(WaitEnd::TimedOut);
        }
        let left = hard_deadline.min(session_end) - now;
        match lines.recv_timeout(slice.min(left)) {
            Ok(Line::Text(text)) => return Ok(text),
            Ok(Line::End) | Err(RecvTimeoutError::Disconnected) => {
                return Err(WaitEnd::NoCode {
                    required_by_server: false,
                })
            }
            Err(RecvTimeoutError::Timeout) => {}
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
            confirmation: ConfirmationMode::Poll,
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
        // The first poll goes at once (the server holds it); after
        // slow_down the client waits the longer interval.
        assert!(began.elapsed() >= Duration::from_secs(2));
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
    fn a_poll_asking_for_the_confirmation_code_ends_polling() {
        let (base, server) = canned_server(vec![json(
            "200 OK",
            r#"{"status":"confirmation_required","message":"Type the code."}"#,
        )]);
        let client = ApiClient::new(&base).unwrap();
        let end = wait_for_approval(
            &client,
            &start(0),
            &fast(),
            &AtomicBool::new(false),
            &mut |_| {},
        )
        .unwrap_err();
        server.join().unwrap();
        assert_eq!(end, WaitEnd::ConfirmationRequired("Type the code.".into()));
    }

    #[test]
    fn confirmation_codes_are_read_with_or_without_dash_and_spaces() {
        assert_eq!(normalize_code("482-193\n").as_deref(), Some("482193"));
        assert_eq!(normalize_code(" 482 193 ").as_deref(), Some("482193"));
        assert_eq!(normalize_code("482193").as_deref(), Some("482193"));
        assert_eq!(normalize_code(""), None);
        assert_eq!(normalize_code(" - \n"), None);
        assert_eq!(normalize_code("482;193"), None);
        assert_eq!(normalize_code(&"1".repeat(33)), None);
    }

    /// Lines for [`confirm_with_code`], then the end of input.
    fn typed(lines: &[&str]) -> Receiver<Line> {
        let (tx, rx) = mpsc::channel();
        for line in lines {
            tx.send(Line::Text(format!("{line}\n"))).unwrap();
        }
        tx.send(Line::End).unwrap();
        rx
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(600)
    }

    const APPROVED_WITH_REFRESH: &str = r#"{"status":"approved","token":"esh_acc","tokenId":"00000000-0000-0000-0000-000000000002","tokenName":"n","scopes":["read"],"expiresAt":null,"refreshToken":"eshr_ref"}"#;

    #[test]
    fn a_wrong_code_asks_again_with_the_server_message_then_the_right_one_wins() {
        let (base, server) = canned_server(vec![
            json(
                "409 Conflict",
                r#"{"error":"authorization_pending","message":"Not approved yet."}"#,
            ),
            json(
                "400 Bad Request",
                r#"{"error":"invalid_confirmation_code","message":"Wrong code. 4 attempts left."}"#,
            ),
            json("200 OK", APPROVED_WITH_REFRESH),
        ]);
        let client = ApiClient::new(&base).unwrap();
        let mut events = Vec::new();
        let approved = confirm_with_code(
            &client,
            &start(0),
            far(),
            &fast(),
            &AtomicBool::new(false),
            // Enter alone and garbage never reach the server.
            &typed(&["111-111", "", "not a code!", "222 222", "482-193"]),
            &mut |e| events.push(e),
        )
        .unwrap();
        let requests = server.join().unwrap();

        assert_eq!(approved.token, "esh_acc");
        assert_eq!(approved.refresh_token.as_deref(), Some("eshr_ref"));
        assert!(!format!("{approved:?}").contains("eshr_ref"));
        assert_eq!(requests.len(), 3);
        assert!(requests[0].starts_with("POST /api/v1/cli/auth/device/exchange "));
        assert!(
            requests[0].ends_with(r#"{"deviceCode":"dev-secret","confirmationCode":"111111"}"#),
            "{}",
            requests[0]
        );
        assert!(requests[2].ends_with(r#""confirmationCode":"482193"}"#));

        let rejections: Vec<Option<String>> = events
            .iter()
            .map(|e| match e {
                PasteEvent::Prompt { rejected } => rejected.as_ref().map(|r| r.code.clone()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            rejections,
            vec![
                None,
                Some("authorization_pending".into()),
                None,
                Some("invalid_format".into()),
                Some("invalid_confirmation_code".into()),
            ]
        );
        let PasteEvent::Prompt {
            rejected: Some(wrong),
        } = &events[4]
        else {
            panic!()
        };
        assert_eq!(
            wrong.message,
            "That code was not accepted: Wrong code. 4 attempts left."
        );
    }

    #[test]
    fn the_exchange_ends_on_gone_denied_end_of_input_and_ctrl_c() {
        let (base, server) = canned_server(vec![
            json(
                "410 Gone",
                r#"{"error":"expired_token","message":"Too many wrong codes; the request was cancelled."}"#,
            ),
            json(
                "403 Forbidden",
                r#"{"status":"denied","error":"access_denied","message":"Denied."}"#,
            ),
        ]);
        let client = ApiClient::new(&base).unwrap();
        let flag = AtomicBool::new(false);
        let run = |lines: &[&str], flag: &AtomicBool| {
            confirm_with_code(
                &client,
                &start(0),
                far(),
                &fast(),
                flag,
                &typed(lines),
                &mut |_| {},
            )
            .unwrap_err()
        };
        assert_eq!(
            run(&["123456"], &flag),
            WaitEnd::Ended("Too many wrong codes; the request was cancelled.".into())
        );
        assert_eq!(run(&["123456"], &flag), WaitEnd::Denied("Denied.".into()));
        server.join().unwrap();
        assert_eq!(
            run(&[], &flag),
            WaitEnd::NoCode {
                required_by_server: false
            }
        );
        assert_eq!(
            run(&["123456"], &AtomicBool::new(true)),
            WaitEnd::Interrupted
        );
    }

    #[test]
    fn waiting_for_the_code_stops_when_the_request_expires() {
        let client = ApiClient::new("http://127.0.0.1:9/api/v1").unwrap();
        let (_tx, lines) = mpsc::channel();
        let end = confirm_with_code(
            &client,
            &start(0),
            Instant::now() + Duration::from_millis(30),
            &fast(),
            &AtomicBool::new(false),
            &lines,
            &mut |_| {},
        )
        .unwrap_err();
        assert!(matches!(end, WaitEnd::Ended(_)), "{end:?}");
    }

    #[test]
    fn paste_ends_become_clear_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = crate::commands::tests::context(tmp.path());
        let forced = WaitEnd::NoCode {
            required_by_server: true,
        }
        .into_error(&ctx, true);
        assert_eq!(forced.code, "confirmation_required");
        assert!(
            forced.message.contains("envshield login --paste"),
            "{}",
            forced.message
        );
        assert!(
            forced.message.contains("standard input"),
            "{}",
            forced.message
        );
        let ended = WaitEnd::Ended("Too many wrong codes.".into()).into_error(&ctx, true);
        assert_eq!(ended.code, "expired_token");
        assert_eq!(
            ended.message,
            "the sign-in request is no longer valid (Too many wrong codes). Run `envshield login --paste` to try again."
        );
    }

    #[test]
    fn wait_ends_become_clear_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = crate::commands::tests::context(tmp.path());
        let e = WaitEnd::Interrupted.into_error(&ctx, false);
        assert_eq!(e.exit_code, 130);
        let e = WaitEnd::Denied("Denied.".into()).into_error(&ctx, false);
        assert_eq!(e.code, "access_denied");
        assert_eq!(
            e.message,
            "the sign-in request was denied in the browser (Denied). Run `envshield login` to try again."
        );
        assert_eq!(
            WaitEnd::TimedOut.into_error(&ctx, false).code,
            "login_timeout"
        );
        assert_eq!(
            WaitEnd::Expired(String::new()).into_error(&ctx, false).code,
            "expired_token"
        );
    }
}
