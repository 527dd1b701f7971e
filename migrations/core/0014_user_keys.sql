-- The keys that seal each user's personal data in the event log (package
-- shred). The log is append-only and cannot forget; deleting a user's key
-- here makes their personal data in it unreadable (crypto-shredding).
--
-- A key is created and committed before the first append that uses it, so
-- a crash between the two leaves a key without events (harmless), never an
-- event without its key. Forgetting deletes the key bytes and sets
-- forgotten_at: the row stays as the authoritative marker that the user is
-- forgotten (their legacy plaintext events read as placeholders too, and
-- no new key is ever made for them).
--
-- Write-side state that no rebuild can recreate: back it up with the
-- database. Backups keep the keys of users forgotten after them: expire
-- backups within the period the law allows for forgetting.
CREATE TABLE user_keys (
    user_id      bigint PRIMARY KEY,
    key          bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    forgotten_at timestamptz,
    CONSTRAINT user_keys_key_or_forgotten CHECK ((key IS NULL) = (forgotten_at IS NOT NULL))
);

-- The server's secret that names username reservation streams by a keyed
-- hash (uname-<HMAC-SHA256(secret, name)>) instead of the name itself
-- (username-<name>), so that the log's stream names do not name forgotten
-- users. One row, made once. Losing it makes the reservations of existing
-- names unfindable (their names could be registered again): back it up
-- with the keys.
CREATE TABLE stream_secret (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    secret     bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
