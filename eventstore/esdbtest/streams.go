package esdbtest

import (
	"context"
	"encoding/binary"
	"errors"
	"io"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/serverfeatures"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
)

// serverVersion is what GetSupportedMethods reports: a version with the
// caught_up subscription message.
const serverVersion = "24.10.0"

type featuresServer struct {
	serverfeatures.UnimplementedServerFeaturesServer
}

func (featuresServer) GetSupportedMethods(context.Context, *shared.Empty) (*serverfeatures.SupportedMethods, error) {
	const svc = "event_store.client.streams.streams"
	return &serverfeatures.SupportedMethods{
		EventStoreServerVersion: serverVersion,
		Methods: []*serverfeatures.SupportedMethod{
			{ServiceName: svc, MethodName: "read"},
			{ServiceName: svc, MethodName: "append"},
		},
	}, nil
}

type streamsServer struct {
	api.UnimplementedStreamsServer
	s *Server
}

// Append implements the client-streaming append: options first, then the
// proposed messages, then one reply.
func (h *streamsServer) Append(stream api.Streams_AppendServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	opts := first.GetOptions()
	if opts == nil || opts.GetStreamIdentifier() == nil {
		return status.Error(codes.InvalidArgument, "append: the first message must carry the options")
	}
	name := string(opts.GetStreamIdentifier().GetStreamName())
	if name == "" {
		return status.Error(codes.InvalidArgument, "append: empty stream name")
	}
	var exp expectation
	switch o := opts.GetExpectedStreamRevision().(type) {
	case *api.AppendReq_Options_Revision:
		exp = expectation{kind: expectRevision, revision: o.Revision}
	case *api.AppendReq_Options_NoStream:
		exp = expectation{kind: expectNoStream}
	case *api.AppendReq_Options_StreamExists:
		exp = expectation{kind: expectStreamExists}
	case *api.AppendReq_Options_Any:
		exp = expectation{kind: expectAny}
	default:
		return status.Error(codes.InvalidArgument, "append: missing expected stream revision")
	}

	var events []proposed
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		m := req.GetProposedMessage()
		if m == nil {
			return status.Error(codes.InvalidArgument, "append: expected a proposed message")
		}
		p, err := proposedFromProto(m)
		if err != nil {
			return err
		}
		events = append(events, p)
	}

	if err := h.s.commitDelay(stream.Context()); err != nil {
		return status.FromContextError(err).Err()
	}
	res := h.s.log.append(name, exp, events, h.s.opts.NoIdempotentPosition)
	return stream.SendAndClose(appendResponse(exp, res))
}

func proposedFromProto(m *api.AppendReq_ProposedMessage) (proposed, error) {
	id, err := uuidFromProto(m.GetId())
	if err != nil {
		return proposed{}, status.Errorf(codes.InvalidArgument, "append: event id: %v", err)
	}
	md := m.GetMetadata()
	typ, ok := md["type"]
	if !ok {
		return proposed{}, status.Error(codes.InvalidArgument, "required metadata property missing: type")
	}
	ct, ok := md["content-type"]
	if !ok {
		return proposed{}, status.Error(codes.InvalidArgument, "required metadata property missing: content-type")
	}
	return proposed{id: id, eventType: typ, contentType: ct, data: m.GetData(), metadata: m.GetCustomMetadata()}, nil
}

func uuidFromProto(u *shared.UUID) (uuid.UUID, error) {
	if s := u.GetStructured(); s != nil {
		var id uuid.UUID
		binary.BigEndian.PutUint64(id[:8], uint64(s.GetMostSignificantBits()))
		binary.BigEndian.PutUint64(id[8:], uint64(s.GetLeastSignificantBits()))
		return id, nil
	}
	return uuid.Parse(u.GetString_())
}

func uuidToProto(id uuid.UUID, structured bool) *shared.UUID {
	if !structured {
		return &shared.UUID{Value: &shared.UUID_String_{String_: id.String()}}
	}
	return &shared.UUID{Value: &shared.UUID_Structured_{Structured: &shared.UUID_Structured{
		MostSignificantBits:  int64(binary.BigEndian.Uint64(id[:8])),
		LeastSignificantBits: int64(binary.BigEndian.Uint64(id[8:])),
	}}}
}

func appendResponse(exp expectation, res appendResult) *api.AppendResp {
	empty := &shared.Empty{}
	if res.ok {
		ok := &api.AppendResp_Success{}
		if res.lastRevision < 0 {
			ok.CurrentRevisionOption = &api.AppendResp_Success_NoStream{NoStream: empty}
		} else {
			ok.CurrentRevisionOption = &api.AppendResp_Success_CurrentRevision{CurrentRevision: uint64(res.lastRevision)}
		}
		if res.hasPosition {
			// The server answers with the commit position in both halves.
			ok.PositionOption = &api.AppendResp_Success_Position{Position: &api.AppendResp_Position{
				CommitPosition: res.position, PreparePosition: res.position,
			}}
		} else {
			ok.PositionOption = &api.AppendResp_Success_NoPosition{NoPosition: empty}
		}
		return &api.AppendResp{Result: &api.AppendResp_Success_{Success: ok}}
	}

	w := &api.AppendResp_WrongExpectedVersion{}
	if res.current < 0 {
		w.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentNoStream{CurrentNoStream: empty}
		w.CurrentRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_NoStream_20_6_0{NoStream_20_6_0: empty}
	} else {
		w.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentRevision{CurrentRevision: uint64(res.current)}
		w.CurrentRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_CurrentRevision_20_6_0{CurrentRevision_20_6_0: uint64(res.current)}
	}
	switch exp.kind {
	case expectAny:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedAny{ExpectedAny: empty}
		w.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_Any_20_6_0{Any_20_6_0: empty}
	case expectStreamExists:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedStreamExists{ExpectedStreamExists: empty}
		w.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_StreamExists_20_6_0{StreamExists_20_6_0: empty}
	case expectNoStream:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedNoStream{ExpectedNoStream: empty}
		// The 20.6.0 fields have no "no stream" expectation.
	case expectRevision:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedRevision{ExpectedRevision: exp.revision}
		w.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_ExpectedRevision_20_6_0{ExpectedRevision_20_6_0: exp.revision}
	}
	return &api.AppendResp{Result: &api.AppendResp_WrongExpectedVersion_{WrongExpectedVersion: w}}
}

// Read serves stream and $all reads and subscriptions. A read answers only
// with events or stream_not_found (the client panics on anything else); a
// subscription answers with a confirmation first.
func (h *streamsServer) Read(req *api.ReadReq, stream api.Streams_ReadServer) error {
	o := req.GetOptions()
	if o == nil {
		return status.Error(codes.InvalidArgument, "read: missing options")
	}
	if _, filtered := o.GetFilterOption().(*api.ReadReq_Options_Filter); filtered {
		return status.Error(codes.Unimplemented, "read: filters are not supported by the test server")
	}
	structured := o.GetUuidOption().GetString_() == nil
	send := func(r *record) error {
		return stream.Send(&api.ReadResp{Content: &api.ReadResp_Event{Event: eventToProto(r, structured)}})
	}

	var (
		all    bool
		name   string
		target position
	)
	switch so := o.GetStreamOption().(type) {
	case *api.ReadReq_Options_All:
		all = true
		switch a := so.All.GetAllOption().(type) {
		case *api.ReadReq_Options_AllOptions_Position:
			target = position{kind: atPosition, value: a.Position.GetCommitPosition()}
		case *api.ReadReq_Options_AllOptions_End:
			target = position{kind: atEnd}
		default:
			target = position{kind: atStart}
		}
	case *api.ReadReq_Options_Stream:
		name = string(so.Stream.GetStreamIdentifier().GetStreamName())
		switch r := so.Stream.GetRevisionOption().(type) {
		case *api.ReadReq_Options_StreamOptions_Revision:
			target = position{kind: atPosition, value: r.Revision}
		case *api.ReadReq_Options_StreamOptions_End:
			target = position{kind: atEnd}
		default:
			target = position{kind: atStart}
		}
	default:
		return status.Error(codes.InvalidArgument, "read: missing stream option")
	}

	if _, sub := o.GetCountOption().(*api.ReadReq_Options_Subscription); sub {
		if o.GetReadDirection() != api.ReadReq_Options_Forwards {
			return status.Error(codes.InvalidArgument, "subscribe: only forwards")
		}
		return h.subscribe(stream, all, name, target, send)
	}

	count := o.GetCount()
	recs, exists, _ := h.s.log.snapshot(name, all)
	if !all && !exists {
		return stream.Send(&api.ReadResp{Content: &api.ReadResp_StreamNotFound_{StreamNotFound: &api.ReadResp_StreamNotFound{
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(name)},
		}}})
	}
	var out []*record
	if o.GetReadDirection() == api.ReadReq_Options_Backwards {
		out = readBackwards(recs, all, target, count)
	} else {
		out = readForwards(recs, all, target, count)
	}
	for _, r := range out {
		if err := send(r); err != nil {
			return err
		}
	}
	return nil
}

type positionKind uint8

const (
	atStart positionKind = iota
	atEnd
	atPosition
)

// position is a read's starting point: a log position for $all, a
// revision for a stream.
type position struct {
	kind  positionKind
	value uint64
}

// key is the ordering value of r in the read's sequence.
func key(r *record, all bool) uint64 {
	if all {
		return r.position
	}
	return r.revision
}

// lowerBound returns the index of the first record whose key is at least v.
func lowerBound(recs []*record, all bool, v uint64) int {
	if all {
		return searchAll(recs, v)
	}
	return int(min(v, uint64(len(recs)))) // revisions are indexes
}

// readForwards is inclusive of the starting position or revision, as the
// real server's forward reads are.
func readForwards(recs []*record, all bool, from position, count uint64) []*record {
	i := 0
	switch from.kind {
	case atEnd:
		i = len(recs)
	case atPosition:
		i = lowerBound(recs, all, from.value)
	}
	end := len(recs)
	if uint64(end-i) > count {
		end = i + int(count)
	}
	return recs[i:end]
}

// readBackwards reads down from the end or from a point: a stream
// revision inclusive (a revision past the end reads from the last event),
// a $all position exclusive.
func readBackwards(recs []*record, all bool, from position, count uint64) []*record {
	hi := len(recs) // exclusive upper bound
	if from.kind == atStart {
		hi = 0
	} else if from.kind == atPosition {
		if all {
			hi = searchAll(recs, from.value)
		} else if from.value < uint64(len(recs)) {
			hi = int(from.value) + 1
		}
	}
	var out []*record
	for i := hi - 1; i >= 0 && uint64(len(out)) < count; i-- {
		out = append(out, recs[i])
	}
	return out
}

// subscribe sends the confirmation, then every record after the starting
// point (exclusive), caught_up once the snapshot is drained, then live
// records as they are published, until the client goes away.
func (h *streamsServer) subscribe(stream api.Streams_ReadServer, all bool, name string, from position, send func(*record) error) error {
	if err := stream.Send(&api.ReadResp{Content: &api.ReadResp_Confirmation{Confirmation: &api.ReadResp_SubscriptionConfirmation{
		SubscriptionId: uuid.NewString(),
	}}}); err != nil {
		return err
	}
	ctx := stream.Context()
	recs, _, changed := h.s.log.snapshot(name, all)
	next := 0
	switch from.kind {
	case atEnd:
		next = len(recs)
	case atPosition:
		next = lowerBound(recs, all, from.value)
		if next < len(recs) && key(recs[next], all) == from.value {
			next++ // exclusive
		}
	}
	caughtUp := h.s.opts.NoCaughtUp
	for {
		for ; next < len(recs); next++ {
			if err := send(recs[next]); err != nil {
				return err
			}
		}
		if !caughtUp {
			caughtUp = true
			if err := stream.Send(&api.ReadResp{Content: &api.ReadResp_CaughtUp_{CaughtUp: &api.ReadResp_CaughtUp{}}}); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-changed:
		}
		recs, _, changed = h.s.log.snapshot(name, all)
	}
}

func eventToProto(r *record, structured bool) *api.ReadResp_ReadEvent {
	return &api.ReadResp_ReadEvent{
		Event: &api.ReadResp_ReadEvent_RecordedEvent{
			Id:               uuidToProto(r.id, structured),
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(r.stream)},
			StreamRevision:   r.revision,
			PreparePosition:  r.position,
			CommitPosition:   r.position,
			Metadata: map[string]string{
				"type":         r.eventType,
				"content-type": r.contentType,
				"created":      r.created,
			},
			CustomMetadata: r.metadata,
			Data:           r.data,
		},
		Position: &api.ReadResp_ReadEvent_CommitPosition{CommitPosition: r.position},
	}
}
