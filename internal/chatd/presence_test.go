package chatd_test

// Presence (API.md section 8): presence frames when a user's first socket
// opens and their last one closes (debounced), to the users who share a
// room with them, across processes; GET /users/<id>/presence/.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/evchat/evchat/internal/chatd"
	"github.com/evchat/evchat/internal/clocktest"
)

// presenceJSON is a presence frame or answer.
type presenceJSON struct {
	Type     string  `json:"type"`
	User     int64   `json:"user"`
	Online   bool    `json:"online"`
	LastSeen *string `json:"last_seen"`
}

// expectPresence reads the next frame, checks that it is a presence frame
// about user being online or not, and returns it.
func (c *wsConn) expectPresence(t testing.TB, user int64, online bool) presenceJSON {
	t.Helper()
	f := c.expect(t, "presence")
	wantObject(t, f.Raw, []string{"type", "user", "online", "last_seen"})
	var p presenceJSON
	if err := json.Unmarshal(f.Raw, &p); err != nil {
		t.Fatal(err)
	}
	if p.User != user || p.Online != online {
		t.Fatalf("presence frame %s; want user %d online=%v", f.Raw, user, online)
	}
	return p
}

// presenceOf answers GET /users/<id>/presence/ as u.
func (s *testServer) presenceOf(t testing.TB, u user, id int64) (presenceJSON, response) {
	t.Helper()
	r := s.do("GET", fmt.Sprintf("/users/%d/presence/", id), u.Access, nil)
	var p presenceJSON
	if r.Status == http.StatusOK {
		wantObject(t, r.Body, []string{"user", "online", "last_seen"})
		r.JSON(t, &p)
	}
	return p, r
}

// timers counts the timers armed on the test clock: one per socket that
// opens (its token's expiry) and one per user whose last socket closes
// (the presence debounce). Waiting for the count tells that the server has
// registered a socket, or seen the last one go.
type timers struct {
	clock *clocktest.Clock
	n     int
}

// armed waits for k more timers.
func (tm *timers) armed(k int) {
	tm.n += k
	tm.clock.WaitArmed(tm.n)
}

func presenceClock() *clocktest.Clock {
	return clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
}

func TestPresence(t *testing.T) {
	t.Parallel()
	clock := presenceClock()
	s := startLiveServer(t, func(c *chatd.Config) { c.Hooks.Clock = clock; c.PresenceDebounce = 5 * time.Second })
	tm := &timers{clock: clock}
	alice, bob, carol, dave := s.newUser(), s.newUser(), s.newUser(), s.newUser()
	room := s.room(alice, bob, dave)
	lonely := s.room(carol)

	t.Run("endpoint", func(t *testing.T) {
		s := s.with(t)
		p, r := s.presenceOf(t, alice, bob.ID)
		wantStatus(t, r, http.StatusOK)
		if p.User != bob.ID || p.Online || p.LastSeen != nil {
			t.Fatalf("presence = %s; want bob offline, never seen", r.Body)
		}
		if _, r := s.presenceOf(t, carol, carol.ID); r.Status != http.StatusOK {
			t.Fatalf("own presence: %d %s", r.Status, r.Body)
		}
		_, r = s.presenceOf(t, carol, bob.ID)
		wantDetail(t, r, http.StatusNotFound, "")
		_, r = s.presenceOf(t, alice, 999999)
		wantDetail(t, r, http.StatusNotFound, "")
		wantDetail(t, s.do("GET", "/users/x/presence/", alice.Access, nil), http.StatusNotFound, "")
		wantUnauthorized(t, s.do("GET", fmt.Sprintf("/users/%d/presence/", bob.ID), "", nil))
	})

	aliceWS := s.wsConnect(alice, room, "")
	tm.armed(1)

	t.Run("online, offline after the debounce", func(t *testing.T) {
		s := s.with(t)
		bob1 := s.wsConnect(bob, room, "")
		tm.armed(1)
		if p := aliceWS.expectPresence(t, bob.ID, true); p.LastSeen != nil {
			t.Fatalf("first online: last_seen %v; want null", *p.LastSeen)
		}
		if p, _ := s.presenceOf(t, alice, bob.ID); !p.Online {
			t.Fatalf("GET presence after online frame: %+v; want online", p)
		}
		// A second socket, and closing one of two: nothing to say.
		bob2 := s.wsConnect(bob, room, "")
		tm.armed(1)
		_ = bob2.conn.Close()
		_ = bob1.conn.Close()
		tm.armed(1) // the last one went: the debounce runs
		clock.Advance(5 * time.Second)
		p := aliceWS.expectPresence(t, bob.ID, false)
		want := clock.Now().UTC().Format("2006-01-02T15:04:05.000000Z")
		if p.LastSeen == nil || *p.LastSeen != want {
			t.Fatalf("offline frame last_seen %v; want %s", p.LastSeen, want)
		}
		if g, _ := s.presenceOf(t, alice, bob.ID); g.Online || g.LastSeen == nil || *g.LastSeen != want {
			t.Fatalf("GET presence = %+v; want offline, last seen %s", g, want)
		}
	})

	t.Run("a reconnect within the window sends nothing", func(t *testing.T) {
		s := s.with(t)
		bob1 := s.wsConnect(bob, room, "")
		tm.armed(1)
		aliceWS.expectPresence(t, bob.ID, true)
		_ = bob1.conn.Close()
		tm.armed(1)
		clock.Advance(2 * time.Second)
		s.wsConnect(bob, room, "")
		tm.armed(1) // registered: the pending offline is cancelled
		clock.Advance(10 * time.Second)
		// Someone who shares no room with alice comes online: she hears
		// nothing of it. Then dave, who does: his is the next frame she
		// gets (one process applies presence changes in order).
		s.wsConnect(carol, lonely, "")
		tm.armed(1)
		s.wsConnect(dave, room, "")
		tm.armed(1)
		aliceWS.expectPresence(t, dave.ID, true)
		if p, _ := s.presenceOf(t, alice, bob.ID); !p.Online {
			t.Fatalf("bob after reconnecting: %+v; want online", p)
		}
	})
}

// TestPresenceAcrossProcesses runs two servers on one database: a user
// online on either is online, and goes offline when their last socket on
// any process closes.
func TestPresenceAcrossProcesses(t *testing.T) {
	t.Parallel()
	clock := presenceClock()
	cfgA := serverConfig(t, func(c *chatd.Config) {
		c.Hooks.Clock = clock
		c.PresenceDebounce = time.Second
		c.JWTKeyFile = filepath.Join(t.TempDir(), "jwt-ed25519.pem") // shared: tokens verify on both
	})
	a := startLive(t, cfgA)
	alice, bob, dave, eve := a.newUser(), a.newUser(), a.newUser(), a.newUser()
	room := a.room(alice, bob, dave, eve)
	cfgB := cfgA
	cfgB.DataDir = t.TempDir()
	b := startLive(t, cfgB)
	tm := &timers{clock: clock}

	aliceOnA := a.wsConnect(alice, room, "")
	tm.armed(1)
	bobOnB := b.wsConnect(bob, room, "")
	tm.armed(1)
	aliceOnA.expectPresence(t, bob.ID, true)
	if p, _ := a.presenceOf(t, alice, bob.ID); !p.Online {
		t.Fatalf("bob online on B, asked on A: %+v; want online", p)
	}

	// Bob opens a socket on A too. A applies its changes in order: once
	// alice hears of dave, who came online on A after, A has bob.
	bobOnA := a.wsConnect(bob, room, "")
	tm.armed(1)
	a.wsConnect(dave, room, "")
	tm.armed(1)
	aliceOnA.expectPresence(t, dave.ID, true)
	// Bob's socket on B closes: he is online still (on A). B applies its
	// changes in order: eve's online, after bob's last socket on B, is
	// what alice hears next.
	_ = bobOnB.conn.Close()
	tm.armed(1)
	clock.Advance(time.Second)
	b.wsConnect(eve, room, "")
	tm.armed(1)
	aliceOnA.expectPresence(t, eve.ID, true)
	if p, _ := b.presenceOf(t, dave, bob.ID); !p.Online {
		t.Fatalf("bob online on A, asked on B: %+v; want online", p)
	}

	// The last socket anywhere closes: offline.
	_ = bobOnA.conn.Close()
	tm.armed(1)
	clock.Advance(time.Second)
	p := aliceOnA.expectPresence(t, bob.ID, false)
	if p.LastSeen == nil {
		t.Fatal("offline frame without last_seen")
	}
	if g, _ := b.presenceOf(t, dave, bob.ID); g.Online {
		t.Fatalf("bob asked on B after his last socket closed: %+v; want offline", g)
	}
}

// TestPresenceCrashedProcess: a process that stops heartbeating (it
// crashed, leaving its rows) is forgotten by a live one, and its users go
// offline, last seen at its last heartbeat.
func TestPresenceCrashedProcess(t *testing.T) {
	t.Parallel()
	s := startLiveServer(t, func(c *chatd.Config) { c.PresenceHeartbeat = time.Second })
	alice, bob := s.newUser(), s.newUser()
	room := s.room(alice, bob)
	aliceWS := s.wsConnect(alice, room, "")
	// The rows a crashed process leaves: bob online there, an hour silent.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dead := uuid.New()
	if _, err := s.Pool().Exec(ctx, `INSERT INTO presence_processes (process, heartbeat_at) VALUES ($1, now() - interval '1 hour')`, dead); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool().Exec(ctx, `INSERT INTO presence_sockets (user_id, process) VALUES ($1, $2)`, bob.ID, dead); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.presenceOf(t, alice, bob.ID); p.Online {
		t.Fatalf("bob on a silent process: %+v; want offline", p)
	}
	// The live process's heartbeat forgets it and says so.
	for {
		f := aliceWS.expect(t, "presence")
		var p presenceJSON
		if err := json.Unmarshal(f.Raw, &p); err != nil {
			t.Fatal(err)
		}
		if p.User == alice.ID {
			continue
		}
		if p.User != bob.ID || p.Online || p.LastSeen == nil {
			t.Fatalf("presence frame %s; want bob offline with last_seen", f.Raw)
		}
		break
	}
	var left int
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM presence_processes WHERE process = $1`, dead).Scan(&left); err != nil || left != 0 {
		t.Fatalf("the silent process's row: %d (%v); want it forgotten", left, err)
	}
	if p, _ := s.presenceOf(t, alice, bob.ID); p.Online || p.LastSeen == nil {
		t.Fatalf("GET presence = %+v; want offline with last_seen", p)
	}
}
