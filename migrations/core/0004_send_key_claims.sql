-- An idempotency key is claimed before its message is appended and
-- completed after: a claimed row has no message yet.
ALTER TABLE send_keys
    ALTER COLUMN message_id DROP NOT NULL,
    ALTER COLUMN commit_pos DROP NOT NULL,
    ALTER COLUMN prepare_pos DROP NOT NULL;
