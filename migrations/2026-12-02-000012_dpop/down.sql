DROP TABLE dpop_proofs;
ALTER TABLE cli_device_sessions DROP COLUMN dpop_jkt;
ALTER TABLE refresh_tokens DROP COLUMN dpop_jkt;
ALTER TABLE api_tokens DROP COLUMN dpop_jkt;
