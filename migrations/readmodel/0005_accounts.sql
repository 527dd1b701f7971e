-- Password hashes leave the read model for the write side's credentials
-- table (core 0009): those of existing users move there first, so they can
-- still log in whatever the event store (the projection moves those of
-- version 1 events of an old log on a rebuild).
INSERT INTO public.credentials (user_id, password_hash)
SELECT id, password_hash FROM users
ON CONFLICT (user_id) DO NOTHING;

ALTER TABLE users DROP COLUMN password_hash;

-- Usernames are unique in their key: NFKC, Unicode case folding, NFKC
-- (domain.NormalizeUsername), no longer in lower case. The key is computed
-- in Go, not SQL (PostgreSQL's lower() is not case folding and follows the
-- collation), so rows keyed the old way keep key_version 0 until chatd
-- re-keys them at start (projections.RekeyUsernames); the projection writes
-- version 1. The constraint goes: uniqueness is the reservation streams'
-- job, and a log from before the change may hold two names that now share
-- a key (login prefers the exact name, then the oldest user).
ALTER TABLE users RENAME COLUMN username_lower TO username_key;
ALTER TABLE users DROP CONSTRAINT users_username_lower_key;
ALTER TABLE users ADD COLUMN key_version smallint NOT NULL DEFAULT 0;
CREATE INDEX users_username_key ON users (username_key);
CREATE INDEX users_key_version ON users (id) WHERE key_version < 1;
