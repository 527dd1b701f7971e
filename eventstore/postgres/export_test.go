package postgres

import (
	"context"

	"github.com/evchat/evchat/eventstore"
)

// ReadAllOnce is one pass of ReadAll, without its wait for hidden rows: the
// events, and whether rows past them are still hidden by the horizon.
func (s *Store) ReadAllOnce(ctx context.Context, from eventstore.Position, count int) ([]eventstore.RecordedEvent, bool, error) {
	return s.readAll(ctx, from, count)
}
