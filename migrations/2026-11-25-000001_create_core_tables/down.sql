DROP TABLE security_events;
DROP TABLE cli_device_sessions;
DROP TABLE api_tokens;
DROP TABLE users;
