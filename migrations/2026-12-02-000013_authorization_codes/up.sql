-- The authorization-code grant (RFC 6749 §4.1) with PKCE (RFC 7636) for
-- native clients on loopback redirects (RFC 8252).
CREATE TABLE authorization_codes (
  id UUID PRIMARY KEY,
  code_hash BYTEA NOT NULL UNIQUE,
  client_id TEXT NOT NULL,
  user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  redirect_uri TEXT NOT NULL,
  code_challenge TEXT NOT NULL,
  token_id UUID NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
  sealed_token BYTEA,
  dpop_jkt TEXT,
  created_at TIMESTAMPTZ NOT NULL,
  expires_at TIMESTAMPTZ NOT NULL,
  used_at TIMESTAMPTZ
);
COMMENT ON COLUMN authorization_codes.code_hash IS 'HMAC-SHA256 (CODE_HMAC_KEY) of the code; the code itself is never stored';
COMMENT ON COLUMN authorization_codes.code_challenge IS 'PKCE S256 challenge: base64url SHA-256 of the verifier the token request must present';
COMMENT ON COLUMN authorization_codes.sealed_token IS 'The tokens minted at consent, AES-256-GCM sealed with the row id as associated data; NULL once redeemed';
COMMENT ON COLUMN authorization_codes.dpop_jkt IS 'dpop_jkt of the authorization request (RFC 9449 §10): the token request must prove this key';
COMMENT ON COLUMN authorization_codes.used_at IS 'Redeemed (or burned by a wrong verifier); a second use revokes what it issued';
CREATE INDEX authorization_codes_expires_at ON authorization_codes (expires_at);
