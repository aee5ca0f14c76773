-- A step-up may also approve an authorization request (the consent page of
-- /oauth/authorize), which has no row of its own until it is approved: it is
-- named by a digest of its client, redirect URI and PKCE challenge.
ALTER TABLE step_up_proofs
    ALTER COLUMN device_session_id DROP NOT NULL,
    ADD COLUMN authorization_request bytea,
    ADD CONSTRAINT step_up_proofs_subject_check
        CHECK (num_nonnulls(device_session_id, authorization_request) = 1);
COMMENT ON COLUMN step_up_proofs.authorization_request IS 'SHA-256 naming the /oauth/authorize request it approves (client, redirect URI, PKCE challenge)';

ALTER TABLE webauthn_ceremonies
    ADD COLUMN authorization_request bytea,
    DROP CONSTRAINT webauthn_ceremonies_step_up_check,
    ADD CONSTRAINT webauthn_ceremonies_step_up_check CHECK (
        CASE WHEN purpose = 'step_up'
            THEN num_nonnulls(device_session_id, authorization_request) = 1
            ELSE num_nonnulls(device_session_id, authorization_request) = 0
        END
    );
COMMENT ON COLUMN webauthn_ceremonies.authorization_request IS 'step_up: the /oauth/authorize request the assertion will approve';
