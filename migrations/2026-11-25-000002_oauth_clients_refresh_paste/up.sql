-- OAuth clients, refresh-token families, and paste-back confirmation.

ALTER TABLE cli_device_sessions
    ADD COLUMN client_id text NOT NULL DEFAULT 'envshield-cli',
    ADD COLUMN confirmation text NOT NULL DEFAULT 'poll' CHECK (confirmation IN ('poll', 'paste')),
    ADD COLUMN confirmation_code_hash bytea,
    ADD COLUMN confirmation_failures integer NOT NULL DEFAULT 0 CHECK (confirmation_failures >= 0);
COMMENT ON COLUMN cli_device_sessions.confirmation IS 'paste: the token is released only to device/exchange with the code shown in the browser';
COMMENT ON COLUMN cli_device_sessions.confirmation_code_hash IS 'HMAC-SHA256 of the paste-back confirmation code under the code key';

CREATE TABLE refresh_tokens (
    id              uuid PRIMARY KEY,
    family_id       uuid NOT NULL,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id       text NOT NULL,
    scopes          text[] NOT NULL CHECK (array_position(scopes, NULL) IS NULL),
    token_digest    bytea NOT NULL UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    idle_expires_at timestamptz NOT NULL,
    family_expires_at timestamptz NOT NULL,
    used_at         timestamptz,
    revoked_at      timestamptz
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);
COMMENT ON TABLE refresh_tokens IS 'one row per issued refresh token; a rotation marks the old row used and adds a new one in the same family';
COMMENT ON COLUMN refresh_tokens.token_digest IS 'SHA-256 of the whole plaintext refresh token';
COMMENT ON COLUMN refresh_tokens.used_at IS 'set when rotated; presenting a used token again revokes the whole family';

ALTER TABLE api_tokens
    ADD COLUMN client_id text,
    ADD COLUMN family_id uuid;
CREATE INDEX api_tokens_family_idx ON api_tokens (family_id) WHERE family_id IS NOT NULL;
COMMENT ON COLUMN api_tokens.family_id IS 'refresh-token family of a short-lived access token; NULL for long-lived API tokens';
