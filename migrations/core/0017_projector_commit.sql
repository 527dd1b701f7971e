-- projector_commit ends a projector's batch in one call: it refuses the
-- batch when its projection is paused (EV003), then moves the checkpoint
-- as projector_checkpoint does (EV001, EV002), then sends the batch's
-- notification when a channel is given.
--
-- The pause check holds a shared transaction-level advisory lock on the
-- projection until the batch ends, and a pause takes the same lock
-- exclusively in the transaction that sets paused (projections.Pause): so
-- a pause waits for the batch in flight, and a batch that reaches this
-- point after a pause committed sees it (each statement of the function
-- reads a new snapshot) and rolls back. The lock lives in memory: unlike
-- the row lock of projection_unpaused, it writes nothing. A pause also
-- updates the row, which waits for the batches of processes that still
-- call projection_unpaused.
CREATE FUNCTION projector_commit(p_projection text,
    p_from_commit bigint, p_from_prepare bigint, p_to_commit bigint, p_to_prepare bigint,
    p_lease text, p_holder uuid, p_epoch bigint, p_channel text, p_payload text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_paused boolean;
BEGIN
    -- 0x70726f6a: "proj", the first key of the projections' locks.
    PERFORM pg_advisory_xact_lock_shared(1886547818, hashtext(p_projection));
    SELECT s.paused INTO v_paused FROM public.projection_states s WHERE s.projection = p_projection;
    IF v_paused THEN
        RAISE EXCEPTION 'projection % is paused', p_projection USING ERRCODE = 'EV003';
    END IF;
    PERFORM public.projector_checkpoint(p_projection, p_from_commit, p_from_prepare, p_to_commit, p_to_prepare,
        p_lease, p_holder, p_epoch);
    IF p_channel IS NOT NULL THEN
        PERFORM pg_notify(p_channel, p_payload);
    END IF;
END
$$;
