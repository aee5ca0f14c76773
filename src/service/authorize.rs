//! The authorization-code grant for native clients (RFC 6749 §4.1 with PKCE,
//! RFC 7636, on loopback redirects, RFC 8252): the request's rules, the
//! consent (which mints the tokens and seals them to a one-time code), and
//! the code's redemption at the token endpoint.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use secrecy::ExposeSecret;
use serde_json::json;
use url::Url;
use uuid::Uuid;

use crate::auth::dpop::Proof;
use crate::config::{Config, TokenPolicy, AUTHORIZATION_CODE_GRANT};
use crate::crypto::sha256;
use crate::db::models::authorization_codes::{self, NewAuthorizationCode};
use crate::db::models::revocation::Target;
use crate::db::models::{api_tokens, refresh_tokens, users};
use crate::db::Db;
use crate::domain::pkce::{self, AuthCode, Challenge};
use crate::domain::{Flow, Role, Scopes, TokenName, TokenSource};
use crate::error::AppError;
use crate::realtime::Realtime;
use crate::service::device;
use crate::service::device::policy::{self, Approval, Refusal, StepUpReason};
use crate::service::events::{self, Event, EventKind, Severity};
use crate::service::grants::{self, GrantError, Issued};
use crate::service::step_up::{self, Subject};
use crate::service::AppState;
use crate::service::{dpop, tokens};

/// How long a code may wait for its token request.
pub const CODE_TTL: Duration = Duration::seconds(60);
/// Longest `state` echoed back.
const MAX_STATE: usize = 512;

/// A checked authorization request.
#[derive(Debug, Clone)]
pub struct AuthorizeRequest {
    /// The client asking.
    pub client_id: String,
    /// Where the answer goes (a loopback address).
    pub redirect_uri: Url,
    /// The client's `state`, echoed back.
    pub state: Option<String>,
    /// PKCE challenge.
    pub challenge: Challenge,
    /// Scopes asked for (the client's own when none).
    pub scopes: Scopes,
    /// Name for the token.
    pub token_name: TokenName,
    /// Key the token request must prove (`dpop_jkt`, RFC 9449 §10).
    pub dpop_jkt: Option<String>,
}

impl AuthorizeRequest {
    /// What a step-up for approving this request is bound to: its client,
    /// redirect URI and PKCE challenge (fresh for each request).
    pub fn step_up_subject(&self) -> Subject {
        let mut named = Vec::new();
        for part in [
            self.client_id.as_str(),
            self.redirect_uri.as_str(),
            self.challenge.as_str(),
        ] {
            named.extend_from_slice(part.as_bytes());
            named.push(0);
        }
        Subject::Authorization(sha256(&named))
    }
}

/// Why a request was refused: before its redirect URI is trusted, only a
/// page can say so; after, the client is told at its redirect URI.
#[derive(Debug)]
pub enum RequestError {
    /// Shown to the person; never redirected.
    Page(AppError),
    /// Sent to the client (RFC 6749 §4.1.2.1).
    Redirect(Url),
}

/// The redirect carrying `params`, `state` and `iss` (RFC 9207).
pub fn redirect_with(
    config: &Config,
    redirect_uri: &Url,
    state: Option<&str>,
    params: &[(&str, &str)],
) -> Url {
    let mut url = redirect_uri.clone();
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in params {
            query.append_pair(k, v);
        }
        if let Some(s) = state {
            query.append_pair("state", s);
        }
        query.append_pair("iss", &config.app_base());
    }
    url
}

/// Checks an authorization request's parameters, in the order RFC 6749
/// §4.1.2.1 asks: the client and redirect URI first (a page), then the rest
/// (a redirect with the error).
pub fn parse_request(
    config: &Config,
    params: &HashMap<String, String>,
    now: DateTime<Utc>,
) -> Result<AuthorizeRequest, RequestError> {
    let get = |k: &str| params.get(k).map(String::as_str);
    let page =
        |message: &str| RequestError::Page(AppError::bad_request("invalid_request", message));
    let client_id = get("client_id").ok_or_else(|| page("client_id is missing."))?;
    let client = config.client(client_id).ok_or_else(|| {
        RequestError::Page(AppError::bad_request(
            "invalid_client",
            format!("Unknown client `{client_id}`."),
        ))
    })?;
    let redirect_uri = get("redirect_uri").ok_or_else(|| page("redirect_uri is missing."))?;
    let redirect_uri = pkce::loopback_redirect(redirect_uri).map_err(page)?;
    let state = get("state").map(str::to_owned);
    if state.as_ref().is_some_and(|s| s.len() > MAX_STATE) {
        return Err(page("state is too long (at most 512 characters)."));
    }
    let refuse = |error: &str, description: &str| {
        RequestError::Redirect(redirect_with(
            config,
            &redirect_uri,
            state.as_deref(),
            &[("error", error), ("error_description", description)],
        ))
    };
    if get("response_type") != Some("code") {
        return Err(refuse(
            "unsupported_response_type",
            "response_type must be code.",
        ));
    }
    if !client.allows_grant(AUTHORIZATION_CODE_GRANT) {
        return Err(refuse(
            "unauthorized_client",
            "This client may not use the authorization-code grant.",
        ));
    }
    let challenge = Challenge::parse(get("code_challenge"), get("code_challenge_method"))
        .map_err(|m| refuse("invalid_request", m))?;
    let asked: Option<Vec<String>> = get("scope").map(|s| {
        s.split(' ')
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
            .collect()
    });
    let scopes = policy::requested_scopes(asked.as_deref(), &config.default_scopes, client)
        .map_err(|e| refuse("invalid_scope", &e.public_message()))?;
    let default_name = format!("{} - {}", client.client_id, now.format("%Y-%m-%d"));
    let token_name = policy::token_name(Some(get("token_name").unwrap_or(&default_name)), now)
        .map_err(|e| refuse("invalid_request", &e.public_message()))?;
    Ok(AuthorizeRequest {
        client_id: client.client_id.clone(),
        redirect_uri,
        state,
        challenge,
        scopes,
        token_name,
        dpop_jkt: get("dpop_jkt").map(str::to_owned),
    })
}

/// What the person decided on the consent page about a request (checked
/// again).
pub type ConsentInput = grants::Decision<AuthorizeRequest>;

/// Where a consent leads.
#[derive(Debug)]
pub enum ConsentOutcome {
    /// Back to the client, with a code or an error.
    Redirect(Url),
    /// Not approved: `APPROVAL_STEP_UP` asks the approver to prove it is
    /// them again, for these reasons, and no fitting proof came along
    /// (recorded as `step_up_failed`; nothing minted).
    StepUpRequired {
        /// What was wrong with the proof (see [`step_up::ProofRefusal`]).
        problem: step_up::ProofRefusal,
    },
    /// Not approved: `DEVICE_LOGIN_POLICY` refuses it for the approver's
    /// role (recorded as `device_login_refused`; nothing minted).
    Refused(Refusal),
}

impl AuthorizeRequest {
    /// Why approving it with `granted` scopes (all asked for when `None`)
    /// and `chosen_days` from `approver_ip` needs a step-up. The client runs
    /// on the approver's own machine (a loopback redirect), so its network
    /// is the browser's.
    pub fn step_up_reasons(
        &self,
        config: &Config,
        role: Role,
        approver_ip: IpAddr,
        granted: Option<&[String]>,
        chosen_days: Option<u32>,
    ) -> Vec<StepUpReason> {
        let ip = approver_ip.to_string();
        let scopes = granted.unwrap_or(self.scopes.as_slice());
        let approval = self.approval(config, role, approver_ip, &ip, scopes, chosen_days);
        policy::step_up_reasons(config, &approval)
    }

    /// Approving it from `approver_ip` (whose text is `requested_from`) with
    /// `scopes` and `chosen_days` (the role's longest lifetime when `None`),
    /// as the policy rules and step-up see it.
    fn approval<'a>(
        &self,
        config: &Config,
        role: Role,
        approver_ip: IpAddr,
        requested_from: &'a str,
        scopes: &'a [String],
        chosen_days: Option<u32>,
    ) -> Approval<'a> {
        let token_policy = config
            .client(&self.client_id)
            .map_or(TokenPolicy::AccessRefresh, |c| {
                config.token_policy(c, Flow::OAuth)
            });
        Approval {
            role,
            requested_from: Some(requested_from),
            approver_ip,
            scopes,
            lifetime_days: device::lifetime_days(config, token_policy, role, chosen_days),
            fixed_lifetime: token_policy == TokenPolicy::AccessRefresh,
        }
    }
}

/// Approves (minting the tokens, sealed to a fresh one-time code) or
/// denies; says where to send the browser, or that a step-up is missing.
pub async fn consent(state: &AppState, input: ConsentInput) -> Result<ConsentOutcome, AppError> {
    let now = Utc::now();
    state
        .run(move |conn, cx| {
            let config = &*cx.config;
            let request = &input.request;
            let client_ip = input.client_ip.to_string();
            let ip = Some(client_ip.as_str());
            if !input.approve {
                events::record(
                    conn,
                    Event::new(EventKind::OAuthDenied, Severity::Low, ip)
                        .user(input.approver.id)
                        .details(json!({ "client_id": request.client_id })),
                )?;
                return Ok(ConsentOutcome::Redirect(redirect_with(
                    config,
                    &request.redirect_uri,
                    request.state.as_deref(),
                    &[
                        ("error", "access_denied"),
                        ("error_description", "The person denied the request."),
                    ],
                )));
            }
            let granted = policy::granted_scopes(
                &request.scopes,
                input.scopes.as_deref(),
                &config.scope_catalogue,
            )?;
            conn.transaction(|conn| {
                let approver = users::lock(conn, input.approver.id)?;
                // DEVICE_LOGIN_POLICY holds for every terminal login, this
                // way in as well as the device flow.
                let approval = request.approval(
                    config,
                    approver.role,
                    input.client_ip,
                    &client_ip,
                    granted.as_slice(),
                    input.expires_in_days,
                );
                if let Err(refusal) = policy::check_rules(&config.device_login_policy, &approval) {
                    let about = json!({
                        "requested_from": client_ip,
                        "client_id": request.client_id,
                        "via": "authorization_code",
                    });
                    device::record_policy_refusal(conn, approver.id, &client_ip, &refusal, about)?;
                    return Ok(ConsentOutcome::Refused(refusal));
                }
                let max_days = device::max_lifetime_days(config, approver.role);
                let expires_at = policy::token_expiry(input.expires_in_days, max_days, now)?;
                policy::check_approver(config, approver.role, &granted)?;
                let active = api_tokens::count_active_for_user(conn, approver.id, now)?
                    + refresh_tokens::count_live_families(conn, approver.id, now)?;
                policy::check_token_cap(active, config.max_api_tokens_per_user)?;
                let client = config
                    .client(&request.client_id)
                    .ok_or_else(|| AppError::bad_request("invalid_client", "Unknown client."))?;
                // Step-up, checked here, in the transaction that mints: a
                // proof is spent exactly when it approves.
                let reasons = policy::step_up_reasons(config, &approval);
                let checked = step_up::check(
                    conn,
                    &reasons,
                    input.step_up_proof.as_deref(),
                    step_up::Approver {
                        user_id: approver.id,
                        user_session_id: input.approver_session,
                        ip: &client_ip,
                    },
                    request.step_up_subject(),
                    now,
                )?;
                if let Err(problem) = checked {
                    return Ok(ConsentOutcome::StepUpRequired { problem });
                }
                let issued = grants::issue(
                    conn,
                    config,
                    &grants::Grant {
                        policy: config.token_policy(client, Flow::OAuth),
                        client_id: &request.client_id,
                        user_id: approver.id,
                        name: request.token_name.as_str(),
                        scopes: granted.as_slice(),
                        api_token_expires_at: expires_at,
                        family: None,
                        source: TokenSource::OAuth,
                        // Bound when redeemed, to the key proved then.
                        dpop_jkt: None,
                    },
                    now,
                )?;
                let id = Uuid::new_v4();
                let sealed = issued.seal(config, id)?;
                let code = AuthCode::generate();
                let hash = code.keyed_hash(config.keys.code_hmac.expose_secret());
                authorization_codes::insert(
                    conn,
                    &NewAuthorizationCode {
                        id,
                        code_hash: &hash,
                        client_id: &request.client_id,
                        user_id: approver.id,
                        redirect_uri: request.redirect_uri.as_str(),
                        code_challenge: request.challenge.as_str(),
                        token_id: issued.access_id,
                        sealed_token: &sealed,
                        dpop_jkt: request.dpop_jkt.as_deref(),
                        created_at: now,
                        expires_at: now + CODE_TTL,
                    },
                )?;
                for (kind, details) in [
                    (
                        EventKind::OAuthAuthorized,
                        json!({ "client_id": request.client_id, "redirect_uri": request.redirect_uri.as_str() }),
                    ),
                    (
                        EventKind::CliTokenCreated,
                        json!({
                            "token_name": request.token_name.as_str(),
                            "scopes": granted.as_slice(),
                            "requested_from": client_ip,
                            "client_id": request.client_id,
                            "via": "authorization_code",
                        }),
                    ),
                ] {
                    events::record(
                        conn,
                        Event::new(kind, Severity::Medium, ip)
                            .user(approver.id)
                            .token(issued.access_id)
                            .details(details),
                    )?;
                }
                Ok(ConsentOutcome::Redirect(redirect_with(
                    config,
                    &request.redirect_uri,
                    request.state.as_deref(),
                    &[("code", code.expose())],
                )))
            })
        })
        .await
}

/// A token request with `grant_type=authorization_code`.
#[derive(Debug)]
pub struct RedeemInput {
    /// `code`.
    pub code: String,
    /// `redirect_uri`, as in the authorization request.
    pub redirect_uri: String,
    /// The authenticated client.
    pub client_id: String,
    /// `code_verifier`.
    pub verifier: String,
    /// The request's DPoP proof, checked but for replay.
    pub proof: Option<Proof>,
    /// Client IP.
    pub client_ip: String,
}

fn invalid_grant(message: &str) -> GrantError {
    GrantError {
        code: "invalid_grant",
        message: message.to_owned(),
    }
}

/// Redeems a code, once: the tokens minted at consent, bound to the DPoP
/// key the request proves. A code used twice, or with a wrong verifier, is
/// spent and what it issued revoked: someone else holds it.
pub async fn redeem(
    state: &AppState,
    input: RedeemInput,
) -> Result<Result<Issued, GrantError>, AppError> {
    let now = Utc::now();
    state
        .run(move |conn, cx| {
            let (config, realtime) = (&*cx.config, &cx.realtime);
            let Some(code) = AuthCode::parse(input.code.trim()) else {
                return Ok(Err(invalid_grant("The code is malformed.")));
            };
            let hash = code.keyed_hash(config.keys.code_hmac.expose_secret());
            // Commits in every case: a detected reuse must leave the
            // tokens revoked though the request is refused.
            conn.transaction(|conn| {
                let Some(row) = authorization_codes::lock_by_hash(conn, &hash)? else {
                    return Ok(Err(invalid_grant("The code is not valid.")));
                };
                let stolen = |conn: &mut crate::db::Db<'_>, reason: &str| {
                    authorization_codes::spend(conn, row.id, now)?;
                    tokens::revoke_tokens(conn, realtime, Target::Tokens(&[row.token_id]), now)?;
                    events::record(
                        conn,
                        Event::new(EventKind::AuthorizationCodeReused, Severity::High, Some(&input.client_ip))
                            .user(row.user_id)
                            .token(row.token_id)
                            .details(json!({ "client_id": row.client_id, "reason": reason })),
                    )?;
                    Ok::<_, AppError>(())
                };
                if row.used_at.is_some() {
                    stolen(conn, "an authorization code was presented again; what it issued was revoked")?;
                    return Ok(Err(invalid_grant(
                        "This code was already used, so the tokens it issued were revoked. Sign in again.",
                    )));
                }
                if row.client_id != input.client_id {
                    return Ok(Err(invalid_grant("The code was issued to another client.")));
                }
                if now >= row.expires_at {
                    return Ok(Err(invalid_grant("The code expired. Sign in again.")));
                }
                // Stored as parsed; compared as parsed (RFC 6749 §4.1.3: the
                // same value as in the authorization request).
                let presented = pkce::loopback_redirect(&input.redirect_uri);
                if presented.map_or(true, |uri| uri.as_str() != row.redirect_uri) {
                    return Ok(Err(invalid_grant(
                        "redirect_uri differs from the one of the authorization request.",
                    )));
                }
                if !pkce::verifier_matches(&input.verifier, &row.code_challenge) {
                    stolen(conn, "a wrong PKCE verifier was presented; the code was spent")?;
                    return Ok(Err(invalid_grant(
                        "code_verifier does not match the code_challenge; the code is spent.",
                    )));
                }
                let proof = input.proof.as_ref();
                match (row.dpop_jkt.as_deref(), proof) {
                    (Some(jkt), Some(p)) if crate::crypto::ct_eq(jkt.as_bytes(), p.jkt.as_bytes()) => {}
                    (Some(_), _) => {
                        return Ok(Err(GrantError {
                            code: "invalid_dpop_proof",
                            message: "The authorization request named a DPoP key (dpop_jkt): prove that key.".to_owned(),
                        }))
                    }
                    (None, None) if config.client(&row.client_id).is_some_and(|c| c.require_dpop) => {
                        return Ok(Err(GrantError {
                            code: "invalid_dpop_proof",
                            message: "This client must send a DPoP proof (RFC 9449) with its token requests.".to_owned(),
                        }))
                    }
                    _ => {}
                }
                if let Some(p) = proof {
                    if let Err(replayed) = dpop::accept_once(conn, p)? {
                        return Ok(Err(GrantError {
                            code: "invalid_dpop_proof",
                            message: replayed.0.to_owned(),
                        }));
                    }
                }
                let Some(sealed) = row.sealed_token.as_deref() else {
                    return Ok(Err(invalid_grant("The code is not valid.")));
                };
                let (access, refresh) = grants::open_sealed(config, row.id, sealed)?;
                authorization_codes::spend(conn, row.id, now)?;
                let jkt = proof.map(|p| p.jkt.clone());
                if let Some(jkt) = &jkt {
                    api_tokens::bind_to_key(conn, row.token_id, jkt)?;
                }
                let Some(token) =
                    api_tokens::find(conn, row.token_id)?.filter(|t| t.revoked_at.is_none())
                else {
                    return Ok(Err(invalid_grant("The tokens of this code were revoked.")));
                };
                Ok(Ok(Issued {
                    access,
                    access_id: token.id,
                    refresh,
                    scopes: token.scopes,
                    expires_at: token.expires_at,
                    name: token.name,
                    dpop_jkt: jkt,
                }))
            })
        })
        .await
}

/// Revokes the tokens of codes that expired unredeemed (the client never
/// came for them) and deletes codes that ended a while ago; returns how
/// many were deleted.
pub async fn purge(state: &AppState, now: DateTime<Utc>) -> Result<usize, AppError> {
    state
        .run(move |conn, cx| purge_due(conn, &cx.realtime, now))
        .await
}

/// See [`purge`].
pub fn purge_due(
    conn: &mut Db<'_>,
    realtime: &Arc<Realtime>,
    now: DateTime<Utc>,
) -> Result<usize, AppError> {
    let revoked = authorization_codes::expire_unredeemed(conn, now)?;
    tokens::announce(conn, realtime, &revoked);
    Ok(authorization_codes::purge(conn, now - Duration::hours(1))?)
}
