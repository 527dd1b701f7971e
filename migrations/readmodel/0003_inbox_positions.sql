-- Each inbox row carries its message's log position, so that a user's
-- messages across rooms page in log order: message ids rise in each room's
-- log order but not across rooms (they are taken in blocks per process, and
-- rooms commit in any order), and a page "after" an id would miss a message
-- of another room with a lower id that was projected later.
ALTER TABLE inbox ADD COLUMN commit_pos bigint, ADD COLUMN prepare_pos bigint;

UPDATE inbox i SET commit_pos = m.commit_pos, prepare_pos = m.prepare_pos
  FROM messages m WHERE m.id = i.message_id;

ALTER TABLE inbox ALTER COLUMN commit_pos SET NOT NULL, ALTER COLUMN prepare_pos SET NOT NULL;

CREATE INDEX inbox_position ON inbox (user_id, commit_pos, prepare_pos);
