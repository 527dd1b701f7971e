-- Leadership leases: the one process that projects holds the lease row of
-- the projector and renews it before it expires. A lease is taken only once
-- it has expired by the database's clock, or once the session that last
-- renewed it (holder_pid) has ended, and every take raises the epoch, so a
-- deposed holder is told apart from the current one. The lease lives here,
-- not in the read-model schema, because a rebuild swaps that schema.
CREATE TABLE leases (
    name        text PRIMARY KEY,
    holder      uuid NOT NULL,
    holder_name text NOT NULL,
    holder_pid  int NOT NULL,
    epoch       bigint NOT NULL,
    acquired_at timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);

-- projector_checkpoint moves a projection's checkpoint from the position its
-- batch started from to the batch's last position, inside the batch's
-- transaction, and raises when it cannot, so that the whole batch rolls back:
--
--   EV001  the checkpoint is no longer where the batch started (another
--          projector applied later events, or a rebuild swapped the read
--          model in while the batch waited): the batch is stale.
--   EV002  the lease the batch was read under is no longer held (taken by
--          another process, or expired): its holder was deposed.
--
-- The checkpoint is found through the caller's search_path, so the one
-- function serves the live read model and any schema beside it. The lease is
-- read without a lock: the checkpoint row the update locks already orders
-- this batch before any batch of a later holder, which waits on that row and
-- then finds it moved.
CREATE FUNCTION projector_checkpoint(p_projection text,
    p_from_commit bigint, p_from_prepare bigint, p_to_commit bigint, p_to_prepare bigint,
    p_lease text, p_holder uuid, p_epoch bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_lease IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM public.leases l
         WHERE l.name = p_lease AND l.holder = p_holder AND l.epoch = p_epoch
           AND l.expires_at > clock_timestamp()) THEN
        RAISE EXCEPTION 'projector lease % (epoch %) is no longer held', p_lease, p_epoch
            USING ERRCODE = 'EV002';
    END IF;
    IF p_from_commit = 0 AND p_from_prepare = 0 THEN
        -- The first batch: no checkpoint yet, or one still at the start.
        INSERT INTO checkpoints AS c (projection, commit_pos, prepare_pos, updated_at)
        VALUES (p_projection, p_to_commit, p_to_prepare, now())
        ON CONFLICT (projection) DO UPDATE
           SET commit_pos = excluded.commit_pos, prepare_pos = excluded.prepare_pos, updated_at = now()
         WHERE c.commit_pos = 0 AND c.prepare_pos = 0;
    ELSE
        UPDATE checkpoints c
           SET commit_pos = p_to_commit, prepare_pos = p_to_prepare, updated_at = now()
         WHERE c.projection = p_projection AND c.commit_pos = p_from_commit AND c.prepare_pos = p_from_prepare;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'checkpoint of % is no longer at %/%', p_projection, p_from_commit, p_from_prepare
            USING ERRCODE = 'EV001';
    END IF;
END
$$;
