package main

import (
	"context"
	"math/rand/v2"
	"strconv"
)

// sendLoadResult is a closed-loop send load: scenarios a and b.
type sendLoadResult struct {
	Clients     int     `json:"clients"`
	Rooms       int     `json:"rooms"`
	RoomMembers int     `json:"room_members"`
	Sends       summary `json:"sends"`
}

const (
	loadClients = 16  // client goroutines of scenarios a and b, one user each
	spreadRooms = 100 // rooms of scenario a
	spreadSize  = 4   // members of each room of scenario a
)

// spreadRooms provisions loadClients clients and spreadRooms rooms of
// spreadSize members named by prefix, and returns each client's rooms:
// client i is member k of room r when i == (r*size+k) % clients.
func (e *env) spreadRooms(ctx context.Context, prefix string) (clients []*user, mine [][]int64, err error) {
	if err := e.provisionUsers(ctx, loadClients); err != nil {
		return nil, nil, err
	}
	clients = e.users[:loadClients]
	rooms, err := e.createRooms(ctx, prefix, clients, spreadRooms, spreadSize)
	if err != nil {
		return nil, nil, err
	}
	mine = make([][]int64, loadClients)
	for r, rm := range rooms {
		for k := range spreadSize {
			i := (r*spreadSize + k) % loadClients
			mine[i] = append(mine[i], rm.id)
		}
	}
	return clients, mine, nil
}

// runA: loadClients clients post to random rooms of theirs among
// spreadRooms rooms of spreadSize members; no room is hot.
func runA(ctx context.Context, e *env) (*sendLoadResult, error) {
	clients, mine, err := e.spreadRooms(ctx, "a")
	if err != nil {
		return nil, err
	}
	e.logf("a: %d clients sending to %d rooms of %d members for %s (+%s warm-up)",
		loadClients, spreadRooms, spreadSize, e.opts.duration, e.opts.warmup)
	spec := loadSpec{name: "a", workers: loadClients, warmup: e.opts.warmup, duration: e.opts.duration, cpu: e.cpuNow}
	sums, err := closedLoop(ctx, spec, e.errs, func(ctx context.Context, w int, rng *rand.Rand) (int, error) {
		room := mine[w][rng.IntN(len(mine[w]))]
		return 0, e.api.send(ctx, clients[w], room, "chatbench a "+strconv.FormatUint(rng.Uint64(), 36))
	})
	if err != nil {
		return nil, err
	}
	return &sendLoadResult{Clients: loadClients, Rooms: spreadRooms, RoomMembers: spreadSize, Sends: sums[0]}, nil
}
