package chatd

import (
	"context"

	"github.com/evchat/evchat/auth"
	"github.com/evchat/evchat/postgres/notifier"
	"github.com/evchat/evchat/realtime"
)

// notifierBus carries the notices between processes (typing, logouts) over
// the process's one LISTEN connection.
type notifierBus struct{ n *notifier.Notifier }

var (
	_ realtime.Bus = notifierBus{}
	_ auth.Bus     = notifierBus{}
)

func (b notifierBus) Publish(ctx context.Context, channel, payload string) error {
	return b.n.Notify(ctx, channel, payload)
}

func (b notifierBus) Subscribe(channel string, onMessage func(payload string), onReady func()) {
	b.n.Listen(channel, onMessage, onReady)
}

// all is closed once every one of chans is.
func all(chans ...<-chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		for _, c := range chans {
			<-c
		}
		close(done)
	}()
	return done
}
