package chatd

import (
	"context"
	"log/slog"

	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/eventstore/esdb"
)

// openESDB opens the EventStoreDB/KurrentDB adapter on url (esdb://...).
func openESDB(ctx context.Context, url, prefix string, log *slog.Logger) (eventstore.Store, func(), error) {
	s, err := esdb.New(ctx, url, esdb.Options{Logger: log, StreamPrefix: prefix})
	if err != nil {
		return nil, nil, err
	}
	return s, func() {
		if err := s.Close(); err != nil {
			log.Error("close event store", "err", err)
		}
	}, nil
}
