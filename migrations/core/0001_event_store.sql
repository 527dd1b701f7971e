-- The event log. One row per event, in one global order.
--
-- tx_id is the id of the appending transaction. Readers of the whole log only
-- read rows whose transaction is older than every transaction still running
-- (pg_snapshot_xmin), ordered by (tx_id, position). A bare identity column
-- is not enough: transactions commit out of order, so a reader that saw
-- position 12 could later find position 11 committed behind it.
CREATE TABLE events (
    event_id   uuid PRIMARY KEY,
    position   bigint GENERATED ALWAYS AS IDENTITY,
    tx_id      bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    stream_id  text NOT NULL,
    revision   bigint NOT NULL,
    type       text NOT NULL,
    data       jsonb NOT NULL,
    metadata   jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (stream_id, revision)
);

-- The log order, and the cursor of whole-log readers.
CREATE UNIQUE INDEX events_log_order ON events (tx_id, position);

-- The last revision of each stream. Its row lock serialises appends to one
-- stream; the expected-revision check is a conditional update of it. The
-- append statement itself lives in eventstore/postgres (appendBatchSQL).
CREATE TABLE streams (
    stream_id text PRIMARY KEY,
    revision  bigint NOT NULL
);

-- append_retried returns the original result of an append whose event ids
-- are already stored: found = false when they are not all in p_stream.
CREATE FUNCTION append_retried(p_stream text, p_ids uuid[],
    OUT found boolean, OUT last_revision bigint, OUT last_tx bigint, OUT last_position bigint)
LANGUAGE sql STABLE AS $$
    SELECT count(*) = cardinality(p_ids) AND bool_and(e.stream_id = p_stream),
           max(e.revision), max(e.tx_id), max(e.position)
      FROM events e WHERE e.event_id = ANY (p_ids)
$$;
