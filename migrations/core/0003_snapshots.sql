-- Aggregate snapshots of the write side: a stream's state after the event
-- at revision (whose id is event_id), so that loading a long stream with
-- nothing cached reads only the events after it. Derived from the log and
-- never rebuilt: a snapshot that does not match the log is ignored.
CREATE TABLE snapshots (
    stream_id text PRIMARY KEY,
    version   int NOT NULL,
    revision  bigint NOT NULL,
    event_id  uuid NOT NULL,
    state     jsonb NOT NULL,
    taken_at  timestamptz NOT NULL DEFAULT now()
);
