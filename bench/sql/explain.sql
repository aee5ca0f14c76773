-- The hot queries as the server sends them (bind parameters, so the plan a
-- long-lived connection settles on: the generic plan), on real rows.
-- psql variables: digest (a seeded token's sha256), dhash (a seeded device
-- code's HMAC), sid (that session's id).
SET plan_cache_mode = force_generic_plan;

\echo '--- Bearer lookup (whoami): api_tokens JOIN users by token_digest'
PREPARE bearer(bytea, timestamptz) AS
  SELECT t.*, u.* FROM api_tokens t INNER JOIN users u ON u.id = t.user_id
   WHERE t.token_digest = $1 AND t.revoked_at IS NULL
     AND (t.expires_at IS NULL OR t.expires_at > $2) AND u.disabled_at IS NULL
   LIMIT 1;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE bearer(:'digest', now());

\echo '--- Poll lookup: cli_device_sessions by device_code_hash'
PREPARE poll_find(bytea) AS
  SELECT * FROM cli_device_sessions WHERE device_code_hash = $1 LIMIT 1;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE poll_find(:'dhash');

\echo '--- Interval growth after slow_down (the only write a pending poll can make): UPDATE by id (rolled back)'
BEGIN;
PREPARE poll_update(uuid, timestamptz, integer) AS
  UPDATE cli_device_sessions SET last_polled_at = $2,
         poll_interval_sec = GREATEST(poll_interval_sec, $3)
   WHERE id = $1 AND status = 'PENDING';
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE poll_update(:'sid', now(), 1);
ROLLBACK;
