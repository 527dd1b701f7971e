package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// bigRoomResult compares a room holding many messages with an empty one.
type bigRoomResult struct {
	PrefillMessages int     `json:"prefill_messages"`
	PrefillSeconds  float64 `json:"prefill_seconds"`
	Clients         int     `json:"clients"`
	SendEmpty       summary `json:"send_empty"`
	SendBig         summary `json:"send_big"`
	ListEmpty       summary `json:"list_empty"`
	ListBig         summary `json:"list_big"`
	PageEmpty       int     `json:"list_page_empty"` // messages a list returned
	PageBig         int     `json:"list_page_big"`
	// ColdSend* time the first send to each room after a chatd restart,
	// when the server has to load the room's state instead of finding it
	// cached.
	ColdSendEmptyMs float64 `json:"cold_send_empty_ms"`
	ColdSendBigMs   float64 `json:"cold_send_big_ms"`
	// The big room's newest page now (ListLive) against a page of the
	// same room as it stood halfway through the pre-fill (ListAsOf, with
	// ?as_of=), alternating in every client. ColdAsOfMs is the first as_of
	// list of the run, which reads the room's log up to the cut and saves
	// the room's history index.
	AsOf       string  `json:"as_of,omitempty"`
	ListLive   summary `json:"list_live"`
	ListAsOf   summary `json:"list_as_of"`
	PageAsOf   int     `json:"list_page_as_of"`
	ColdAsOfMs float64 `json:"cold_as_of_ms"`
}

const (
	bigRoomMembers = 8
	bigRoomClients = 4  // clients of the measured phases
	prefillWorkers = 32 // clients filling the big room
	listPage       = 50 // the API's default page
)

// runC fills one room with opts.prefill messages, then measures sends,
// and then newest-page lists, in that room and in a room that started
// empty, alternating between the two rooms in every client so that both
// see the same conditions. Before the lists the small room is topped up to
// a full page, so both lists return the same number of messages.
func runC(ctx context.Context, e *env) (*bigRoomResult, error) {
	if err := e.provisionUsers(ctx, bigRoomMembers); err != nil {
		return nil, err
	}
	rooms, err := e.createRooms(ctx, "c", e.users[:bigRoomMembers], 2, bigRoomMembers)
	if err != nil {
		return nil, err
	}
	big, small := rooms[0], rooms[1]
	res := &bigRoomResult{PrefillMessages: e.opts.prefill, Clients: bigRoomClients}
	t0 := time.Now()
	half, err := prefill(ctx, e, big, e.opts.prefill)
	if err != nil {
		return nil, err
	}
	res.PrefillSeconds = time.Since(t0).Seconds()
	if err := e.checkpoint(ctx); err != nil {
		return nil, err
	}

	pick := func(bucket int) room {
		if bucket == 1 {
			return big
		}
		return small
	}
	var turns [bigRoomClients]int // per worker: alternate small, big
	phase := max(e.opts.duration/2, time.Second)
	e.logf("c: %d clients sending, alternating the empty and the big room, for %s (+%s warm-up)", bigRoomClients, phase, e.opts.warmup)
	spec := loadSpec{name: "c", workers: bigRoomClients, buckets: 2, warmup: e.opts.warmup, duration: phase, cpu: e.cpuNow}
	sends, err := closedLoop(ctx, spec, e.errs, func(ctx context.Context, w int, rng *rand.Rand) (int, error) {
		b := turns[w] % 2
		turns[w]++
		r := pick(b)
		return b, e.api.send(ctx, r.members[w%len(r.members)], r.id, "chatbench c "+strconv.FormatUint(rng.Uint64(), 36))
	})
	if err != nil {
		return nil, err
	}
	res.SendEmpty, res.SendBig = sends[0], sends[1]

	// A full page in the small room too.
	page, err := e.api.listRoomMessages(ctx, small.members[0], small.id)
	if err != nil {
		return nil, err
	}
	for i := len(page); i < listPage; i++ {
		if err := e.api.send(ctx, small.members[0], small.id, "chatbench c top-up"); err != nil {
			return nil, err
		}
	}

	e.logf("c: %d clients listing, alternating the two rooms, for %s (+%s warm-up)", bigRoomClients, phase, e.opts.warmup)
	turns = [bigRoomClients]int{}
	spec.name = "c list"
	lists, err := closedLoop(ctx, spec, e.errs, func(ctx context.Context, w int, _ *rand.Rand) (int, error) {
		b := turns[w] % 2
		turns[w]++
		r := pick(b)
		return b, e.api.listRoom(ctx, r.members[w%len(r.members)], r.id)
	})
	if err != nil {
		return nil, err
	}
	res.ListEmpty, res.ListBig = lists[0], lists[1]

	for _, x := range []struct {
		r   room
		out *int
	}{{small, &res.PageEmpty}, {big, &res.PageBig}} {
		page, err := e.api.listRoomMessages(ctx, x.r.members[0], x.r.id)
		if err != nil {
			return nil, err
		}
		*x.out = len(page)
	}

	if !half.IsZero() {
		if err := measureAsOf(ctx, e, spec, big, half, res); err != nil {
			return nil, err
		}
	}

	// The measured sends found the rooms' state cached. A restarted server
	// has to load it: time the first send to each room once. A list first
	// warms everything else (connections, token checks).
	e.logf("c: restarting chatd to time a first send with nothing cached")
	if err := e.restartChatd(ctx); err != nil {
		return nil, err
	}
	if err := e.api.listRoom(ctx, big.members[0], big.id); err != nil {
		return nil, err
	}
	for _, x := range []struct {
		r   room
		out *float64
	}{{small, &res.ColdSendEmptyMs}, {big, &res.ColdSendBigMs}} {
		t0 := time.Now()
		if err := e.api.send(ctx, x.r.members[0], x.r.id, "chatbench c cold"); err != nil {
			return nil, err
		}
		*x.out = ms(time.Since(t0))
	}
	return res, nil
}

// measureAsOf times the big room's page as it stood at the cut against
// its newest page, alternating in every client like the phases before.
func measureAsOf(ctx context.Context, e *env, spec loadSpec, big room, cut time.Time, res *bigRoomResult) error {
	res.AsOf = cut.UTC().Format(time.RFC3339Nano)
	t0 := time.Now()
	page, err := e.api.listRoomAsOf(ctx, big.members[0], big.id, res.AsOf)
	if err != nil {
		return err
	}
	res.ColdAsOfMs = ms(time.Since(t0))
	res.PageAsOf = len(page)

	e.logf("c: %d clients listing the big room now and as of %s, alternating, for %s (+%s warm-up)", bigRoomClients, res.AsOf, spec.duration, e.opts.warmup)
	var turns [bigRoomClients]int
	spec.name = "c as_of"
	lists, err := closedLoop(ctx, spec, e.errs, func(ctx context.Context, w int, _ *rand.Rand) (int, error) {
		b := turns[w] % 2
		turns[w]++
		u := big.members[w%len(big.members)]
		if b == 1 {
			_, err := e.api.listRoomAsOf(ctx, u, big.id, res.AsOf)
			return b, err
		}
		return b, e.api.listRoom(ctx, u, big.id)
	})
	if err != nil {
		return err
	}
	res.ListLive, res.ListAsOf = lists[0], lists[1]
	return nil
}

// prefill posts n messages to r over HTTP from prefillWorkers clients,
// retrying failed sends so that n succeed (a send that failed, by timing
// out say, may have been stored too). It returns the moment the first half
// of them had been acknowledged: a cut in the middle of the room's history.
func prefill(ctx context.Context, e *env, r room, n int) (time.Time, error) {
	if n <= 0 {
		return time.Time{}, nil
	}
	var half time.Time
	var halfOnce sync.Once
	e.logf("c: pre-filling a room with %d messages over HTTP (%d clients)", n, prefillWorkers)
	var claimed, done, failed atomic.Int64
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var abort error
	var once sync.Once
	var wg sync.WaitGroup
	for w := range prefillWorkers {
		wg.Go(func() {
			u := r.members[w%len(r.members)]
			for ctx.Err() == nil {
				i := claimed.Add(1)
				if i > int64(n) {
					claimed.Add(-1)
					return
				}
				if err := e.api.send(ctx, u, r.id, "chatbench c prefill "+strconv.FormatInt(i, 10)); err != nil {
					if ctx.Err() != nil {
						return
					}
					e.errs.add("c prefill", err)
					claimed.Add(-1) // someone sends it again
					if failed.Add(1) > int64(n/100+100) {
						once.Do(func() { abort = fmt.Errorf("c: pre-fill: too many failed sends (last: %w)", err); cancel() })
					}
					continue
				}
				if done.Add(1) == int64(n+1)/2 {
					halfOnce.Do(func() { half = time.Now() })
				}
			}
		})
	}
	stopProgress := make(chan struct{})
	go func() {
		start := time.Now()
		tick := time.NewTicker(15 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-tick.C:
				d := done.Load()
				rate := float64(d) / time.Since(start).Seconds()
				e.logf("c: pre-filled %d/%d (%.0f/s, about %.0fs to go)", d, n, rate, float64(int64(n)-d)/max(rate, 1))
			}
		}
	}()
	wg.Wait()
	close(stopProgress)
	if abort != nil {
		return time.Time{}, abort
	}
	return half, ctx.Err()
}
