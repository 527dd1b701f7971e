-- A message's life after it is sent (API.md section 8): edits keep every
-- version, a delete leaves a tombstone, reactions are one row per message,
-- emoji and user, and a reply names the message it answers.
ALTER TABLE messages
    ADD COLUMN reply_to      bigint,
    ADD COLUMN edited_at     timestamptz,
    ADD COLUMN deleted_at    timestamptz,
    -- The text as sent, kept from the first edit on (NULL until then, and
    -- again once deleted), for the history.
    ADD COLUMN original_text text;

-- Every edit, in log order: the history of a message is its original text
-- and these. A deleted message's versions lose their text.
CREATE TABLE message_edits (
    message_id  bigint NOT NULL,
    commit_pos  bigint NOT NULL,
    prepare_pos bigint NOT NULL,
    editor_id   bigint NOT NULL,
    text        text,
    edited_at   timestamptz NOT NULL,
    PRIMARY KEY (message_id, commit_pos, prepare_pos)
);

CREATE TABLE reactions (
    message_id bigint NOT NULL,
    emoji      text NOT NULL,
    user_id    bigint NOT NULL,
    PRIMARY KEY (message_id, emoji, user_id)
);
