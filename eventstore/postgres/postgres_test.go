package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/eventstore/conformance"
	"github.com/evchat/evchat/eventstore/postgres"
	"github.com/evchat/evchat/internal/pgtest"
	"github.com/evchat/evchat/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func newStore(t testing.TB, o conformance.Options) eventstore.Store {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrations.Apply(ctx, pool); err != nil {
		pool.Close()
		t.Fatal(err)
	}
	s := postgres.New(pool, postgres.Options{CommitDelay: o.CommitDelay})
	t.Cleanup(func() {
		s.Close()
		pool.Close()
	})
	return s
}

func TestConformance(t *testing.T) {
	conformance.Run(t, newStore)
}
