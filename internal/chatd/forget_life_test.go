package chatd_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/evchat/evchat/domain"
)

// TestForgetAfterMessageLife forgets a user who edited a message, had one
// deleted and renamed a room someone else created, while someone else
// renamed the room the user created: the user's versions and words read
// as placeholders, search finds none of them, the other user's rename is
// kept, and the live read model equals a fresh rebuild.
func TestForgetAfterMessageLife(t *testing.T) {
	t.Parallel()
	s := startServer(t, withAdmin)
	gone, other := s.newUser(), s.newUser()

	theirs := s.room(other, gone) // other's room, renamed by gone
	wantStatus(t, s.do("POST", fmt.Sprintf("/chatrooms/%d/admins/", theirs), other.Access, map[string]any{"user": gone.ID}), http.StatusOK)
	wantStatus(t, s.do("PATCH", fmt.Sprintf("/chatrooms/%d/", theirs), gone.Access, map[string]any{"name": "gone named this walrus"}), http.StatusOK)
	own := s.room(gone, other) // gone's room, renamed by other
	wantStatus(t, s.do("POST", fmt.Sprintf("/chatrooms/%d/admins/", own), gone.Access, map[string]any{"user": other.ID}), http.StatusOK)
	wantStatus(t, s.do("PATCH", fmt.Sprintf("/chatrooms/%d/", own), other.Access, map[string]any{"name": "other named this"}), http.StatusOK)

	edited := s.send(gone, theirs, "walrus before")
	wantStatus(t, s.do("PATCH", msgPath(edited, ""), gone.Access, map[string]string{"text": "walrus after"}), http.StatusOK)
	deleted := s.send(gone, theirs, "walrus deleted")
	wantStatus(t, s.do("DELETE", msgPath(deleted, ""), gone.Access, nil), http.StatusOK)
	kept := s.send(other, theirs, "other's walrus")
	s.searchCaughtUp()
	if hits, _ := s.search(other, "walrus"); len(hits) != 2 {
		t.Fatalf("before forgetting: %d hits for walrus; want gone's edited message and other's", len(hits))
	}

	s.forget(t, gone.ID)
	s.searchCaughtUp()

	if hits, _ := s.search(other, "walrus"); len(hits) != 1 || hits[0].ID != kept {
		t.Errorf("after forgetting: hits %v; want only other's message %d", hitIDs(hits), kept)
	}
	if hits, _ := s.search(other, "deleted"); len(hits) != 0 {
		t.Errorf("the placeholder of forgotten messages matches: %v", hitIDs(hits))
	}
	r := s.do("GET", msgPath(edited, "history/"), other.Access, nil)
	wantStatus(t, r, http.StatusOK)
	var versions []struct{ Text *string }
	r.JSON(t, &versions)
	if len(versions) != 2 {
		t.Fatalf("history of the edited message = %s; want two versions", r.Body)
	}
	for _, v := range versions {
		if v.Text == nil || *v.Text != domain.ForgottenText {
			t.Errorf("history of the edited message = %s; want every version %q", r.Body, domain.ForgottenText)
		}
	}
	if m := decodeLife(t, s.do("GET", msgPath(deleted, ""), other.Access, nil)); m.Text != nil || m.DeletedAt == nil {
		t.Errorf("the deleted message = %+v; want a tombstone still", m)
	}
	names := map[int64]string{}
	r = s.do("GET", "/list-chatrooms/", other.Access, nil)
	wantStatus(t, r, http.StatusOK)
	var rooms []struct {
		ID   int64
		Name *string
	}
	r.JSON(t, &rooms)
	for _, c := range rooms {
		if c.Name != nil {
			names[c.ID] = *c.Name
		}
	}
	if names[theirs] != domain.ForgottenText || names[own] != "other named this" {
		t.Errorf("room names = %v; want %d renamed by gone %q and %d renamed by other kept", names, theirs, domain.ForgottenText, own)
	}
	verify(t, s)
	rebuildAndVerify(t, s)
}
