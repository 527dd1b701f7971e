package main

import (
	"context"
	"math/rand/v2"
	"strconv"
)

// runB: loadClients clients, all members of one room, post to it at once:
// every send contends for the same stream.
func runB(ctx context.Context, e *env) (*sendLoadResult, error) {
	if err := e.provisionUsers(ctx, loadClients); err != nil {
		return nil, err
	}
	clients := e.users[:loadClients]
	rooms, err := e.createRooms(ctx, "b", clients, 1, loadClients)
	if err != nil {
		return nil, err
	}
	hot := rooms[0]
	e.logf("b: %d clients sending to one room for %s (+%s warm-up)", loadClients, e.opts.duration, e.opts.warmup)
	spec := loadSpec{name: "b", workers: loadClients, warmup: e.opts.warmup, duration: e.opts.duration, cpu: e.cpuNow}
	sums, err := closedLoop(ctx, spec, e.errs, func(ctx context.Context, w int, rng *rand.Rand) (int, error) {
		return 0, e.api.send(ctx, hot.members[w], hot.id, "chatbench b "+strconv.FormatUint(rng.Uint64(), 36))
	})
	if err != nil {
		return nil, err
	}
	return &sendLoadResult{Clients: loadClients, Rooms: 1, RoomMembers: loadClients, Sends: sums[0]}, nil
}
