-- Sender-constrained tokens (DPoP, RFC 9449).
ALTER TABLE api_tokens ADD COLUMN dpop_jkt TEXT;
COMMENT ON COLUMN api_tokens.dpop_jkt IS
  'JWK SHA-256 thumbprint (RFC 7638) of the key the token is bound to (cnf.jkt); NULL for a Bearer token';
ALTER TABLE refresh_tokens ADD COLUMN dpop_jkt TEXT;
COMMENT ON COLUMN refresh_tokens.dpop_jkt IS
  'Thumbprint of the key a public client''s refresh token is bound to (RFC 9449 §5); NULL when unbound';
ALTER TABLE cli_device_sessions ADD COLUMN dpop_jkt TEXT;
COMMENT ON COLUMN cli_device_sessions.dpop_jkt IS
  'Thumbprint of the key that proved possession at start: the pickup must prove the same key';

-- Proofs already seen, so a proof is accepted once across every instance.
CREATE TABLE dpop_proofs (
  replay_id BYTEA PRIMARY KEY,
  expires_at TIMESTAMPTZ NOT NULL
);
COMMENT ON TABLE dpop_proofs IS
  'SHA-256 of (key thumbprint, jti) of every accepted DPoP proof, kept until its iat is too old to be accepted again';
CREATE INDEX dpop_proofs_expires_at ON dpop_proofs (expires_at);
