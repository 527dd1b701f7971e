// Package projections turns the event log into the read model. A Projector
// reads the log from its checkpoint, applies each delivered batch to the
// read-model tables and moves the checkpoint in the same transaction, so
// every event takes effect exactly once, across crashes too.
//
// Every batch is fenced: its transaction moves the checkpoint only from the
// position the batch was read after, and under a Leader lease only while
// that lease is held, or it rolls back whole. Applying events again over
// later ones is not harmless (a join replayed after the leave that followed
// it makes the user a member again), and two kinds of batch would do it: one
// of a projector that was replaced without noticing yet, and one that waited
// while a rebuild swapped in a read model already past it. A refused batch
// is not an error; the projector starts again from the stored checkpoint.
//
// Exactly one process projects at a time: Leader holds a lease row in the
// database and renews it (by default every second, for 3 s), and another
// process takes over when the holder stops, dies, or is cut off from the
// database for longer than the lease lasts.
//
// Rebuild, Verify and Replay work beside the live projector: see
// rebuild.go, verify.go and replay.go (build.go is what the first two share).
package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/migrations"
)

// ProjectedChannel carries "projected up to position" hints between processes.
const ProjectedChannel = "evchat_projected"

// ErrFenced is returned (wrapped) for a batch refused because the
// checkpoint is no longer where the batch started: another projector moved
// it, or a rebuild swapped in a read model that is past it.
var ErrFenced = errors.New("projector batch fenced: the checkpoint moved")

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
	schema    migrations.Schema
	onApplied Applied
	channel   string
	// beforeCommit is a test hook: it runs inside the batch transaction.
	beforeCommit func(ctx context.Context) error
}

// ProjectorOptions configure a Projector.
type ProjectorOptions struct {
	Logger *slog.Logger
	// Schema is the read-model schema written to; default the live one,
	// migrations.ReadModel.
	Schema migrations.Schema
	// OnApplied is called after each committed batch.
	OnApplied Applied
	// BeforeCommit, for tests, runs inside each batch transaction before commit.
	BeforeCommit func(ctx context.Context) error
	// Channel is where each committed batch announces its position (see
	// Track); default ProjectedChannel for the live read model, none for
	// any other schema.
	Channel string
}

// NewProjector returns a projector of proj that reads store and writes pool.
func NewProjector(pool *pgxpool.Pool, store Subscriber, proj Projection, o ProjectorOptions) *Projector {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Schema == (migrations.Schema{}) {
		o.Schema = migrations.ReadModel
	}
	if o.Channel == "" && o.Schema == migrations.ReadModel {
		o.Channel = ProjectedChannel
	}
	return &Projector{pool: pool, store: store, proj: proj, log: o.Logger, schema: o.Schema, onApplied: o.OnApplied,
		beforeCommit: o.BeforeCommit, channel: o.Channel}
}

// Checkpoint returns the stored position of the projection.
func (p *Projector) Checkpoint(ctx context.Context) (eventstore.Position, error) {
	return ReadCheckpoint(ctx, p.pool, p.schema, p.proj.Name())
}

// ReadCheckpoint returns the checkpoint of projection name in schema (Start when none).
func ReadCheckpoint(ctx context.Context, db interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, schema migrations.Schema, name string) (eventstore.Position, error) {
	var c, pr int64
	err := db.QueryRow(ctx, `SELECT commit_pos, prepare_pos FROM `+schema.Qualified(migrations.CheckpointsTable)+
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
// silently would freeze the read model. A batch refused by the fence
// (ErrFenced) restarts it at once from the stored checkpoint.
//
// Run does not hold a lease: run it alone, or under Leader with RunLeased.
func (p *Projector) Run(ctx context.Context) error { return p.run(ctx, nil) }

// RunLeased is Run under a lease taken by Leader: every batch also checks,
// in its transaction, that the lease is still held in its epoch and has not
// expired. It returns an error wrapping ErrLeaseLost when a batch finds it
// gone, and ctx.Err() when ctx ends.
func (p *Projector) RunLeased(ctx context.Context, l Lease) error { return p.run(ctx, &l) }

func (p *Projector) run(ctx context.Context, lease *Lease) error {
	var delay time.Duration
	for {
		started := time.Now()
		err := p.runOnce(ctx, lease)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case errors.Is(err, ErrLeaseLost):
			return err
		case errors.Is(err, ErrFenced):
			// Expected after a rebuild swap or a change of leader: the
			// batch rolled back, nothing is lost.
			p.log.Warn("projector batch refused, restarting from the stored checkpoint", "projection", p.proj.Name(), "err", err)
			continue
		case errors.Is(err, ErrPaused):
			// An operator paused it: the batch rolled back, the checkpoint
			// stays, and it carries on from there once resumed.
			if err := p.waitResumed(ctx); err != nil {
				return err
			}
			continue
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

// RunOnce projects from the stored checkpoint, without a lease, until ctx
// ends or an error (ErrFenced for a refused batch).
func (p *Projector) RunOnce(ctx context.Context) error { return p.runOnce(ctx, nil) }

// runOnce projects from the stored checkpoint until ctx ends or an error.
//
// Reading the log and applying to the read model overlap: the subscription
// reads the next batches while one is applied, and deliveries that queue up
// meanwhile are applied together in one transaction. Under load this is
// what keeps the read-your-writes wait short: the applier never waits for a
// read, and its transactions grow with the load instead of its queue.
func (p *Projector) runOnce(ctx context.Context, lease *Lease) error {
	if err := p.prepareState(ctx); err != nil {
		return err
	}
	from, err := p.Checkpoint(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	queue := make(chan eventstore.Delivery, applyQueue)
	applied := make(chan error, 1)
	go func() {
		err := p.applyLoop(ctx, from, lease, queue)
		cancel(err)
		applied <- err
	}()
	err = p.store.SubscribeAll(ctx, from, func(ctx context.Context, d eventstore.Delivery) error {
		if len(d.Events) == 0 && !d.CaughtUp {
			return nil
		}
		select {
		case queue <- d:
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
// applier; maxApply bounds the events of one apply transaction, and
// maxApplyBytes the event data merged into one (sends answer before they
// are projected, so a burst of large messages can queue up: one huge
// transaction would hold every socket of the process back until it ends).
const (
	applyQueue    = 4
	maxApply      = 4096
	maxApplyBytes = 1 << 20
)

// applyLoop applies what the subscription queues from position at on,
// merging queued deliveries, until ctx ends (it returns context.Cause(ctx))
// or an apply fails.
//
// The first time it has applied all the subscription read before telling
// it reached the head, the projection is marked caught up (no longer
// backfilling: see markCaughtUp).
func (p *Projector) applyLoop(ctx context.Context, at eventstore.Position, lease *Lease, queue <-chan eventstore.Delivery) error {
	caughtUp, marked := false, false
	for {
		var events []eventstore.RecordedEvent
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case d := <-queue:
			events, caughtUp = d.Events, caughtUp || d.CaughtUp
		}
		size := dataBytes(events)
	merge:
		for len(events) < maxApply && size < maxApplyBytes {
			select {
			case more := <-queue:
				events, caughtUp = append(events, more.Events...), caughtUp || more.CaughtUp
				size += dataBytes(more.Events)
			default:
				break merge
			}
		}
		if len(events) > 0 {
			if err := p.applyBatch(ctx, at, lease, events); err != nil {
				return err
			}
			at = events[len(events)-1].Position
		}
		if caughtUp && !marked {
			marked = true
			p.markCaughtUp(ctx)
		}
	}
}

// applyBatch applies events, which follow position from, and moves the
// checkpoint from there in one transaction, sent as one pipeline: one round
// trip per batch. The move is the fence: it fails, and the whole batch rolls
// back, when the checkpoint is no longer at from or lease is no longer held
// (errors wrapping ErrFenced and ErrLeaseLost).
func (p *Projector) applyBatch(ctx context.Context, from eventstore.Position, lease *Lease, events []eventstore.RecordedEvent) error {
	through := events[len(events)-1].Position
	b := &pgx.Batch{}
	b.Queue(`BEGIN`)
	// The read model is derived from the log: a crash may lose the newest
	// batches, but only together with their checkpoint (one WAL), and they
	// are projected again. So the commit need not wait for the disk
	// (synchronous_commit off), and every write's read-your-writes wait is
	// shorter by a flush.
	b.Queue(`SELECT set_config('search_path', $1, true), set_config('synchronous_commit', 'off', true)`, p.schema.SearchPath())
	// First, before the batch writes (this lock takes no transaction id, so
	// a parked batch holds no log reader back): a rebuild's swap holds this
	// table exclusively, which parks the batch here until the swap is done
	// (see Rebuild). The statements after it find the tables by name, so a
	// parked batch then runs against the swapped-in read model, and the
	// fence below refuses it there: that model's checkpoint is past from.
	b.Queue(`LOCK TABLE checkpoints IN ROW EXCLUSIVE MODE`)
	if err := p.proj.Apply(b, events); err != nil {
		return fmt.Errorf("project %s: %w", p.proj.Name(), err)
	}
	var name *string
	var holder *[16]byte // not *uuid.UUID: see uuidArg
	var epoch *int64
	if lease != nil {
		name, holder, epoch = &lease.Name, uuidArg(lease.Holder), &lease.Epoch
	}
	var channel, payload *string
	if p.channel != "" {
		channel, payload = &p.channel, new(through.String())
	}
	// Refused (EV003) while an operator has the projection paused, holding
	// it so that a pause waits for this batch; then the fence, and the
	// notification (core 0017).
	b.Queue(`SELECT public.projector_commit($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, p.proj.Name(),
		int64(from.Commit), int64(from.Prepare), int64(through.Commit), int64(through.Prepare),
		name, holder, epoch, channel, payload)
	if p.beforeCommit == nil {
		b.Queue(`COMMIT`)
	}
	err := p.send(ctx, b)
	if err != nil {
		return fmt.Errorf("project %s from %s through %s: %w", p.proj.Name(), from, through, fenceError(err))
	}
	if p.onApplied != nil {
		p.onApplied(events, through)
	}
	return nil
}

// The SQLSTATEs projector_commit raises (migrations/core 0006, 0012 and
// 0017).
const (
	sqlstateFenced    = "EV001"
	sqlstateLeaseLost = "EV002"
	sqlstatePaused    = "EV003"
)

// fenceError marks the fence's refusals with ErrFenced or ErrLeaseLost.
func fenceError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case sqlstateFenced:
			return fmt.Errorf("%w: %w", ErrFenced, err)
		case sqlstateLeaseLost:
			return fmt.Errorf("%w: %w", ErrLeaseLost, err)
		case sqlstatePaused:
			return fmt.Errorf("%w: %w", ErrPaused, err)
		}
	}
	return err
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

// dataBytes is the size of the events' data.
func dataBytes(events []eventstore.RecordedEvent) int {
	n := 0
	for _, e := range events {
		n += len(e.Data)
	}
	return n
}

// uuidArg is a uuid as a statement argument. pgx encodes a [16]byte as a
// uuid directly; a uuid.UUID goes through its driver.Valuer: a string that
// the binary encoding refuses (building an error message) and that is
// then parsed back, several microseconds for every batch.
func uuidArg(u uuid.UUID) *[16]byte {
	b := [16]byte(u)
	return &b
}
