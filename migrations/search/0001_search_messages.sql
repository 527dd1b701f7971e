-- The full-text search index: a projection of its own, in a schema of its
-- own (live: "search"), with its own checkpoint. It is built from the log
-- beside the chat read model and rebuilt on its own (chatctl projections
-- rebuild search), so adding it to an installation backfills it while the
-- chat projection carries on, and rebuilding either leaves the other alone.

CREATE TABLE checkpoints (
    projection  text PRIMARY KEY,
    commit_pos  bigint NOT NULL,
    prepare_pos bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per message ever sent. text is the current text (an edit
-- replaces it) and NULL once the message is deleted: the row stays as a
-- tombstone, so a replayed send cannot bring it back and a page cursor
-- naming it still has a place. changed_* is the position of the last event
-- applied to the row; an older one is never applied over it.
--
-- The 'simple' configuration: chat is written in every language and mixes
-- them, names and slang; a language configuration would stem and drop stop
-- words by the rules of one language and miss words of the others. So
-- words match whole, case-folded (search "run" does not find "running").
CREATE TABLE messages (
    message_id      bigint PRIMARY KEY,
    conversation_id bigint NOT NULL,
    sender_id       bigint NOT NULL,
    text            text,
    tsv             tsvector GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, coalesce(text, ''))) STORED,
    commit_pos      bigint NOT NULL,
    prepare_pos     bigint NOT NULL,
    changed_commit  bigint NOT NULL,
    changed_prepare bigint NOT NULL
);
CREATE INDEX messages_tsv ON messages USING gin (tsv);
-- Results are shown newest first, in log order of their sends.
CREATE INDEX messages_position ON messages (commit_pos, prepare_pos);
