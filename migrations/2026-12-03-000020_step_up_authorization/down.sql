DELETE FROM step_up_proofs WHERE device_session_id IS NULL;
DELETE FROM webauthn_ceremonies WHERE purpose = 'step_up' AND device_session_id IS NULL;
ALTER TABLE webauthn_ceremonies
    DROP CONSTRAINT webauthn_ceremonies_step_up_check,
    DROP COLUMN authorization_request,
    ADD CONSTRAINT webauthn_ceremonies_step_up_check CHECK (
        (purpose = 'step_up') = (device_session_id IS NOT NULL)
    );
ALTER TABLE step_up_proofs
    DROP CONSTRAINT step_up_proofs_subject_check,
    DROP COLUMN authorization_request,
    ALTER COLUMN device_session_id SET NOT NULL;
