-- Integer ids of the API. They live outside the read model so that a rebuild
-- never resets them; a rebuild from an empty database moves each sequence
-- past the highest id it replayed.
CREATE SCHEMA ids;
CREATE SEQUENCE ids.users;
CREATE SEQUENCE ids.conversations;
CREATE SEQUENCE ids.memberships;
CREATE SEQUENCE ids.messages;

-- Idempotency keys of message sends: (user, key) → the message it made.
CREATE TABLE send_keys (
    user_id         bigint NOT NULL,
    key             text NOT NULL,
    conversation_id bigint NOT NULL,
    message_id      bigint NOT NULL,
    commit_pos      bigint NOT NULL,
    prepare_pos     bigint NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);

-- Refresh tokens: one row per issued refresh token. Rotation marks the old
-- one used; logout revokes it. Access tokens name their refresh token's id
-- (claim "sid"), so revoking a session ends both.
CREATE TABLE auth_sessions (
    id          uuid PRIMARY KEY,
    user_id     bigint NOT NULL,
    refresh_jti uuid NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX auth_sessions_user ON auth_sessions (user_id);
CREATE INDEX auth_sessions_expiry ON auth_sessions (expires_at);

-- Failed logins, for throttling per username and per client address.
CREATE TABLE login_failures (
    subject   text NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_subject ON login_failures (subject, failed_at);
