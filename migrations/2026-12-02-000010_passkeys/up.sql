-- Passkeys (WebAuthn credentials), the ceremonies in progress, and the
-- step-up proofs an approval consumes.

-- One row per registered passkey. `passkey` is webauthn-rs's serialised
-- `Passkey` (public key, credential id, counter, flags); the credential id
-- and counter are copied into columns of their own for the unique index and
-- the cloned-authenticator check.
CREATE TABLE passkeys (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name text NOT NULL CONSTRAINT passkeys_name_check CHECK (char_length(name) BETWEEN 1 AND 64),
    credential_id bytea NOT NULL CONSTRAINT passkeys_credential_id_key UNIQUE,
    passkey jsonb NOT NULL,
    counter bigint NOT NULL DEFAULT 0 CONSTRAINT passkeys_counter_check CHECK (counter >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz
);
CREATE INDEX passkeys_user_id_idx ON passkeys (user_id);
COMMENT ON COLUMN passkeys.name IS 'What the person called it (1 to 64 characters)';
COMMENT ON COLUMN passkeys.credential_id IS 'The WebAuthn credential id (raw bytes); one account only';
COMMENT ON COLUMN passkeys.passkey IS 'webauthn-rs `Passkey`, serialised: the public key and its flags, never a secret';
COMMENT ON COLUMN passkeys.counter IS 'The highest signature counter seen; an assertion at or below a non-zero one is refused (a cloned authenticator)';
COMMENT ON COLUMN passkeys.last_used_at IS 'The latest sign-in or step-up with it';

-- A WebAuthn ceremony between its challenge and its answer: the server-side
-- state webauthn-rs needs to verify the answer. Taken (deleted) by the
-- answer, so each challenge is answered once; short-lived; the browser
-- holds only the id, in its encrypted session cookie.
CREATE TABLE webauthn_ceremonies (
    id uuid PRIMARY KEY,
    purpose text NOT NULL CONSTRAINT webauthn_ceremonies_purpose_check
        CHECK (purpose IN ('register', 'sign_in', 'step_up')),
    user_id uuid REFERENCES users (id) ON DELETE CASCADE,
    user_session_id uuid REFERENCES user_sessions (id) ON DELETE CASCADE,
    device_session_id uuid REFERENCES cli_device_sessions (id) ON DELETE CASCADE,
    passkey_name text,
    state jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    -- Who: a sign-in has no account yet; the others belong to a signed-in session.
    CONSTRAINT webauthn_ceremonies_owner_check CHECK (
        (purpose = 'sign_in') = (user_id IS NULL AND user_session_id IS NULL)
    ),
    CONSTRAINT webauthn_ceremonies_step_up_check CHECK (
        (purpose = 'step_up') = (device_session_id IS NOT NULL)
    ),
    CONSTRAINT webauthn_ceremonies_name_check CHECK (
        (purpose = 'register') = (passkey_name IS NOT NULL)
    )
);
CREATE INDEX webauthn_ceremonies_expires_at_idx ON webauthn_ceremonies (expires_at);
COMMENT ON COLUMN webauthn_ceremonies.state IS 'webauthn-rs registration or authentication state (the challenge): kept here, never in a cookie';
COMMENT ON COLUMN webauthn_ceremonies.device_session_id IS 'step_up: the CLI login request the assertion will approve';
COMMENT ON COLUMN webauthn_ceremonies.passkey_name IS 'register: the name the new passkey gets';

-- A step-up that passed (a fresh passkey assertion, or the password again),
-- good for one approval: that request, by that account, from that browser
-- session, within minutes. The approval deletes it in the transaction that
-- mints the token. Only a digest of the proof is stored.
CREATE TABLE step_up_proofs (
    digest bytea PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_session_id uuid NOT NULL REFERENCES user_sessions (id) ON DELETE CASCADE,
    device_session_id uuid NOT NULL REFERENCES cli_device_sessions (id) ON DELETE CASCADE,
    method text NOT NULL CONSTRAINT step_up_proofs_method_check CHECK (method IN ('passkey', 'password')),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX step_up_proofs_expires_at_idx ON step_up_proofs (expires_at);
COMMENT ON COLUMN step_up_proofs.digest IS 'SHA-256 of the proof the browser carries to the approval';
COMMENT ON COLUMN step_up_proofs.method IS 'How the person proved it was them: passkey or password';
