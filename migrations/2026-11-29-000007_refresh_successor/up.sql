-- A client that retries a refresh (a timeout, or racing requests) gets the
-- same successor pair for a few seconds after the rotation, instead of
-- tripping reuse detection: the pair is kept sealed on the spent row for
-- that window (REFRESH_TOKEN_REUSE_GRACE_SEC), then wiped.
ALTER TABLE refresh_tokens
    ADD COLUMN successor_sealed bytea,
    ADD CONSTRAINT successor_only_once_spent CHECK (successor_sealed IS NULL OR used_at IS NOT NULL);
CREATE INDEX refresh_tokens_successor_idx ON refresh_tokens (used_at) WHERE successor_sealed IS NOT NULL;
COMMENT ON COLUMN refresh_tokens.successor_sealed IS 'key id (4 bytes) || nonce (12) || AES-256-GCM ciphertext of the successor access and refresh tokens, row id as associated data; wiped after the grace window or at revocation';
