-- The token handoff sealed to the CLI (HPKE, RFC 9180).
ALTER TABLE cli_device_sessions ADD COLUMN handoff_key TEXT;
COMMENT ON COLUMN cli_device_sessions.handoff_key IS
  'The CLI''s X25519 public key (base64url) from start: the pickup receives the token sealed to it';
