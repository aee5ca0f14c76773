-- Which wire format started a device session: the v1 JSON API or OAuth.
-- The token policy can differ between them (long-lived API tokens for v1 by
-- default, access + refresh tokens over OAuth).
ALTER TABLE cli_device_sessions
    ADD COLUMN flow text NOT NULL DEFAULT 'v1' CHECK (flow IN ('v1', 'oauth'));
