//! Same-machine sign-in without a code (RFC 8252 with PKCE, RFC 7636): the
//! authorization-code flow with a redirect to a one-shot listener on
//! `127.0.0.1`. The browser on this machine approves, comes back to the
//! listener with a code, and the CLI trades the code (with its PKCE verifier
//! and a DPoP proof) for tokens bound to its key.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use envshield_api_types::oauth::{OAuthErrorBody, TokenResponse};
use reqwest::Url;
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::outcome::Approved;
use super::saved::{finish, SignedIn};
use crate::api::{ApiClient, API_URL_ENV};
use crate::browser;
use crate::commands::context::Context;
use crate::error::{profile_flag, CliError};
use crate::text::one_line;

/// The CLI's OAuth client id.
pub const CLIENT_ID: &str = "envshield-cli";

/// How long the listener waits for the browser: as long as a device-flow
/// request lives.
pub const CALLBACK_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// Longest request head the listener reads.
const MAX_REQUEST: usize = 16 * 1024;

/// How often the listener looks for the browser and for Ctrl-C.
const TICK: Duration = Duration::from_millis(50);

const DONE_PAGE: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>EnvShield: signed in</title></head><body style=\"font-family:sans-serif;max-width:32rem;margin:4rem auto\"><h1>Signed in</h1><p>You can close this tab and return to the terminal.</p></body></html>";
const DENIED_PAGE: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>EnvShield: sign-in denied</title></head><body style=\"font-family:sans-serif;max-width:32rem;margin:4rem auto\"><h1>Sign-in denied</h1><p>Nothing was handed to the terminal. You can close this tab.</p></body></html>";
const FAILED_PAGE: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>EnvShield: sign-in failed</title></head><body style=\"font-family:sans-serif;max-width:32rem;margin:4rem auto\"><h1>Sign-in failed</h1><p>The terminal says what went wrong. You can close this tab.</p></body></html>";

/// The parts of the server's RFC 8414 metadata this flow uses.
#[derive(Debug, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    #[serde(default)]
    response_types_supported: Vec<String>,
}

/// Why this flow could not start: the caller uses the device flow instead.
#[derive(Debug)]
pub(super) struct Unavailable(pub String);

/// What the sign-in needs to start: the server's endpoints and a listener.
pub(super) struct Prepared {
    discovery: Discovery,
    listener: TcpListener,
    redirect_uri: String,
    verifier: String,
    state: String,
    authorize_url: String,
}

/// Random bytes as base64url.
fn random(len: usize) -> Result<String, Unavailable> {
    let mut bytes = vec![0u8; len];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Unavailable("no randomness for the sign-in".into()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The S256 code challenge of `verifier`.
pub fn code_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Compares two strings in constant time (for their common length).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// `scheme://host:port` of `url`.
fn origin(url: &str) -> Option<String> {
    let url = Url::parse(url).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    Some(format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str()?,
        url.port_or_known_default()?
    ))
}

/// Reads the server's metadata, opens the listener and builds the address
/// to open. Any failure means: use the device flow.
pub(super) fn prepare(
    client: &ApiClient,
    token_name: &str,
    scopes: Option<&[String]>,
) -> Result<Prepared, Unavailable> {
    let key = client
        .dpop_key()
        .ok_or_else(|| Unavailable("no DPoP key".into()))?;
    let ours =
        origin(client.base_url()).ok_or_else(|| Unavailable("the API URL has no origin".into()))?;
    let discovery: Discovery = client
        .http()
        .get(format!("{ours}/.well-known/oauth-authorization-server"))
        .send()
        .ok()
        .filter(|r| r.status().is_success())
        .and_then(|r| r.json().ok())
        .ok_or_else(|| Unavailable("the server publishes no OAuth metadata".into()))?;
    if !discovery.response_types_supported.is_empty()
        && !discovery
            .response_types_supported
            .iter()
            .any(|t| t == "code")
    {
        return Err(Unavailable(
            "the server does not offer the authorization-code flow".into(),
        ));
    }
    // The browser and the code go only to the server that was chosen.
    for url in [&discovery.authorization_endpoint, &discovery.token_endpoint] {
        if origin(url).as_deref() != Some(ours.as_str()) || !browser::is_safe_url(url) {
            return Err(Unavailable(
                "the server's OAuth endpoints are not on the server you chose".into(),
            ));
        }
    }
    let listener = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| Unavailable(format!("cannot listen on 127.0.0.1 ({e})")))?;
    let port = listener
        .local_addr()
        .map_err(|e| Unavailable(format!("cannot listen on 127.0.0.1 ({e})")))?
        .port();
    let redirect_uri = format!("http://127.0.0.1:{port}/callback");
    let verifier = random(32)?;
    let state = random(16)?;
    let mut url = Url::parse(&discovery.authorization_endpoint)
        .map_err(|_| Unavailable("the authorization endpoint is not a URL".into()))?;
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", CLIENT_ID)
            .append_pair("redirect_uri", &redirect_uri)
            .append_pair("code_challenge", &code_challenge(&verifier))
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", &state)
            .append_pair("token_name", token_name)
            .append_pair("dpop_jkt", &key.thumbprint());
        if let Some(scopes) = scopes {
            query.append_pair("scope", &scopes.join(" "));
        }
    }
    Ok(Prepared {
        discovery,
        listener,
        redirect_uri,
        verifier,
        state,
        authorize_url: url.to_string(),
    })
}

impl Prepared {
    /// The address the browser opens.
    pub(super) fn authorize_url(&self) -> &str {
        &self.authorize_url
    }
}

/// What came back to the listener.
#[derive(Debug, PartialEq, Eq)]
enum Callback {
    /// The authorization code.
    Code(String),
    /// An OAuth error (`access_denied`, ...), and its description.
    Error(String, Option<String>),
}

/// Shows the address, then waits for the browser and trades the code.
pub(super) fn finish_in_browser(
    ctx: &Context,
    client: &ApiClient,
    prepared: Prepared,
    opened: bool,
    interrupted: &AtomicBool,
) -> Result<SignedIn, CliError> {
    announce(ctx, &prepared.authorize_url, opened);
    let callback = wait_for_callback(ctx, &prepared, interrupted)?;
    let code = match callback {
        Callback::Code(code) => code,
        Callback::Error(error, description) => {
            return Err(refused_in_browser(ctx, &error, description))
        }
    };
    let tokens = exchange(client, &prepared, &code)?;
    let who = client.whoami(&tokens.access_token).map_err(|e| {
        let hint = if client.logout(&tokens.access_token).is_ok() {
            "The new token was revoked; run `envshield login` again."
        } else {
            "Revoke the new token in the web UI."
        };
        CliError::from(e).with_hint(hint)
    })?;
    let approved = Approved {
        token: tokens.access_token,
        token_id: who.token.id,
        token_name: who.token.name,
        scopes: who.token.scopes,
        expires_at: who.token.expires_at,
        refresh_token: tokens.refresh_token,
        token_type: Some(tokens.token_type),
    };
    finish(ctx, client, approved)
}

/// The address to follow, on stderr (or as the `browser_login_started`
/// event with `--json`).
fn announce(ctx: &Context, url: &str, opened: bool) {
    if ctx.out.is_json() {
        ctx.out.json_line(&serde_json::json!({
            "event": "browser_login_started",
            "authorizationUrl": one_line(url),
            "expiresIn": CALLBACK_TIMEOUT.as_secs(),
        }));
        return;
    }
    let out = &ctx.out;
    out.note("");
    if opened {
        out.note("Opened your browser to sign in. If nothing appeared, open this address on this computer:");
    } else {
        out.note("Open this address in a browser on this computer to sign in:");
    }
    out.note("");
    out.note(&format!("    {}", one_line(url)));
    out.note("");
    out.note(&format!(
        "Waiting for the browser (Ctrl-C to cancel; gives up after {} minutes). Use `envshield login --device` to sign in from another device instead.",
        CALLBACK_TIMEOUT.as_secs() / 60
    ));
}

/// Accepts connections until the one callback with the right `state`
/// arrives, Ctrl-C, or [`CALLBACK_TIMEOUT`].
fn wait_for_callback(
    ctx: &Context,
    prepared: &Prepared,
    interrupted: &AtomicBool,
) -> Result<Callback, CliError> {
    let deadline = Instant::now() + CALLBACK_TIMEOUT;
    loop {
        if interrupted.load(Ordering::SeqCst) {
            return Err(CliError::interrupted(
                "sign-in cancelled; nothing was saved.",
            ));
        }
        if Instant::now() >= deadline {
            return Err(CliError::new(
                "login_timeout",
                format!(
                    "gave up after waiting {} minutes for the browser. Run `envshield login{}` to try again, or `envshield login --device{}` to sign in from another device.",
                    CALLBACK_TIMEOUT.as_secs() / 60,
                    profile_flag(&ctx.profile),
                    profile_flag(&ctx.profile)
                ),
            ));
        }
        let stream = match prepared.listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(TICK);
                continue;
            }
            Err(e) => {
                return Err(CliError::new(
                    "callback_failed",
                    format!("the local sign-in listener failed ({e}). Run `envshield login --device` instead."),
                ))
            }
        };
        if let Some(outcome) = answer(ctx, stream, prepared)? {
            return Ok(outcome);
        }
    }
}

/// Reads one request and answers it. `Ok(None)`: not the callback (another
/// path, a wrong `state`): keep waiting.
fn answer(
    ctx: &Context,
    mut stream: TcpStream,
    prepared: &Prepared,
) -> Result<Option<Callback>, CliError> {
    let Some(target) = read_target(&mut stream) else {
        respond(&mut stream, "400 Bad Request", FAILED_PAGE);
        return Ok(None);
    };
    let Ok(url) = Url::parse(&format!("http://127.0.0.1{target}")) else {
        respond(&mut stream, "400 Bad Request", FAILED_PAGE);
        return Ok(None);
    };
    if url.path() != "/callback" {
        respond(&mut stream, "404 Not Found", FAILED_PAGE);
        return Ok(None);
    }
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let state_ok = param("state").is_some_and(|s| same(&s, &prepared.state));
    if !state_ok {
        // Not our browser's answer (a stale tab, or another program):
        // ignore it and keep waiting for the real one.
        respond(&mut stream, "400 Bad Request", FAILED_PAGE);
        ctx.out.warn("ignored a sign-in answer that does not belong to this login (its state did not match).");
        return Ok(None);
    }
    if let Some(iss) = param("iss") {
        if iss != prepared.discovery.issuer {
            respond(&mut stream, "400 Bad Request", FAILED_PAGE);
            return Err(CliError::new(
                "issuer_mismatch",
                format!(
                    "the browser came back from another server ({}) than the one you chose ({}); nothing was saved. Check --api-url / {API_URL_ENV} and run `envshield login` again.",
                    one_line(&iss),
                    one_line(&prepared.discovery.issuer)
                ),
            ));
        }
    }
    if let Some(error) = param("error") {
        let page = if error == "access_denied" {
            DENIED_PAGE
        } else {
            FAILED_PAGE
        };
        respond(&mut stream, "200 OK", page);
        return Ok(Some(Callback::Error(error, param("error_description"))));
    }
    match param("code").filter(|c| !c.is_empty()) {
        Some(code) => {
            respond(&mut stream, "200 OK", DONE_PAGE);
            Ok(Some(Callback::Code(code)))
        }
        None => {
            respond(&mut stream, "400 Bad Request", FAILED_PAGE);
            Ok(Some(Callback::Error(
                "invalid_request".into(),
                Some("The browser came back without a code.".into()),
            )))
        }
    }
}

/// The request target of a `GET` (path and query), read with a time limit.
fn read_target(stream: &mut TcpStream) -> Option<String> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let mut parts = text.lines().next()?.split(' ');
    let (method, target) = (parts.next()?, parts.next()?);
    (method == "GET" && target.starts_with('/')).then(|| target.to_string())
}

/// Answers the browser with a fixed page (best effort).
fn respond(stream: &mut TcpStream, status: &str, page: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nReferrer-Policy: no-referrer\r\nConnection: close\r\n\r\n{page}",
        page.len()
    );
    let _ = stream.flush();
}

/// The error for an `error=` answer from the browser.
fn refused_in_browser(ctx: &Context, error: &str, description: Option<String>) -> CliError {
    let said = description
        .map(|d| format!(" ({})", one_line(&d)))
        .unwrap_or_default();
    let again = format!(
        "Run `envshield login{}` to try again",
        profile_flag(&ctx.profile)
    );
    if error == "access_denied" {
        CliError::new(
            "access_denied",
            format!("the sign-in was denied in the browser{said}; nothing was saved. {again}."),
        )
    } else {
        CliError::new(
            one_line(error),
            format!("the server refused the sign-in{said}; nothing was saved. {again}, or use `envshield login --device`."),
        )
    }
}

/// `POST token_endpoint` with `grant_type=authorization_code`, the PKCE
/// verifier and a DPoP proof.
fn exchange(
    client: &ApiClient,
    prepared: &Prepared,
    code: &str,
) -> Result<TokenResponse, CliError> {
    let endpoint = &prepared.discovery.token_endpoint;
    let request = client.http().post(endpoint).form(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", prepared.redirect_uri.as_str()),
        ("client_id", CLIENT_ID),
        ("code_verifier", prepared.verifier.as_str()),
    ]);
    let base = client.base_url().to_string();
    let answer = client.send_proved(request, "POST", endpoint, None)?;
    let (status, body) = (answer.status, answer.body);
    if status.is_success() {
        return serde_json::from_slice(&body).map_err(|_| {
            CliError::new(
                "bad_response",
                format!("the server at {base} answered the token request with something that is not a token response (HTTP {status}). Try `envshield login --device`."),
            )
        });
    }
    let refused: Option<OAuthErrorBody> = serde_json::from_slice(&body).ok();
    Err(match refused {
        Some(e) => {
            let said = e
                .error_description
                .map(|d| format!(" ({})", one_line(&d)))
                .unwrap_or_default();
            let advice = if e.error == "invalid_dpop_proof" && said.contains("clock") {
                "Check that this computer's clock is right, then run `envshield login` again."
            } else {
                "Run `envshield login` again."
            };
            CliError::new(
                one_line(&e.error),
                format!("the server refused to hand out the tokens{said}; nothing was saved. {advice}"),
            )
        }
        None => CliError::new(
            "bad_response",
            format!("the server at {base} refused the token request (HTTP {status}). Try `envshield login --device`."),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_is_s256_of_the_verifier() {
        // base64url(SHA-256(verifier)), unpadded, as computed elsewhere.
        assert_eq!(
            code_challenge("M25iVXpKU3puUjFaYWg3T1NDTDQtcW1ROUY5YXlwalNoc0hhakxifmZHag"),
            "qjrzSW9gMiUgpUvqgEPE4_-8swvyCtfOVvg55o5S_es"
        );
    }

    #[test]
    fn states_compare_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
        assert!(!same("", "a"));
    }
}
