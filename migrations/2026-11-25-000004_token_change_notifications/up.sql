-- Every change that can end a Bearer token's validity notifies the
-- instances, whose short-lived token caches then forget what they hold:
-- revocation, expiry, scopes or owner of a token; a disabled, re-roled or
-- deleted account. Sent at commit, whoever made the change (the server,
-- an operator in psql, a script).
CREATE FUNCTION envshield_notify_token_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('envshield_tokens', encode(OLD.token_digest, 'hex'));
    RETURN NULL;
END
$$;

CREATE TRIGGER api_tokens_notify_change
    AFTER UPDATE OF revoked_at, expires_at, scopes, user_id, token_digest OR DELETE
    ON api_tokens
    FOR EACH ROW EXECUTE FUNCTION envshield_notify_token_change();

CREATE FUNCTION envshield_notify_account_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('envshield_tokens', 'account');
    RETURN NULL;
END
$$;

CREATE TRIGGER users_notify_change
    AFTER UPDATE OF disabled_at, role, email OR DELETE
    ON users
    FOR EACH ROW EXECUTE FUNCTION envshield_notify_account_change();
