package notifier

import "context"

// Channel is one channel of a notifier, for a consumer that declares its
// own narrow interface of it (the event store's new-event hints, the
// projection tracker's announcements, auth's revocations) and so need not
// import this package.
type Channel struct {
	n    *Notifier
	name string
}

// Channel returns the channel name of n.
func (n *Notifier) Channel(name string) Channel { return Channel{n: n, name: name} }

// Listen calls onNotify with the payload of every notification on the
// channel, and onReady (which may be nil) each time the channel starts being
// listened to: see Notifier.Listen. stop ends the subscription.
func (c Channel) Listen(onNotify func(payload string), onReady func()) (stop func()) {
	return c.n.Listen(c.name, onNotify, onReady).Unlisten
}

// Notify sends payload to every process listening on the channel, this one
// included.
func (c Channel) Notify(ctx context.Context, payload string) error {
	return c.n.Notify(ctx, c.name, payload)
}
