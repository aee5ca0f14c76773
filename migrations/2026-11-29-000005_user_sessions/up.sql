-- Browser sessions held by the server: the session cookie carries only a
-- random secret, this table its digest. Signing out, "sign out
-- everywhere", a password change and disabling an account end rows here,
-- so a copied cookie stops working at once.
CREATE TABLE user_sessions (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    secret_digest bytea NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    ended_at      timestamptz,
    ip            text,
    user_agent    text
);
CREATE INDEX user_sessions_user_id_idx ON user_sessions (user_id, created_at DESC);
CREATE INDEX user_sessions_expires_at_idx ON user_sessions (expires_at);
COMMENT ON COLUMN user_sessions.secret_digest IS 'SHA-256 of the random session secret in the cookie; the secret is never stored';
COMMENT ON COLUMN user_sessions.last_seen_at IS 'coalesced: written at most once a minute per session';
