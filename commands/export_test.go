package commands

import "github.com/evchat/evchat/domain"

// PendingSends returns how many sends wait in the room's queue, not yet in
// a batch: for tests that order a send behind another one.
func PendingSends(s *Service, room int64) int {
	s.sendQueues.mu.Lock()
	defer s.sendQueues.mu.Unlock()
	if q := s.sendQueues.queues[room]; q != nil {
		return len(q.pending)
	}
	return 0
}

// CachedMembers returns the members of the room's cached state and a
// function that returns them again later, read from that same state: for
// tests that check a cached state never changes.
func CachedMembers(s *Service, room int64) (now []int64, later func() []int64, ok bool) {
	st, _, ok := s.convs.get(domain.ConversationStream(room))
	if !ok {
		return nil, nil, false
	}
	return st.conv.Members(), func() []int64 { return st.conv.Members() }, true
}
