-- Whether anyone vouched for an account's email address: an admin who made
-- the account (the admin page, `envshield-server users create`) or an OpenID
-- provider that verified it (an account made or linked by single sign-on).
-- An address typed at /signup is nobody's word, so single sign-on never
-- links an identity to an account whose email is not verified.
--
-- Existing rows: nothing stored tells a signed-up account from one an admin
-- made (sign-up writes no security event, and events older than
-- SECURITY_EVENT_RETENTION_DAYS are purged), so every existing account
-- counts as verified rather than lock admin-made accounts out of single
-- sign-on. Only accounts made at /signup before this migration keep the old
-- risk; docs/OPERATIONS.md shows how to review them.
--
-- Rows inserted without naming the column (SQL by hand) are unverified.
ALTER TABLE users ADD COLUMN email_verified boolean NOT NULL DEFAULT true;
ALTER TABLE users ALTER COLUMN email_verified SET DEFAULT false;
COMMENT ON COLUMN users.email_verified IS 'true when an admin made the account or an OpenID provider verified its email; false for /signup accounts, which single sign-on never links';
