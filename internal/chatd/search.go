package chatd

import (
	"context"
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
	projector := projections.NewProjector(m.pool, m.store, projections.NewSearch(domain.NewRegistry()), projections.ProjectorOptions{
		Logger: m.log, Schema: migrations.Search, Channel: SearchChannel, BeforeCommit: m.cfg.Hooks.SearchBeforeCommit,
		OnApplied: func(evs []eventstore.RecordedEvent, through eventstore.Position) {
			m.metrics.Projected(projections.SearchName, len(evs))
			m.searchWM.Advance(through)
		},
	})
	goRun("search projector", func(ctx context.Context) error {
		return projections.Leader(ctx, m.pool, projections.LeaderOptions{Logger: m.log, Name: SearchLease, Retry: m.cfg.LeaderRetry}, projector.RunLeased)
	})
	goRun("search tracker", func(ctx context.Context) error {
		return projections.TrackIn(ctx, m.pool, m.searchWM, migrations.Search, projections.SearchName, 250*time.Millisecond, m.notifier.Channel(SearchChannel))
	})
}
