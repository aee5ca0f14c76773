-- Accounts, device-login sessions, API tokens and the security event log.

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    email         text NOT NULL,
    password_hash text NOT NULL,
    role          text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    disabled_at   timestamptz
);
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
COMMENT ON COLUMN users.password_hash IS 'bcrypt hash; never a token';

CREATE TABLE api_tokens (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL,
    scopes       text[] NOT NULL CHECK (array_position(scopes, NULL) IS NULL),
    token_digest bytea NOT NULL UNIQUE,
    token_hint   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    expires_at   timestamptz,
    revoked_at   timestamptz,
    source       text NOT NULL DEFAULT 'device' CHECK (source IN ('device', 'oauth', 'manual'))
);
CREATE INDEX api_tokens_user_id_idx ON api_tokens (user_id, created_at DESC);
COMMENT ON COLUMN api_tokens.token_digest IS 'SHA-256 of the whole plaintext token; the plaintext is never stored';
COMMENT ON COLUMN api_tokens.token_hint IS 'prefix and last four characters, for recognising a token in lists';
COMMENT ON COLUMN api_tokens.last_used_at IS 'coalesced: written at most once a minute per token';

CREATE TABLE cli_device_sessions (
    id                uuid PRIMARY KEY,
    device_code_hash  bytea NOT NULL UNIQUE,
    user_code_hash    bytea NOT NULL UNIQUE,
    status            text NOT NULL DEFAULT 'PENDING'
                      CHECK (status IN ('PENDING', 'APPROVED', 'DENIED', 'CONSUMED', 'CANCELLED', 'EXPIRED')),
    user_id           uuid REFERENCES users (id) ON DELETE CASCADE,
    token_id          uuid REFERENCES api_tokens (id) ON DELETE SET NULL,
    token_name        text NOT NULL,
    scopes            text[] NOT NULL CHECK (array_position(scopes, NULL) IS NULL),
    encrypted_token   bytea,
    created_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL,
    approved_at       timestamptz,
    consumed_at       timestamptz,
    client_ip         text,
    user_agent        text,
    last_polled_at    timestamptz,
    poll_interval_sec integer NOT NULL CHECK (poll_interval_sec > 0),
    CONSTRAINT sealed_token_only_while_approved CHECK (encrypted_token IS NULL OR status = 'APPROVED')
);
CREATE INDEX cli_device_sessions_status_idx ON cli_device_sessions (status);
CREATE INDEX cli_device_sessions_expires_at_idx ON cli_device_sessions (expires_at);
COMMENT ON COLUMN cli_device_sessions.device_code_hash IS 'HMAC-SHA256 of the device code under the code key';
COMMENT ON COLUMN cli_device_sessions.user_code_hash IS 'HMAC-SHA256 of the normalised user code under the code key';
COMMENT ON COLUMN cli_device_sessions.scopes IS 'scopes asked for at start';
COMMENT ON COLUMN cli_device_sessions.encrypted_token IS 'key id (4 bytes) || nonce (12) || AES-256-GCM ciphertext, row id as associated data; wiped when consumed or expired';

CREATE TABLE security_events (
    id         bigserial PRIMARY KEY,
    kind       text NOT NULL,
    severity   text NOT NULL CHECK (severity IN ('low', 'medium', 'high')),
    user_id    uuid REFERENCES users (id) ON DELETE SET NULL,
    token_id   uuid REFERENCES api_tokens (id) ON DELETE SET NULL,
    ip         text,
    details    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    seen_at    timestamptz
);
CREATE INDEX security_events_created_at_idx ON security_events (created_at DESC);
CREATE INDEX security_events_unseen_idx ON security_events (user_id, kind) WHERE seen_at IS NULL;
COMMENT ON COLUMN security_events.seen_at IS 'when the user dismissed the alert (cli_token_created banner)';
