package chatd_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/projections"
)

// credentialRows returns every stored password hash by user id.
func credentialRows(t testing.TB, s *testServer) map[int64]string {
	t.Helper()
	rows, err := s.Pool().Query(context.Background(), `SELECT user_id, password_hash FROM credentials`)
	if err != nil {
		t.Fatalf("read credentials: %v", err)
	}
	defer rows.Close()
	out := map[int64]string{}
	for rows.Next() {
		var id int64
		var h string
		if err := rows.Scan(&id, &h); err != nil {
			t.Fatal(err)
		}
		out[id] = h
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// restoreCredentials writes password hashes back, as from a backup.
func restoreCredentials(t testing.TB, s *testServer, creds map[int64]string) {
	t.Helper()
	for id, h := range creds {
		if _, err := s.Pool().Exec(context.Background(), `INSERT INTO credentials (user_id, password_hash) VALUES ($1, $2)
			ON CONFLICT (user_id) DO NOTHING`, id, h); err != nil {
			t.Fatalf("restore credential %d: %v", id, err)
		}
	}
}

// wholeLog returns every event of the log.
func wholeLog(t testing.TB, s *testServer) []eventstore.RecordedEvent {
	t.Helper()
	var out []eventstore.RecordedEvent
	from := eventstore.Start
	for {
		batch, err := s.Store().ReadAll(context.Background(), from, 500)
		if err != nil {
			t.Fatalf("read the log: %v", err)
		}
		out = append(out, batch...)
		if len(batch) < 500 {
			return out
		}
		from = batch[len(batch)-1].Position
	}
}

// TestPasswordHashesStayOutOfTheLog registers a user and searches the
// whole log for their password and its hash: neither is there, the
// registration records only that a password was set, and login works.
func TestPasswordHashesStayOutOfTheLog(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	u := s.newUser()
	hash := credentialRows(t, s)[u.ID]
	if !strings.HasPrefix(hash, "$2") {
		t.Fatalf("credential of user %d = %q; want a bcrypt hash", u.ID, hash)
	}
	var registered int
	for _, e := range wholeLog(t, s) {
		for _, part := range [][]byte{e.Data, e.Metadata} {
			if strings.Contains(string(part), hash) || strings.Contains(string(part), u.Password) ||
				strings.Contains(string(part), "password_hash") || strings.Contains(string(part), "$2a$") {
				t.Errorf("event %s (%s) holds a password or its hash: %s", e.ID, e.Type, part)
			}
		}
		if e.Type == domain.TypeUserRegistered {
			registered++
			var data map[string]any
			if err := json.Unmarshal(e.Data, &data); err != nil || data["password_set"] != true {
				t.Errorf("registration event = %s; want password_set true", e.Data)
			}
		}
	}
	if registered != 1 {
		t.Errorf("%d registration events; want 1", registered)
	}
	s.login(u)
	if r := s.do("POST", "/auth/login/", "", map[string]string{"username": u.Name, "password": "wrong-password-1"}); r.Status != http.StatusUnauthorized {
		t.Errorf("login with a wrong password = %d; want 401", r.Status)
	}
}

// TestVersion1RegistrationIsUpcast writes a registration the way old
// versions did (version 1, with the hash in the event): its user can log
// in, and still can after the credential is lost and the read model is
// rebuilt from the log, which moves the hash into the credentials table.
func TestVersion1RegistrationIsUpcast(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx := context.Background()
	const id, name, password = 900, "OldTimer", "old-password-1"
	hash, err := bcrypt.GenerateFromPassword([]byte(password), 4)
	if err != nil {
		t.Fatal(err)
	}
	md, _ := json.Marshal(map[string]any{"time": time.Now().UTC()}) // no "v": version 1
	reserve, _ := json.Marshal(map[string]any{"username": "oldtimer", "user_id": id})
	data, _ := json.Marshal(map[string]any{"user_id": id, "username": name, "password_hash": string(hash)})
	if _, err := s.Store().Append(ctx, domain.UsernameStream("oldtimer"), eventstore.NoStream(),
		eventstore.EventData{ID: uuid.New(), Type: domain.TypeUsernameReserved, Data: reserve, Metadata: md}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Store().Append(ctx, domain.UserStream(id), eventstore.NoStream(),
		eventstore.EventData{ID: uuid.New(), Type: domain.TypeUserRegistered, Data: data, Metadata: md}); err != nil {
		t.Fatal(err)
	}
	s.caughtUp()
	old := s.login(user{Name: name, Password: password})
	if old.ID != id {
		t.Fatalf("logged in as %d; want %d", old.ID, id)
	}

	if _, err := s.Pool().Exec(ctx, `DELETE FROM credentials WHERE user_id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if r := s.do("POST", "/auth/login/", "", map[string]string{"username": name, "password": password}); r.Status != http.StatusUnauthorized {
		t.Fatalf("login without a credential = %d %s; want 401", r.Status, r.Body)
	}
	fresh := s.newUser() // a version 2 registration beside it
	if _, err := projections.Rebuild(ctx, s.Pool(), s.Store(), projections.NewChat(domain.NewRegistry()), projections.RebuildOptions{BatchSize: 5}); err != nil {
		t.Fatalf("Rebuild: %v", err)
	}
	s.login(user{Name: name, Password: password})
	s.login(fresh)
	if r := s.do("POST", "/auth/register/", "", map[string]string{"username": "OLDTIMER", "password": "another-password-1"}); r.Status != http.StatusBadRequest {
		t.Errorf("registering the upcast user's name again = %d %s; want 400", r.Status, r.Body)
	}
}
