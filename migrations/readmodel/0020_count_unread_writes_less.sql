-- count_unread (readmodel 0019) updated every member and past member, each
-- update a new row version and index entry: with 100,000 rooms that was
-- most of its time. It now writes only the rows whose counts change, and
-- finds each member's room in the same pass as its counts.
CREATE OR REPLACE FUNCTION count_unread() RETURNS void LANGUAGE plpgsql AS $$
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
ANALYZE unread_per;

UPDATE members me SET not_received = c.message_count - coalesce(per.received, 0)
  FROM members m2
  JOIN conversations c ON c.id = m2.conversation_id
  LEFT JOIN unread_per per ON per.conversation_id = m2.conversation_id AND per.user_id = m2.user_id
 WHERE me.conversation_id = m2.conversation_id AND me.user_id = m2.user_id
   AND me.not_received IS DISTINCT FROM c.message_count - coalesce(per.received, 0);

UPDATE past_members pm
   SET received_count = n.received, read_count = n.read
  FROM (SELECT p2.user_id, p2.conversation_id,
               CASE WHEN me.user_id IS NOT NULL THEN 0 ELSE coalesce(per.received, 0) END AS received,
               coalesce(per.read, 0) AS read
          FROM past_members p2
          LEFT JOIN unread_per per ON per.conversation_id = p2.conversation_id AND per.user_id = p2.user_id
          LEFT JOIN members me ON me.conversation_id = p2.conversation_id AND me.user_id = p2.user_id) n
 WHERE pm.user_id = n.user_id AND pm.conversation_id = n.conversation_id
   AND (pm.received_count, pm.read_count) IS DISTINCT FROM (n.received, n.read);

DROP TABLE unread_per;
END
$$;
