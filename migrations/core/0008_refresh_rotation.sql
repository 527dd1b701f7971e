-- When a session's refresh token last rotated: a rotated-away refresh token
-- used again later than a short grace after that revokes the session (a
-- thief, or its victim, is holding a copy).
ALTER TABLE auth_sessions ADD COLUMN rotated_at timestamptz;
