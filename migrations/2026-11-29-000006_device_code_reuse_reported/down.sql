ALTER TABLE cli_device_sessions DROP COLUMN reuse_reported_at;
