-- Every room each user has ever been a member of (a leave keeps the row):
-- the rooms a past listing of a user's chatrooms (?as_of=) looks at. Rooms
-- left before this table existed appear once the read model is rebuilt.
CREATE TABLE past_members (
    user_id         bigint NOT NULL,
    conversation_id bigint NOT NULL,
    PRIMARY KEY (user_id, conversation_id)
);
INSERT INTO past_members (user_id, conversation_id) SELECT user_id, conversation_id FROM members ON CONFLICT DO NOTHING;
