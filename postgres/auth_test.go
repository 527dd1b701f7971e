package postgres_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/evchat/evchat/auth"
	"github.com/evchat/evchat/postgres"
)

func TestSessions(t *testing.T) {
	pool := newDB(t)
	s := postgres.NewSessions(pool)
	ctx := t.Context()
	id, jti1, jti2, jti3 := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	if err := s.Create(ctx, auth.Session{ID: id, UserID: 1, RefreshJTI: jti1, Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// Not rotated yet: nothing to call a reuse.
	if revoked, err := s.RevokeReused(ctx, id, uuid.New(), 0); err != nil || revoked {
		t.Fatalf("RevokeReused before any rotation = %v, %v; want false", revoked, err)
	}
	if ok, err := s.Rotate(ctx, id, jti1, jti2, time.Now().Add(time.Hour)); err != nil || !ok {
		t.Fatalf("Rotate = %v, %v", ok, err)
	}
	if ok, err := s.Rotate(ctx, id, jti1, jti3, time.Now().Add(time.Hour)); err != nil || ok {
		t.Fatalf("Rotate of the rotated-away jti = %v, %v; want false", ok, err)
	}
	// Within the grace: kept. The current token is never a reuse.
	if revoked, err := s.RevokeReused(ctx, id, jti1, time.Hour); err != nil || revoked {
		t.Fatalf("RevokeReused within the grace = %v, %v; want false", revoked, err)
	}
	if revoked, err := s.RevokeReused(ctx, id, jti2, 0); err != nil || revoked {
		t.Fatalf("RevokeReused of the current jti = %v, %v; want false", revoked, err)
	}
	if revoked, err := s.RevokeReused(ctx, id, jti1, 0); err != nil || !revoked {
		t.Fatalf("RevokeReused after the grace = %v, %v; want true", revoked, err)
	}
	revoked, _, err := s.State(ctx, id)
	if err != nil || !revoked {
		t.Fatalf("State = %v, %v; want revoked", revoked, err)
	}
	if ok, _ := s.Rotate(ctx, id, jti2, jti3, time.Now().Add(time.Hour)); ok {
		t.Fatal("a revoked session rotated")
	}
	if _, _, err := s.State(ctx, uuid.New()); !errors.Is(err, auth.ErrSessionNotFound) {
		t.Fatalf("State of an unknown session: %v; want ErrSessionNotFound", err)
	}
}

func TestAttempts(t *testing.T) {
	pool := newDB(t)
	a := postgres.NewAttempts(pool)
	ctx := t.Context()
	start := time.Now()
	n, ends, err := a.Add(ctx, "user:\"alice\"", 1, 90*time.Minute)
	if err != nil || n != 1 {
		t.Fatalf("Add = %d, %v", n, err)
	}
	if d := ends.Sub(start); d < 89*time.Minute || d > 91*time.Minute {
		t.Fatalf("window ends in %v; want 1h30m", d)
	}
	if n, _, _ = a.Add(ctx, "user:\"alice\"", -5, 90*time.Minute); n != 0 {
		t.Fatalf("count after giving back more than taken = %d; want 0", n)
	}

	// Concurrent adds each see the others: the counts are 1..50, once each.
	var wg sync.WaitGroup
	seen := make([]int, 51)
	var mu sync.Mutex
	for range 50 {
		wg.Go(func() {
			n, _, err := a.Add(context.Background(), "addr:10.0.0.1", 1, time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			seen[n]++
			mu.Unlock()
		})
	}
	wg.Wait()
	for i := 1; i <= 50; i++ {
		if seen[i] != 1 {
			t.Fatalf("count %d seen %d times; want once", i, seen[i])
		}
	}

	// A slot: the first claim takes it, the next is told when it frees.
	if ok, next, err := a.Claim(ctx, "addr:10.0.0.1", 30*time.Second); err != nil || !ok || next.Sub(start) < 29*time.Second {
		t.Fatalf("first Claim = %v, %v, %v; want taken, next in 30s", ok, next, err)
	}
	if ok, next, err := a.Claim(ctx, "addr:10.0.0.1", 30*time.Second); err != nil || ok || next.Sub(start) < 29*time.Second {
		t.Fatalf("second Claim = %v, %v, %v; want refused until the slot frees", ok, next, err)
	}
	if err := a.Reset(ctx, "addr:10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := a.Add(ctx, "addr:10.0.0.1", 1, time.Minute); n != 1 {
		t.Fatalf("count after Reset = %d; want 1", n)
	}
}
