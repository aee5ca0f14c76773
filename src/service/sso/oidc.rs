//! The OpenID Connect protocol with each upstream provider: discovery
//! (cached), the authorization request (code + PKCE S256 + `state` +
//! `nonce`), the code exchange, ID-token validation (signature from the
//! provider's JWKS, `iss`, `aud`, `exp`, `nonce`), and the JWKS refetch
//! when a key the cache does not know signs a token (key rotation).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreProviderMetadata, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenFields, IssuerUrl,
    JsonWebKeySet, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    RequestTokenError, Scope, SignatureVerificationError, StandardErrorResponse,
    StandardTokenResponse, TokenResponse, UserInfoClaims,
};
use serde::{Deserialize, Serialize};

use crate::config::{Config, OidcProvider};
use crate::crypto;
use crate::error::AppError;

/// How long a sign-in sent to a provider may take to come back.
pub const PENDING_TTL: Duration = Duration::from_secs(10 * 60);
/// How long discovered metadata is used before it is read again.
const METADATA_TTL: Duration = Duration::from_secs(60 * 60);
/// At most one JWKS refetch per provider in this interval, however many
/// tokens name an unknown key.
const JWKS_REFETCH_EVERY: Duration = Duration::from_secs(60);
/// Each call to a provider gives up after this long.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest `redirect` carried through a provider: the whole pending
/// sign-in rides in the session cookie, which browsers cap at 4 kB.
pub const MAX_REDIRECT_LEN: usize = 1024;

/// Claims beyond the standard ones, kept whole so the groups claim can
/// have any name (`groups`, `roles`, `cognito:groups`, a nested path).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ExtraClaims {
    #[serde(flatten)]
    claims: serde_json::Map<String, serde_json::Value>,
}

impl openidconnect::AdditionalClaims for ExtraClaims {}

impl ExtraClaims {
    /// The groups listed under `claim`: the claim by that exact name, else
    /// a dotted path into nested objects (`realm_access.roles`). A single
    /// string counts as one group.
    fn groups(&self, claim: &str) -> Option<Vec<String>> {
        let value = self.claims.get(claim).or_else(|| {
            let mut parts = claim.split('.');
            let first = self.claims.get(parts.next()?)?;
            parts.try_fold(first, |v, key| v.get(key))
        })?;
        match value {
            serde_json::Value::String(s) => Some(vec![s.clone()]),
            serde_json::Value::Array(items) => Some(
                items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
            ),
            _ => None,
        }
    }
}

type IdFields = IdTokenFields<
    ExtraClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type ProviderTokenResponse = StandardTokenResponse<IdFields, CoreTokenType>;
type OidcClient = openidconnect::Client<
    ExtraClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    ProviderTokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// A sign-in sent to a provider, kept in the encrypted session cookie
/// until its callback (single use: the callback takes it out first).
#[derive(Clone, Serialize, Deserialize)]
pub struct Pending {
    /// The provider it went to.
    pub provider: String,
    state: String,
    nonce: String,
    pkce_verifier: String,
    /// Where to go once signed in (a checked, same-site path).
    pub redirect: Option<String>,
    /// Unix time it was sent.
    created_at: i64,
}

crate::crypto::redacted_debug!(Pending {
    provider,
    redirect,
    created_at
});

impl Pending {
    /// Whether the callback's `state` is this sign-in's (constant time).
    pub fn state_matches(&self, state: &str) -> bool {
        crypto::ct_eq(self.state.as_bytes(), state.as_bytes())
    }

    /// Whether it was sent longer ago than [`PENDING_TTL`] (or more than a
    /// minute in the future: instances' clocks differ by less).
    pub fn expired(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        let age = now.timestamp() - self.created_at;
        let ttl = i64::try_from(PENDING_TTL.as_secs()).unwrap_or(i64::MAX);
        !(-60..=ttl).contains(&age)
    }
}

/// What a provider vouched for, once every check passed.
#[derive(Debug, Clone)]
pub struct VerifiedIdentity {
    /// The ID token's `sub`.
    pub subject: String,
    /// The person's email, if the provider gave one.
    pub email: Option<String>,
    /// Whether the provider says it verified that email.
    pub email_verified: bool,
    /// The groups from the provider's groups claim (empty if none).
    pub groups: Vec<String>,
}

/// A callback that did not produce an identity: the reason recorded in
/// the audit event, and the answer for the person.
#[derive(Debug)]
pub struct Refused {
    /// Short code stored as `details.reason` of `sso_refused`.
    pub reason: &'static str,
    /// The page answered.
    pub error: AppError,
}

impl Refused {
    /// A refusal answered with a 401 page.
    pub fn unauthorized(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            error: AppError::Unauthorized {
                code: "sso_refused",
                message: message.into(),
                challenge: None,
            },
        }
    }

    /// A refusal answered with a 403 page.
    pub fn forbidden(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            error: AppError::forbidden("sso_refused", message),
        }
    }

    /// A refusal answered with a 400 page.
    pub fn bad_request(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            error: AppError::bad_request("sso_refused", message),
        }
    }

    fn upstream(
        reason: &'static str,
        provider: &OidcProvider,
        cause: impl std::fmt::Display,
    ) -> Self {
        tracing::warn!(provider = %provider.id, reason, error = %cause, "OpenID provider call failed");
        Self {
            reason,
            error: unreachable(provider),
        }
    }
}

/// The page for a provider that cannot be used right now.
fn unreachable(provider: &OidcProvider) -> AppError {
    AppError::Upstream(format!(
        "{} could not be reached, or did not answer as expected. Try again in a minute; if it keeps failing, tell your administrator.",
        provider.name
    ))
}

/// Discovered metadata and when it was read.
struct Discovered {
    metadata: CoreProviderMetadata,
    read_at: Instant,
}

/// One provider's cache.
#[derive(Default)]
struct Cache {
    discovered: Option<Arc<Discovered>>,
    /// The last JWKS refetch (for an unknown key), for its rate limit.
    jwks_refetched_at: Option<Instant>,
}

/// Every configured provider's cached discovery, and the HTTP client used
/// to reach them. Built in `startup`, held in the app state.
pub struct Providers {
    http: reqwest::Client,
    cache: HashMap<String, tokio::sync::Mutex<Cache>>,
    app_base: String,
}

impl Providers {
    /// An empty cache for the configured providers. Redirects are not
    /// followed (a provider answers directly, or not at all).
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(HTTP_TIMEOUT)
            .connect_timeout(HTTP_TIMEOUT)
            .user_agent(concat!("envshield-server/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            cache: config
                .oidc_providers
                .iter()
                .map(|p| (p.id.clone(), tokio::sync::Mutex::new(Cache::default())))
                .collect(),
            app_base: config.app_base(),
        })
    }

    /// The redirect URI registered at the provider.
    pub fn redirect_uri(&self, provider: &OidcProvider) -> String {
        format!("{}/auth/oidc/{}/callback", self.app_base, provider.id)
    }

    fn cache(&self, provider: &OidcProvider) -> Result<&tokio::sync::Mutex<Cache>, AppError> {
        self.cache
            .get(&provider.id)
            .ok_or_else(|| AppError::internal("provider cache missing for a configured provider"))
    }

    /// The provider's metadata and keys: cached, read again after an hour
    /// (the old copy serves while the provider is down).
    async fn discovered(&self, provider: &OidcProvider) -> Result<Arc<Discovered>, Refused> {
        let cache = self.cache(provider).map_err(|error| Refused {
            reason: "internal",
            error,
        })?;
        let mut cache = cache.lock().await;
        if let Some(d) = &cache.discovered {
            if d.read_at.elapsed() < METADATA_TTL {
                return Ok(d.clone());
            }
        }
        let issuer = IssuerUrl::new(provider.issuer.clone())
            .map_err(|e| Refused::upstream("provider_unreachable", provider, e))?;
        match CoreProviderMetadata::discover_async(issuer, &self.http).await {
            Ok(metadata) => {
                let fresh = Arc::new(Discovered {
                    metadata,
                    read_at: Instant::now(),
                });
                cache.discovered = Some(fresh.clone());
                Ok(fresh)
            }
            Err(e) => match &cache.discovered {
                Some(stale) => {
                    tracing::warn!(provider = %provider.id, error = %error_chain(&e), "OpenID discovery failed; using the cached metadata");
                    Ok(stale.clone())
                }
                None => Err(Refused::upstream(
                    "provider_unreachable",
                    provider,
                    error_chain(&e),
                )),
            },
        }
    }

    /// Reads the provider's JWKS again after a token named a key the cache
    /// lacks; at most once a minute per provider. `true` if the keys changed.
    async fn refetch_keys(&self, provider: &OidcProvider) -> Result<bool, Refused> {
        let cache = self.cache(provider).map_err(|error| Refused {
            reason: "internal",
            error,
        })?;
        let mut cache = cache.lock().await;
        if cache
            .jwks_refetched_at
            .is_some_and(|at| at.elapsed() < JWKS_REFETCH_EVERY)
        {
            return Ok(false);
        }
        cache.jwks_refetched_at = Some(Instant::now());
        let Some(current) = cache.discovered.clone() else {
            return Ok(false);
        };
        let jwks: JsonWebKeySet<CoreJsonWebKey> =
            JsonWebKeySet::fetch_async(current.metadata.jwks_uri(), &self.http)
                .await
                .map_err(|e| {
                    Refused::upstream("provider_unreachable", provider, error_chain(&e))
                })?;
        let changed = &jwks != current.metadata.jwks();
        let metadata = current.metadata.clone().set_jwks(jwks);
        cache.discovered = Some(Arc::new(Discovered {
            metadata,
            read_at: current.read_at,
        }));
        tracing::info!(provider = %provider.id, changed, "refetched the provider's signing keys");
        Ok(changed)
    }

    fn client(
        &self,
        provider: &OidcProvider,
        discovered: &Discovered,
    ) -> Result<OidcClient, Refused> {
        let redirect = RedirectUrl::new(self.redirect_uri(provider)).map_err(|e| Refused {
            reason: "internal",
            error: AppError::internal(e),
        })?;
        let client: OidcClient = openidconnect::Client::from_provider_metadata(
            discovered.metadata.clone(),
            ClientId::new(provider.client_id.clone()),
            provider.client_secret.as_ref().map(|s| {
                use secrecy::ExposeSecret;
                ClientSecret::new(s.expose_secret().to_owned())
            }),
        )
        .set_redirect_uri(redirect);
        Ok(client)
    }

    /// The provider's authorization URL for a new sign-in, and what to
    /// keep until it comes back.
    pub async fn begin(
        &self,
        provider: &OidcProvider,
        redirect: Option<String>,
    ) -> Result<(url::Url, Pending), Refused> {
        let discovered = self.discovered(provider).await?;
        let client = self.client(provider, &discovered)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for scope in provider.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.url();
        let pending = Pending {
            provider: provider.id.clone(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            redirect,
            created_at: chrono::Utc::now().timestamp(),
        };
        Ok((url, pending))
    }

    /// Redeems the code with the PKCE verifier and checks the ID token:
    /// signature (refetching the keys once for an unknown key), issuer,
    /// audience, expiry and nonce. Email and groups missing from the ID
    /// token are read from the userinfo endpoint (for the same subject).
    pub async fn finish(
        &self,
        provider: &OidcProvider,
        pending: Pending,
        code: String,
    ) -> Result<VerifiedIdentity, Refused> {
        let discovered = self.discovered(provider).await?;
        let client = self.client(provider, &discovered)?;
        let exchange = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| Refused::upstream("provider_misconfigured", provider, e))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()));
        let tokens = match exchange.request_async(&self.http).await {
            Ok(t) => t,
            Err(RequestTokenError::ServerResponse(e)) => {
                tracing::info!(provider = %provider.id, error = %e, "the provider refused the sign-in code");
                return Err(Refused::bad_request(
                    "code_exchange_failed",
                    format!(
                        "{} did not accept this sign-in (it may have been used already, or taken too long). Start again from the sign-in page.",
                        provider.name
                    ),
                ));
            }
            // A body that did not parse may hold tokens: never log it.
            Err(RequestTokenError::Parse(..)) => {
                return Err(Refused::upstream(
                    "provider_misconfigured",
                    provider,
                    "the token response could not be parsed",
                ))
            }
            Err(e) => {
                return Err(Refused::upstream(
                    "provider_unreachable",
                    provider,
                    error_chain(&e),
                ))
            }
        };
        let Some(id_token) = tokens.id_token() else {
            return Err(Refused::upstream(
                "no_id_token",
                provider,
                "the token response has no id_token",
            ));
        };
        let nonce = Nonce::new(pending.nonce.clone());
        let verify = |client: &OidcClient| {
            let verifier = client.id_token_verifier();
            id_token.claims(&verifier, &nonce).cloned()
        };
        let claims = match verify(&client) {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) if self.refetch_keys(provider).await? => {
                let discovered = self.discovered(provider).await?;
                verify(&self.client(provider, &discovered)?)
            }
            other => other,
        }
        .map_err(|e| refused_token(provider, &e))?;

        let subject = claims.subject().as_str().to_owned();
        let mut email = claims.email().map(|e| e.as_str().to_owned());
        let mut email_verified = claims.email_verified().unwrap_or(false);
        let mut groups = claims.additional_claims().groups(&provider.groups_claim);
        let wants_groups = !provider.admin_groups.is_empty();
        if email.is_none() || (wants_groups && groups.is_none()) {
            if let Ok(request) = client.user_info(
                tokens.access_token().clone(),
                Some(claims.subject().clone()),
            ) {
                let info: UserInfoClaims<ExtraClaims, CoreGenderClaim> = request
                    .request_async(&self.http)
                    .await
                    .map_err(|e| Refused::upstream("userinfo_failed", provider, error_chain(&e)))?;
                if email.is_none() {
                    email = info.email().map(|e| e.as_str().to_owned());
                    email_verified = info.email_verified().unwrap_or(false);
                }
                if groups.is_none() {
                    groups = info.additional_claims().groups(&provider.groups_claim);
                }
            }
        }
        Ok(VerifiedIdentity {
            subject,
            email,
            email_verified,
            groups: groups.unwrap_or_default(),
        })
    }
}

/// The refusal for an ID token that failed a check.
fn refused_token(provider: &OidcProvider, e: &ClaimsVerificationError) -> Refused {
    let reason = match e {
        ClaimsVerificationError::InvalidAudience(_) => "wrong_audience",
        ClaimsVerificationError::InvalidNonce(_) => "nonce_mismatch",
        ClaimsVerificationError::InvalidIssuer(_) => "wrong_issuer",
        ClaimsVerificationError::Expired(_) => "id_token_expired",
        ClaimsVerificationError::SignatureVerification(_) => "bad_signature",
        _ => "invalid_id_token",
    };
    tracing::warn!(provider = %provider.id, reason, error = %e, "ID token refused");
    Refused::unauthorized(
        reason,
        format!(
            "The sign-in from {} could not be verified, so it was refused. Start again from the sign-in page; if it keeps failing, tell your administrator.",
            provider.name
        ),
    )
}

/// An error and its sources on one line, for the log.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_come_from_a_named_or_nested_claim() {
        let extra: ExtraClaims = serde_json::from_value(serde_json::json!({
            "groups": ["eng", "ops", 7],
            "cognito:groups": "admins",
            "realm_access": { "roles": ["envshield-admin"] }
        }))
        .unwrap();
        assert_eq!(extra.groups("groups").unwrap(), ["eng", "ops"]);
        assert_eq!(extra.groups("cognito:groups").unwrap(), ["admins"]);
        assert_eq!(
            extra.groups("realm_access.roles").unwrap(),
            ["envshield-admin"]
        );
        assert!(extra.groups("roles").is_none());
    }

    #[test]
    fn pending_sign_ins_expire_and_compare_their_state() {
        let now = chrono::Utc::now();
        let p = Pending {
            provider: "corp".into(),
            state: "abc".into(),
            nonce: "n".into(),
            pkce_verifier: "v".into(),
            redirect: None,
            created_at: now.timestamp() - 60,
        };
        assert!(p.state_matches("abc"));
        assert!(!p.state_matches("abd"));
        assert!(!p.state_matches(""));
        assert!(!p.expired(now));
        assert!(p.expired(now + chrono::Duration::minutes(10)));
        assert!(
            p.expired(now - chrono::Duration::minutes(3)),
            "more than a minute in the future"
        );
        let debug = format!("{p:?}");
        assert!(
            !debug.contains("abc") && !debug.contains("\"v\""),
            "{debug}"
        );
    }
}
