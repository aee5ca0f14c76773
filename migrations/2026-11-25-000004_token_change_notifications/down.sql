DROP TRIGGER users_notify_change ON users;
DROP FUNCTION envshield_notify_account_change();
DROP TRIGGER api_tokens_notify_change ON api_tokens;
DROP FUNCTION envshield_notify_token_change();
