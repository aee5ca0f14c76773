-- pgbench custom script for the `start` ceiling: one insert-only transaction
-- of a row shaped and sized like the one `start` writes (same columns, same
-- four indexes: the table is created LIKE cli_device_sessions, without FKs).
INSERT INTO bench_ceiling.device_sessions
  (id, device_code_hash, user_code_hash, token_name, scopes, created_at, expires_at,
   client_ip, user_agent, poll_interval_sec)
VALUES (gen_random_uuid(), sha256(convert_to(gen_random_uuid()::text, 'UTF8')),
        sha256(convert_to(gen_random_uuid()::text, 'UTF8')), 'bench',
        '{envs:read,envs:write,tokens:read,tokens:write}', now(),
        now() + interval '10 minutes', '127.0.0.1', NULL, 5);
