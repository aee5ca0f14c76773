-- pgbench custom script for the DPoP whoami's ceiling: the `jti` replay
-- check alone, as the server runs it for every proof it accepts
-- (db/models/dpop_proofs.rs, remember_alone): one transaction that commits
-- without waiting for a WAL flush and inserts one 32-byte replay id into a
-- table created LIKE dpop_proofs (same primary key).
BEGIN;
SET LOCAL synchronous_commit TO OFF;
INSERT INTO bench_ceiling.dpop_proofs (replay_id, expires_at)
VALUES (sha256(convert_to(gen_random_uuid()::text, 'UTF8')), now() + interval '6 minutes')
ON CONFLICT DO NOTHING;
COMMIT;
