-- Delivery receipts and group admins (API.md section 8).
--
-- delivered_to: the receivers a message reached (a socket of theirs got
-- it, or a list showed it), ascending; a reader is among them.
ALTER TABLE messages ADD COLUMN delivered_to bigint[] NOT NULL DEFAULT '{}';

-- A read receipt projected before this column existed implies delivery.
UPDATE messages SET delivered_to = read_by WHERE cardinality(read_by) > 0;

-- admin: the member may rename the group, add, remove and promote members.
ALTER TABLE members ADD COLUMN admin boolean NOT NULL DEFAULT false;

-- A room's creator is its first admin while the membership they were
-- created with lasts: its row joined at the room's creation. (A rebuild
-- from the log gives the same.)
UPDATE members m SET admin = true FROM conversations c
 WHERE c.id = m.conversation_id AND m.user_id = c.created_by AND m.joined_at = c.created_at;
