//! The device flow in the terminal: start a request, show its address and
//! code, open the browser, then wait for approval (poll mode) or for the
//! confirmation code (paste mode).

use std::fmt;
use std::io::{self, BufRead, IsTerminal};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use envshield_api_types::{ConfirmationMode, StartDeviceRequest, StartDeviceResponse};

use super::handoff::{Handoff, OfferedKey};
use super::outcome::{Approved, WaitEnd};
use super::paste::{confirm_with_code, stdin_lines, PasteEvent};
use super::saved::{finish, SignedIn};
use super::wait::{wait_for_approval, Progress, WaitOptions};
use crate::api::ApiClient;
use crate::api::API_URL_ENV;
use crate::browser;
use crate::cli::LoginArgs;
use crate::clipboard;
use crate::commands::context::Context;
use crate::error::{CliError, EXIT_INTERRUPTED};
use crate::qr;
use crate::spinner::Spinner;
use crate::text::{one_line, REDACTED};

/// Longest token name the CLI proposes.
const MAX_DEFAULT_NAME: usize = 128;

/// The confirmation code prompt.
pub const CODE_PROMPT: &str = "Enter the confirmation code shown in your browser: ";

/// A started sign-in request, as the terminal follows it.
struct Session<'a> {
    /// The server's answer to `start`, device code included.
    start: &'a StartDeviceResponse,
    /// The key the token must come sealed to, and the session it is bound to.
    handoff: &'a Handoff,
    /// When the request stops being usable, by this machine's clock.
    ends_at: Instant,
    /// `--paste` was given (the server may require paste mode anyway).
    asked_for_paste: bool,
}

// The device code never appears in debug output: with it, anyone could
// pick up the token once the request is approved.
impl fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("device_code", &REDACTED)
            .field("user_code", &self.start.user_code)
            .field("handoff", &self.handoff)
            .field("verification_url", &self.start.verification_url)
            .field("ends_at", &self.ends_at)
            .field("asked_for_paste", &self.asked_for_paste)
            .finish_non_exhaustive()
    }
}

impl Session<'_> {
    /// Paste mode: asked for, or required by the server for every sign-in.
    fn paste(&self) -> bool {
        self.asked_for_paste || self.start.confirmation == ConfirmationMode::Paste
    }
}

/// Signs in through the browser.
pub(super) fn login_with_browser(
    ctx: &Context,
    client: &ApiClient,
    args: &LoginArgs,
    name: String,
) -> Result<SignedIn, CliError> {
    // A fresh key for this login only, in memory only: the token comes
    // sealed to it, so a device code polled first elsewhere yields nothing
    // usable.
    let key = OfferedKey::generate();
    let request = StartDeviceRequest {
        token_name: Some(name),
        scopes: scopes(args),
        client_id: None,
        confirmation: args.paste.then_some(ConfirmationMode::Paste),
        handoff_key: Some(key.public_b64()),
    };

    // Installed before the session starts (but after the name prompt, which
    // Ctrl-C must still be able to end): a Ctrl-C as soon as the code is
    // shown, or during `start` itself, must cancel the request on the
    // server, not kill the process and leave the request pending.
    let interrupted = on_ctrl_c(ctx);

    let start = client.start_device(&request)?;
    if let Err(err) = check_verification_urls(client.base_url(), &start) {
        // Best effort: nobody will approve this request.
        let _ = client.cancel_device(&start.device_code);
        return Err(err);
    }
    let Some(handoff) = key.for_session(&start) else {
        // Best effort: without a session id the token cannot be opened.
        let _ = client.cancel_device(&start.device_code);
        return Err(CliError::new(
            "handoff_refused",
            "the server did not accept this sign-in's handoff key (its answer to `start` names no session), so it would hand the token over in the clear; the request was cancelled. Check --api-url: the server must support the sealed handoff.",
        ));
    };
    let session = Session {
        start: &start,
        handoff: &handoff,
        ends_at: Instant::now() + Duration::from_secs(start.expires_in.max(0).unsigned_abs()),
        asked_for_paste: args.paste,
    };
    announce(ctx, &session);
    if args.qr {
        show_qr(ctx, &start.verification_url);
    }
    if args.clipboard {
        copy_code(ctx, &start.user_code);
    }
    open_browser(ctx, &start.verification_url, args.no_browser);

    let options = WaitOptions::default();
    let outcome = if session.paste() {
        paste_code(ctx, client, &session, None, &options, &interrupted)
    } else {
        match poll(ctx, client, &session, &options, &interrupted) {
            Err(WaitEnd::ConfirmationRequired(message)) => paste_code(
                ctx,
                client,
                &session,
                Some(&message),
                &options,
                &interrupted,
            ),
            other => other,
        }
    };

    match outcome {
        Ok(approved) => finish(ctx, client, approved),
        Err(end) => {
            if end.abandons_the_request() {
                // Best effort: the request is useless now, tell the server.
                let _ = client.cancel_device(&start.device_code);
            }
            Err(end.into_error(ctx, session.paste()))
        }
    }
}

/// A flag that Ctrl-C sets; a second Ctrl-C leaves at once, even in the
/// middle of a request.
pub(super) fn on_ctrl_c(ctx: &Context) -> Arc<AtomicBool> {
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&interrupted);
    let installed = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
    });
    if let Err(e) = installed {
        ctx.out.warn(&format!(
            "Ctrl-C will not cancel the request on the server ({e})."
        ));
    }
    interrupted
}

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
pub(super) fn token_name(args: &LoginArgs) -> Result<String, CliError> {
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

pub(super) fn scopes(args: &LoginArgs) -> Option<Vec<String>> {
    let scopes: Vec<String> = args
        .scopes
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    (!scopes.is_empty()).then_some(scopes)
}

/// Shows the address and the code to check, or the `device_started`
/// event with `--json`.
fn announce(ctx: &Context, session: &Session<'_>) {
    let start = session.start;
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
            "confirmation": if session.paste() { ConfirmationMode::Paste } else { ConfirmationMode::Poll },
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

/// The scheme, host and port of `url`, as `scheme://host:port`; `None`
/// when it is not an absolute http(s) URL with a host.
fn origin(url: &str) -> Option<String> {
    let url = reqwest::Url::parse(url).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let host = url.host_str()?;
    let port = url.port_or_known_default()?;
    Some(format!("{}://{host}:{port}", url.scheme()))
}

/// Refuses addresses to open that are not on the server the CLI was told
/// to use (same scheme, host and port as the API URL): a misconfigured or
/// malicious server must not send the person to another site, where a
/// look-alike page could collect the code or a password. The error names
/// both places, not the foreign address itself.
fn check_verification_urls(api_url: &str, start: &StartDeviceResponse) -> Result<(), CliError> {
    let ours = origin(api_url).unwrap_or_else(|| one_line(api_url));
    for url in [&start.verification_url, &start.verification_uri] {
        let theirs = origin(url).filter(|_| browser::is_safe_url(url));
        if theirs.as_deref() == Some(ours.as_str()) {
            continue;
        }
        let theirs = theirs.unwrap_or_else(|| "an address that is not a plain http(s) URL".into());
        return Err(CliError::new(
            "untrusted_verification_url",
            format!(
                "the server at {ours} asked to open a sign-in page on {theirs}, which is not the server you chose; refusing to open or show it (a misconfigured or malicious server could send you to a look-alike page). Check --api-url / {API_URL_ENV}, or the server's public URL setting (APP_URL); the request was cancelled."
            ),
        ));
    }
    Ok(())
}

/// Prints the verification address as a QR code (`--qr`), under the
/// address; not with `--json`.
fn show_qr(ctx: &Context, url: &str) {
    match qr::render(url) {
        Ok(lines) => {
            ctx.out
                .note("Or scan this QR code with your phone to open the address:");
            ctx.out.note("");
            for line in lines {
                ctx.out.note(&line);
            }
            ctx.out.note("");
        }
        Err(e) => ctx.out.warn(&format!(
            "cannot show the address as a QR code ({}); open it as shown above.",
            one_line(&e)
        )),
    }
}

/// Copies the code to the clipboard (`--clipboard`); says in one line when
/// there is no clipboard, and goes on.
fn copy_code(ctx: &Context, code: &str) {
    match clipboard::copy(code) {
        Ok(_) => ctx
            .out
            .note("Copied the code to the clipboard: paste it where the browser asks for it."),
        Err(why) => ctx.out.warn(&format!(
            "could not copy the code to the clipboard ({}); type it by hand.",
            one_line(&why)
        )),
    }
}

/// Opens the address in a browser where one can be expected, and says
/// what happened.
fn open_browser(ctx: &Context, url: &str, no_browser: bool) {
    if no_browser {
        ctx.out
            .note("Open the address above in a browser where you are signed in.");
    } else if !browser::can_open_here() {
        ctx.out.note("No browser here (no display, or an SSH session): open the address above on any device where you are signed in.");
    } else if let Err(reason) = browser::open(url) {
        ctx.out.note(&format!(
            "Could not open a browser ({}); open the address above by hand.",
            one_line(&reason)
        ));
    } else {
        ctx.out
            .note("Opened your browser. If nothing appeared, open the address above by hand.");
    }
}

/// Polls with a spinner (or a note when stderr is not a terminal).
fn poll(
    ctx: &Context,
    client: &ApiClient,
    session: &Session<'_>,
    options: &WaitOptions,
    interrupted: &AtomicBool,
) -> Result<Approved, WaitEnd> {
    let waiting = "Waiting for approval in the browser (Ctrl-C to cancel)";
    let spinner = Spinner::start(waiting);
    if spinner.is_none() {
        ctx.out.note(&format!("{waiting}..."));
    }
    let outcome = wait_for_approval(
        client,
        session.start,
        session.handoff,
        options,
        interrupted,
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
    outcome
}

/// Paste mode in the terminal: prompts for the confirmation code (or reads
/// lines from stdin when it is not a terminal), with the `--json`
/// `confirmation_required` events. `told` is the server's message when a
/// poll said that a code is required.
fn paste_code(
    ctx: &Context,
    client: &ApiClient,
    session: &Session<'_>,
    told: Option<&str>,
    options: &WaitOptions,
    interrupted: &AtomicBool,
) -> Result<Approved, WaitEnd> {
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
        session.start,
        session.handoff,
        session.ends_at,
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
            required_by_server: !session.asked_for_paste,
        }),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::login::fixtures::start;

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
    fn verification_pages_must_be_on_the_chosen_server() {
        let api = "http://127.0.0.1:3000/api/v1";
        let mut answer = start(5);
        answer.verification_url = "http://127.0.0.1:3000/cli/login?code=BCDF-GHJK".into();
        answer.verification_uri = "http://127.0.0.1:3000/cli/device".into();
        assert!(check_verification_urls(api, &answer).is_ok());
        // The default port written out is the same place.
        assert!(check_verification_urls("https://e.example/api/v1", &{
            let mut a = answer.clone();
            a.verification_url = "https://E.example:443/cli/login?code=X".into();
            a.verification_uri = "https://e.example/cli/device".into();
            a
        })
        .is_ok());

        for (url, named) in [
            (
                "http://evil.example/cli/login?code=BCDF-GHJK",
                "http://evil.example:80",
            ),
            ("https://127.0.0.1:3000/cli/login", "https://127.0.0.1:3000"),
            ("http://127.0.0.1:3001/cli/login", "http://127.0.0.1:3001"),
            ("file:///etc/passwd", "not a plain http(s) URL"),
            (
                "http://127.0.0.1:3000/cli/login?code=a b",
                "not a plain http(s) URL",
            ),
        ] {
            let mut bad = answer.clone();
            bad.verification_url = url.into();
            let err = check_verification_urls(api, &bad).unwrap_err();
            assert_eq!(err.code, "untrusted_verification_url");
            assert!(
                err.message.contains("the server at http://127.0.0.1:3000"),
                "{}",
                err.message
            );
            assert!(err.message.contains(named), "{url}: {}", err.message);
            assert!(!err.message.contains("BCDF-GHJK"), "{}", err.message);
        }
        let mut bad = answer.clone();
        bad.verification_uri = "http://evil.example/cli/device".into();
        assert!(check_verification_urls(api, &bad).is_err());
    }

    #[test]
    fn debug_output_hides_the_device_code() {
        let start = start(5);
        let handoff = Handoff::for_tests(uuid::Uuid::from_u128(9));
        let session = Session {
            start: &start,
            handoff: &handoff,
            ends_at: Instant::now(),
            asked_for_paste: false,
        };
        let shown = format!("{session:?}");
        assert!(!shown.contains("dev-secret"), "{shown}");
        assert!(shown.contains("BCDF-GHJK"), "{shown}");
    }
}
