-- DEVICE_CONFIRMATION=risk: a login is stored as 'risk' until approved,
-- when the approval decides 'poll' or 'paste'. An approved or consumed
-- login is never 'risk'.
ALTER TABLE cli_device_sessions DROP CONSTRAINT cli_device_sessions_confirmation_check;
ALTER TABLE cli_device_sessions
    ADD CONSTRAINT cli_device_sessions_confirmation_check
        CHECK (confirmation IN ('poll', 'paste', 'risk')),
    ADD CONSTRAINT cli_device_sessions_risk_decided_check
        CHECK (confirmation <> 'risk' OR status NOT IN ('APPROVED', 'CONSUMED'));
COMMENT ON COLUMN cli_device_sessions.confirmation IS 'paste: the token is released only to device/exchange with the code shown in the browser; risk: decided (poll or paste) when approved';
