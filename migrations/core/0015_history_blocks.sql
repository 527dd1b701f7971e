-- The index that time travel (?as_of=) reads the log through (package
-- history). A stream's events are cut into blocks of a fixed number of
-- revisions; each complete block has a row: where its last event lies in
-- the log and when it was recorded, and, for a room's conversation stream,
-- the room's state after it (members, admins, who named it: never the
-- names themselves, which stay in the log where forgetting can reach them).
-- A reader finds the block a moment falls in with one query and reads at
-- most one block of the log to reach the moment exactly.
--
-- Derived from the log by the readers that need it, a block at a time,
-- and only ever appended: a block of an append-only log never changes. It
-- is a cache, like the snapshots: losing rows costs a longer read, and a
-- row whose last event id is not the log's (another log behind this
-- database) is dropped and read again.
CREATE TABLE history_blocks (
    stream_id     text NOT NULL,
    block         bigint NOT NULL,
    last_event_id uuid NOT NULL,
    last_commit   bigint NOT NULL,
    last_prepare  bigint NOT NULL,
    last_at       timestamptz NOT NULL,
    -- The room's state after the block, when it differs from the state
    -- after the block before (NULL: the same).
    state         jsonb,
    PRIMARY KEY (stream_id, block)
);
-- A moment is found by time or by log position.
CREATE INDEX history_blocks_time ON history_blocks (stream_id, last_at);
CREATE INDEX history_blocks_position ON history_blocks (stream_id, last_commit, last_prepare);
