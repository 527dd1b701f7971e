-- Where each event of a block lies in the log and when it was recorded,
-- in revision order (NULL for blocks stored before these columns). With
-- them one look-up of the index says how many events of the block after
-- a reader's starting block a moment includes, so the reader reads
-- exactly up to the moment instead of a whole block.
ALTER TABLE history_blocks
    ADD COLUMN event_commits  bigint[],
    ADD COLUMN event_prepares bigint[],
    ADD COLUMN event_ats      timestamptz[];
