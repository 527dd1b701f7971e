-- Password hashes, kept out of the event log: an immutable log can never
-- erase them. One row per user id, written by registration after its
-- username is reserved and before its user is appended; login needs both
-- the user (read model) and this row. A row whose user was never appended
-- (the registration died in between) belongs to an id that no user will
-- ever have, so it can never be used to log in. Write-side state: rebuilds
-- never touch it; back it up with the database.
CREATE TABLE credentials (
    user_id       bigint PRIMARY KEY,
    password_hash text NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
