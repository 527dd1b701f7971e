package postgres

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Presence keeps which users have connections on which live server process
// (migrations/core/0011_presence.sql), for realtime's presence. Each
// process has an id and heartbeats; a process whose heartbeat is older than
// the TTL counts as gone. Changes of one user are serialised by an advisory
// lock on the user, so that two processes seeing the user's first (or
// last) connection at once agree on which of them it was.
type Presence struct {
	db      TxDB
	process uuid.UUID
	ttl     time.Duration
}

// TxDB is a DB that begins transactions (a pool).
type TxDB interface {
	DB
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Seen is when a user went offline.
type Seen struct {
	User int64
	At   time.Time
}

// NewPresence returns the presence of process, which heartbeats more often
// than ttl.
func NewPresence(db TxDB, process uuid.UUID, ttl time.Duration) *Presence {
	return &Presence{db: db, process: process, ttl: ttl}
}

// presenceLock is the first key of the per-user advisory locks ("pres").
const presenceLock = 0x70726573

// lockUser serialises the presence changes of user (its id folded into 32
// bits: two users sharing a lock only wait on each other).
const lockUser = `SELECT pg_advisory_xact_lock($1::int, ($2::bigint % 2147483647)::int)`

// beat records this process alive now.
const beat = `INSERT INTO presence_processes (process, heartbeat_at) VALUES ($1, now())
	ON CONFLICT (process) DO UPDATE SET heartbeat_at = now()`

// onlineElsewhere: a live process other than $2 has a connection of $1.
const onlineElsewhere = `SELECT EXISTS (SELECT 1 FROM presence_sockets s JOIN presence_processes p ON p.process = s.process
	WHERE s.user_id = $1 AND s.process <> $2 AND p.heartbeat_at > now() - $3::interval)`

const seenAt = `INSERT INTO presence_seen (user_id, last_seen) VALUES ($1, $2)
	ON CONFLICT (user_id) DO UPDATE SET last_seen = greatest(presence_seen.last_seen, excluded.last_seen)`

func (p *Presence) ttlText() string { return fmt.Sprintf("%d milliseconds", p.ttl.Milliseconds()) }

// Connected notes a connection of user here; first is true when no live
// process (this one included) had one.
func (p *Presence) Connected(ctx context.Context, user int64) (first bool, err error) {
	err = pgx.BeginFunc(ctx, p.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockUser, presenceLock, user); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, beat, p.process); err != nil {
			return err
		}
		var elsewhere bool
		if err := tx.QueryRow(ctx, onlineElsewhere, user, p.process, p.ttlText()).Scan(&elsewhere); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO presence_sockets (user_id, process) VALUES ($1, $2) ON CONFLICT DO NOTHING`, user, p.process)
		if err != nil {
			return err
		}
		first = !elsewhere && tag.RowsAffected() == 1
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("presence connected: %w", err)
	}
	return first, nil
}

// Disconnected notes that this process has no connection of user; last is
// true when no live process has one, and at is then their last_seen.
func (p *Presence) Disconnected(ctx context.Context, user int64, at time.Time) (last bool, err error) {
	err = pgx.BeginFunc(ctx, p.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockUser, presenceLock, user); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM presence_sockets WHERE user_id = $1 AND process = $2`, user, p.process)
		if err != nil || tag.RowsAffected() == 0 {
			return err // not online here: nothing changes
		}
		var elsewhere bool
		if err := tx.QueryRow(ctx, onlineElsewhere, user, p.process, p.ttlText()).Scan(&elsewhere); err != nil {
			return err
		}
		if !elsewhere {
			last = true
			_, err = tx.Exec(ctx, seenAt, user, at)
		}
		return err
	})
	if err != nil {
		return false, fmt.Errorf("presence disconnected: %w", err)
	}
	return last, nil
}

// Heartbeat records this process alive, forgets processes silent for
// longer than the TTL, and returns their users who are online nowhere else,
// last seen at their process's last heartbeat.
func (p *Presence) Heartbeat(ctx context.Context) ([]Seen, error) {
	if _, err := p.db.Exec(ctx, beat, p.process); err != nil {
		return nil, fmt.Errorf("presence heartbeat: %w", err)
	}
	rows, err := p.db.Query(ctx, `SELECT process, heartbeat_at FROM presence_processes
		WHERE heartbeat_at <= now() - $1::interval AND process <> $2`, p.ttlText(), p.process)
	if err != nil {
		return nil, fmt.Errorf("presence heartbeat: %w", err)
	}
	type stale struct {
		process uuid.UUID
		at      time.Time
	}
	gone, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (stale, error) {
		var s stale
		return s, r.Scan(&s.process, &s.at)
	})
	if err != nil {
		return nil, fmt.Errorf("presence heartbeat: %w", err)
	}
	var out []Seen
	for _, g := range gone {
		seen, err := p.forget(ctx, g.process, g.at, true)
		if err != nil {
			return out, err
		}
		out = append(out, seen...)
	}
	return out, nil
}

// Gone forgets this process (it stops) and returns its users who are
// online nowhere else, last seen at.
func (p *Presence) Gone(ctx context.Context, at time.Time) ([]Seen, error) {
	return p.forget(ctx, p.process, at, false)
}

// forget removes process and its connections, user by user under their
// locks, and returns the users it leaves online nowhere. onlyStale removes
// it only while its heartbeat is still older than the TTL (it may have come
// back).
func (p *Presence) forget(ctx context.Context, process uuid.UUID, at time.Time, onlyStale bool) ([]Seen, error) {
	var out []Seen
	err := pgx.BeginFunc(ctx, p.db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT user_id FROM presence_sockets WHERE process = $1 ORDER BY user_id`, process)
		if err != nil {
			return err
		}
		users, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		slices.Sort(users)
		for _, u := range users {
			if _, err := tx.Exec(ctx, lockUser, presenceLock, u); err != nil {
				return err
			}
		}
		cond := ``
		if onlyStale {
			cond = ` AND heartbeat_at <= now() - $2::interval`
		}
		args := []any{process}
		if onlyStale {
			args = append(args, p.ttlText())
		}
		tag, err := tx.Exec(ctx, `DELETE FROM presence_processes WHERE process = $1`+cond, args...)
		if err != nil || tag.RowsAffected() == 0 {
			return err // forgotten by another process already, or back
		}
		for _, u := range users {
			var elsewhere bool
			if err := tx.QueryRow(ctx, onlineElsewhere, u, process, p.ttlText()).Scan(&elsewhere); err != nil {
				return err
			}
			if elsewhere {
				continue
			}
			if _, err := tx.Exec(ctx, seenAt, u, at); err != nil {
				return err
			}
			out = append(out, Seen{User: u, At: at})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("presence: forget process: %w", err)
	}
	return out, nil
}

// State returns whether user is online on a live process, and when they
// were last seen going offline (nil: never).
func (p *Presence) State(ctx context.Context, user int64) (online bool, lastSeen *time.Time, err error) {
	err = p.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM presence_sockets s JOIN presence_processes p ON p.process = s.process
			WHERE s.user_id = $1 AND p.heartbeat_at > now() - $2::interval),
		(SELECT last_seen FROM presence_seen WHERE user_id = $1)`, user, p.ttlText()).Scan(&online, &lastSeen)
	if err != nil {
		return false, nil, fmt.Errorf("presence: %w", err)
	}
	return online, lastSeen, nil
}
