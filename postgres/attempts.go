package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/evchat/evchat/auth"
)

// Attempts keeps login attempt counters in public.login_attempts.
type Attempts struct{ db DB }

var _ auth.AttemptStore = (*Attempts)(nil)

// NewAttempts returns Attempts on db.
func NewAttempts(db DB) *Attempts { return &Attempts{db: db} }

// addAttempt counts in the subject's window, or starts a new one when it
// has ended (and then a negative delta has nothing to give back). The
// upsert holds the row's lock, so concurrent adds serialise and each sees
// the others' counts. Times are the database's clock, which every process
// shares.
const addAttempt = `INSERT INTO public.login_attempts AS a (subject, count, window_ends)
	VALUES ($1, greatest($2::int, 0), now() + $3::interval)
	ON CONFLICT (subject) DO UPDATE SET
	  count = CASE WHEN a.window_ends > now() THEN greatest(a.count + $2, 0) ELSE greatest($2, 0) END,
	  window_ends = CASE WHEN a.window_ends > now() THEN a.window_ends ELSE now() + $3::interval END,
	  next_at = CASE WHEN a.window_ends > now() THEN a.next_at ELSE '-infinity' END
	RETURNING count, window_ends`

// Add implements auth.AttemptStore.
func (a *Attempts) Add(ctx context.Context, subject string, delta int, window time.Duration) (int, time.Time, error) {
	var n int
	var ends time.Time
	if err := a.db.QueryRow(ctx, addAttempt, subject, delta, window.String()).Scan(&n, &ends); err != nil {
		return 0, time.Time{}, fmt.Errorf("count login attempt: %w", err)
	}
	return n, ends, nil
}

// claimAttempt takes the slot when it is free; either way it returns the
// next free time, so one statement answers both.
const claimAttempt = `WITH claimed AS (
		UPDATE public.login_attempts SET next_at = now() + $2::interval
		WHERE subject = $1 AND next_at <= now() RETURNING next_at)
	SELECT true, next_at FROM claimed
	UNION ALL
	SELECT false, next_at FROM public.login_attempts WHERE subject = $1 AND NOT EXISTS (SELECT 1 FROM claimed)`

// Claim implements auth.AttemptStore.
func (a *Attempts) Claim(ctx context.Context, subject string, delay time.Duration) (bool, time.Time, error) {
	rows, err := a.db.Query(ctx, claimAttempt, subject, delay.String())
	if err != nil {
		return false, time.Time{}, fmt.Errorf("claim login attempt: %w", err)
	}
	defer rows.Close()
	var ok bool
	var next time.Time
	for rows.Next() {
		if err := rows.Scan(&ok, &next); err != nil {
			return false, time.Time{}, fmt.Errorf("claim login attempt: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return false, time.Time{}, fmt.Errorf("claim login attempt: %w", err)
	}
	return ok, next, nil
}

// resetAttempts also drops every row whose window has ended, so the table
// holds only live windows.
const resetAttempts = `DELETE FROM public.login_attempts WHERE subject = ANY($1) OR window_ends < now() - interval '1 minute'`

// Reset implements auth.AttemptStore.
func (a *Attempts) Reset(ctx context.Context, subjects ...string) error {
	if _, err := a.db.Exec(ctx, resetAttempts, subjects); err != nil {
		return fmt.Errorf("reset login attempts: %w", err)
	}
	return nil
}
