package projections

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/migrations"
)

// Announcements carries the projecting process's "projected up to"
// announcements (ProjectedChannel) to this one: package postgres/notifier
// implements it on the process's one listening connection.
type Announcements interface {
	// Listen calls onNotify with every announcement's payload, and onReady
	// each time announcements start being heard again (some may have been
	// missed before). Both must return quickly. stop ends the subscription.
	Listen(onNotify func(payload string), onReady func()) (stop func())
}

// Track keeps w at the stored checkpoint of projection name: it advances w
// on every announcement, and reads the checkpoint every interval and after
// every (re)connect of the announcements, which covers lost ones. It
// returns ctx.Err() when ctx ends.
func Track(ctx context.Context, pool *pgxpool.Pool, w *Watermark, name string, interval time.Duration, ann Announcements) error {
	return TrackIn(ctx, pool, w, migrations.ReadModel, name, interval, ann)
}

// TrackIn is Track for the checkpoint of a projection kept in schema (the
// search index's, say), announced on its own channel.
func TrackIn(ctx context.Context, pool *pgxpool.Pool, w *Watermark, schema migrations.Schema, name string, interval time.Duration, ann Announcements) error {
	look := make(chan struct{}, 1)
	stop := ann.Listen(func(payload string) {
		if p, err := eventstore.ParsePosition(payload); err == nil {
			w.Advance(p)
		}
	}, func() {
		select {
		case look <- struct{}{}:
		default:
		}
	})
	defer stop()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if p, err := ReadCheckpoint(ctx, pool, schema, name); err == nil {
			w.Advance(p)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-look:
		}
	}
}
