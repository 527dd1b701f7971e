-- Login attempts, counted before the password is checked, one row per
-- subject (a username, an address, or the pair) and fixed window: an
-- upsert on the row is atomic, so concurrent guesses see each other.
-- next_at is a slowed username's next free attempt.
CREATE TABLE login_attempts (
    subject     text PRIMARY KEY,
    count       integer NOT NULL,
    window_ends timestamptz NOT NULL,
    next_at     timestamptz NOT NULL DEFAULT '-infinity'
);
CREATE INDEX login_attempts_window ON login_attempts (window_ends);

-- The failure log it replaces was only ever read within its window.
DROP TABLE login_failures;
