package chatd_test

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/evchat/evchat/projections"
)

var taken = map[string][]string{"username": {"A user with that username already exists."}}

// TestConfusableUsernames registers names that differ from taken ones only
// in case, width or compatibility form: each is refused; the name is kept
// in its NFKC form; login by any equivalent form finds the one account.
func TestConfusableUsernames(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	register := func(name string) response {
		t.Helper()
		return s.callJSON(t, "POST", "/auth/register/", "", map[string]string{"username": name, "password": "s3cret-pass"})
	}
	var alice userJSON
	r := register("Alice")
	wantStatus(t, r, http.StatusCreated)
	r.JSON(t, &alice)
	for _, name := range []string{"alice", "ALICE", "ａｌｉｃｅ", "ＡＬＩＣＥ", "Ａlice"} {
		wantFields(t, register(name), taken)
	}
	wantStatus(t, register("Straße"), http.StatusCreated)
	wantFields(t, register("STRASSE"), taken) // case folding, not lower-casing
	wantFields(t, register("strasse"), taken)

	// Fullwidth letters are stored and shown as the letters they stand for.
	var bob userJSON
	r = register("ｂｏｂ")
	wantStatus(t, r, http.StatusCreated)
	r.JSON(t, &bob)
	if bob.Username != "bob" {
		t.Errorf("registered fullwidth bob as %q; want the NFKC form \"bob\"", bob.Username)
	}
	wantFields(t, register("BOB"), taken)

	s.caughtUp()
	for _, name := range []string{"Alice", "alice", "ＡＬＩＣＥ", "ａｌｉｃｅ"} {
		if got := s.login(user{Name: name, Password: "s3cret-pass"}); got.ID != alice.ID {
			t.Errorf("login as %q = user %d; want %d", name, got.ID, alice.ID)
		}
	}
	s.login(user{Name: "STRASSE", Password: "s3cret-pass"})
	if got := s.login(user{Name: "Bob", Password: "s3cret-pass"}); got.ID != bob.ID {
		t.Errorf("login as Bob = user %d; want %d", got.ID, bob.ID)
	}
}

// TestConfusableUsernamesConcurrently registers equivalent forms of one
// name at once: the event store's reservation lets exactly one through.
func TestConfusableUsernamesConcurrently(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	names := []string{"Carol", "carol", "ＣＡＲＯＬ", "ｃａｒｏｌ", "CAROL", "cArOl"}
	statuses := make([]int, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := s.tryJSON("POST", "/auth/register/", "", map[string]string{"username": name, "password": "s3cret-pass"})
			if err != nil {
				t.Error(err)
				return
			}
			statuses[i] = r.Status
		}()
	}
	wg.Wait()
	created := 0
	for i, st := range statuses {
		switch st {
		case http.StatusCreated:
			created++
		case http.StatusBadRequest:
		default:
			t.Errorf("register %q = %d; want 201 or 400", names[i], st)
		}
	}
	if created != 1 {
		t.Fatalf("%d of %d equivalent names registered; want 1 (%v)", created, len(names), statuses)
	}
}

// TestUsernamesKeyedBeforeTheRuleAreRekeyed puts a user back as the read
// model held it before usernames were case-folded (key = lower case,
// key_version 0): re-keying at start makes its confusable forms taken and
// lets it log in by any of them.
func TestUsernamesKeyedBeforeTheRuleAreRekeyed(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx := context.Background()
	var dana userJSON
	r := s.callJSON(t, "POST", "/auth/register/", "", map[string]string{"username": "Dana", "password": "s3cret-pass"})
	wantStatus(t, r, http.StatusCreated)
	r.JSON(t, &dana)
	s.caughtUp()
	// The old key of a name registered in fullwidth letters.
	if _, err := s.Pool().Exec(ctx, `UPDATE users SET username = 'ＤＡＮＡ', username_key = 'ｄａｎａ', key_version = 0 WHERE id = $1`, dana.ID); err != nil {
		t.Fatal(err)
	}
	if r := s.do("POST", "/auth/login/", "", map[string]string{"username": "dana", "password": "s3cret-pass"}); r.Status != http.StatusUnauthorized {
		t.Fatalf("login before re-keying = %d %s; want 401 (the old key)", r.Status, r.Body)
	}
	n, err := projections.RekeyUsernames(ctx, s.Pool())
	if err != nil || n != 1 {
		t.Fatalf("RekeyUsernames = %d, %v; want 1", n, err)
	}
	if n, err := projections.RekeyUsernames(ctx, s.Pool()); err != nil || n != 0 {
		t.Fatalf("RekeyUsernames again = %d, %v; want 0", n, err)
	}
	if got := s.login(user{Name: "dana", Password: "s3cret-pass"}); got.ID != dana.ID {
		t.Errorf("login as dana = user %d; want %d", got.ID, dana.ID)
	}
	wantFields(t, s.callJSON(t, "POST", "/auth/register/", "", map[string]string{"username": "DaNa", "password": "s3cret-pass"}), taken)
}
