-- Security notices waiting to leave the process (mail, signed webhook).
-- A row is written in the same transaction as the security event it tells
-- of, so a change that is rolled back sends nothing; a background worker
-- claims due rows with FOR UPDATE SKIP LOCKED, sends, and marks them sent
-- or schedules a retry.
CREATE TABLE notice_outbox (
    id bigserial PRIMARY KEY,
    kind text NOT NULL,
    channel text NOT NULL CHECK (channel IN ('mail', 'webhook')),
    user_id uuid REFERENCES users (id) ON DELETE CASCADE,
    recipient text,
    payload jsonb NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz,
    failed_at timestamptz
);
-- What the worker looks for: rows neither sent nor given up on, by due time.
CREATE INDEX notice_outbox_due_idx ON notice_outbox (next_attempt_at)
    WHERE sent_at IS NULL AND failed_at IS NULL;
COMMENT ON COLUMN notice_outbox.kind IS 'The security event''s kind, e.g. cli_token_created';
COMMENT ON COLUMN notice_outbox.channel IS '`mail` (SMTP_URL) or `webhook` (SECURITY_WEBHOOK_URL)';
COMMENT ON COLUMN notice_outbox.recipient IS 'The account''s email when the event was recorded (mail only)';
COMMENT ON COLUMN notice_outbox.payload IS 'The notice: kind, time, user, ip, details; never a token, code or password';
COMMENT ON COLUMN notice_outbox.attempts IS 'Sends tried so far (counted when a worker claims the row)';
COMMENT ON COLUMN notice_outbox.next_attempt_at IS 'Due time; a claim moves it forward by a lease, so a worker that dies mid-send leaves the row due again later';
COMMENT ON COLUMN notice_outbox.last_error IS 'Why the latest attempt failed (no secrets)';
COMMENT ON COLUMN notice_outbox.failed_at IS 'Given up on after the last attempt; kept for the operator';
