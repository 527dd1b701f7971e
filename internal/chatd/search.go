package chatd

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
	chathttp "github.com/evchat/evchat/http"
	"github.com/evchat/evchat/migrations"
	"github.com/evchat/evchat/projections"
	"github.com/evchat/evchat/readmodel"
)

// SearchChannel carries the search projector's "projected up to"
// announcements between processes.
const SearchChannel = "evchat_projected_search"

// SearchLease is the lease of the process that projects the search index:
// its own, so the index and the chat read model may be projected by
// different processes, and neither waits for the other.
const SearchLease = "projector-search"

// searcher answers /search/ from the index and waits on its watermark.
type searcher struct {
	rm   *readmodel.Store
	pool *pgxpool.Pool
	wm   *projections.Watermark
}

var _ chathttp.Searcher = searcher{}

func (s searcher) Search(ctx context.Context, user int64, q string, before int64, limit int) (readmodel.SearchPage, error) {
	return s.rm.Search(ctx, user, q, before, limit)
}

// WaitFor waits for the search watermark, unless an operator paused the
// index: it would not get there. (While it backfills a long log the wait
// runs out, and the search answers from what the index holds.)
func (s searcher) WaitFor(ctx context.Context, p eventstore.Position) error {
	if !s.wm.Position().Less(p) {
		return nil
	}
	st, err := projections.ReadState(ctx, s.pool, projections.SearchName)
	if err != nil {
		return err
	}
	if st.Paused {
		return nil
	}
	return s.wm.Wait(ctx, p)
}

// searchAPI is what the API is given for search: nil when it is off.
func (m *Main) searchAPI(rm *readmodel.Store) chathttp.Searcher {
	if m.cfg.SearchOff {
		return nil
	}
	return searcher{rm: rm, pool: m.pool, wm: m.searchWM}
}

// chatPaused tells /readyz whether an operator paused the chat projection.
func (m *Main) chatPaused(ctx context.Context) (bool, error) {
	st, err := projections.ReadState(ctx, m.pool, projections.ChatName)
	return st.Paused, err
}

// SearchWatermark is how far this process has seen the search index projected.
func (m *Main) SearchWatermark() *projections.Watermark { return m.searchWM }

// runSearch starts the search projector (under its own lease) and the
// tracker of its checkpoint, unless search is off.
func (m *Main) runSearch(goRun func(name string, fn func(context.Context) error)) {
	if m.cfg.SearchOff {
		return
	}
	goRun("search projector", func(ctx context.Context) error {
		pool, err := m.schemaPool(ctx, migrations.Search)
		if err != nil {
			return err
		}
		defer pool.Close()
		projector := projections.NewProjector(pool, m.store, projections.NewSearch(domain.NewRegistry()), projections.ProjectorOptions{
			Logger: m.log, Schema: migrations.Search, Channel: SearchChannel, BeforeCommit: m.cfg.Hooks.SearchBeforeCommit,
			OnApplied: func(evs []eventstore.RecordedEvent, through eventstore.Position) {
				m.metrics.Projected(projections.SearchName, len(evs))
				m.searchWM.Advance(through)
			},
		})
		return projections.Leader(ctx, m.pool, projections.LeaderOptions{Logger: m.log, Name: SearchLease, Retry: m.cfg.LeaderRetry}, projector.RunLeased)
	})
	goRun("search tracker", func(ctx context.Context) error {
		return projections.TrackIn(ctx, m.pool, m.searchWM, migrations.Search, projections.SearchName, 250*time.Millisecond, m.notifier.Channel(SearchChannel))
	})
}

// schemaPool opens a small pool like the main one whose sessions search
// schema's path, for the projector of that schema. A batch sets its
// schema's path for its transaction anyway; but PostgreSQL plans a
// session's cached statements (the fence function's among them) again
// whenever they run under another path than the last time, so a projector
// that shared the main pool's sessions with the chat projector had them
// planned again at nearly every batch.
func (m *Main) schemaPool(ctx context.Context, schema migrations.Schema) (*pgxpool.Pool, error) {
	cfg := m.pool.Config()
	cfg.ConnConfig.RuntimeParams["search_path"] = schema.SearchPath()
	cfg.MaxConns, cfg.MinConns = 2, 0
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pool for the %s schema: %w", schema.Name(), err)
	}
	return pool, nil
}
