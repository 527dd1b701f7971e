package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
)

// readAfterWriteResult is scenario r: what read-your-writes costs a read.
// A send answers once its event is in the log; the sender's next read
// waits for the read model to show it (CHAT_READ_WAIT). Quiet lists (no
// writes anywhere) are the baseline, in the same run.
type readAfterWriteResult struct {
	Clients int `json:"clients"`
	Rooms   int `json:"rooms"`
	// QuietList: lists of a room while nobody writes. QuietUserList and
	// QuietRooms, in the same loop (each client takes the three in
	// turn): the client's messages across rooms (list-messages) and its
	// rooms with their unread counts (list-chatrooms).
	QuietList     summary `json:"quiet_list"`
	QuietUserList summary `json:"quiet_user_list"`
	QuietRooms    summary `json:"quiet_rooms"`
	// Send and ListAfterSend: each client sends, then lists the room it
	// sent to, over and over.
	Send          summary `json:"send"`
	ListAfterSend summary `json:"list_after_send"`
	// ListEchoed is a list after a send that echoes the send's
	// X-Chat-Position: it waits for that position only.
	ListEchoed summary `json:"list_echoed"`
	// Stale counts lists after a send that did not show it.
	Stale int64 `json:"stale"`
}

// runR measures a list right after the client's own send against a list
// with no writes going on.
func runR(ctx context.Context, e *env) (*readAfterWriteResult, error) {
	clients, mine, err := e.spreadRooms(ctx, "r")
	if err != nil {
		return nil, err
	}
	half := e.opts.duration / 2
	e.logf("r: %d clients listing rooms for %s, then sending and listing for %s (+%s warm-up each)",
		loadClients, half, half, e.opts.warmup)
	turn := make([]int, loadClients)
	quiet, err := closedLoop(ctx, loadSpec{name: "r quiet", workers: loadClients, buckets: 3, warmup: e.opts.warmup, duration: half},
		e.errs, func(ctx context.Context, w int, rng *rand.Rand) (int, error) {
			turn[w]++
			switch turn[w] % 3 {
			case 1:
				return 1, e.api.get(ctx, clients[w], "/list-messages/")
			case 2:
				return 2, e.api.get(ctx, clients[w], "/list-chatrooms/")
			}
			return 0, e.api.listRoom(ctx, clients[w], mine[w][rng.IntN(len(mine[w]))])
		})
	if err != nil {
		return nil, err
	}
	// Each worker alternates: a send (bucket 0), then a list of that room
	// (bucket 1, or 2 every other time: echoing the send's position) that
	// must show the send.
	type last struct {
		room, id int64
		pos      string
		n        int
	}
	pending := make([]last, loadClients)
	var stale atomic.Int64
	sums, err := closedLoop(ctx, loadSpec{name: "r", workers: loadClients, buckets: 3, warmup: e.opts.warmup, duration: half, cpu: e.cpuNow},
		e.errs, func(ctx context.Context, w int, rng *rand.Rand) (int, error) {
			if p := pending[w]; p.id != 0 {
				pending[w].id = 0
				bucket := 1
				if p.n%2 == 1 {
					bucket = 2
					ctx = context.WithValue(ctx, headerKey{}, [2]string{"X-Chat-Position", p.pos})
				}
				msgs, err := e.api.listRoomMessages(ctx, clients[w], p.room)
				if err == nil && !slices.ContainsFunc(msgs, func(m message) bool { return m.ID == p.id }) {
					stale.Add(1)
				}
				return bucket, err
			}
			room := mine[w][rng.IntN(len(mine[w]))]
			m, err := e.api.sendMessage(ctx, clients[w], room, "chatbench r "+strconv.FormatUint(rng.Uint64(), 36))
			if err == nil {
				pending[w] = last{room, m.ID, m.Position, pending[w].n + 1}
			}
			return 0, err
		})
	if err != nil {
		return nil, err
	}
	return &readAfterWriteResult{Clients: loadClients, Rooms: spreadRooms, QuietList: quiet[0], QuietUserList: quiet[1], QuietRooms: quiet[2],
		Send: sums[0], ListAfterSend: sums[1], ListEchoed: sums[2], Stale: stale.Load()}, nil
}

// headerKey carries one request header in a request's context.
type headerKey struct{}

// sendMessage posts a text message and returns it.
func (a *api) sendMessage(ctx context.Context, u *user, room int64, text string) (message, error) {
	var m message
	err := a.do(ctx, http.MethodPost, "/send-message/", u.token, sendBody{room, text}, http.StatusCreated, &m)
	return m, err
}

// Goals of scenario r.
const goalRListP99Ms = 25.0

func evaluateR(r *readAfterWriteResult) goal {
	return goal{Scenario: "r", Goal: fmt.Sprintf("no stale read; list after send p99 < %.0fms", goalRListP99Ms),
		Measured: fmt.Sprintf("%d stale, p99 = %s (quiet %s)", r.Stale, fmtMs(r.ListAfterSend.P99Ms), fmtMs(r.QuietList.P99Ms)),
		Status:   status(r.Stale == 0 && r.ListAfterSend.P99Ms < goalRListP99Ms)}
}

func rowsR(r *readAfterWriteResult, goals []goal) []row {
	q := loadRow(fmt.Sprintf("r: list, %d clients, no writes", r.Clients), r.QuietList, "lists/s")
	q.ratio = "-"
	um := loadRow("r: list-messages, no writes", r.QuietUserList, "lists/s")
	um.ratio = fmt.Sprintf("list-messages/list p50 = %s", fmtRatio(ratio(r.QuietUserList.P50Ms, r.QuietList.P50Ms)))
	rooms := loadRow("r: list-chatrooms, no writes", r.QuietRooms, "lists/s")
	rooms.ratio = fmt.Sprintf("list-chatrooms/list p50 = %s", fmtRatio(ratio(r.QuietRooms.P50Ms, r.QuietList.P50Ms)))
	s := loadRow("r: send (then list)", r.Send, "sends/s")
	l := loadRow("r: list after own send, head", r.ListAfterSend, "lists/s")
	l.ratio = fmt.Sprintf("after-send/quiet p50 = %s, p99 = %s", fmtRatio(ratio(r.ListAfterSend.P50Ms, r.QuietList.P50Ms)),
		fmtRatio(ratio(r.ListAfterSend.P99Ms, r.QuietList.P99Ms)))
	x := loadRow("r: list after own send, echoed", r.ListEchoed, "lists/s")
	x.ratio = fmt.Sprintf("echoed/quiet p50 = %s, p99 = %s", fmtRatio(ratio(r.ListEchoed.P50Ms, r.QuietList.P50Ms)),
		fmtRatio(ratio(r.ListEchoed.P99Ms, r.QuietList.P99Ms)))
	return []row{q, um, rooms, s, l.with(goalOf(goals, "r")), x}
}
