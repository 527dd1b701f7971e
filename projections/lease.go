package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ProjectorLease is the name of the lease of the process that projects.
const ProjectorLease = "projector"

// ErrLeaseLost is returned (wrapped) when a lease was taken over, expired
// or could not be renewed in time.
var ErrLeaseLost = errors.New("lease lost")

// Lease is one term of leadership: the holder's id and the epoch its take
// of the lease was given. Batches applied under it are fenced on both.
type Lease struct {
	Name   string
	Holder uuid.UUID
	Epoch  int64
}

// LeaderOptions tune Leader.
type LeaderOptions struct {
	Logger *slog.Logger
	// Name is the lease's name; default ProjectorLease.
	Name string
	// TTL is how long a lease lasts unless renewed; default 3s. The holder
	// renews it every TTL/3 and stops at once when a renewal fails or does
	// not land in time, so a holder that is cut off from the database is
	// replaced within about TTL + Retry.
	TTL time.Duration
	// Retry is how often a process that does not hold the lease tries to
	// take it; default 1s.
	Retry time.Duration
	// HolderName is recorded with the lease for operators; default the host
	// name and process id.
	HolderName string
}

func (o LeaderOptions) withDefaults() LeaderOptions {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Name == "" {
		o.Name = ProjectorLease
	}
	if o.TTL <= 0 {
		o.TTL = 3 * time.Second
	}
	if o.Retry <= 0 {
		o.Retry = time.Second
	}
	if o.HolderName == "" {
		host, _ := os.Hostname()
		o.HolderName = host + " pid " + strconv.Itoa(os.Getpid())
	}
	return o
}

// Leader runs fn while this process holds the lease o.Name of the
// database, so that exactly one process projects at a time. The lease is a
// row renewed every TTL/3 on a connection of its own; when a renewal fails,
// or does not land before the lease would expire, fn's context is cancelled
// at once. Another process takes the lease when it has expired by the
// database's clock, or at once when the session that renewed it has ended (a
// process that died), or when its holder stopped and released it. A holder
// that was replaced without noticing cannot commit: fn is given the Lease,
// and Projector.RunLeased checks it in every batch's transaction.
//
// When fn returns, Leader releases the lease and competes for it again.
// Leader returns ctx.Err() when ctx ends.
func Leader(ctx context.Context, pool *pgxpool.Pool, o LeaderOptions, fn func(context.Context, Lease) error) error {
	o = o.withDefaults()
	cfg := pool.Config().ConnConfig.Copy()
	// The server gives up on a lease statement before the holder's lease
	// could run out while it waits.
	timeout := strconv.FormatInt((o.TTL / 3).Milliseconds(), 10)
	cfg.RuntimeParams["statement_timeout"] = timeout
	cfg.RuntimeParams["lock_timeout"] = timeout
	lc := &leaseConn{cfg: cfg}
	defer lc.close()
	holder := uuid.New()
	for {
		err := leadOnce(ctx, lc, o, holder, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case errors.Is(err, ErrLeaseLost):
			o.Logger.Warn("projector leadership lost, competing again", "lease", o.Name, "err", err, "retry_in", o.Retry)
		case err != nil:
			o.Logger.Warn("projector lease cannot be taken now, trying again", "lease", o.Name, "err", err, "retry_in", o.Retry)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(o.Retry):
		}
	}
}

// leadOnce takes the lease (retrying every o.Retry), runs fn under it and
// releases it.
func leadOnce(ctx context.Context, lc *leaseConn, o LeaderOptions, holder uuid.UUID, fn func(context.Context, Lease) error) error {
	var lease Lease
	var deadline time.Time
	for {
		start := time.Now()
		epoch, ok, err := lc.acquire(ctx, o, holder)
		if err != nil {
			return fmt.Errorf("take lease %s: %w", o.Name, err)
		}
		if ok {
			lease = Lease{Name: o.Name, Holder: holder, Epoch: epoch}
			// The database set the expiry at least TTL after this moment.
			deadline = start.Add(o.TTL)
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(o.Retry):
		}
	}
	o.Logger.Info("projector leadership acquired", "lease", o.Name, "epoch", lease.Epoch)
	lctx, cancel := context.WithCancelCause(ctx)
	kept := make(chan struct{})
	go func() {
		defer close(kept)
		keep(lctx, cancel, lc, o, lease, deadline)
	}()
	err := fn(lctx, lease)
	cancel(nil)
	<-kept // the keeper is done with the connection
	lc.release(ctx, o, lease)
	if cause := context.Cause(lctx); errors.Is(cause, ErrLeaseLost) {
		return cause
	}
	return err
}

// keep renews lease every TTL/3 until ctx ends. When a renewal fails or
// does not land before deadline (the earliest the lease may expire, by this
// process's clock), it cancels ctx with a cause wrapping ErrLeaseLost.
func keep(ctx context.Context, cancel context.CancelCauseFunc, lc *leaseConn, o LeaderOptions, lease Lease, deadline time.Time) {
	t := time.NewTimer(o.TTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		rctx, done := context.WithDeadline(ctx, deadline)
		err := lc.renew(rctx, o, lease)
		done()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			cancel(fmt.Errorf("%w: %s epoch %d: renew: %w", ErrLeaseLost, lease.Name, lease.Epoch, err))
			return
		}
		deadline = start.Add(o.TTL)
		t.Reset(max(0, o.TTL/3-time.Since(start)))
	}
}

// acquireLease takes the lease when it is free: never taken, expired by the
// database's clock, or last renewed by a session that has ended (its
// holder died; a holder that is alive but cut off keeps it until it
// expires). It raises the epoch and records this session, whose end frees
// the lease early. No row means another holder keeps it.
const acquireLease = `INSERT INTO public.leases AS l (name, holder, holder_name, holder_pid, epoch, acquired_at, expires_at)
	VALUES ($1, $2, $3, pg_backend_pid(), 1, clock_timestamp(), clock_timestamp() + $4 * interval '1 millisecond')
	ON CONFLICT (name) DO UPDATE
	   SET holder = excluded.holder, holder_name = excluded.holder_name, holder_pid = excluded.holder_pid,
	       epoch = l.epoch + 1, acquired_at = excluded.acquired_at, expires_at = excluded.expires_at
	 WHERE l.expires_at <= clock_timestamp()
	    OR NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = l.holder_pid)
	RETURNING l.epoch`

// renewLease extends a lease that this holder still has in this epoch and
// that has not expired: an expired lease is never revived, even when no
// one took it, so a batch checked against it stays refused.
const renewLease = `UPDATE public.leases
	   SET expires_at = clock_timestamp() + $4 * interval '1 millisecond', holder_pid = pg_backend_pid()
	 WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at > clock_timestamp()`

// releaseLease ends a lease early, so another process need not wait for it
// to expire.
const releaseLease = `UPDATE public.leases SET expires_at = clock_timestamp()
	 WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at > clock_timestamp()`

// leaseConn is the connection lease statements run on: not the pool's, so
// that a busy pool never delays a renewal. A statement that fails closes it,
// and the next one connects again: a connection cut off by the network
// never recovers.
type leaseConn struct {
	cfg  *pgx.ConnConfig
	conn *pgx.Conn
}

// do runs fn on the connection, at most for timeout.
func (c *leaseConn) do(ctx context.Context, timeout time.Duration, fn func(context.Context, *pgx.Conn) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if c.conn == nil {
		conn, err := pgx.ConnectConfig(ctx, c.cfg)
		if err != nil {
			return err
		}
		c.conn = conn
	}
	err := fn(ctx, c.conn)
	if err != nil {
		c.close()
	}
	return err
}

func (c *leaseConn) close() {
	if c.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = c.conn.Close(ctx)
	c.conn = nil
}

func (c *leaseConn) acquire(ctx context.Context, o LeaderOptions, holder uuid.UUID) (epoch int64, ok bool, err error) {
	err = c.do(ctx, o.TTL/3, func(ctx context.Context, conn *pgx.Conn) error {
		err := conn.QueryRow(ctx, acquireLease, o.Name, holder, o.HolderName, o.TTL.Milliseconds()).Scan(&epoch)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		ok = err == nil
		return err
	})
	return epoch, ok, err
}

// renew runs until ctx's deadline at most: the caller sets it to when the
// lease may expire.
func (c *leaseConn) renew(ctx context.Context, o LeaderOptions, l Lease) error {
	return c.do(ctx, o.TTL, func(ctx context.Context, conn *pgx.Conn) error {
		tag, err := conn.Exec(ctx, renewLease, l.Name, l.Holder, l.Epoch, o.TTL.Milliseconds())
		if err == nil && tag.RowsAffected() == 0 {
			err = errors.New("taken over or expired")
		}
		return err
	})
}

// release is best effort: a lease not released expires.
func (c *leaseConn) release(ctx context.Context, o LeaderOptions, l Lease) {
	err := c.do(context.WithoutCancel(ctx), o.TTL/3, func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, releaseLease, l.Name, l.Holder, l.Epoch)
		return err
	})
	if err != nil {
		o.Logger.Info("projector lease not released; it expires", "lease", l.Name, "epoch", l.Epoch, "err", err)
	}
}

// LeaseState is a lease as stored, for operators.
type LeaseState struct {
	Holder     uuid.UUID
	HolderName string
	Epoch      int64
	AcquiredAt time.Time
	// ExpiresIn is negative for an expired lease.
	ExpiresIn time.Duration
}

// ReadLease returns the stored state of lease name; ok is false when it was
// never taken.
func ReadLease(ctx context.Context, db interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, name string) (s LeaseState, ok bool, err error) {
	var secs float64
	err = db.QueryRow(ctx, `SELECT holder, holder_name, epoch, acquired_at,
		extract(epoch FROM expires_at - clock_timestamp())::float8 FROM public.leases WHERE name = $1`, name).
		Scan(&s.Holder, &s.HolderName, &s.Epoch, &s.AcquiredAt, &secs)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, false, nil
	}
	if err != nil {
		return s, false, fmt.Errorf("read lease %s: %w", name, err)
	}
	s.ExpiresIn = time.Duration(secs * float64(time.Second))
	return s, true, nil
}
