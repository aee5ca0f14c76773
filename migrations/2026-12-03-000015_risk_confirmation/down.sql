-- Undecided logins become paste logins, the stricter of the two.
ALTER TABLE cli_device_sessions DROP CONSTRAINT cli_device_sessions_risk_decided_check;
ALTER TABLE cli_device_sessions DROP CONSTRAINT cli_device_sessions_confirmation_check;
UPDATE cli_device_sessions SET confirmation = 'paste' WHERE confirmation = 'risk';
ALTER TABLE cli_device_sessions
    ADD CONSTRAINT cli_device_sessions_confirmation_check CHECK (confirmation IN ('poll', 'paste'));
COMMENT ON COLUMN cli_device_sessions.confirmation IS 'paste: the token is released only to device/exchange with the code shown in the browser';
