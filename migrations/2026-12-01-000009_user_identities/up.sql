-- Sign-ins through an upstream OpenID Connect provider: one row per
-- (provider, subject) pair, pointing at the EnvShield account it signs in.
-- A row is written when an identity is first linked (through a verified
-- email on an allowed domain) or its account created on first sign-in.
CREATE TABLE user_identities (
    id uuid PRIMARY KEY,
    provider text NOT NULL,
    subject text NOT NULL,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email_at_link text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_sign_in_at timestamptz,
    CONSTRAINT user_identities_provider_subject_key UNIQUE (provider, subject)
);
CREATE INDEX user_identities_user_id_idx ON user_identities (user_id);
COMMENT ON COLUMN user_identities.provider IS 'The provider''s `id` in OIDC_PROVIDERS';
COMMENT ON COLUMN user_identities.subject IS 'The ID token''s `sub`: stable and unique per provider, unlike the email';
COMMENT ON COLUMN user_identities.email_at_link IS 'The verified email that linked (or created) the account, kept for audit';
COMMENT ON COLUMN user_identities.last_sign_in_at IS 'The latest sign-in through this identity';
