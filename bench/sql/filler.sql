-- Filler rows so the hot queries run against big tables. psql variables:
--   tfrom, tto  api_tokens filler indices [tfrom, tto)
--   sfrom, sto  cli_device_sessions filler indices [sfrom, sto)
-- Filler rows follow every CHECK and FK of migrations/*/up.sql; their secrets
-- are unknown (digests of a counter), and ended sessions (CONSUMED, EXPIRED,
-- DENIED, CANCELLED) ended within the last 6 days, inside the 7 days the
-- purge keeps them.
SET synchronous_commit = off;
\timing on

-- One account per ten filler tokens.
INSERT INTO users (id, email, password_hash, created_at)
SELECT md5('bench-filler-user-' || j)::uuid, 'filler-' || j || '@bench.invalid',
       (SELECT password_hash FROM users WHERE email = 'bench@bench.invalid'),
       now() - (j % 1000) * interval '1 hour'
  FROM generate_series(:tfrom / 10, (:tto - 1) / 10) j
ON CONFLICT DO NOTHING;

INSERT INTO api_tokens (id, user_id, name, scopes, token_digest, token_hint,
                        created_at, last_used_at, expires_at, revoked_at, source)
SELECT md5('bench-filler-token-' || i)::uuid,
       md5('bench-filler-user-' || (i / 10))::uuid,
       'filler token ' || i,
       '{envs:read,tokens:read}',
       sha256(convert_to('bench-filler-token-' || i, 'UTF8')),
       'esh_…' || substr(md5(i::text), 1, 4),
       now() - (i % 365) * interval '1 day',
       CASE WHEN i % 3 = 0 THEN now() - (i % 90) * interval '1 day' END,
       now() + (i % 365 + 1) * interval '1 day',
       CASE WHEN i % 5 = 0 THEN now() - (i % 30) * interval '1 day' END,
       'device'
  FROM generate_series(:tfrom, :tto - 1) i;

WITH u AS (SELECT array_agg(id ORDER BY email) AS ids, count(*)::int AS n
             FROM users WHERE email LIKE 'bench-user-%')
INSERT INTO cli_device_sessions (id, device_code_hash, user_code_hash, status, user_id,
                                 token_name, scopes, created_at, expires_at, approved_at,
                                 consumed_at, client_ip, user_agent, last_polled_at,
                                 poll_interval_sec)
SELECT md5('bench-filler-session-' || i)::uuid,
       sha256(convert_to('bench-filler-device-' || i, 'UTF8')),
       sha256(convert_to('bench-filler-user-code-' || i, 'UTF8')),
       s.status,
       CASE WHEN s.status IN ('CONSUMED', 'DENIED') THEN u.ids[i % u.n + 1] END,
       'filler session', '{envs:read,envs:write,tokens:read,tokens:write}',
       e.expires_at - interval '10 minutes', e.expires_at,
       CASE WHEN s.status = 'CONSUMED' THEN e.expires_at - interval '8 minutes' END,
       CASE WHEN s.status = 'CONSUMED' THEN e.expires_at - interval '7 minutes' END,
       '10.' || (i / 65536 % 256) || '.' || (i / 256 % 256) || '.' || (i % 256),
       'envshield/0.1 (linux x86_64)',
       e.expires_at - interval '7 minutes', 5
  FROM generate_series(:sfrom, :sto - 1) i, u,
       LATERAL (SELECT CASE WHEN i % 20 < 14 THEN 'CONSUMED' WHEN i % 20 < 18 THEN 'EXPIRED'
                            WHEN i % 20 = 18 THEN 'DENIED' ELSE 'CANCELLED' END AS status) s,
       LATERAL (SELECT now() - interval '1 hour' - (i % 140) * interval '1 hour'
                       - (i % 3600) * interval '1 second' AS expires_at) e;

VACUUM ANALYZE users;
VACUUM ANALYZE api_tokens;
VACUUM ANALYZE cli_device_sessions;
-- Write the fill out now, not during the next measurement.
CHECKPOINT;
