-- Presence (API.md section 8): who is online is ephemeral and never in the
-- log. Each server process heartbeats its row; presence_sockets says which
-- live process has connections of which user (a row while it has one or
-- more); presence_seen keeps when each user's last connection anywhere
-- closed. A process that stops heartbeating is forgotten by the others
-- (its rows go), so a crashed process's users do not stay online.
CREATE TABLE presence_processes (
    process      uuid PRIMARY KEY,
    heartbeat_at timestamptz NOT NULL
);

CREATE TABLE presence_sockets (
    user_id bigint NOT NULL,
    process uuid NOT NULL REFERENCES presence_processes ON DELETE CASCADE,
    PRIMARY KEY (user_id, process)
);
CREATE INDEX presence_sockets_process ON presence_sockets (process);

CREATE TABLE presence_seen (
    user_id   bigint PRIMARY KEY,
    last_seen timestamptz NOT NULL
);
