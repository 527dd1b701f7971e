package postgres_test

import (
	"testing"

	"github.com/evchat/evchat/postgres"
)

func TestCredentials(t *testing.T) {
	t.Parallel()
	c := postgres.NewCredentials(newDB(t))
	ctx := t.Context()
	if _, found, err := c.PasswordHash(ctx, 1); err != nil || found {
		t.Fatalf("PasswordHash of nobody = found %v, %v; want not found", found, err)
	}
	for _, h := range []string{"first", "second"} {
		if err := c.Set(ctx, 1, h); err != nil {
			t.Fatalf("Set: %v", err)
		}
		if got, found, err := c.PasswordHash(ctx, 1); err != nil || !found || got != h {
			t.Fatalf("PasswordHash = %q %v %v; want %q", got, found, err, h)
		}
	}
	if err := c.Delete(ctx, 1); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, found, err := c.PasswordHash(ctx, 1); err != nil || found {
		t.Errorf("PasswordHash after Delete = found %v, %v; want not found", found, err)
	}
}
