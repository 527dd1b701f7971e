-- Password hashes leave the read model for the write side's credentials
-- table (core 0009): those of existing users move there first, so they can
-- still log in whatever the event store (the projection moves those of
-- version 1 events of an old log on a rebuild).
INSERT INTO public.credentials (user_id, password_hash)
SELECT id, password_hash FROM users
ON CONFLICT (user_id) DO NOTHING;

ALTER TABLE users DROP COLUMN password_hash;
