ALTER TABLE cli_device_sessions DROP COLUMN handoff_key;
