DROP INDEX api_tokens_family_idx;
ALTER TABLE api_tokens DROP COLUMN family_id, DROP COLUMN client_id;
DROP TABLE refresh_tokens;
ALTER TABLE cli_device_sessions
    DROP COLUMN confirmation_failures,
    DROP COLUMN confirmation_code_hash,
    DROP COLUMN confirmation,
    DROP COLUMN client_id;
