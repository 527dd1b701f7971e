-- The event log. One row per event, in one global order.
--
-- tx_id is the id of the appending transaction. Readers of the whole log only
-- read rows whose transaction is older than every transaction still running
-- (pg_snapshot_xmin), ordered by (tx_id, position). A bare identity column
-- is not enough: transactions commit out of order, so a reader that saw
-- position 12 could later find position 11 committed behind it.
CREATE TABLE events (
    position   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tx_id      bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    stream_id  text NOT NULL,
    revision   bigint NOT NULL,
    event_id   uuid NOT NULL UNIQUE,
    type       text NOT NULL,
    data       jsonb NOT NULL,
    metadata   jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (stream_id, revision)
);

CREATE INDEX events_log_order ON events (tx_id, position);

-- The last revision of each stream. Its row lock serialises appends to one
-- stream; the expected-revision check is a conditional update of it.
CREATE TABLE streams (
    stream_id text PRIMARY KEY,
    revision  bigint NOT NULL
);

-- append_events appends a batch to one stream in a single round trip.
-- p_kind: 0 any, 1 no stream, 2 stream exists, 3 exact revision p_expected.
-- Returns ok = false with the actual revision (-1: no stream) on a mismatch.
-- A retry whose event ids are all in the stream already returns the
-- original result with retried = true and appends nothing.
CREATE FUNCTION append_events(
    p_stream text, p_kind int, p_expected bigint,
    p_ids uuid[], p_types text[], p_data jsonb[], p_meta jsonb[],
    OUT ok boolean, OUT retried boolean, OUT actual bigint,
    OUT last_revision bigint, OUT last_tx bigint, OUT last_position bigint)
LANGUAGE plpgsql AS $$
DECLARE
    n int := cardinality(p_ids);
    found_count int;
    found_stream_ok boolean;
BEGIN
    ok := true; retried := false; actual := -1;

    SELECT count(*), bool_and(e.stream_id = p_stream)
      INTO found_count, found_stream_ok
      FROM events e WHERE e.event_id = ANY (p_ids);
    IF found_count > 0 THEN
        IF found_count <> n OR NOT found_stream_ok THEN
            RAISE EXCEPTION 'event ids already used by another append' USING ERRCODE = 'P0002';
        END IF;
        SELECT e.revision, e.tx_id, e.position
          INTO last_revision, last_tx, last_position
          FROM events e WHERE e.event_id = ANY (p_ids)
         ORDER BY e.revision DESC LIMIT 1;
        retried := true;
        RETURN;
    END IF;

    IF p_kind = 1 THEN
        INSERT INTO streams AS s VALUES (p_stream, n - 1)
        ON CONFLICT (stream_id) DO NOTHING
        RETURNING s.revision INTO last_revision;
    ELSIF p_kind = 2 THEN
        UPDATE streams s SET revision = s.revision + n
         WHERE s.stream_id = p_stream
        RETURNING s.revision INTO last_revision;
    ELSIF p_kind = 3 THEN
        UPDATE streams s SET revision = s.revision + n
         WHERE s.stream_id = p_stream AND s.revision = p_expected
        RETURNING s.revision INTO last_revision;
    ELSE
        INSERT INTO streams AS s VALUES (p_stream, n - 1)
        ON CONFLICT (stream_id) DO UPDATE SET revision = s.revision + n
        RETURNING s.revision INTO last_revision;
    END IF;

    IF last_revision IS NULL THEN
        ok := false;
        SELECT coalesce((SELECT s.revision FROM streams s WHERE s.stream_id = p_stream), -1)
          INTO actual;
        RETURN;
    END IF;

    INSERT INTO events (stream_id, revision, event_id, type, data, metadata)
    SELECT p_stream, last_revision - n + u.ord, u.id, u.typ, u.dat, u.met
      FROM unnest(p_ids, p_types, p_data, p_meta) WITH ORDINALITY AS u(id, typ, dat, met, ord);

    SELECT e.tx_id, e.position INTO last_tx, last_position
      FROM events e WHERE e.stream_id = p_stream AND e.revision = last_revision;
END;
$$;
