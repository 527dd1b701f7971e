package shred_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/eventstore/conformance"
	pgstore "github.com/evchat/evchat/eventstore/postgres"
	"github.com/evchat/evchat/internal/pgtest"
	"github.com/evchat/evchat/migrations"
	"github.com/evchat/evchat/postgres"
	"github.com/evchat/evchat/shred"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// newPostgres returns the PostgreSQL event store and the key store on a
// fresh migrated database.
func newPostgres(t testing.TB, o conformance.Options) (*pgstore.Store, *postgres.UserKeys) {
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
	s := pgstore.New(pool, pgstore.Options{CommitDelay: o.CommitDelay})
	t.Cleanup(func() {
		s.Close()
		pool.Close()
	})
	return s, postgres.NewUserKeys(pool)
}

// The shredder is an event store like any other: it passes the port's
// conformance suite around the PostgreSQL store.
func TestConformance(t *testing.T) {
	conformance.Run(t, func(t testing.TB, o conformance.Options) eventstore.Store {
		inner, keys := newPostgres(t, o)
		return shred.New(inner, keys, shred.Options{})
	})
}

// The PostgreSQL key store: a key is kept once made, a forgotten user's
// key is gone and no new one is made for them.
func TestUserKeys(t *testing.T) {
	ctx := context.Background()
	_, keys := newPostgres(t, conformance.Options{})
	k1, _ := shred.NewKey()
	k2, _ := shred.NewKey()
	st, err := keys.Create(ctx, 7, k1)
	if err != nil || string(st.Key) != string(k1) {
		t.Fatalf("Create = %v, %v; want the key", st, err)
	}
	if st, _ = keys.Create(ctx, 7, k2); string(st.Key) != string(k1) {
		t.Fatalf("a second Create replaced the key")
	}
	if err := keys.Forget(ctx, 7); err != nil {
		t.Fatal(err)
	}
	if err := keys.Forget(ctx, 8); err != nil { // a user with no key yet (a legacy log)
		t.Fatal(err)
	}
	got, err := keys.Load(ctx, []int64{7, 8, 9})
	if err != nil {
		t.Fatal(err)
	}
	if !got[7].Forgotten || got[7].Key != nil || !got[8].Forgotten {
		t.Errorf("after Forget: %+v; want 7 and 8 forgotten without keys", got)
	}
	if _, ok := got[9]; ok {
		t.Errorf("user 9 has a state: %+v", got[9])
	}
	if st, _ = keys.Create(ctx, 7, k2); !st.Forgotten || st.Key != nil {
		t.Errorf("Create for a forgotten user = %+v; want forgotten, no key", st)
	}
}

// The decorator's overhead, against the undecorated store in the same
// run: appends of one message, and reads of 500 messages (each sealed by
// one of 50 senders), on PostgreSQL and on an in-memory store (the cost of
// the JSON and the cipher alone).
func BenchmarkShred(b *testing.B) {
	ctx := context.Background()
	msg := func(i int) eventstore.EventData {
		return event(b, sent(int64(i%50+1), fmt.Sprintf("message number %d, of an ordinary length for a chat", i), nil))
	}
	stores := func(b *testing.B, kind string) (raw eventstore.Store, keys shred.Keys) {
		if kind == "postgres" {
			s, k := newPostgres(b, conformance.Options{})
			return s, k
		}
		return &memStore{}, newKeys()
	}
	for _, kind := range []string{"postgres", "memory"} {
		for _, decorated := range []bool{false, true} {
			name := kind + "/raw"
			if decorated {
				name = kind + "/shred"
			}
			b.Run("append/"+name, func(b *testing.B) {
				var s eventstore.Store
				inner, keys := stores(b, kind)
				s = inner
				if decorated {
					s = shred.New(inner, keys, shred.Options{})
				}
				for i := range 50 { // every sender has a key: steady state
					if _, err := s.Append(ctx, "warm", eventstore.Any(), msg(i)); err != nil {
						b.Fatal(err)
					}
				}
				b.ResetTimer()
				for i := 0; b.Loop(); i++ {
					if _, err := s.Append(ctx, domain.ConversationStream(int64(i%100)), eventstore.Any(), msg(i)); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("read500/"+name, func(b *testing.B) {
				var s eventstore.Store
				inner, keys := stores(b, kind)
				s = inner
				if decorated {
					s = shred.New(inner, keys, shred.Options{})
				}
				for i := range 500 {
					if _, err := s.Append(ctx, "c", eventstore.Any(), msg(i)); err != nil {
						b.Fatal(err)
					}
				}
				b.ResetTimer()
				for b.Loop() {
					evs, err := s.ReadAll(ctx, eventstore.Start, 500)
					if err != nil || len(evs) != 500 {
						b.Fatal(len(evs), err)
					}
				}
			})
		}
	}
}
