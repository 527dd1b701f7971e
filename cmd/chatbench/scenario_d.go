package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/evchat/evchat/internal/jsonscan"
)

// fanoutResult is the real-time delivery of an open-loop send load.
type fanoutResult struct {
	Sockets     int `json:"sockets"`
	Rooms       int `json:"rooms"`
	RoomMembers int `json:"room_members"`
	Users       int `json:"users"`
	TargetRate  int `json:"target_sends_per_s"`
	// Sends is the REST latency of the measured sends; its rate is the
	// achieved send rate.
	Sends summary `json:"sends"`
	// MaxScheduleLagMs is how far the sender fell behind its schedule
	// (all senders busy): above a few ms the target rate was not offered.
	MaxScheduleLagMs float64 `json:"max_schedule_lag_ms"`
	// Deliveries are counted per message: each successful send is expected
	// on every socket of its room.
	Expected   int64 `json:"expected_deliveries"`
	Delivered  int64 `json:"delivered"`
	Missing    int64 `json:"missing"`
	Duplicates int64 `json:"duplicates"`
	// OutOfOrder counts frames whose message id was not above the previous
	// one on the same socket; WrongRoom frames of another room's message.
	OutOfOrder  int64 `json:"out_of_order"`
	WrongRoom   int64 `json:"wrong_room"`
	ErrorFrames int64 `json:"error_frames"`
	// Frames counts every frame the sockets received over the whole run
	// (warm-up and drain included), by type.
	Frames map[string]int64 `json:"frames_by_type"`
	// FailedSendFrames are deliveries of sends that answered an error.
	FailedSendFrames int64   `json:"failed_send_frames"`
	CPU              *cpuUse `json:"cpu_cores,omitempty"`
	DeliveredRate    float64 `json:"delivered_frames_per_s"`
	// Latency is from the start of the send request to the frame's arrival.
	Latency            summary        `json:"latency"`
	LatencyHistogram   string         `json:"latency_histogram"`
	DrainSeconds       float64        `json:"drain_seconds"`
	UnexpectedClosures map[string]int `json:"unexpected_closures,omitempty"`
}

const (
	fanoutRoomSize = 10
	fanoutSenders  = 128 // concurrent REST senders
	fanoutMaxUsers = 20  // users of the sockets (each in many rooms): registering is slow (bcrypt), sockets are what is measured
	drainTimeout   = 10 * time.Second
)

// receiver is the state of one socket, touched only by its reading goroutine
// until the socket is closed.
type receiver struct {
	room       int64
	lastID     int64
	latencies  []time.Duration
	outOfOrder int64
	wrongRoom  int64
	errors     int64 // "error" frames
	frames     map[string]int64
}

// runD opens opts.sockets sockets in rooms of fanoutRoomSize members (one
// socket per member and room), then posts opts.rate messages a second over
// REST on a fixed schedule, round-robin over the rooms, each text carrying
// its sequence number and send time. Receivers count every message's
// deliveries and their latency.
func runD(ctx context.Context, e *env) (*fanoutResult, error) {
	nRooms := max(e.opts.sockets/fanoutRoomSize, 1)
	nUsers := min(fanoutMaxUsers, max(nRooms, fanoutRoomSize))
	if err := e.provisionUsers(ctx, nUsers); err != nil {
		return nil, err
	}
	rooms, err := e.createRooms(ctx, "d", e.users[:nUsers], nRooms, fanoutRoomSize)
	if err != nil {
		return nil, err
	}
	res := &fanoutResult{Sockets: nRooms * fanoutRoomSize, Rooms: nRooms, RoomMembers: fanoutRoomSize,
		Users: nUsers, TargetRate: e.opts.rate}

	warmSends := int(float64(e.opts.rate) * e.opts.warmup.Seconds())
	total := warmSends + int(float64(e.opts.rate)*e.opts.duration.Seconds())
	counts := make([]atomic.Int32, total) // deliveries per sequence number
	base := time.Now()                    // send times are offsets from base

	var specs []socketSpec
	for _, r := range rooms {
		for _, u := range r.members {
			specs = append(specs, socketSpec{user: u, room: r.id})
		}
	}
	recv := make([]receiver, len(specs))
	for i, s := range specs {
		recv[i].room = s.room
		recv[i].frames = map[string]int64{}
	}
	onFrame := func(i int, data []byte) {
		at := time.Since(base)
		f, ok := readFrame(data)
		if !ok {
			recv[i].frames["(not JSON)"]++
			return
		}
		recv[i].frames[f.Type]++
		if f.Type != "message" {
			if f.Type == "error" {
				recv[i].errors++
			}
			return
		}
		seq, sent, ok := parseFanoutText(f.Text)
		if !ok || seq < 0 || seq >= total {
			return
		}
		r := &recv[i]
		if f.Conversation != r.room {
			r.wrongRoom++
			return
		}
		if f.ID <= r.lastID {
			r.outOfOrder++
		}
		r.lastID = max(r.lastID, f.ID)
		counts[seq].Add(1)
		if seq >= warmSends {
			r.latencies = append(r.latencies, at-sent)
		}
	}

	e.logf("d: opening %d sockets in %d rooms of %d (%d users)", len(specs), nRooms, fanoutRoomSize, nUsers)
	socks, err := openSockets(ctx, e.api, specs, 32, onFrame)
	if err != nil {
		return nil, fmt.Errorf("d: %w", err)
	}
	closed := false
	defer func() {
		if !closed {
			closeSockets(socks)
		}
	}()

	e.logf("d: sending %d messages/s over REST for %s (+%s warm-up)", e.opts.rate, e.opts.duration, e.opts.warmup)
	ok := make([]bool, total) // written by the sender of each sequence number
	sendLat := make([][]time.Duration, fanoutSenders)
	jobs := make(chan int, 1024)
	var wg sync.WaitGroup
	for w := range fanoutSenders {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w)+1, uint64(base.UnixNano())))
			for seq := range jobs {
				r := rooms[seq%len(rooms)]
				u := r.members[rng.IntN(len(r.members))]
				t0 := time.Since(base)
				text := "cb " + strconv.Itoa(seq) + " " + strconv.FormatInt(int64(t0), 10)
				if err := e.api.send(ctx, u, r.id, text); err != nil {
					if ctx.Err() == nil {
						e.errs.add("d", err)
					}
					continue
				}
				ok[seq] = true
				if seq >= warmSends {
					sendLat[w] = append(sendLat[w], time.Since(base)-t0)
				}
			}
		})
	}
	measureFrom, cpuFrom := base, e.cpuNow()
	maxLag := pace(ctx, e.opts.rate, total, jobs, func(seq int, scheduled time.Time) {
		if seq == warmSends {
			measureFrom, cpuFrom = scheduled, e.cpuNow()
		}
	})
	close(jobs)
	wg.Wait()
	sendWindow := time.Since(measureFrom)
	res.CPU = e.cpuNow().since(cpuFrom)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res.MaxScheduleLagMs = ms(maxLag)

	// Wait until every successful measured send has reached its room.
	for _, ok := range ok[warmSends:] {
		if ok {
			res.Expected += fanoutRoomSize
		}
	}
	drainStart := time.Now()
	for time.Since(drainStart) < drainTimeout && ctx.Err() == nil {
		var got int64
		for seq := warmSends; seq < total; seq++ {
			if ok[seq] {
				got += int64(min(counts[seq].Load(), fanoutRoomSize))
			}
		}
		if got >= res.Expected {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	res.DrainSeconds = time.Since(drainStart).Seconds()
	res.UnexpectedClosures = unexpectedClosures(socks)
	closeSockets(socks)
	closed = true
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	for seq := warmSends; seq < total; seq++ {
		c := int64(counts[seq].Load())
		if !ok[seq] {
			res.FailedSendFrames += c
			continue
		}
		res.Delivered += min(c, fanoutRoomSize)
		res.Duplicates += max(c-fanoutRoomSize, 0)
	}
	res.Missing = res.Expected - res.Delivered
	var lat, sl []time.Duration
	res.Frames = map[string]int64{}
	for i := range recv {
		for t, n := range recv[i].frames {
			res.Frames[t] += n
		}
		lat = append(lat, recv[i].latencies...)
		res.OutOfOrder += recv[i].outOfOrder
		res.WrongRoom += recv[i].wrongRoom
		res.ErrorFrames += recv[i].errors
	}
	for _, s := range sendLat {
		sl = append(sl, s...)
	}
	window := max(sendWindow, e.opts.duration)
	res.Sends = summarize(sl, window)
	res.Sends.Errors = e.errs.total("d")
	res.Latency = summarize(lat, window)
	res.LatencyHistogram = histogram(lat)
	res.DeliveredRate = float64(res.Delivered) / window.Seconds()
	return res, nil
}

// pace hands out sequence numbers 0..total-1 on jobs at rate per second on
// a fixed schedule, calling at for each with its scheduled time. It returns
// how far behind the schedule a hand-out ever was (senders all busy).
func pace(ctx context.Context, rate, total int, jobs chan<- int, at func(seq int, scheduled time.Time)) time.Duration {
	begin := time.Now()
	interval := time.Second / time.Duration(rate)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var maxLag time.Duration
	for seq := 0; seq < total; {
		select {
		case <-ctx.Done():
			return maxLag
		case <-tick.C:
		}
		due := min(total, int(time.Since(begin)/interval)+1)
		for ; seq < due; seq++ {
			scheduled := begin.Add(time.Duration(seq) * interval)
			at(seq, scheduled)
			select {
			case jobs <- seq:
			case <-ctx.Done():
				return maxLag
			}
			maxLag = max(maxLag, time.Since(scheduled))
		}
	}
	return maxLag
}

// parseFanoutText reads "cb SEQ SENT_NS".
func parseFanoutText(s string) (seq int, sent time.Duration, ok bool) {
	rest, found := strings.CutPrefix(s, "cb ")
	if !found {
		return 0, 0, false
	}
	a, b, found := strings.Cut(rest, " ")
	if !found {
		return 0, 0, false
	}
	seq, err1 := strconv.Atoi(a)
	ns, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return seq, time.Duration(ns), true
}

// frame is what (d) reads of a frame.
type frame struct {
	Type         string `json:"type"`
	ID           int64  `json:"id"`
	Conversation int64  `json:"conversation"`
	Text         string `json:"text"`
}

var frameFields = []string{"type", "id", "conversation", "text"}

// readFrame reads a frame's type, id, conversation and text. The members
// are located without decoding the rest (20,000 frames a second: decoding
// each whole was a fifth of the load client's CPU, taken from the server on
// a shared machine); the ones read are parsed strictly, and a frame this
// does not follow (escapes, anything but printable ASCII in a string,
// numbers that are not integers) goes to encoding/json.
func readFrame(data []byte) (frame, bool) {
	var f frame
	ok := jsonscan.Each(data, func(name []byte, at jsonscan.Span) bool {
		v := data[at.Start:at.End]
		var ok bool
		switch string(name) {
		case "type":
			f.Type, ok = jsonscan.PlainString(v)
		case "text":
			f.Text, ok = jsonscan.PlainString(v)
		case "id":
			f.ID, ok = jsonscan.Integer(v)
		case "conversation":
			f.Conversation, ok = jsonscan.Integer(v)
		default:
			// encoding/json matches names regardless of case: leave
			// "Text" and the like to it.
			for _, field := range frameFields {
				if strings.EqualFold(string(name), field) {
					return false
				}
			}
			return true
		}
		return ok
	})
	if ok {
		return f, true
	}
	f = frame{}
	return f, json.Unmarshal(data, &f) == nil
}
