-- Unread counts and a user's messages without a row per participant.
--
-- The inbox held a row per message and participant (5.3 rows per event of
-- a typical log): the unread counts of list-chatrooms and the messages of
-- list-messages. Both now come from counters and the messages themselves.
--
-- A message is unread for each of its receivers (the room's members other
-- than its sender when it was sent) until they read it. Per room and user:
--
--   unread = conversations.message_count - members.not_received
--            - past_members.read_count
--
-- conversations.message_count: the messages sent into the room.
-- members.not_received: of those, the ones the member did not receive:
--   their own, and those sent while they were not a member.
-- past_members.read_count: the room's messages the user has read.
-- past_members.received_count: for a user who is not a member now, the
--   room's messages they received; 0 while they are one (a return moves
--   it into not_received).
--
-- A send adds one to the room's count and one to its sender's
-- not_received; a read adds to read_count; a leave and a return move the
-- received messages between past_members and members. count_unread sets
-- every counter from the messages (a rebuild calls it once the log is
-- loaded).
ALTER TABLE conversations ADD COLUMN message_count bigint NOT NULL DEFAULT 0;
ALTER TABLE members ADD COLUMN not_received bigint NOT NULL DEFAULT 0;
-- joined_*: the log position of the user's first joining of the room;
-- left_*: of their last leaving, while they are away. They bound the walk
-- of list-messages through the room. Rows of rooms joined before this
-- migration have none (the walk is then unbounded) until a rebuild.
ALTER TABLE past_members
    ADD COLUMN received_count bigint NOT NULL DEFAULT 0,
    ADD COLUMN read_count     bigint NOT NULL DEFAULT 0,
    ADD COLUMN joined_commit  bigint,
    ADD COLUMN joined_prepare bigint,
    ADD COLUMN left_commit    bigint,
    ADD COLUMN left_prepare   bigint;

-- A room's messages in log order: list-messages walks each of the user's
-- rooms from a position back.
CREATE INDEX messages_position ON messages (conversation_id, commit_pos, prepare_pos);

-- count_unread sets every counter above from the messages and memberships
-- of the schema on the search path. (PL/pgSQL, so that the counting can
-- be a CREATE TABLE AS, which PostgreSQL may run in parallel; an UPDATE
-- never is.)
CREATE FUNCTION count_unread() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
UPDATE conversations c SET message_count = coalesce(n.n, 0)
  FROM conversations c2 LEFT JOIN (SELECT conversation_id, count(*) AS n FROM messages GROUP BY conversation_id) n
    ON n.conversation_id = c2.id
 WHERE c.id = c2.id AND c.message_count IS DISTINCT FROM coalesce(n.n, 0);

-- Per room and user, the messages received and read: each receiver once
-- (at their first place in receivers), not the sender.
CREATE TEMP TABLE unread_per ON COMMIT DROP AS
    SELECT m.conversation_id, r.u AS user_id, count(*) AS received,
           count(*) FILTER (WHERE r.u = ANY(m.read_by)) AS read
      FROM messages m, unnest(m.receivers) WITH ORDINALITY AS r(u, k)
     WHERE r.u <> m.sender_id AND array_position(m.receivers, r.u) = r.k
     GROUP BY m.conversation_id, r.u;

WITH counts AS (
    SELECT pm.user_id, pm.conversation_id, coalesce(per.received, 0) AS received, coalesce(per.read, 0) AS read,
           me.user_id IS NOT NULL AS member
      FROM past_members pm
      LEFT JOIN unread_per per ON per.conversation_id = pm.conversation_id AND per.user_id = pm.user_id
      LEFT JOIN members me ON me.conversation_id = pm.conversation_id AND me.user_id = pm.user_id),
  members_set AS (
    UPDATE members me SET not_received = c.message_count - n.received
      FROM counts n JOIN conversations c ON c.id = n.conversation_id
     WHERE n.member AND me.conversation_id = n.conversation_id AND me.user_id = n.user_id)
UPDATE past_members pm
   SET received_count = CASE WHEN n.member THEN 0 ELSE n.received END, read_count = n.read
  FROM counts n
 WHERE pm.user_id = n.user_id AND pm.conversation_id = n.conversation_id;

DROP TABLE unread_per;
END
$$;

-- Rooms left before past_members existed (readmodel 0012) are known only
-- by their inbox rows: keep them, so that list-messages still finds those
-- messages and their counts are kept.
INSERT INTO past_members (user_id, conversation_id)
SELECT DISTINCT user_id, conversation_id FROM inbox
ON CONFLICT DO NOTHING;

SELECT count_unread();

DROP TABLE inbox;
