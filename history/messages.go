package history

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/readmodel"
)

// backward walks a stream from a located revision towards its start,
// first through the events the locating read already holds.
type backward struct {
	log    eventstore.Store
	stream string
	buf    []eventstore.RecordedEvent // in stream order, taken from the end
	next   int64                      // the next revision to read below buf; -1: none
	page   int
}

func newBackward(log eventstore.Store, stream string, loc located) *backward {
	b := &backward{log: log, stream: stream, buf: loc.tail, next: loc.rev, page: 64}
	if len(loc.tail) > 0 {
		b.next = int64(loc.tail[0].Revision) - 1
	}
	return b
}

// prev returns the event before the last one returned; ok false at the
// stream's start.
func (b *backward) prev(ctx context.Context) (eventstore.RecordedEvent, bool, error) {
	if len(b.buf) == 0 {
		if b.next < 0 {
			return eventstore.RecordedEvent{}, false, nil
		}
		events, err := b.log.ReadStream(ctx, b.stream, eventstore.Backwards, uint64(b.next), b.page)
		if errors.Is(err, eventstore.ErrStreamNotFound) {
			events, err = nil, nil
		}
		if err != nil {
			return eventstore.RecordedEvent{}, false, fmt.Errorf("history: read %s: %w", b.stream, err)
		}
		if len(events) == 0 {
			b.next = -1
			return eventstore.RecordedEvent{}, false, nil
		}
		slices.Reverse(events)
		b.buf = events
		b.next = int64(events[0].Revision) - 1
		b.page = min(2*b.page, 8*BlockSize)
	}
	e := b.buf[len(b.buf)-1]
	b.buf = b.buf[:len(b.buf)-1]
	return e, true, nil
}

// change is an event of a message's life after its send.
type change struct {
	ev domain.Event
	at time.Time
}

// sent is a message's send as the log holds it.
type sent struct {
	e   domain.MessageSent
	at  time.Time
	pos eventstore.Position
}

// room locates the cut in a room's stream and checks that user was a
// member then: ErrConversationNotFound when the room did not exist yet,
// ErrNotMember when the user was not in it.
func (r *Reader) room(ctx context.Context, conv, user int64, cut Cut) (located, error) {
	stream := domain.ConversationStream(conv)
	locs, err := r.locateAll(ctx, []string{stream}, cut, true)
	if err != nil {
		return located{}, err
	}
	loc := locs[stream]
	if loc.rev < 0 || !loc.state.exists {
		return located{}, domain.ErrConversationNotFound
	}
	if _, ok := loc.state.conv.MembershipOf(user); !ok {
		return located{}, domain.ErrNotMember
	}
	return loc, nil
}

// Messages is a page of a room's messages as they stood at the cut, for a
// user who was a member then; paged like the live list (readmodel.Page).
//
// The newest page reads the room back from the cut to its oldest message;
// a page further back reads from the cut to it, so its cost grows with how
// far back of the cut it lies.
func (r *Reader) Messages(ctx context.Context, user, conv int64, cut Cut, p readmodel.Page) (readmodel.PageResult, error) {
	loc, err := r.room(ctx, conv, user, cut)
	if err != nil {
		return readmodel.PageResult{}, err
	}
	// The receipts of a page are mostly those of the members of then:
	// find them in their streams while the room is walked.
	ahead := r.locateAhead(ctx, conv, cut, loc.state.conv.Members())
	defer ahead.wait()
	forward := p.After > 0 || p.Forward
	var picked []sent // newest first
	beyond := false   // a message lies on the far side of the cursor
	life, err := r.walk(ctx, conv, loc, func(s sent) bool {
		id := s.e.MessageID
		switch {
		case forward && id <= p.After:
			beyond = true
			return false
		case forward:
			picked = append(picked, s)
		case p.Before > 0 && id >= p.Before:
			beyond = true
		default:
			picked = append(picked, s)
			return len(picked) <= p.Limit
		}
		return true
	})
	if err != nil {
		return readmodel.PageResult{}, err
	}
	more := len(picked) > p.Limit
	switch {
	case more && forward:
		picked = picked[len(picked)-p.Limit:] // the oldest after the cursor
	case more:
		picked = picked[:p.Limit]
	}
	msgs, err := r.render(ctx, cut, picked, life, ahead)
	if err != nil {
		return readmodel.PageResult{}, err
	}
	return pageOf(msgs, p, forward, more, beyond), nil
}

// Message is one message as it stood at the cut: ErrMessageNotFound when
// it was not sent yet (or the room did not exist), ErrNotMember when the
// user was not a member of its room then.
func (r *Reader) Message(ctx context.Context, user, id int64, cut Cut) (readmodel.Message, error) {
	conv, ok, err := r.cfg.Rooms.MessageRoom(ctx, id)
	if err != nil {
		return readmodel.Message{}, fmt.Errorf("history: message %d: %w", id, err)
	}
	if !ok {
		return readmodel.Message{}, domain.ErrMessageNotFound
	}
	loc, err := r.room(ctx, conv, user, cut)
	if errors.Is(err, domain.ErrConversationNotFound) {
		return readmodel.Message{}, domain.ErrMessageNotFound
	}
	if err != nil {
		return readmodel.Message{}, err
	}
	var found []sent
	life, err := r.walk(ctx, conv, loc, func(s sent) bool {
		if s.e.MessageID == id {
			found = append(found, s)
		}
		return s.e.MessageID > id // ids fall as the walk goes back
	})
	if err != nil {
		return readmodel.Message{}, err
	}
	if len(found) == 0 {
		return readmodel.Message{}, domain.ErrMessageNotFound
	}
	msgs, err := r.render(ctx, cut, found, life, nil)
	if err != nil {
		return readmodel.Message{}, err
	}
	return msgs[0], nil
}

// messageLife reports whether events of type typ send or change a message:
// the events walk reads, and the only ones the room's state skips.
func messageLife(typ string) bool {
	switch typ {
	case domain.TypeMessageSent, domain.TypeMessageEdited, domain.TypeMessageDeleted,
		domain.TypeReactionAdded, domain.TypeReactionRemoved:
		return true
	}
	return false
}

// walk reads a room back from the cut, handing each send to visit until
// it returns false, and returns the changes to the messages it read on
// the way (each message's newest first). A message's changes all lie
// between its send and the cut, so they are all read by the time its send
// is.
func (r *Reader) walk(ctx context.Context, conv int64, loc located, visit func(sent) bool) (map[int64][]change, error) {
	life := map[int64][]change{}
	bw := newBackward(r.cfg.Log, domain.ConversationStream(conv), loc)
	for {
		e, ok, err := bw.prev(ctx)
		if err != nil || !ok {
			return life, err
		}
		if !messageLife(e.Type) {
			continue // the room's other events change no message
		}
		ev, md, known, err := r.cfg.Registry.DecodeRecorded(e.ID.String(), e.Type, e.Data, e.Metadata, e.Created)
		if err != nil {
			return nil, fmt.Errorf("history: %w", err)
		}
		if !known {
			continue
		}
		switch x := ev.(type) {
		case domain.MessageSent:
			if !visit(sent{e: x, at: md.Time, pos: e.Position}) {
				return life, nil
			}
		case domain.MessageEdited:
			life[x.MessageID] = append(life[x.MessageID], change{ev, md.Time})
		case domain.MessageDeleted:
			life[x.MessageID] = append(life[x.MessageID], change{ev, md.Time})
		case domain.ReactionAdded:
			life[x.MessageID] = append(life[x.MessageID], change{ev, md.Time})
		case domain.ReactionRemoved:
			life[x.MessageID] = append(life[x.MessageID], change{ev, md.Time})
		}
	}
}

// render makes the messages of sends as they stood at the cut, in id
// order: their changes applied, then their receipts.
func (r *Reader) render(ctx context.Context, cut Cut, sends []sent, life map[int64][]change, ahead *ahead) ([]readmodel.Message, error) {
	msgs := make([]readmodel.Message, len(sends))
	for i, s := range sends {
		msgs[i] = messageAt(s, life[s.e.MessageID])
	}
	slices.SortFunc(msgs, func(a, b readmodel.Message) int { return cmp.Compare(a.ID, b.ID) })
	if err := r.receipts(ctx, cut, msgs, ahead); err != nil {
		return nil, err
	}
	return msgs, nil
}

// messageAt applies a message's changes (newest first) to its send, as
// the read model's projection does.
func messageAt(s sent, changes []change) readmodel.Message {
	e := s.e
	m := readmodel.Message{
		ID: e.MessageID, ConversationID: e.ConversationID, SenderID: e.SenderID,
		Receivers: slices.Clone(e.Receivers), ReadBy: []int64{}, DeliveredTo: []int64{},
		Text: e.Text, Picture: e.Picture, Video: e.Video,
		CreatedAt: s.at, UpdatedAt: s.at, Position: s.pos,
	}
	if m.Receivers == nil {
		m.Receivers = []int64{}
	}
	if e.ReplyTo != 0 {
		reply := e.ReplyTo
		m.ReplyTo = &reply
	}
	reactions := map[string]map[int64]bool{}
	for i := len(changes) - 1; i >= 0; i-- {
		c := changes[i]
		at := c.at
		switch x := c.ev.(type) {
		case domain.MessageEdited:
			if m.DeletedAt == nil {
				m.Text, m.EditedAt = x.Text, &at
				m.UpdatedAt = later(m.UpdatedAt, at)
			}
		case domain.MessageDeleted:
			if m.DeletedAt == nil {
				m.DeletedAt = &at
			}
			m.Text, m.Picture, m.Video = "", nil, nil
			m.UpdatedAt = later(m.UpdatedAt, at)
		case domain.ReactionAdded:
			if reactions[x.Emoji] == nil {
				reactions[x.Emoji] = map[int64]bool{}
			}
			reactions[x.Emoji][x.UserID] = true
		case domain.ReactionRemoved:
			delete(reactions[x.Emoji], x.UserID)
			if len(reactions[x.Emoji]) == 0 {
				delete(reactions, x.Emoji)
			}
		}
	}
	m.Reactions = make(map[string][]int64, len(reactions))
	for emoji, users := range reactions {
		m.Reactions[emoji] = slices.Sorted(maps.Keys(users))
	}
	return m
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// ahead locates receipt streams in the background.
type ahead struct {
	done chan struct{}
	locs map[string]located
	err  error
}

// locateAhead starts locating the cut in the receipt and delivery streams
// of users in room conv.
func (r *Reader) locateAhead(ctx context.Context, conv int64, cut Cut, users []int64) *ahead {
	a := &ahead{done: make(chan struct{})}
	go func() {
		defer close(a.done)
		a.locs, a.err = r.locateAll(ctx, receiptStreams(conv, users), cut, false)
	}()
	return a
}

// wait returns what locateAhead found.
func (a *ahead) wait() (map[string]located, error) {
	<-a.done
	return a.locs, a.err
}

// receiptStreams are the receipt and delivery streams of users in a room.
func receiptStreams(conv int64, users []int64) []string {
	streams := make([]string, 0, 2*len(users))
	for _, u := range users {
		streams = append(streams, domain.ReceiptStream(conv, u), domain.DeliveryStream(conv, u))
	}
	return streams
}

// receipts fills read_by and delivered_to as they stood at the cut. A
// receipt names messages sent before it, so each receiver's receipt and
// delivery streams in a room are read back from the cut only to the room's
// oldest message. The streams ahead (when not nil) located already are
// not located again.
func (r *Reader) receipts(ctx context.Context, cut Cut, msgs []readmodel.Message, ahead *ahead) error {
	if len(msgs) == 0 {
		return nil
	}
	byID := make(map[int64]*readmodel.Message, len(msgs))
	oldest := map[int64]eventstore.Position{} // by room
	readers := map[int64]map[int64]bool{}     // by room
	for i := range msgs {
		m := &msgs[i]
		byID[m.ID] = m
		if o, ok := oldest[m.ConversationID]; !ok || m.Position.Less(o) {
			oldest[m.ConversationID] = m.Position
		}
		if readers[m.ConversationID] == nil {
			readers[m.ConversationID] = map[int64]bool{}
		}
		for _, u := range m.Receivers {
			readers[m.ConversationID][u] = true
		}
	}
	var streams []string
	var rooms []int64 // the room of each stream
	for _, conv := range slices.Sorted(maps.Keys(readers)) {
		for _, s := range receiptStreams(conv, slices.Sorted(maps.Keys(readers[conv]))) {
			streams, rooms = append(streams, s), append(rooms, conv)
		}
	}
	locs := make(map[string]located, len(streams))
	if ahead != nil {
		found, err := ahead.wait()
		if err != nil {
			return err
		}
		for _, s := range streams {
			if loc, ok := found[s]; ok {
				locs[s] = loc
			}
		}
	}
	if len(locs) < len(streams) {
		var missing []string
		for _, s := range streams {
			if _, ok := locs[s]; !ok {
				missing = append(missing, s)
			}
		}
		more, err := r.locateAll(ctx, missing, cut, false)
		if err != nil {
			return err
		}
		maps.Copy(locs, more)
	}
	type mark struct {
		id, user int64
		read     bool
	}
	var mu sync.Mutex
	var marks []mark
	err := parallel(len(streams), func(i int) error {
		stream, oldest := streams[i], oldest[rooms[i]]
		bw := newBackward(r.cfg.Log, stream, locs[stream])
		var mine []mark
		for {
			e, ok, err := bw.prev(ctx)
			if err != nil {
				return err
			}
			if !ok || !oldest.Less(e.Position) {
				break
			}
			ev, _, known, err := r.cfg.Registry.DecodeRecorded(e.ID.String(), e.Type, e.Data, e.Metadata, e.Created)
			if err != nil {
				return fmt.Errorf("history: %w", err)
			}
			if !known {
				continue
			}
			switch x := ev.(type) {
			case domain.MessagesRead:
				for _, id := range x.MessageIDs {
					mine = append(mine, mark{id, x.ReaderID, true})
				}
			case domain.MessagesDelivered:
				for _, id := range x.MessageIDs {
					mine = append(mine, mark{id, x.ReceiverID, false})
				}
			}
		}
		mu.Lock()
		marks = append(marks, mine...)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range marks {
		m := byID[k.id]
		if m == nil || !slices.Contains(m.Receivers, k.user) {
			continue
		}
		if k.read && !slices.Contains(m.ReadBy, k.user) {
			m.ReadBy = append(m.ReadBy, k.user)
		}
		if !slices.Contains(m.DeliveredTo, k.user) { // read implies delivered
			m.DeliveredTo = append(m.DeliveredTo, k.user)
		}
	}
	for _, m := range byID {
		slices.Sort(m.ReadBy)
		slices.Sort(m.DeliveredTo)
	}
	return nil
}

// parallel runs fn for 0..n-1, four at a time, and returns the first error.
func parallel(n int, fn func(i int) error) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	sem := make(chan struct{}, 4)
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// pageOf links a page as the live list does (readmodel's pageQuery).
func pageOf(msgs []readmodel.Message, p readmodel.Page, forward, more, beyond bool) readmodel.PageResult {
	cursor := int64(0)
	switch {
	case forward:
		cursor = p.After
	case p.Before > 0:
		cursor = p.Before
	}
	hasPrev, hasNext := more, beyond
	if forward {
		hasPrev, hasNext = beyond, more
	}
	var res readmodel.PageResult
	switch {
	case hasPrev && len(msgs) > 0:
		res.Prev = &readmodel.Page{Before: msgs[0].ID, Limit: p.Limit}
	case hasPrev && cursor < math.MaxInt64:
		res.Prev = &readmodel.Page{Before: cursor + 1, Limit: p.Limit}
	case hasPrev:
		res.Prev = &readmodel.Page{Limit: p.Limit}
	}
	switch {
	case hasNext && len(msgs) > 0:
		res.Next = &readmodel.Page{After: msgs[len(msgs)-1].ID, Forward: true, Limit: p.Limit}
	case hasNext:
		res.Next = &readmodel.Page{After: cursor - 1, Forward: true, Limit: p.Limit}
	}
	if msgs == nil {
		msgs = []readmodel.Message{}
	}
	res.Messages = msgs
	return res
}
