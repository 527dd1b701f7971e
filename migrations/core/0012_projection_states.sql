-- Operators' control of each projection, shared by every process: a paused
-- projection applies nothing (every process's projector checks this row in
-- each batch's transaction) and keeps its checkpoint, so it catches up on
-- resume. rebuilding_since is set while `chatctl projections rebuild` runs;
-- caught_up_at is when the projection first reached the head of the log
-- (NULL: it is still backfilling). It lives here, not in a read-model
-- schema, because a rebuild swaps those.
CREATE TABLE projection_states (
    projection       text PRIMARY KEY,
    paused           boolean NOT NULL DEFAULT false,
    changed_at       timestamptz NOT NULL DEFAULT now(),
    rebuilding_since timestamptz,
    caught_up_at     timestamptz
);

-- projection_unpaused raises EV003 when the projection is paused, so that
-- the batch calling it rolls back whole. It holds the row FOR SHARE until
-- the batch ends: a pause (an UPDATE of the row) waits for the batch in
-- flight, so once `chatctl projections pause` returns no batch commits.
CREATE FUNCTION projection_unpaused(p_projection text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_paused boolean;
BEGIN
    SELECT s.paused INTO v_paused FROM public.projection_states s
     WHERE s.projection = p_projection FOR SHARE;
    IF v_paused THEN
        RAISE EXCEPTION 'projection % is paused', p_projection USING ERRCODE = 'EV003';
    END IF;
END
$$;
