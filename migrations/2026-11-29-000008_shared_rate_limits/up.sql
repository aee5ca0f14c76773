-- Rate limits that bound an attacker (code entry, sign-in, per-account
-- caps) are kept here, so N instances share one budget instead of giving N.
-- One row per key, a GCRA bucket: the key is a SHA-256 of the limit's name
-- and its subject (no address or email in clear); `tat` is the theoretical
-- arrival time. Unlogged: a crash forgets the buckets, which only refills
-- them.
CREATE UNLOGGED TABLE rate_limits (
    key bytea PRIMARY KEY,
    tat timestamptz NOT NULL
);
CREATE INDEX rate_limits_tat_idx ON rate_limits (tat);
COMMENT ON COLUMN rate_limits.key IS 'SHA-256 of the limit name and its subject (client network, account)';
COMMENT ON COLUMN rate_limits.tat IS 'GCRA theoretical arrival time; a row whose tat has passed is a full bucket and may be deleted';
