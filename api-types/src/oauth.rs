//! Bodies of the standard OAuth 2.0 surface (`/oauth/*` and RFC 8414
//! discovery). Field names are snake_case on the wire, as the RFCs spell
//! them; optional fields are left out rather than sent as `null`.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Redacted;

/// `GET /.well-known/oauth-authorization-server` (RFC 8414 §2).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuthorizationServerMetadata {
    /// The server's base URL.
    pub issuer: String,
    /// RFC 8628 device authorization endpoint.
    pub device_authorization_endpoint: String,
    /// Authorization endpoint (RFC 6749 §3.1): authorization code with PKCE.
    pub authorization_endpoint: String,
    /// Token endpoint (device-code and refresh grants).
    pub token_endpoint: String,
    /// RFC 7009 revocation endpoint.
    pub revocation_endpoint: String,
    /// RFC 7662 introspection endpoint.
    pub introspection_endpoint: String,
    /// Grant types the token endpoint accepts.
    pub grant_types_supported: Vec<String>,
    /// Every scope a token may carry.
    pub scopes_supported: Vec<String>,
    /// How clients authenticate at the token endpoint (`none`: public clients).
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// How clients authenticate at the revocation endpoint.
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    /// How callers authenticate at the introspection endpoint.
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    /// Authorization-endpoint response types: `code`.
    pub response_types_supported: Vec<String>,
    /// Where people can read about the server.
    /// PKCE methods (RFC 7636): `S256` only.
    pub code_challenge_methods_supported: Vec<String>,
    /// The authorization response carries `iss` (RFC 9207).
    pub authorization_response_iss_parameter_supported: bool,
    /// DPoP proof algorithms accepted (RFC 9449 §5.1).
    pub dpop_signing_alg_values_supported: Vec<String>,
    pub service_documentation: String,
}

/// Answer to `POST /oauth/device_authorization` (RFC 8628 §3.2).
/// `Debug` leaves out the device code.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceAuthorizationResponse {
    /// The client's secret for polling the token endpoint.
    pub device_code: String,
    /// Short code the person compares in the browser, `XXXX-XXXX`.
    pub user_code: String,
    /// Page where the code can be typed by hand.
    pub verification_uri: String,
    /// Page that shows this request, with the user code filled in.
    pub verification_uri_complete: String,
    /// Seconds until the codes expire.
    pub expires_in: i64,
    /// Seconds the client must wait between polls.
    pub interval: u32,
}

impl std::fmt::Debug for DeviceAuthorizationResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceAuthorizationResponse")
            .field("device_code", &Redacted)
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("verification_uri_complete", &self.verification_uri_complete)
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .finish()
    }
}

/// A successful token response (RFC 6749 §5.1). `Debug` leaves out both tokens.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenResponse {
    /// The access token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Space-separated scopes the access token carries.
    pub scope: String,
    /// Seconds until the access token expires; absent when it never does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<i64>,
    /// The refresh token, for clients issued short-lived access tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &Redacted)
            .field("token_type", &self.token_type)
            .field("scope", &self.scope)
            .field("expires_in", &self.expires_in)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| Redacted),
            )
            .finish()
    }
}

/// An OAuth error (RFC 6749 §5.2, RFC 8628 §3.5): a registered code and a
/// sentence for the developer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OAuthErrorBody {
    /// Registered error code, e.g. `authorization_pending`, `invalid_grant`.
    pub error: String,
    /// What happened, for a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

/// Answer to `POST /oauth/introspect` (RFC 7662 §2.2). A token that is not
/// live is only `{"active": false}`; every other field is then absent.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IntrospectionResponse {
    /// Whether the token is live.
    pub active: bool,
    /// `Bearer` or `DPoP` for access tokens, `refresh_token` for refresh tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// Space-separated scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The client the token was issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The owner's email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The owner's account id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<Uuid>,
    /// When the token was issued (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// When the token expires (Unix seconds); absent when it never does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// The access token's id (absent for refresh tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<Uuid>,
    /// The issuer, as in the discovery document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// The key a DPoP-bound token is bound to (RFC 9449 §6.2): `{"jkt": …}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<TokenConfirmation>,
}

/// The confirmation claim of a sender-constrained token (RFC 7800).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenConfirmation {
    /// The JWK SHA-256 thumbprint (RFC 7638) of the key, base64url.
    pub jkt: String,
}

impl IntrospectionResponse {
    /// `{"active": false}`: unknown, expired, revoked or spent.
    pub fn inactive() -> Self {
        Self::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_response_leaves_out_absent_fields_and_debug_hides_tokens() {
        let t = TokenResponse {
            access_token: "esh_access_secret".into(),
            token_type: "Bearer".into(),
            scope: "envs:read".into(),
            expires_in: None,
            refresh_token: Some("eshr_refresh_secret".into()),
        };
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "access_token": "esh_access_secret",
                "token_type": "Bearer",
                "scope": "envs:read",
                "refresh_token": "eshr_refresh_secret",
            })
        );
        let shown = format!("{t:?} {t:#?}");
        assert!(!shown.contains("access_secret"), "{shown}");
        assert!(!shown.contains("refresh_secret"), "{shown}");
        assert!(shown.contains("envs:read"));
    }

    #[test]
    fn device_authorization_debug_hides_the_device_code() {
        let d = DeviceAuthorizationResponse {
            device_code: "dc_secret_value".into(),
            user_code: "BCDF-GHJK".into(),
            verification_uri: "http://x/cli/device".into(),
            verification_uri_complete: "http://x/cli/login?code=BCDF-GHJK".into(),
            expires_in: 600,
            interval: 5,
        };
        let shown = format!("{d:?}");
        assert!(!shown.contains("dc_secret_value"), "{shown}");
        assert!(shown.contains("BCDF-GHJK"));
    }

    #[test]
    fn inactive_introspection_is_only_active_false() {
        let json = serde_json::to_string(&IntrospectionResponse::inactive()).unwrap();
        assert_eq!(json, r#"{"active":false}"#);
    }

    #[test]
    fn error_body_omits_an_absent_description() {
        let e = OAuthErrorBody {
            error: "invalid_grant".into(),
            error_description: None,
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"error":"invalid_grant"}"#
        );
    }
}
