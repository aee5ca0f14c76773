// @generated automatically by Diesel CLI.

diesel::table! {
    api_tokens (id) {
        id -> Uuid,
        user_id -> Uuid,
        name -> Text,
        scopes -> Array<Text>,
        token_digest -> Bytea,
        token_hint -> Text,
        created_at -> Timestamptz,
        last_used_at -> Nullable<Timestamptz>,
        expires_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
        source -> Text,
        client_id -> Nullable<Text>,
        family_id -> Nullable<Uuid>,
        dpop_jkt -> Nullable<Text>,
    }
}

diesel::table! {
    authorization_codes (id) {
        id -> Uuid,
        code_hash -> Bytea,
        client_id -> Text,
        user_id -> Uuid,
        redirect_uri -> Text,
        code_challenge -> Text,
        token_id -> Uuid,
        sealed_token -> Nullable<Bytea>,
        dpop_jkt -> Nullable<Text>,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    cli_device_sessions (id) {
        id -> Uuid,
        device_code_hash -> Bytea,
        user_code_hash -> Bytea,
        status -> Text,
        user_id -> Nullable<Uuid>,
        token_id -> Nullable<Uuid>,
        token_name -> Text,
        scopes -> Array<Text>,
        encrypted_token -> Nullable<Bytea>,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        approved_at -> Nullable<Timestamptz>,
        consumed_at -> Nullable<Timestamptz>,
        client_ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        last_polled_at -> Nullable<Timestamptz>,
        poll_interval_sec -> Int4,
        client_id -> Text,
        confirmation -> Text,
        confirmation_code_hash -> Nullable<Bytea>,
        confirmation_failures -> Int4,
        flow -> Text,
        reuse_reported_at -> Nullable<Timestamptz>,
        dpop_jkt -> Nullable<Text>,
        handoff_key -> Nullable<Text>,
    }
}

diesel::table! {
    dpop_proofs (replay_id) {
        replay_id -> Bytea,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    notice_outbox (id) {
        id -> Int8,
        kind -> Text,
        channel -> Text,
        user_id -> Nullable<Uuid>,
        recipient -> Nullable<Text>,
        payload -> Jsonb,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        sent_at -> Nullable<Timestamptz>,
        failed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    passkeys (id) {
        id -> Uuid,
        user_id -> Uuid,
        name -> Text,
        credential_id -> Bytea,
        passkey -> Jsonb,
        counter -> Int8,
        created_at -> Timestamptz,
        last_used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    rate_limits (key) {
        key -> Bytea,
        tat -> Timestamptz,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Uuid,
        family_id -> Uuid,
        user_id -> Uuid,
        client_id -> Text,
        scopes -> Array<Text>,
        token_digest -> Bytea,
        created_at -> Timestamptz,
        idle_expires_at -> Timestamptz,
        family_expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
        successor_sealed -> Nullable<Bytea>,
        dpop_jkt -> Nullable<Text>,
    }
}

diesel::table! {
    security_events (id) {
        id -> Int8,
        kind -> Text,
        severity -> Text,
        user_id -> Nullable<Uuid>,
        token_id -> Nullable<Uuid>,
        ip -> Nullable<Text>,
        details -> Jsonb,
        created_at -> Timestamptz,
        seen_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    step_up_proofs (digest) {
        digest -> Bytea,
        user_id -> Uuid,
        user_session_id -> Uuid,
        device_session_id -> Nullable<Uuid>,
        method -> Text,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        authorization_request -> Nullable<Bytea>,
    }
}

diesel::table! {
    user_identities (id) {
        id -> Uuid,
        provider -> Text,
        subject -> Text,
        user_id -> Uuid,
        email_at_link -> Text,
        created_at -> Timestamptz,
        last_sign_in_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    user_sessions (id) {
        id -> Uuid,
        user_id -> Uuid,
        secret_digest -> Bytea,
        created_at -> Timestamptz,
        last_seen_at -> Timestamptz,
        expires_at -> Timestamptz,
        ended_at -> Nullable<Timestamptz>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        email -> Text,
        password_hash -> Text,
        role -> Text,
        created_at -> Timestamptz,
        disabled_at -> Nullable<Timestamptz>,
        email_verified -> Bool,
    }
}

diesel::table! {
    webauthn_ceremonies (id) {
        id -> Uuid,
        purpose -> Text,
        user_id -> Nullable<Uuid>,
        user_session_id -> Nullable<Uuid>,
        device_session_id -> Nullable<Uuid>,
        passkey_name -> Nullable<Text>,
        state -> Jsonb,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        authorization_request -> Nullable<Bytea>,
    }
}

diesel::joinable!(api_tokens -> users (user_id));
diesel::joinable!(authorization_codes -> api_tokens (token_id));
diesel::joinable!(authorization_codes -> users (user_id));
diesel::joinable!(cli_device_sessions -> api_tokens (token_id));
diesel::joinable!(cli_device_sessions -> users (user_id));
diesel::joinable!(notice_outbox -> users (user_id));
diesel::joinable!(passkeys -> users (user_id));
diesel::joinable!(refresh_tokens -> users (user_id));
diesel::joinable!(security_events -> api_tokens (token_id));
diesel::joinable!(security_events -> users (user_id));
diesel::joinable!(step_up_proofs -> cli_device_sessions (device_session_id));
diesel::joinable!(step_up_proofs -> user_sessions (user_session_id));
diesel::joinable!(step_up_proofs -> users (user_id));
diesel::joinable!(user_identities -> users (user_id));
diesel::joinable!(user_sessions -> users (user_id));
diesel::joinable!(webauthn_ceremonies -> cli_device_sessions (device_session_id));
diesel::joinable!(webauthn_ceremonies -> user_sessions (user_session_id));
diesel::joinable!(webauthn_ceremonies -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    api_tokens,
    authorization_codes,
    cli_device_sessions,
    dpop_proofs,
    notice_outbox,
    passkeys,
    rate_limits,
    refresh_tokens,
    security_events,
    step_up_proofs,
    user_identities,
    user_sessions,
    users,
    webauthn_ceremonies,
);
