-- The inbox's key becomes its position index. Every inbox row carries its
-- message's log position (0003), which never changes, so
-- (user_id, commit_pos, prepare_pos, message_id) is as unique as
-- (user_id, message_id) and also pages a user's messages in log order: one
-- index where there were two, so each inbox row (a row per participant of
-- every message) costs one index entry less to write and a rebuild one
-- index build less. Look-ups by message id go through the message's row
-- for its position.
ALTER TABLE inbox DROP CONSTRAINT inbox_pkey;
DROP INDEX inbox_position;
ALTER TABLE inbox ADD CONSTRAINT inbox_pkey PRIMARY KEY (user_id, commit_pos, prepare_pos, message_id);
