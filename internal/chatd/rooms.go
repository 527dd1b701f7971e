package chatd

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/commands"
	chathttp "github.com/evchat/evchat/http"
	"github.com/evchat/evchat/postgres"
	"github.com/evchat/evchat/realtime"
)

// newDeliveries returns the recorder of delivery receipts (run by Run).
func newDeliveries(cfg Config, cmds *commands.Service, pool *pgxpool.Pool, m *Main) *commands.Deliveries {
	return commands.NewDeliveries(cmds, commands.DeliveriesConfig{
		Lookup: postgres.NewLookups(pool), Logger: m.log,
		BatchSize: cfg.DeliveryBatch, FlushEvery: cfg.DeliveryFlush,
	})
}

// deliveriesOf is the recorder the API notes receipts in (none when the
// tests ask for quiet rooms).
func deliveriesOf(cfg Config, d *commands.Deliveries) chathttp.Deliveries {
	if cfg.Hooks.QuietRooms {
		return nil
	}
	return d
}

// presenceOf is this process's presence (none when the tests ask for quiet
// rooms).
func presenceOf(cfg Config, pool *pgxpool.Pool) chathttp.Presence {
	if cfg.Hooks.QuietRooms {
		return nil
	}
	return newPresence(cfg, pool)
}

// presenceTTL is how many heartbeats a process may miss before the others
// forget it and its users go offline.
const presenceTTL = 3

// newPresence returns this process's presence, under a fresh process id.
func newPresence(cfg Config, pool *pgxpool.Pool) presence {
	return presence{postgres.NewPresence(pool, uuid.New(), presenceTTL*cfg.PresenceHeartbeat)}
}

// presence adapts postgres.Presence to http.Presence.
type presence struct{ *postgres.Presence }

func (p presence) Heartbeat(ctx context.Context) ([]realtime.Seen, error) {
	s, err := p.Presence.Heartbeat(ctx)
	return seen(s), err
}

func (p presence) Gone(ctx context.Context, at time.Time) ([]realtime.Seen, error) {
	s, err := p.Presence.Gone(ctx, at)
	return seen(s), err
}

func seen(s []postgres.Seen) []realtime.Seen {
	out := make([]realtime.Seen, len(s))
	for i, v := range s {
		out[i] = realtime.Seen{User: v.User, At: v.At}
	}
	return out
}
