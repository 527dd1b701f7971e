package chatd

import (
	"context"
	"errors"
	"log/slog"

	"github.com/evchat/evchat/eventstore"
)

// openESDB opens the EventStoreDB adapter.
func openESDB(_ context.Context, _ string, _ *slog.Logger) (eventstore.Store, func(), error) {
	return nil, nil, errors.New("EVENTSTORE_URL is set but this build has no EventStoreDB adapter yet")
}
