package chatd

import (
	"context"

	"github.com/evchat/evchat/postgres/notifier"
	"github.com/evchat/evchat/realtime"
)

// notifierBus carries the real-time control notices (typing, session ends)
// over the process's one LISTEN connection.
type notifierBus struct{ n *notifier.Notifier }

var _ realtime.Bus = notifierBus{}

func (b notifierBus) Publish(ctx context.Context, channel, payload string) error {
	return b.n.Notify(ctx, channel, payload)
}

func (b notifierBus) Subscribe(channel string, onMessage func(payload string), onReady func()) {
	b.n.Listen(channel, onMessage, onReady)
}
