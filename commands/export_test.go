package commands

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
