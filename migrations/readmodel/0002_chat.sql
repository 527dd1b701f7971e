-- The chat read model, projected from the log. Every row can be rebuilt.

CREATE TABLE users (
    id             bigint PRIMARY KEY,
    username       text NOT NULL,
    username_lower text NOT NULL UNIQUE,
    password_hash  text NOT NULL,
    created_at     timestamptz NOT NULL
);

CREATE TABLE conversations (
    id               bigint PRIMARY KEY,
    type             text NOT NULL,
    name             text,
    description      text,
    created_by       bigint NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    last_activity_at timestamptz NOT NULL,
    last_message_id  bigint
);

CREATE TABLE members (
    conversation_id bigint NOT NULL,
    user_id         bigint NOT NULL,
    membership_id   bigint NOT NULL,
    joined_at       timestamptz NOT NULL,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX members_user ON members (user_id, conversation_id);

CREATE TABLE messages (
    id              bigint PRIMARY KEY,
    conversation_id bigint NOT NULL,
    sender_id       bigint NOT NULL,
    receivers       bigint[] NOT NULL,
    read_by         bigint[] NOT NULL DEFAULT '{}',
    text            text NOT NULL,
    picture         jsonb,
    video           jsonb,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    commit_pos      bigint NOT NULL,
    prepare_pos     bigint NOT NULL
);
CREATE INDEX messages_conversation ON messages (conversation_id, id);

-- One row per message and participant (sender and receivers): the caller's
-- messages across rooms, and unread counts.
CREATE TABLE inbox (
    user_id         bigint NOT NULL,
    message_id      bigint NOT NULL,
    conversation_id bigint NOT NULL,
    unread          boolean NOT NULL,
    PRIMARY KEY (user_id, message_id)
);
CREATE INDEX inbox_unread ON inbox (user_id, conversation_id) WHERE unread;

-- Attachment files by content key, for the members-only media check.
CREATE TABLE attachments (
    key             text NOT NULL,
    conversation_id bigint NOT NULL,
    content_type    text NOT NULL,
    PRIMARY KEY (key, conversation_id)
);
