// Package projections turns the event log into the read model. A Projector
// reads the log from its checkpoint, applies each delivered batch to the
// read-model tables and stores the new checkpoint in the same transaction,
// so every event takes effect exactly once, across crashes too.
package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/eventstore"
)

// ProjectedChannel carries "projected up to position" hints between processes.
const ProjectedChannel = "evchat_projected"

// leaderLock is the advisory lock held by the one process that projects.
const leaderLock = 0x65766368_61742d70 // "evchat-p"

// Projection applies events to read-model tables inside the projector's
// transaction. Apply must be idempotent and must not commit.
type Projection interface {
	Name() string
	// Apply queues the statements of a batch of events on b.
	Apply(b *pgx.Batch, events []eventstore.RecordedEvent) error
}

// Subscriber is the part of the event store the projector needs.
type Subscriber interface {
	SubscribeAll(ctx context.Context, from eventstore.Position, handle func(context.Context, eventstore.Delivery) error) error
}

// Applied is told of every batch after it commits.
type Applied func(events []eventstore.RecordedEvent, through eventstore.Position)

// Projector runs one projection. Create it with NewProjector.
type Projector struct {
	pool      *pgxpool.Pool
	store     Subscriber
	proj      Projection
	log       *slog.Logger
	schema    string
	onApplied Applied
	// beforeCommit is a test hook: it runs inside the batch transaction.
	beforeCommit func(ctx context.Context) error
}

// ProjectorOptions configure a Projector.
type ProjectorOptions struct {
	Logger *slog.Logger
	// Schema is the read-model schema written to; default "readmodel".
	Schema string
	// OnApplied is called after each committed batch.
	OnApplied Applied
	// BeforeCommit, for tests, runs inside each batch transaction before commit.
	BeforeCommit func(ctx context.Context) error
}

// NewProjector returns a projector of proj that reads store and writes pool.
func NewProjector(pool *pgxpool.Pool, store Subscriber, proj Projection, o ProjectorOptions) *Projector {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Schema == "" {
		o.Schema = "readmodel"
	}
	return &Projector{pool: pool, store: store, proj: proj, log: o.Logger, schema: o.Schema, onApplied: o.OnApplied, beforeCommit: o.BeforeCommit}
}

// Checkpoint returns the stored position of the projection.
func (p *Projector) Checkpoint(ctx context.Context) (eventstore.Position, error) {
	return ReadCheckpoint(ctx, p.pool, p.schema, p.proj.Name())
}

// ReadCheckpoint returns the checkpoint of projection name in schema (Start when none).
func ReadCheckpoint(ctx context.Context, db interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, schema, name string) (eventstore.Position, error) {
	var c, pr int64
	err := db.QueryRow(ctx, `SELECT commit_pos, prepare_pos FROM `+pgx.Identifier{schema, "checkpoints"}.Sanitize()+
		` WHERE projection = $1`, name).Scan(&c, &pr)
	if errors.Is(err, pgx.ErrNoRows) {
		return eventstore.Start, nil
	}
	if err != nil {
		return eventstore.Position{}, fmt.Errorf("read checkpoint of %s: %w", name, err)
	}
	return eventstore.Position{Commit: uint64(c), Prepare: uint64(pr)}, nil
}

// Run projects until ctx ends, then returns ctx.Err(). Errors while
// projecting are logged and retried with backoff: a projection that stops
// silently would freeze the read model.
func (p *Projector) Run(ctx context.Context) error {
	var delay time.Duration
	for {
		started := time.Now()
		err := p.RunOnce(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Since(started) > time.Minute {
			delay = 0 // it ran well for a while: this is a new failure, not the same one
		}
		delay = min(max(delay*2, 100*time.Millisecond), 5*time.Second)
		p.log.Error("projector stopped, restarting", "projection", p.proj.Name(), "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

// RunOnce projects from the stored checkpoint until ctx ends or an error.
//
// Reading the log and applying to the read model overlap: the subscription
// reads the next batches while one is applied, and deliveries that queue up
// meanwhile are applied together in one transaction. Under load this is
// what keeps the read-your-writes wait short: the applier never waits for a
// read, and its transactions grow with the load instead of its queue.
func (p *Projector) RunOnce(ctx context.Context) error {
	from, err := p.Checkpoint(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	queue := make(chan []eventstore.RecordedEvent, applyQueue)
	applied := make(chan error, 1)
	go func() {
		err := p.applyLoop(ctx, queue)
		cancel(err)
		applied <- err
	}()
	err = p.store.SubscribeAll(ctx, from, func(ctx context.Context, d eventstore.Delivery) error {
		if len(d.Events) == 0 {
			return nil
		}
		select {
		case queue <- d.Events:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	})
	cancel(err)
	if aerr := <-applied; aerr != nil && !errors.Is(aerr, context.Canceled) {
		return aerr // the cause: the subscription only saw its ctx end
	}
	return err
}

// applyQueue is how many deliveries the subscription may read ahead of the
// applier; maxApply bounds the events of one apply transaction.
const (
	applyQueue = 4
	maxApply   = 4096
)

// applyLoop applies what the subscription queues, merging queued deliveries,
// until ctx ends (it returns context.Cause(ctx)) or an apply fails.
func (p *Projector) applyLoop(ctx context.Context, queue <-chan []eventstore.RecordedEvent) error {
	for {
		var events []eventstore.RecordedEvent
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case events = <-queue:
		}
	merge:
		for len(events) < maxApply {
			select {
			case more := <-queue:
				events = append(events, more...)
			default:
				break merge
			}
		}
		if err := p.applyBatch(ctx, events); err != nil {
			return err
		}
	}
}

// applyBatch applies events and moves the checkpoint in one transaction, sent
// as one pipeline: one round trip per batch.
func (p *Projector) applyBatch(ctx context.Context, events []eventstore.RecordedEvent) error {
	through := events[len(events)-1].Position
	b := &pgx.Batch{}
	b.Queue(`BEGIN`)
	b.Queue(`SELECT set_config('search_path', $1, true)`, pgx.Identifier{p.schema}.Sanitize()+", public")
	// The read model is derived from the log: a crash may lose the newest
	// batches, but only together with their checkpoint (one WAL), and they
	// are projected again. So the commit need not wait for the disk, and
	// every write's read-your-writes wait is shorter by a flush.
	b.Queue(`SET LOCAL synchronous_commit = off`)
	// First, before the batch has a transaction id: a rebuild's swap holds
	// this table exclusively, which parks the batch here until the swap is
	// done (see Rebuild).
	b.Queue(`LOCK TABLE checkpoints IN ROW EXCLUSIVE MODE`)
	if err := p.proj.Apply(b, events); err != nil {
		return fmt.Errorf("project %s: %w", p.proj.Name(), err)
	}
	b.Queue(saveCheckpoint, p.proj.Name(), int64(through.Commit), int64(through.Prepare))
	if p.schema == "readmodel" {
		b.Queue(`SELECT pg_notify($1, $2)`, ProjectedChannel, through.String())
	}
	if p.beforeCommit == nil {
		b.Queue(`COMMIT`)
	}
	err := p.send(ctx, b)
	if err != nil {
		return fmt.Errorf("project %s through %s: %w", p.proj.Name(), through, err)
	}
	if p.onApplied != nil {
		p.onApplied(events, through)
	}
	return nil
}

// send runs a batch that opens a transaction and commits it, or, with the
// beforeCommit test hook, leaves the commit to send after the hook. On
// failure the transaction is rolled back before the connection goes back to
// the pool.
func (p *Projector) send(ctx context.Context, b *pgx.Batch) error {
	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	err = conn.SendBatch(ctx, b).Close()
	if err == nil && p.beforeCommit != nil {
		if err = p.beforeCommit(ctx); err == nil {
			_, err = conn.Exec(ctx, `COMMIT`)
		}
	}
	if err != nil && conn.Conn().PgConn().TxStatus() != 'I' {
		// A connection left in a transaction is closed by the pool on
		// release; a failed rollback leaves that to it.
		_, _ = conn.Exec(context.WithoutCancel(ctx), `ROLLBACK`)
	}
	return err
}

// saveCheckpoint stores a projection's position; it never moves it back.
const saveCheckpoint = `INSERT INTO checkpoints (projection, commit_pos, prepare_pos, updated_at) VALUES ($1, $2, $3, now())
	ON CONFLICT (projection) DO UPDATE SET commit_pos = excluded.commit_pos, prepare_pos = excluded.prepare_pos, updated_at = now()
	WHERE (checkpoints.commit_pos, checkpoints.prepare_pos) < (excluded.commit_pos, excluded.prepare_pos)`

// Leader runs fn while this process holds the projector lock of the
// database, so exactly one process projects at a time; when the holder dies
// its session ends, the lock frees, and another process takes over within
// retry. Leader returns ctx.Err() when ctx ends.
func Leader(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger, retry time.Duration, fn func(ctx context.Context) error) error {
	for {
		err := leadOnce(ctx, pool, log, retry, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			log.Warn("projector leadership lost", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(retry):
		}
	}
}

func leadOnce(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger, retry time.Duration, fn func(ctx context.Context) error) error {
	// A dedicated connection: the lock lives as long as its session.
	conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for {
		var got bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, int64(leaderLock)).Scan(&got); err != nil {
			return err
		}
		if got {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(retry):
		}
	}
	log.Info("projector leadership acquired")
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Watch the lock's session: if it breaks, another process may take over,
	// so stop projecting at once.
	lost := make(chan error, 1)
	watcher := make(chan struct{})
	defer func() { <-watcher }() // the connection is closed only after the watcher stops
	go func() {
		defer close(watcher)
		t := time.NewTicker(retry)
		defer t.Stop()
		for {
			select {
			case <-lctx.Done():
				return
			case <-t.C:
				if err := conn.Ping(lctx); err != nil && lctx.Err() == nil {
					lost <- err
					cancel()
					return
				}
			}
		}
	}()
	err = fn(lctx)
	cancel()
	select {
	case lerr := <-lost:
		return fmt.Errorf("lock session lost: %w", lerr)
	default:
	}
	return err
}
