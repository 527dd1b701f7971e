package commands

import "time"

// observe reports a command's result and duration to Config.Observe;
// deferred with the command's named error result.
func (s *Service) observe(command string, start time.Time, err *error) {
	if s.observer != nil {
		s.observer(command, *err, s.now().Sub(start))
	}
}
