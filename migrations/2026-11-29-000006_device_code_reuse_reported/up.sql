-- A consumed device code polled again is recorded once per session, not
-- once per poll: late and losing polls would otherwise flood the audit log.
ALTER TABLE cli_device_sessions ADD COLUMN reuse_reported_at timestamptz;
COMMENT ON COLUMN cli_device_sessions.reuse_reported_at IS 'when reuse of this consumed device code was first recorded (cli_device_code_reused)';
